/**
 * The container image, built from the unchanged Dockerfile by hack/image/build.sh (podman,
 * on the local stand-in for node:24-bookworm-slim) and run the way the chart runs it:
 * read-only root filesystem, UID/GID 65532, every capability dropped, no new privileges,
 * certificates (and the kubeconfig or ServiceAccount) mounted read-only with the chart's
 * Secret mode 0440 and fsGroup 65532, host network, against the real local kube-apiserver.
 *
 * Skipped, visibly, only when podman, runc or debootstrap are missing and cannot be
 * installed (hack/image/build.sh exits 3); with K8S_API_PROXY_REQUIRE_IMAGE_TEST=1 (set by
 * .ci/run) that fails instead.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ROOT, CLUSTER_DIR, PROXY_KUBECONFIG, apiServerUrl, kubectlOk, runCommand, TestNamespace } from '../helpers/cluster.js';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';
import { call } from '../helpers/https.js';
import { sleep } from '../helpers/wait.js';

const BUILD = join(ROOT, 'hack/image/build.sh');
const PODMAN = join(ROOT, 'hack/image/podman.sh');
const IMAGE = 'k8s-api-proxy:dev';
const UID = 65532;
/** The chart's defaults (values.yaml): the grace period must cover delay + timeout. */
const CHART = { shutdownDelaySeconds: 5, shutdownTimeoutSeconds: 15, terminationGracePeriodSeconds: 30 };
const TLS_DIR = '/etc/k8s-api-proxy/tls';
const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Copies `files` (name → source) into a fresh directory as a kubelet-mounted Secret: root:65532, 0440. */
function secretDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'k8s-api-proxy-secret-'));
  chmodSync(dir, 0o755);
  for (const [name, src] of Object.entries(files)) {
    copyFileSync(src, join(dir, name));
    chownSync(join(dir, name), 0, UID);
    chmodSync(join(dir, name), 0o440);
  }
  return dir;
}

/** A TCP port free on 127.0.0.1 right now (the container shares the host network). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** One `podman run` in the foreground, with its output collected. */
interface Container {
  name: string;
  api: string;
  health: string;
  logs: () => Array<Record<string, unknown>>;
  output: () => string;
  exited: Promise<number | null>;
  /** Milliseconds from `podman run` to the first 200 from /readyz. */
  readyAfterMs: number;
}

async function runContainer(opts: { mounts: string[]; env: Record<string, string>; args?: string[] }): Promise<Container> {
  const name = `k8s-api-proxy-test-${randomBytes(4).toString('hex')}`;
  const [apiPort, healthPort] = [await freePort(), await freePort()];
  const argv = [
    'run', '--name', name, '--pull=never',
    '--read-only', '--read-only-tmpfs=false', // no writable /tmp, /var/tmp or /run either
    '--user', `${UID}:${UID}`, '--group-add', String(UID), // runAsUser/runAsGroup/fsGroup 65532
    '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges',
    '--network', 'host',
    ...opts.mounts.flatMap((m) => ['--volume', m]),
    '--env', `K8S_API_PROXY_LISTEN=127.0.0.1:${apiPort}`, '--env', `K8S_API_PROXY_HEALTH_LISTEN=127.0.0.1:${healthPort}`,
    ...Object.entries(opts.env).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
    IMAGE, ...(opts.args ?? []),
  ];
  const started = Date.now();
  const child: ChildProcess = spawn(PODMAN, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => { out += c; });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => { out += c; });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let done = false;
  void exited.then(() => { done = true; });
  const health = `http://127.0.0.1:${healthPort}`;
  for (const deadline = started + 60_000; ;) {
    if (done) throw new Error(`the container exited (${await exited}) before /readyz answered 200:\n${out}`);
    if ((await call(`${health}/readyz`, { timeoutMs: 1_000 }).catch(() => undefined))?.status === 200) break;
    if (Date.now() > deadline) throw new Error(`/readyz not 200 within 60 s:\n${out}`);
    await sleep(100);
  }
  const readyAfterMs = Date.now() - started;
  const logs = (): Array<Record<string, unknown>> => out.split('\n').flatMap((l) => { try { return [JSON.parse(l) as Record<string, unknown>]; } catch { return []; } });
  return { name, api: `https://localhost:${apiPort}`, health, logs, output: () => out, exited, readyAfterMs };
}

