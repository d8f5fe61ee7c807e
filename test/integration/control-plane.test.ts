import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import {
  ensureCluster, kubectl, kubectlOk, apiServerUrl, stopApiServer, startApiServer, pidOf,
  PROXY_KUBECONFIG, TestNamespace, ROOT, KUBECTL, runCommand, CLUSTER_DIR,
} from '../helpers/cluster.js';
import { join } from 'node:path';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { tmpdir } from 'node:os';

const canI = async (verb: string, resource: string, extra: string[] = []): Promise<string> =>
  (await kubectl(['auth', 'can-i', verb, resource, ...extra], { kubeconfig: PROXY_KUBECONFIG })).stdout.trim();

function portRefuses(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const s = connect(Number(port), hostname);
    s.on('connect', () => { s.destroy(); resolve(false); });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

const CLUSTER_SH = join(ROOT, 'hack/control-plane/cluster.sh');

describe('local control plane', () => {
  before(ensureCluster);

  it('serves the system namespaces and the proxy namespace', async () => {
    const names = (await kubectlOk(['get', 'ns', '-o', 'jsonpath={.items[*].metadata.name}'])).split(' ');
    for (const ns of ['default', 'kube-system', 'k8s-api-proxy']) assert.ok(names.includes(ns), `${ns} in ${names}`);
  });

  it('reports a truthful version', async () => {
    const v = JSON.parse(await kubectlOk(['version', '-o', 'json']));
    assert.match(v.serverVersion.gitVersion, /^v1\.3[4-7]\.\d+$/);
  });

  it('gives the proxy ServiceAccount exactly its least-privilege role', async () => {
    const allowed: Array<[string, string, string[]?]> = [
      ['get', 'deployments.apps'], ['list', 'deployments.apps'], ['watch', 'deployments.apps'],
      ['get', 'deployments.apps', ['--subresource=scale']], ['update', 'deployments.apps', ['--subresource=scale']],
      ['create', 'subjectaccessreviews.authorization.k8s.io'],
      ['list', 'horizontalpodautoscalers.autoscaling', ['-A']], ['watch', 'horizontalpodautoscalers.autoscaling', ['-A']],
      ['get', '/healthz'], ['get', '/livez'], ['get', '/readyz'],
    ];
    const denied: Array<[string, string, string[]?]> = [
      ['update', 'deployments.apps'], ['patch', 'deployments.apps'], ['delete', 'deployments.apps'], ['create', 'deployments.apps'],
      ['patch', 'deployments.apps', ['--subresource=scale']], ['update', 'deployments.apps', ['--subresource=status']],
      ['get', 'secrets'], ['list', 'secrets', ['-A']], ['delete', 'pods'], ['create', 'pods/exec'],
      // No endpoint reads Pods, and Pod specs often carry secrets in env values.
      ['get', 'pods'], ['list', 'pods', ['-A']], ['watch', 'pods', ['-A']],
      // Asking is not acting: no impersonation.
      ['impersonate', 'users'], ['impersonate', 'groups'], ['impersonate', 'serviceaccounts'],
      ['update', 'horizontalpodautoscalers.autoscaling'], ['patch', 'horizontalpodautoscalers.autoscaling'], ['delete', 'horizontalpodautoscalers.autoscaling'],
    ];
    for (const [verb, res, extra] of allowed) assert.equal(await canI(verb, res, extra), 'yes', `${verb} ${res} ${extra ?? ''}`);
    for (const [verb, res, extra] of denied) assert.equal(await canI(verb, res, extra), 'no', `${verb} ${res} ${extra ?? ''}`);
  });

  it('installs the client roles and binds the demo client group to the scaler role, cluster-wide', async () => {
    const canDemo = async (...args: string[]): Promise<string> =>
      (await kubectl(['auth', 'can-i', ...args, '--as=client', '--as-group=k8s-api-proxy-demo'])).stdout.trim();
    assert.equal(await canDemo('update', 'deployments.apps', '--subresource=scale', '-n', 'default'), 'yes');
    assert.equal(await canDemo('list', 'deployments.apps', '-A'), 'yes');
    assert.equal(await canDemo('update', 'deployments.apps', '-n', 'default'), 'no');
    assert.equal((await kubectl(['auth', 'can-i', 'list', 'deployments.apps', '-A', '--as=client'])).stdout.trim(), 'no', 'the CN alone is bound to nothing');
    const roles = await kubectlOk(['get', 'clusterrole', 'k8s-api-proxy-k8s-api-proxy-viewer', 'k8s-api-proxy-k8s-api-proxy-scaler', '-o', 'name']);
    assert.deepEqual(roles.trim().split('\n'), ['clusterrole.rbac.authorization.k8s.io/k8s-api-proxy-k8s-api-proxy-viewer', 'clusterrole.rbac.authorization.k8s.io/k8s-api-proxy-k8s-api-proxy-scaler']);
  });

  it('cluster-up is idempotent: a second run keeps the same processes', async () => {
    const before = [pidOf('etcd'), pidOf('kube-apiserver')];
    assert.equal((await runCommand(CLUSTER_SH, ['up'])).code, 0);
    assert.deepEqual([pidOf('etcd'), pidOf('kube-apiserver')], before);
  });

  it('a second, throwaway cluster: up lists the namespaces, down leaves no process and no state', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cluster-'));
    rmSync(dir, { recursive: true });
    const sh = (verb: string): Promise<{ code: number }> => runCommand(CLUSTER_SH, [verb], { env: { CLUSTER_DIR: dir } });
    try {
      assert.equal((await sh('up')).code, 0);
      const pids = ['etcd', 'kube-apiserver'].map((n) => Number(readFileSync(join(dir, `${n}.pid`), 'utf8')));
      const ns = (await runCommand(KUBECTL, [`--kubeconfig=${join(dir, 'admin.kubeconfig')}`, 'get', 'ns', '-o', 'name'])).stdout;
      for (const n of ['namespace/default', 'namespace/kube-system', 'namespace/k8s-api-proxy']) assert.ok(ns.includes(n), n);
      assert.equal((await sh('down')).code, 0);
      assert.equal(existsSync(dir), false, 'state removed');
      for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/, `process ${pid} gone`);
      assert.equal((await sh('down')).code, 0, 'down when nothing runs is fine');
    } finally {
      await sh('down');
    }
  });

  describe('an API server outage', () => {
    let ns: TestNamespace;
    before(async () => { ns = await TestNamespace.create('cp-outage'); });
    after(async () => { await startApiServer(); await ns.cleanup(); });

    it('refuses connections while down, keeps objects and tokens after a restart', async () => {
      await ns.createDeployment('survivor', { replicas: 3, labels: { tier: 'web' } });
      const url = apiServerUrl();
      const etcdPid = pidOf('etcd');
      await stopApiServer();
      assert.equal(await portRefuses(url), true, 'port refuses while kube-apiserver is stopped');
      const during = await kubectl(['get', 'ns', 'default', '--request-timeout=2s']);
      assert.notEqual(during.code, 0);
      await startApiServer();
      assert.equal(pidOf('etcd'), etcdPid, 'etcd kept running');
      const d = await ns.getDeployment('survivor');
      assert.equal(d.spec.replicas, 3);
      assert.equal(d.metadata.labels.tier, 'web');
      assert.equal(await canI('list', 'deployments.apps'), 'yes', 'the proxy token minted before the outage still works');
    });

    it('cluster-up repairs a half-running cluster (etcd up, kube-apiserver down)', async () => {
      await stopApiServer();
      assert.equal(pidOf('kube-apiserver'), undefined);
      assert.equal((await runCommand(CLUSTER_SH, ['up'])).code, 0);
      assert.ok(pidOf('kube-apiserver'));
      assert.equal((await ns.getDeployment('survivor')).spec.replicas, 3);
    });

    it('cluster-up restarts a killed kube-apiserver when its PID file names a zombie or an unrelated process', async () => {
      // `sh` prints the PID of a child, then becomes `sleep`, which never reaps it: once the
      // child exits it is a zombie that still answers `kill -0`, as an unreaped kube-apiserver
      // would. The child outlives the exec (0.3 s): one that exited first could be reaped by
      // sh before it became `sleep`, leaving no zombie (seen once in CI).
      const holder = spawn('sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 60'], { stdio: ['ignore', 'pipe', 'ignore'] });
      after(() => { holder.kill('SIGKILL'); });
      const zombie = Number((await once(holder.stdout!, 'data'))[0].toString().trim());
      const stat = async (pid: number): Promise<string> => (await runCommand('ps', ['-o', 'stat=', '-p', String(pid)])).stdout.trim();
      for (let i = 0; i < 50 && !(await stat(zombie)).startsWith('Z'); i++) await new Promise((r) => setTimeout(r, 20));
      assert.match(await stat(zombie), /^Z/, 'the fixture made a zombie');
      const pidFile = join(CLUSTER_DIR, 'kube-apiserver.pid');
      for (const [what, stand] of [['a zombie', zombie], ['a recycled PID (another live program)', holder.pid!]] as const) {
        const url = apiServerUrl();
        process.kill(pidOf('kube-apiserver')!, 'SIGKILL');
        for (let i = 0; i < 100 && !(await portRefuses(url)); i++) await new Promise((r) => setTimeout(r, 50));
        writeFileSync(pidFile, `${stand}\n`);
        const status = await runCommand(CLUSTER_SH, ['status']);
        assert.match(status.stdout, /kube-apiserver: stopped/, `status with ${what}`);
        const up = await runCommand(CLUSTER_SH, ['up']);
        assert.equal(up.code, 0, `${what}: ${up.stderr}`);
        assert.notEqual(pidOf('kube-apiserver'), stand, what);
        assert.equal((await kubectl(['get', 'ns', ns.name])).code, 0, `${what}: the API server answers`);
      }
      assert.equal(holder.exitCode, null, 'cluster.sh never signalled the unrelated process');
    });
  });
});
