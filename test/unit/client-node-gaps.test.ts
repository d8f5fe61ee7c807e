/**
 * Why this project still hand-writes parts that @kubernetes/client-node offers: each test
 * pins down one behaviour of the installed client-node that we could not live with (or,
 * for proxy-url, one that it now gets right and we build on). They run against whatever
 * version package-lock.json installs; the README's "library gaps" table names the version
 * and one row per test. If an upgrade makes a test fail, the library has changed: revisit
 * the row and the code it justifies.
 */
import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type https from 'node:https';
import { createRequire } from 'node:module';
import { KubeConfig, makeInformer, AppsV1Api, type V1Deployment } from '@kubernetes/client-node';
import { fakeApiServer, json, deployment, type FakeApiServer } from '../helpers/fake-api-server.js';
import { sleep } from '../helpers/wait.js';

const CLIENT_NODE_VERSION = (createRequire(import.meta.url)('@kubernetes/client-node/package.json') as { version: string }).version;

function kubeConfig(url: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: url, skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'u' }],
    currentContext: 'fake',
  });
  return kc;
}

describe(`@kubernetes/client-node ${CLIENT_NODE_VERSION}: gaps that src/kube/ fills`, () => {
  let server: FakeApiServer | undefined;
  afterEach(async () => { await server?.close(); server = undefined; });

  it('informer: stops for good after one failed watch, with no retry and no backoff (so: src/kube/reflector.ts)', async () => {
    server = await fakeApiServer((req, res) => {
      if (!req.url!.includes('watch=true')) return json(res, 200, { kind: 'DeploymentList', apiVersion: 'apps/v1', metadata: { resourceVersion: '1' }, items: [deployment('ns', 'a', '1')] });
      json(res, 500, { kind: 'Status', code: 500, message: 'transient' });
    });
    const kc = kubeConfig(server.url);
    const apps = kc.makeApiClient(AppsV1Api);
    const informer = makeInformer<V1Deployment>(kc, '/apis/apps/v1/deployments', () => apps.listDeploymentForAllNamespaces());
    const errors: unknown[] = [];
    informer.on('error', (err) => errors.push(err));
    await informer.start();
    await sleep(3_000); // client-go would have retried after ~0.8 s and ~1.6 s
    const watches = server.requests.filter((r) => r.includes('watch=true')).length;
    await informer.stop();
    assert.equal(errors.length, 1, 'the error is reported once');
    assert.equal(watches, 1, 'and the informer never tries again');
  });

  it('informer: sends no timeoutSeconds on its watch, so a half-open connection stalls it silently (so: src/kube/reflector.ts)', async () => {
    server = await fakeApiServer((req, res) => {
      if (!req.url!.includes('watch=true')) return json(res, 200, { kind: 'DeploymentList', apiVersion: 'apps/v1', metadata: { resourceVersion: '1' }, items: [] });
      res.writeHead(200).flushHeaders(); // silence
    });
    const kc = kubeConfig(server.url);
    const apps = kc.makeApiClient(AppsV1Api);
    const informer = makeInformer<V1Deployment>(kc, '/apis/apps/v1/deployments', () => apps.listDeploymentForAllNamespaces());
    await informer.start();
    await sleep(200);
    const watch = server.requests.find((r) => r.includes('watch=true'))!;
    await informer.stop();
    assert.equal(new URL(watch, 'http://x').searchParams.get('timeoutSeconds'), null);
  });

  it('generated clients: open a new connection for every call, no keep-alive pool (so: src/kube/kube-client.ts)', async () => {
    server = await fakeApiServer((_req, res) => json(res, 200, { kind: 'Scale', apiVersion: 'autoscaling/v1', metadata: { name: 'a', namespace: 'ns' }, spec: { replicas: 1 } }));
    const apps = kubeConfig(server.url).makeApiClient(AppsV1Api);
    for (let i = 0; i < 3; i++) await apps.readNamespacedDeploymentScale({ name: 'a', namespace: 'ns' });
    assert.equal(server.connections(), 3, 'three calls, three TCP (in production: TLS) connections');
    // Our transport, for contrast: one pooled connection for the same three calls.
    const ours = await server.client();
    for (let i = 0; i < 3; i++) await ours.request('GET', '/apis/apps/v1/namespaces/ns/deployments/a/scale');
    ours.close();
    assert.equal(server.connections(), 4);
  });

  it("kubeconfig: ignores kubectl's users[].user.tokenFile (it reads a 'token-file' key kubectl never writes), so requests go out anonymous", async () => {
    const kc = new KubeConfig();
    kc.loadFromString(JSON.stringify({
      clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:1' } }],
      users: [{ name: 'u', user: { tokenFile: '/etc/hostname' } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    }));
    const opts: https.RequestOptions = { headers: {} };
    await kc.applyToHTTPSOptions(opts);
    assert.equal((opts.headers as Record<string, string>).Authorization, undefined);
  });

  it('kubeconfig: honours clusters[].cluster.proxy-url in applyToHTTPSOptions (an HTTP CONNECT agent), which we can build on', async () => {
    const connects: string[] = [];
    const proxy = http.createServer();
    proxy.on('connect', (req: http.IncomingMessage, socket: import('node:net').Socket) => {
      connects.push(req.url ?? '');
      socket.end('HTTP/1.1 502 Bad Gateway\r\n\r\n');
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'c', server: 'https://api.example.invalid:6443', skipTLSVerify: false, proxyUrl: `http://127.0.0.1:${(proxy.address() as { port: number }).port}` }],
        users: [{ name: 'u', token: 't' }],
        contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
        currentContext: 'x',
      });
      const opts: https.RequestOptions = { headers: {} };
      await kc.applyToHTTPSOptions(opts);
      const { request } = await import('node:https');
      await new Promise<void>((resolve) => {
        const req = request('https://api.example.invalid:6443/version', { ...opts, timeout: 2_000 });
        req.on('error', () => resolve());
        req.on('response', () => resolve());
        req.end();
      });
      assert.deepEqual(connects, ['api.example.invalid:6443']);
      // ...but without keep-alive: every call would open a new tunnel, so our transport builds its own.
      assert.equal((opts.agent as unknown as { keepAlive: boolean }).keepAlive, false);
    } finally {
      proxy.close();
    }
  });
});