/** Status fields of the container's main process, read by the host from /proc. */
async function processFacts(name: string): Promise<{ status: Record<string, string>; rootMount: string }> {
  const pid = (await podmanOk(['inspect', '--format', '{{.State.Pid}}', name])).trim();
  const status = Object.fromEntries(readFileSync(`/proc/${pid}/status`, 'utf8').trim().split('\n').map((l) => l.split(/:\s*/, 2) as [string, string]));
  const rootMount = readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n').find((l) => l.split(' ')[4] === '/') ?? '';
  return { status, rootMount };
}

async function podmanOk(args: string[]): Promise<string> {
  const r = await runCommand(PODMAN, args);
  if (r.code !== 0) throw new Error(`podman ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/**
 * What changed in the container's own filesystem (`podman diff`), minus the mount points
 * the runtime created for `mounts` (each destination and its parents; /var/run is /run).
 */
async function writtenOutsideMounts(name: string, mounts: string[]): Promise<string[]> {
  const dests = mounts.map((m) => m.split(':')[1]!.replace(/^\/var\/run\//, '/run/'));
  return (await podmanOk(['diff', name])).trim().split('\n').filter(Boolean)
    .filter((l) => { const p = l.slice(2); return !dests.some((d) => d === p || d.startsWith(`${p}/`)); });
}

/** SIGTERM as the kubelet sends it; resolves with the exit code and how long it took. */
async function terminate(c: Container): Promise<{ code: number | null; ms: number }> {
  const t0 = Date.now();
  await podmanOk(['kill', '--signal', 'TERM', c.name]);
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), CHART.terminationGracePeriodSeconds * 1000).unref());
  const code = await Promise.race([c.exited, timer]);
  if (code === 'timeout') throw new Error(`still running ${CHART.terminationGracePeriodSeconds} s after SIGTERM:\n${c.output()}`);
  return { code, ms: Date.now() - t0 };
}

describe('container image (podman, stand-in node:24-bookworm-slim base)', () => {
  let skip: string | undefined;
  let certs: CertFixture;
  let tlsDir: string;
  let ns: TestNamespace;
  const names: string[] = [];
  const dirs: string[] = [];

  before(async () => {
    const t0 = Date.now();
    const built = await runCommand(BUILD, [IMAGE]);
    if (built.code === 3 && process.env.K8S_API_PROXY_REQUIRE_IMAGE_TEST !== '1') {
      skip = `podman/runc/debootstrap unavailable and not installable here: ${built.stderr.trim().split('\n').at(-1)}`;
      return;
    }
    assert.equal(built.code, 0, `hack/image/build.sh failed:\n${built.stderr}`);
    const size = Number((await podmanOk(['image', 'inspect', '--format', '{{.Size}}', IMAGE])).trim());
    console.log(`# image ${IMAGE} built in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${(size / 1e6).toFixed(0)} MB`);
    certs = await makeCertFixture();
    tlsDir = secretDir({ 'tls.crt': certs.serverCertFile, 'tls.key': certs.serverKeyFile, 'ca.crt': certs.caFile });
    dirs.push(tlsDir);
    ns = await TestNamespace.create('image');
    await ns.createDeployment('web', { replicas: 2 });
  });

  after(async () => {
    for (const n of names) await runCommand(PODMAN, ['rm', '--force', n]);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    await ns?.cleanup();
  });

  it('runs as the chart runs it: read-only, UID 65532, no capabilities; probes, mTLS, clean SIGTERM, nothing written', async (t) => {
    if (skip) return t.skip(skip);
    const kubeDir = secretDir({ kubeconfig: PROXY_KUBECONFIG });
    dirs.push(kubeDir);
    // The chart's container args, with its shutdown values.
    const mounts = [`${tlsDir}:${TLS_DIR}:ro`, `${kubeDir}:/etc/k8s-api-proxy/kube:ro`];
    const c = await runContainer({
      mounts,
      env: { K8S_API_PROXY_KUBECONFIG: '/etc/k8s-api-proxy/kube/kubeconfig' },
      args: [
        `--tls-cert=${TLS_DIR}/tls.crt`, `--tls-key=${TLS_DIR}/tls.key`, `--client-ca=${TLS_DIR}/ca.crt`, '--log-level=info',
        `--shutdown-delay-seconds=${CHART.shutdownDelaySeconds}`, `--shutdown-timeout-seconds=${CHART.shutdownTimeoutSeconds}`,
      ],
    });
    names.push(c.name);
    t.diagnostic(`start to ready: ${c.readyAfterMs} ms`);

    const { status, rootMount } = await processFacts(c.name);
    assert.equal(status.Uid, `${UID}\t${UID}\t${UID}\t${UID}`);
    assert.equal(status.Gid, `${UID}\t${UID}\t${UID}\t${UID}`);
    for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) assert.equal(status[set], '0000000000000000', set);
    assert.equal(status.NoNewPrivs, '1');
    assert.match(rootMount.split(' ')[5] ?? '', /(^|,)ro(,|$)/, `root filesystem mount: ${rootMount}`);
    // The entrypoint runs /app/api itself: its first line starts node with the flags it carries (scripts/build.mjs).
    assert.match(readFileSync(`/proc/${status.Pid}/cmdline`, 'utf8'), /^node\0--max-semi-space-size=8\0\/app\/api\0/);

    assert.equal((await call(`${c.health}/livez`)).status, 200);
    assert.deepEqual((await call(`${c.health}/readyz`)).json, { status: 'ok' });
    const tls = { ca: certs.ca, ...certs.client };
    const list = await call(`${c.api}/deployments?namespace=${ns.name}`, { tls });
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.json, [{ name: 'web', namespace: ns.name }]);
    assert.deepEqual((await call(`${c.api}/deployments/${ns.name}/web/replicas`, { tls })).json, { deployment: 'web', namespace: ns.name, replicas: 2 });
    await assert.rejects(call(`${c.api}/deployments`, { tls: { ca: certs.ca } }), 'a client without a certificate is refused');
    assert.ok(c.logs().some((l) => l.msg === 'request' && l.client === 'ci-pipeline' && l.status === 200), c.output());

    const { code, ms } = await terminate(c);
    t.diagnostic(`SIGTERM to exit: ${ms} ms`);
    assert.equal(code, 0, c.output());
    assert.ok(ms >= CHART.shutdownDelaySeconds * 1000, `exited ${ms} ms after SIGTERM, before the ${CHART.shutdownDelaySeconds} s shutdown delay`);
    assert.deepEqual(await writtenOutsideMounts(c.name, mounts), []);
  });

  it('runs in in-cluster mode with the ServiceAccount token and CA at the standard path', async (t) => {
    if (skip) return t.skip(skip);
    const work = mkdtempSync(join(tmpdir(), 'k8s-api-proxy-sa-'));
    dirs.push(work);
    const token = (await kubectlOk(['-n', 'k8s-api-proxy', 'create', 'token', 'k8s-api-proxy', '--duration=1h'])).trim();
    writeFileSync(join(work, 'token'), token);
    writeFileSync(join(work, 'namespace'), 'k8s-api-proxy');
    const saDir = secretDir({ token: join(work, 'token'), 'ca.crt': join(CLUSTER_DIR, 'certs/apiserver.crt'), namespace: join(work, 'namespace') });
    dirs.push(saDir);
    // The image's own CMD (certificate paths as the chart mounts them), no kubeconfig anywhere.
    const mounts = [`${tlsDir}:${TLS_DIR}:ro`, `${saDir}:${SA_DIR}:ro`];
    const c = await runContainer({
      mounts,
      env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: new URL(apiServerUrl()).port },
    });
    names.push(c.name);
    t.diagnostic(`start to ready: ${c.readyAfterMs} ms`);
    assert.ok(c.logs().some((l) => l.msg === 'cluster access configured' && /in-cluster/.test(String(l.source))), c.output());
    const tls = { ca: certs.ca, ...certs.client };
    assert.equal((await call(`${c.api}/healthz`, { tls })).status, 200);
    const list = await call(`${c.api}/deployments?namespace=${ns.name}`, { tls });
    assert.deepEqual(list.json, [{ name: 'web', namespace: ns.name }], list.text);
    const put = await call(`${c.api}/deployments/${ns.name}/web/replicas`, { tls, method: 'PUT', body: { replicas: 4 } });
    assert.equal(put.status, 200, put.text);
    assert.equal((await ns.getDeployment('web')).spec.replicas, 4);
    const { code } = await terminate(c);
    assert.equal(code, 0, c.output());
    assert.deepEqual(await writtenOutsideMounts(c.name, mounts), []);
  });
});
