import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { buildServer, buildHealthServer } from '../../src/server.js';
import type { CachedDeployment } from '../../src/kube/deployments.js';
import type { Readiness } from '../../src/routes/health.js';
import { OPEN_ACCESS } from '../helpers/open-access.js';
import { listsOf } from '../helpers/stand-ins.js';

const d = (namespace: string, name: string): CachedDeployment => ({ metadata: { name, namespace }, spec: { replicas: 1 }, status: {} });

function api(opts: { items?: CachedDeployment[]; synced?: boolean; healthy?: boolean; ready?: Readiness } = {}) {
  const items = opts.items ?? [];
  return buildServer({
    ...OPEN_ACCESS,
    lists: listsOf(items, { synced: opts.synced }),
    replicas: { get: () => { throw new Error('unused'); }, read: async () => { throw new Error('unused'); }, set: async () => { throw new Error('unused'); } },
    logger: pino({ level: 'silent' }),
    apiHealth: async () => (opts.healthy === false ? { ok: false, message: 'API server not ready (HTTP 500): etcd' } : { ok: true }),
    readiness: opts.ready ?? { check: () => ({ ready: true }) },
  });
}
const notReady: Readiness = { check: () => ({ ready: false, message: 'shutting down' }) };

describe('health endpoints, 404/405 answers, list order (Fastify inject)', () => {
  for (const [name, build] of [['API listener', (r?: Readiness) => api({ ready: r })], ['probe listener', (r?: Readiness) => buildHealthServer({ readiness: r ?? { check: () => ({ ready: true }) }, logger: pino({ level: 'silent' }) })]] as const) {
    it(`${name}: /livez and /readyz answer {"status":"ok"}; /readyz 503 with Retry-After 1 and the reason when not ready`, async () => {
      for (const path of ['/livez', '/readyz']) {
        const r = await build().inject(path);
        assert.equal(r.statusCode, 200, path);
        assert.deepEqual(r.json(), { status: 'ok' });
      }
      const r = await build(notReady).inject('/readyz');
      assert.equal(r.statusCode, 503);
      assert.equal(r.headers['retry-after'], '1');
      assert.deepEqual(r.json(), { status: 'error', message: 'shutting down' });
      assert.equal((await build(notReady).inject('/livez')).statusCode, 200, '/livez never depends on readiness');
    });
    it(`${name}: another method on a health path is 405 with Allow: GET, HEAD`, async () => {
      for (const path of ['/livez', '/readyz']) {
        const r = await build().inject({ method: 'POST', url: path });
        assert.equal(r.statusCode, 405, path);
        assert.equal(r.headers.allow, 'GET, HEAD');
        assert.equal(r.json().detail, `POST is not allowed on ${path}; allowed: GET, HEAD`);
      }
    });
  }

  it('/healthz answers {"status":"ok"} when the API server is ready, 503 with Retry-After 2 and its message when not', async () => {
    const ok = await api().inject('/healthz');
    assert.equal(ok.statusCode, 200);
    assert.deepEqual(ok.json(), { status: 'ok' });
    const bad = await api({ healthy: false }).inject('/healthz');
    assert.equal(bad.statusCode, 503);
    assert.equal(bad.headers['retry-after'], '2');
    assert.deepEqual(bad.json(), { status: 'error', message: 'API server not ready (HTTP 500): etcd' });
    const post = await api().inject({ method: 'DELETE', url: '/healthz' });
    assert.deepEqual([post.statusCode, post.headers.allow], [405, 'GET, HEAD']);
  });

  it('answers 405 with the Allow of each Deployment path, and 404 naming an unknown one', async () => {
    const list = await api().inject({ method: 'PUT', url: '/deployments' });
    assert.deepEqual([list.statusCode, list.headers.allow, list.json().reason, list.json().title, list.json().detail], [405, 'GET, HEAD', 'MethodNotAllowed', 'Method Not Allowed', 'PUT is not allowed on /deployments; allowed: GET, HEAD']);
    const one = await api().inject({ method: 'DELETE', url: '/deployments/ns/web.v2/replicas' });
    assert.deepEqual([one.statusCode, one.headers.allow], [405, 'GET, HEAD, PUT']);
    const nope = await api().inject({ method: 'GET', url: '/deployments/ns/web/replicas/x?y=1' });
    assert.deepEqual([nope.statusCode, nope.json().reason, nope.json().detail], [404, 'NotFound', 'no route for GET /deployments/ns/web/replicas/x']);
  });

  it('sorts the list by namespace, then name, whatever order the cache holds', async () => {
    const r = await api({ items: [d('b', 'y'), d('b', 'x'), d('a', 'z'), d('b', 'x2'), d('a', 'a')] }).inject('/deployments');
    assert.deepEqual(r.json(), [{ name: 'a', namespace: 'a' }, { name: 'z', namespace: 'a' }, { name: 'x', namespace: 'b' }, { name: 'x2', namespace: 'b' }, { name: 'y', namespace: 'b' }]);
  });

  it('accepts a 63-character namespace in the list query', async () => {
    const ns = 'n'.repeat(63);
    const r = await api({ items: [d(ns, 'web')] }).inject(`/deployments?namespace=${ns}`);
    assert.deepEqual(r.json(), [{ name: 'web', namespace: ns }]);
  });

  it('says why a read is refused before the first list', async () => {
    const r = await api({ synced: false }).inject('/deployments');
    assert.equal(r.json().detail, 'the Deployment cache has not finished its first list from the API server yet');
  });

  it('answers 400 "body: missing" to a PUT with no body at all', async () => {
    const r = await api().inject({ method: 'PUT', url: '/deployments/ns/web/replicas' });
    assert.equal(r.statusCode, 400);
    assert.equal(r.json().detail, 'body: missing; send {"replicas": N} with Content-Type: application/json');
  });
});
