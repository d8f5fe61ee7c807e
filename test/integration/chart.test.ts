import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, symlinkSync, renameSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ROOT, HELM, KUBECTL, CLUSTER_DIR, runCommand, ADMIN_KUBECONFIG, ensureCluster, kubectl, kubectlOk, apiServerUrl, TestNamespace } from '../helpers/cluster.js';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';
import { startProxy } from '../helpers/proxy-process.js';
import { waitFor } from '../helpers/wait.js';

const CHART = join(ROOT, 'charts/k8s-api-proxy');

describe('Helm chart and in-cluster mode', () => {
  let certs: CertFixture;
  let certsDir: string;
  let tlsValues: string[];
  before(async () => {
    await ensureCluster();
    certs = await makeCertFixture();
    // `make deploy` reads ca.crt, server.crt, server.key from CERTS_DIR.
    certsDir = mkdtempSync(join(tmpdir(), 'deploy-certs-'));
    copyFileSync(certs.caFile, join(certsDir, 'ca.crt'));
    copyFileSync(certs.serverCertFile, join(certsDir, 'server.crt'));
    copyFileSync(certs.serverKeyFile, join(certsDir, 'server.key'));
    const b64 = (f: string): string => readFileSync(f).toString('base64');
    tlsValues = ['--set', `tls.caCrt=${b64(certs.caFile)}`, '--set', `tls.crt=${b64(certs.serverCertFile)}`, '--set', `tls.key=${b64(certs.serverKeyFile)}`];
  });

  const template = (extra: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    runCommand(HELM, ['template', 'rel', CHART, '--namespace', 'k8s-api-proxy', ...extra]);

  describe('rendering', () => {
    it('passes helm lint', async () => {
      const r = await runCommand(HELM, ['lint', '--strict', CHART, ...tlsValues]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /0 chart\(s\) failed/);
    });

    it('renders every object with defaults, the ClusterRole from the shared RBAC file', async () => {
      const r = await template(tlsValues);
      assert.equal(r.code, 0, r.stderr);
      for (const kind of ['ServiceAccount', 'Secret', 'ClusterRole', 'ClusterRoleBinding', 'Service', 'Deployment', 'PodDisruptionBudget']) {
        assert.match(r.stdout, new RegExp(`^kind: ${kind}$`, 'm'), kind);
      }
      assert.doesNotMatch(r.stdout, /^kind: Ingress$/m);
      assert.match(r.stdout, /resources:\n\s+- deployments\/scale\n\s+verbs:\n\s+- get\n\s+- update/);
      assert.match(r.stdout, /checksum\/tls: [0-9a-f]{64}/);
      assert.match(r.stdout, /replicas: 2\n/);
      assert.match(r.stdout, /maxUnavailable: 0/);
      assert.match(r.stdout, /port: 443\n\s+targetPort: https/);
    });

    it('renders a TLS-passthrough Ingress when enabled', async () => {
      const r = await template([...tlsValues, '--set', 'ingress.enabled=true', '--set', 'ingress.host=proxy.example.com']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^kind: Ingress$/m);
      assert.match(r.stdout, /nginx.ingress.kubernetes.io\/ssl-passthrough: "true"/);
      assert.match(r.stdout, /host: "proxy.example.com"/);
    });

    it('refuses to render an Ingress that would terminate TLS, and says why', async () => {
      const r = await template([...tlsValues, '--set', 'ingress.enabled=true', '--set', 'ingress.tlsPassthrough=false']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /strips the client certificate/);
    });

    it('uses an existing Secret (cert-manager) instead of rendering one', async () => {
      const r = await template(['--set', 'tls.existingSecret=my-certs']);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout, /^kind: Secret$/m);
      assert.match(r.stdout, /secretName: my-certs/);
      assert.doesNotMatch(r.stdout, /checksum\/tls/);
    });

    const invalid: Array<[string, string[], RegExp]> = [
      ['a string replica count', ['--set-string', 'replicaCount=two'], /replicaCount.*want integer/],
      ['an unknown log level', ['--set', 'logLevel=loud'], /logLevel/],
      ['an unknown key', ['--set', 'replicas=3'], /additional properties 'replicas'|replicas/],
      ['a bad pull policy', ['--set', 'image.pullPolicy=Sometimes'], /pullPolicy/],
    ];
    for (const [label, args, re] of invalid) {
      it(`fails with a clear message on ${label}`, async () => {
        const r = await template([...tlsValues, ...args]);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, re);
      });
    }

    it('fails with a clear message when no certificates are given', async () => {
      const r = await template([]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /tls.caCrt, tls.crt and tls.key .* are required unless tls.existingSecret/);
    });
  });

  describe('on the real API server', () => {
    const ns = `chart-${randomBytes(3).toString('hex')}`;
    const release = ns;
    const name = `${release}-k8s-api-proxy`; // the chart's full name for a release not named after it
    const deployEnv = { KUBECONFIG: ADMIN_KUBECONFIG, NAMESPACE: ns, RELEASE: release, CERTS_DIR: '' };
    const sa = `system:serviceaccount:${ns}:${name}`;
    before(() => { deployEnv.CERTS_DIR = certsDir; });
    after(async () => { await runCommand('make', ['-s', 'undeploy'], { env: deployEnv }); });

    it('accepts the rendered manifests in a server-side dry run', async () => {
      await kubectlOk(['create', 'namespace', `${ns}-dry`]);
      const r = await template([...tlsValues, '--namespace', `${ns}-dry`]);
      const dry = await kubectl(['apply', '--dry-run=server', '-f', '-'], { input: r.stdout });
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, /deployment.apps\/rel-k8s-api-proxy created \(server dry run\)/);
      await kubectl(['delete', 'namespace', `${ns}-dry`, '--wait=false']);
    });

    it('installs with make deploy, twice (idempotent)', async () => {
      for (let i = 0; i < 2; i++) {
        const r = await runCommand('make', ['-s', 'deploy'], { env: deployEnv });
        assert.equal(r.code, 0, r.stdout + r.stderr);
      }
      const objs = await kubectlOk(['-n', ns, 'get', 'deployment,service,secret,serviceaccount,poddisruptionbudget', '-o', 'name']);
      for (const o of [`deployment.apps/${name}`, `service/${name}`, `secret/${name}-tls`, `serviceaccount/${name}`, `poddisruptionbudget.policy/${name}`]) assert.ok(objs.includes(o), o);
      const history = await runCommand(HELM, ['history', release, '-n', ns, '-o', 'json'], { env: { KUBECONFIG: ADMIN_KUBECONFIG } });
      assert.equal(JSON.parse(history.stdout).length, 2);
    });

    it("gives the chart's ServiceAccount exactly the intended permissions", async () => {
      const can = async (...args: string[]): Promise<string> => (await kubectl(['auth', 'can-i', ...args, `--as=${sa}`])).stdout.trim();
      assert.equal(await can('list', 'deployments.apps', '-A'), 'yes');
      assert.equal(await can('watch', 'deployments.apps', '-A'), 'yes');
      assert.equal(await can('update', 'deployments.apps', '--subresource=scale', '-n', 'default'), 'yes');
      assert.equal(await can('list', 'pods', '-A'), 'yes');
      assert.equal(await can('get', '/readyz'), 'yes');
      for (const denied of [['update', 'deployments.apps'], ['patch', 'deployments.apps'], ['delete', 'deployments.apps'], ['get', 'secrets'], ['get', 'secrets', '-n', ns], ['create', 'pods']]) {
        assert.equal(await can(...denied), 'no', denied.join(' '));
      }
    });

    it('runs in-cluster mode with the chart ServiceAccount and survives token rotation and revocation', async () => {
      const work = await TestNamespace.create('incluster');
      await work.createDeployment('app', { replicas: 2 });
      // Bound tokens are revoked by deleting the object they are bound to.
      const token = async (secret: string): Promise<string> => {
        await kubectlOk(['-n', ns, 'create', 'secret', 'generic', secret]);
        return (await kubectlOk(['-n', ns, 'create', 'token', name, '--bound-object-kind=Secret', `--bound-object-name=${secret}`, '--duration=1h'])).trim();
      };
      const saDir = mkdtempSync(join(tmpdir(), 'sa-'));
      const writeVersion = (v: string, tok: string): void => {
        mkdirSync(join(saDir, v));
        writeFileSync(join(saDir, v, 'token'), tok);
        copyFileSync(join(CLUSTER_DIR, 'certs/apiserver.crt'), join(saDir, v, 'ca.crt'));
        writeFileSync(join(saDir, v, 'namespace'), ns);
      };
      writeVersion('v1', await token('tok-1'));
      symlinkSync('v1', join(saDir, '..data'));
      for (const f of ['token', 'ca.crt', 'namespace']) symlinkSync(`..data/${f}`, join(saDir, f));
      const port = new URL(apiServerUrl()).port;
      const proxy = await startProxy({
        certs, kubeconfig: '', args: ['--service-account-dir', saDir],
        env: { PATH: process.env.PATH, HOME: mkdtempSync(join(tmpdir(), 'home-')), KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port },
      });
      try {
        assert.ok(proxy.logs.some((l) => l.msg === 'cluster access configured' && /in-cluster/.test(String(l.source))));
        assert.equal((await proxy.request('/healthz')).status, 200);
        const list = await proxy.request(`/deployments?namespace=${work.name}`);
        assert.deepEqual(list.json, [{ name: 'app', namespace: work.name }]);
        assert.equal((await proxy.request(`/deployments/${work.name}/app/replicas`, { method: 'PUT', body: { replicas: 3 } })).status, 200);

        // kubelet's atomic swap: new version dir, new ..data symlink renamed over the old one.
        writeVersion('v2', await token('tok-2'));
        symlinkSync('v2', join(saDir, '..data_tmp'));
        renameSync(join(saDir, '..data_tmp'), join(saDir, '..data'));
        const old = readFileSync(join(saDir, 'v1', 'token'), 'utf8');
        await kubectlOk(['-n', ns, 'delete', 'secret', 'tok-1']);
        const oldWorks = async (): Promise<boolean> => (await runCommand(KUBECTL, ['--kubeconfig=/dev/null', `--server=${apiServerUrl()}`, `--certificate-authority=${join(CLUSTER_DIR, 'certs/apiserver.crt')}`, `--token=${old}`, 'get', '--raw', '/readyz'])).code === 0;
        await waitFor('old token revoked', async () => !(await oldWorks()), 10_000, 500);

        const put = await proxy.request(`/deployments/${work.name}/app/replicas`, { method: 'PUT', body: { replicas: 7 } });
        assert.equal(put.status, 200, put.text);
        assert.equal((await work.getDeployment('app')).spec.replicas, 7);
        assert.equal((await proxy.request('/healthz')).status, 200);
        await work.scale('app', 9);
        await waitFor('cache follows', async () => (await proxy.request(`/deployments/${work.name}/app/replicas`)).json.replicas === 9, 5_000);
      } finally {
        await proxy.stop();
        await work.cleanup();
      }
    });

    it('removes every release object with make undeploy, and succeeds when nothing is installed', async () => {
      const r = await runCommand('make', ['-s', 'undeploy'], { env: deployEnv });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const left = await kubectl(['-n', ns, 'get', 'deployment,service,secret,serviceaccount,poddisruptionbudget', '-o', 'name', '--ignore-not-found']);
      assert.equal(left.stdout.trim().split('\n').filter((l) => l && !l.includes('secret/tok-')).join(), '');
      assert.notEqual((await kubectl(['get', 'clusterrole', name])).code, 0);
      assert.notEqual((await kubectl(['get', 'clusterrolebinding', name])).code, 0);
      const again = await runCommand('make', ['-s', 'undeploy'], { env: deployEnv });
      assert.equal(again.code, 0, again.stderr);
    });
  });

  describe('the default release on the local control plane', () => {
    it('adopts the ServiceAccount and RBAC that cluster-up created, and cluster-up restores them after undeploy', async () => {
      const env = { KUBECONFIG: ADMIN_KUBECONFIG, CERTS_DIR: certsDir };
      try {
        const r = await runCommand('make', ['-s', 'deploy'], { env: env });
        assert.equal(r.code, 0, r.stderr);
        const owner = await kubectlOk(['-n', 'k8s-api-proxy', 'get', 'serviceaccount', 'k8s-api-proxy', '-o', 'jsonpath={.metadata.annotations.meta\\.helm\\.sh/release-name}']);
        assert.equal(owner, 'k8s-api-proxy');
        assert.equal((await runCommand('make', ['-s', 'undeploy'], { env: env })).code, 0);
      } finally {
        const up = await runCommand(join(ROOT, 'hack/control-plane/cluster.sh'), ['up'], { env: { CLUSTER_DIR } });
        assert.equal(up.code, 0, up.stderr);
      }
      const can = await kubectl(['auth', 'can-i', 'list', 'deployments.apps'], { kubeconfig: join(CLUSTER_DIR, 'proxy.kubeconfig') });
      assert.equal(can.stdout.trim(), 'yes', 'the proxy identity works again');
    });
  });

  describe('Pod Security Standard "restricted"', () => {
    const ns = `pss-${randomBytes(3).toString('hex')}`;
    const env = { KUBECONFIG: ADMIN_KUBECONFIG, NAMESPACE: ns, RELEASE: ns, CERTS_DIR: '' };
    before(() => { env.CERTS_DIR = certsDir; });
    after(async () => { await runCommand('make', ['-s', 'undeploy'], { env: env }); });

    it('installs without a PodSecurity warning and its pod template is admitted as a Pod', async () => {
      await kubectlOk(['create', 'namespace', ns]);
      await kubectlOk(['label', 'namespace', ns, 'pod-security.kubernetes.io/enforce=restricted', 'pod-security.kubernetes.io/warn=restricted', 'pod-security.kubernetes.io/audit=restricted']);
      const r = await runCommand('make', ['-s', 'deploy'], { env: env });
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout + r.stderr, /PodSecurity|would violate/i);
      const dep = JSON.parse(await kubectlOk(['-n', ns, 'get', 'deployment', `${ns}-k8s-api-proxy`, '-o', 'json']));
      const pod = {
        apiVersion: 'v1', kind: 'Pod',
        metadata: { name: 'from-template', namespace: ns, labels: dep.spec.template.metadata.labels },
        spec: { ...dep.spec.template.spec, nodeName: 'fake-node' },
      };
      const created = await kubectl(['create', '-f', '-'], { input: JSON.stringify(pod) });
      assert.equal(created.code, 0, created.stderr);
      assert.doesNotMatch(created.stderr, /violate/);
      // Control: the same namespace refuses a Pod that breaks the standard.
      const bad = { ...pod, metadata: { ...pod.metadata, name: 'privileged' }, spec: { nodeName: 'fake-node', containers: [{ name: 'c', image: 'x', securityContext: { privileged: true } }] } };
      const refused = await kubectl(['create', '-f', '-'], { input: JSON.stringify(bad) });
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /violates PodSecurity "restricted/);
    });
  });
});
