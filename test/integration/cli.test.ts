import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, ensureCluster, PROXY_KUBECONFIG, TestNamespace } from '../helpers/cluster.js';
import { waitFor } from '../helpers/wait.js';
import { connect as tlsConnect } from 'node:tls';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';
import { startProxy } from '../helpers/proxy-process.js';
import { call } from '../helpers/https.js';

const BIN = join(ROOT, 'bin/api');

function runApi(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH, HOME: mkdtempSync(join(tmpdir(), 'home-')), ...env }, timeout: 10_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('bin/api command line', () => {
  let certs: CertFixture;
  before(async () => { certs = await makeCertFixture(); });
  const tlsArgs = (): string[] => ['--tls-cert', certs.serverCertFile, '--tls-key', certs.serverKeyFile, '--client-ca', certs.caFile];

  it('prints every flag with its default and environment variable in --help', async () => {
    const r = await runApi(['--help']);
    assert.equal(r.code, 0);
    for (const flag of ['--kubeconfig', '--context', '--listen', '--tls-cert', '--tls-key', '--client-ca', '--health-listen', '--log-level']) assert.match(r.stdout, new RegExp(`${flag} `));
    assert.match(r.stdout, /default 0\.0\.0\.0:8443/);
    assert.match(r.stdout, /\$K8S_API_PROXY_LISTEN/);
  });

  it('reports every configuration error at once, naming each flag, and exits 2 without listening', async () => {
    const r = await runApi(['--listen', 'nonsense', '--health-listen', '127.0.0.1:99999', '--tls-cert', '/no/such.crt', '--tls-key', certs.caFile, '--client-ca', certs.serverKeyFile, '--log-level', 'loud', '--bogus']);
    assert.equal(r.code, 2);
    for (const flag of ['--listen', '--health-listen', '--tls-cert', '--tls-key', '--client-ca', '--log-level', '--bogus']) assert.match(r.stderr, new RegExp(flag), flag);
  });

  it('refuses a key that does not match the certificate', async () => {
    const other = await certs.issueServer();
    const dir = mkdtempSync(join(tmpdir(), 'keys-'));
    writeFileSync(join(dir, 'other.key'), other.keyPem);
    const r = await runApi(['--tls-cert', certs.serverCertFile, '--tls-key', join(dir, 'other.key'), '--client-ca', certs.caFile]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--tls-key: does not match/);
  });

  it('exits 2 naming what it tried when no cluster access is configured (no silent localhost:8080)', async () => {
    const r = await runApi([...tlsArgs(), '--listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no Kubernetes configuration found; tried: --kubeconfig \(not set\), \$KUBECONFIG \(not set\), .*\.kube\/config \(missing\), in-cluster config/);
  });

  it('reports an address it cannot listen on as a configuration error naming the flag (exit 2)', async () => {
    await ensureCluster();
    const r = await runApi([...tlsArgs(), '--kubeconfig', PROXY_KUBECONFIG, '--listen', '192.0.2.1:8443', '--health-listen', 'no-such-host.invalid:8081']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--listen: cannot listen on 192.0.2.1:8443: not an address of this machine/);
    assert.match(r.stderr, /--health-listen: cannot listen on no-such-host.invalid:8081: host name does not resolve/);
  });

  it('answers 408 problem+json to a client that sends its body too slowly', async () => {
    await ensureCluster();
    const proxy = await startProxy({ certs, args: ['--request-timeout-seconds', '2'] });
    try {
      const { port } = new URL(proxy.apiUrl);
      const started = Date.now();
      const out = await new Promise<string>((resolve) => {
        const s = tlsConnect({ host: 'localhost', port: Number(port), ca: certs.ca, ...certs.client }, () => {
          s.write('PUT /deployments/default/x/replicas HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{');
          const drip = setInterval(() => { if (!s.destroyed) s.write(' '); }, 500);
          s.on('close', () => clearInterval(drip));
        });
        let text = '';
        s.setEncoding('utf8');
        s.on('data', (c: string) => { text += c; });
        s.on('close', () => resolve(text));
        s.on('error', () => resolve(text));
      });
      const elapsed = Date.now() - started;
      assert.ok(elapsed < 6_000, `closed after ${elapsed} ms`);
      assert.match(out, /^HTTP\/1.1 408 /);
      assert.match(out, /application\/problem\+json/);
    } finally {
      await proxy.stop();
    }
  });

  it('on SIGTERM lets an in-flight request finish before exiting 0', async () => {
    const ns = await TestNamespace.create('drain');
    try {
      await ns.createDeployment('web', { replicas: 1 });
      const proxy = await startProxy({ certs, args: ['--shutdown-delay-seconds', '0', '--shutdown-timeout-seconds', '10'] });
      await waitFor('cached', async () => (await proxy.request(`/deployments/${ns.name}/web/replicas`)).status === 200);
      const { port } = new URL(proxy.apiUrl);
      const body = '{"replicas":4}';
      const response = new Promise<string>((resolve) => {
        const s = tlsConnect({ host: 'localhost', port: Number(port), ca: certs.ca, ...certs.client }, () => {
          s.write(`PUT /deployments/${ns.name}/web/replicas HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`);
          // The request is in flight (headers read, body incomplete) when SIGTERM arrives.
          setTimeout(() => proxy.child.kill('SIGTERM'), 300);
          setTimeout(() => s.write(body.slice(5)), 900);
        });
        let text = '';
        s.setEncoding('utf8');
        s.on('data', (c: string) => { text += c; });
        s.on('close', () => resolve(text));
        s.on('error', () => resolve(text));
      });
      const text = await response;
      assert.match(text, /^HTTP\/1.1 200 /, text);
      assert.match(text, /"replicas":4/);
      assert.equal(await proxy.exited, 0);
      assert.equal((await ns.getDeployment('web')).spec.replicas, 4);
    } finally {
      await ns.cleanup();
    }
  });

  it('reads flags from their environment twins', async () => {
    const r = await runApi([], { K8S_API_PROXY_LISTEN: 'bad', K8S_API_PROXY_TLS_CERT: '/nope' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--listen: "bad"/);
    assert.match(r.stderr, /--tls-cert: cannot read \/nope/);
  });

  it('on SIGTERM fails /readyz first, then drains and exits 0', async () => {
    await ensureCluster();
    const proxy = await startProxy({ certs, args: ['--shutdown-delay-seconds', '2'] });
    assert.equal((await call(`${proxy.healthUrl}/readyz`)).status, 200);
    proxy.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    const during = await call(`${proxy.healthUrl}/readyz`);
    assert.equal(during.status, 503);
    assert.deepEqual(during.json, { status: 'error', message: 'shutting down' });
    const still = await proxy.request('/deployments');
    assert.equal(still.status, 200, 'requests are still served during the shutdown delay');
    const code = await proxy.exited;
    assert.equal(code, 0);
    assert.ok(proxy.logs.some((l) => l.msg === 'stopped'));
  });

  it('exits 1 at once on a second signal during shutdown, without waiting out the delay', async () => {
    await ensureCluster();
    const proxy = await startProxy({ certs, args: ['--shutdown-delay-seconds', '30'] });
    proxy.child.kill('SIGTERM');
    await waitFor('shutdown started', async () => (await call(`${proxy.healthUrl}/readyz`)).status === 503);
    const t0 = Date.now();
    proxy.child.kill('SIGINT');
    assert.equal(await proxy.exited, 1);
    assert.ok(Date.now() - t0 < 3_000, `exited after ${Date.now() - t0} ms`);
    assert.ok(proxy.logs.some((l) => l.msg === 'second signal during shutdown: exiting without draining'));
  });

  it('run as a file (./bin/api, and the image\'s entrypoint), starts Node.js with the young-generation bound of its first line', async () => {
    await ensureCluster();
    const child = spawn(BIN, ['--kubeconfig', PROXY_KUBECONFIG, '--listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0', ...tlsArgs()], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (c: Buffer) => { out += c; if (out.includes('"msg":"listening"')) resolve(); });
        child.on('exit', (code) => reject(new Error(`exited ${code} before listening: ${out}`)));
      });
      const argv = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
      const flag = argv.indexOf('--max-semi-space-size=8');
      assert.ok(flag > 0 && flag < argv.indexOf(BIN), `a Node.js flag before the script: ${argv.join(' ')}`);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('on a Node.js line older than 24.11 says so and exits 1, before any bundled code runs', async () => {
    const check = readFileSync(BIN, 'utf8').split('\n')[1];
    assert.match(check, /process\.versions\.node\);$/, 'the second line of bin/api is the version check');
    const run = (version: string) => new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, ['-e', check.replace('process.versions.node', JSON.stringify(version))], (err, _out, stderr) => resolve({ code: err ? Number((err as { code?: number }).code) : 0, stderr }));
    });
    for (const v of ['20.20.2', '22.12.0', '24.10.0']) {
      const r = await run(v);
      assert.equal(r.code, 1, v);
      assert.equal(r.stderr, `k8s-api-proxy: needs Node.js 24.11 or later (package.json engines); this is ${v}\n`);
    }
    for (const v of ['24.11.0', '24.22.3', '26.1.0']) assert.deepEqual(await run(v), { code: 0, stderr: '' }, v);
  });
});
