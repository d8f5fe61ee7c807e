import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { buildServer, buildHealthServer } from '../../src/server.js';
import { ObjectStore } from '../../src/kube/object-store.js';
import type { CachedDeployment } from '../../src/kube/deployments.js';
import type { ReplicaService } from '../../src/kube/replicas.js';
import { CachedDeploymentLists } from '../../src/views/deployment-lists.js';
import type { Readiness } from '../../src/routes/health.js';
import { ProblemError } from '../../src/errors.js';

const d = (namespace: string, name: string): CachedDeployment => ({ metadata: { name, namespace, resourceVersion: '7' }, spec: { replicas: 1 }, status: {} });

function app(opts: { items?: CachedDeployment[]; synced?: boolean; set?: ReplicaService['set']; health?: boolean; ready?: Readiness } = {}) {
  const store = new ObjectStore<CachedDeployment>();
  store.replace(opts.items ?? []);
  const cache = {
    index: store, hasSynced: () => opts.synced ?? true, resourceVersion: () => '42',
    waitForResourceVersion: async () => false,
  };
  const lists = new CachedDeploymentLists(cache, async () => ({ items: [], resourceVersion: '43' }), { consistencyWaitMs: 0 });
  const answer = (namespace: string, deployment: string, replicas: number) => ({ view: { namespace, deployment, replicas }, etag: '"7"', resourceVersion: '42' });
  const replicas: ReplicaService = {
    get: (namespace, deployment) => answer(namespace, deployment, 1),
    read: async (namespace, deployment) => answer(namespace, deployment, 1),
    set: opts.set ?? (async (namespace, deployment, n) => answer(namespace, deployment, n)),
  };
  return buildServer({
    lists, replicas, logger: pino({ level: 'silent' }),
    apiHealth: async () => (opts.health === false ? { ok: false, message: 'API server unreachable (ECONNREFUSED)' } : { ok: true }),
    readiness: opts.ready ?? { check: () => ({ ready: true }) },
  });
}

describe('routes (Fastify inject, faked at the cache/service boundary)', () => {
  it('sorts the list by namespace, then name (byte order)', async () => {
    const r = await app({ items: [d('b', 'x'), d('a', 'z'), d('a', 'B'), d('a', 'a')] }).inject('/deployments');
    assert.deepEqual(r.json(), [{ name: 'B', namespace: 'a' }, { name: 'a', namespace: 'a' }, { name: 'z', namespace: 'a' }, { name: 'x', namespace: 'b' }]);
  });

  it('sends ETag and Resource-Version with every list and replicas answer, and 304 for a matching If-None-Match', async () => {
    const a = app({ items: [d('a', 'x'), d('b', 'y')] });
    for (const url of ['/deployments', '/deployments?namespace=a', '/deployments/a/x/replicas']) {
      const first = await a.inject(url);
      assert.equal(first.statusCode, 200, url);
      assert.match(String(first.headers.etag), /^"[^"]+"$/, url);
      assert.equal(first.headers['resource-version'], '42', url);
      for (const inm of [String(first.headers.etag), `W/${first.headers.etag}`, `"other", ${first.headers.etag}`, '*']) {
        const again = await a.inject({ url, headers: { 'if-none-match': inm } });
        assert.equal(again.statusCode, 304, `${url} If-None-Match: ${inm}`);
        assert.equal(again.body, '');
        assert.equal(again.headers.etag, first.headers.etag);
      }
      assert.equal((await a.inject({ url, headers: { 'if-none-match': '"stale"' } })).statusCode, 200);
    }
    assert.equal((await a.inject('/deployments')).headers['content-type'], 'application/json; charset=utf-8');
  });

  it('pages /deployments with limit and continue, and keeps the plain array without them', async () => {
    const a = app({ items: [d('a', 'x'), d('a', 'y'), d('b', 'z')] });
    const p1 = (await a.inject('/deployments?limit=2')).json();
    assert.deepEqual(p1.items, [{ name: 'x', namespace: 'a' }, { name: 'y', namespace: 'a' }]);
    assert.equal(p1.metadata.remainingItemCount, 1);
    const p2 = (await a.inject(`/deployments?limit=2&continue=${encodeURIComponent(p1.metadata.continue)}`)).json();
    assert.deepEqual(p2, { metadata: {}, items: [{ name: 'z', namespace: 'b' }] });
    assert.ok(Array.isArray((await a.inject('/deployments')).json()));
  });

  it('refuses malformed paging and consistency parameters with 400', async () => {
    const a = app({ items: [d('a', 'x')] });
    for (const url of ['/deployments?limit=0', '/deployments?limit=-1', '/deployments?limit=1.5', '/deployments?limit=abc', '/deployments?limit=1&limit=2',
      '/deployments?limit=100001', '/deployments?continue=', '/deployments?continue=garbage', '/deployments?minResourceVersion=abc',
      '/deployments/a/x/replicas?minResourceVersion=-1', '/deployments?minResourceVersion=1&minResourceVersion=2']) {
      const r = await a.inject(url);
      assert.equal(r.statusCode, 400, url);
      assert.equal(r.json().reason, 'BadRequest', url);
    }
    const r = await a.inject({ url: '/deployments?minResourceVersion=5', headers: { 'min-resource-version': '6' } });
    assert.equal(r.statusCode, 400, 'query and header disagree');
  });

  it('answers 503 with Retry-After on cache-backed reads before the first list', async () => {
    const r = await app({ synced: false }).inject('/deployments');
    assert.equal(r.statusCode, 503);
    assert.equal(r.headers['retry-after'], '1');
    assert.equal(r.json().reason, 'ServiceUnavailable');
  });

  it('passes a ProblemError from the service through with its status and headers', async () => {
    const r = await app({ set: async () => { throw new ProblemError(504, 'GatewayTimeout', 'the API server did not answer in time'); } })
      .inject({ method: 'PUT', url: '/deployments/ns/web/replicas', payload: { replicas: 1 } });
    assert.equal(r.statusCode, 504);
    assert.equal(r.headers['content-type'], 'application/problem+json; charset=utf-8');
    assert.equal(r.json().detail, 'the API server did not answer in time');
  });

  describe('replicas is accepted only as a plain int32 literal, decided from the token text', () => {
    const refused: Array<[string, RegExp]> = [
      ['2.9999999999999999', /not a plain integer/], ['1e2', /not a plain integer/], ['1E0', /not a plain integer/],
      ['3.0', /not a plain integer/], ['0.0', /not a plain integer/], ['-0', /-0 is not accepted/], ['1.5', /not a plain integer/],
      ['-1', />= 0/], ['2147483648', /<= 2147483647/], ['99999999999999999999', /<= 2147483647/],
    ];
    for (const [token, detail] of refused) {
      it(`refuses {"replicas": ${token}} with 422 naming body.replicas, before the service is asked`, async () => {
        let called = false;
        const r = await app({ set: async (namespace, deployment, n) => { called = true; return { view: { namespace, deployment, replicas: n }, etag: '"1"', resourceVersion: '1' }; } })
          .inject({ method: 'PUT', url: '/deployments/ns/web/replicas', headers: { 'content-type': 'application/json' }, payload: `{"replicas": ${token}}` });
        assert.equal(r.statusCode, 422, r.body);
        assert.equal(r.json().reason, 'Invalid');
        assert.match(r.json().detail, new RegExp(`^body\\.replicas: ${token.replace('.', '\\.')} `));
        assert.match(r.json().detail, detail);
        assert.equal(called, false);
      });
    }
    for (const token of ['3', '0', '2147483647']) {
      it(`accepts {"replicas": ${token}}`, async () => {
        const r = await app().inject({ method: 'PUT', url: '/deployments/ns/web/replicas', headers: { 'content-type': 'application/json' }, payload: `{"replicas":${token}}` });
        assert.equal(r.statusCode, 200, r.body);
        assert.equal(r.json().replicas, Number(token));
      });
    }
  });

  it('turns an unexpected error into a 500 that hides the internals', async () => {
    const r = await app({ set: async () => { throw new TypeError('secret internal detail at x.ts:1'); } })
      .inject({ method: 'PUT', url: '/deployments/ns/web/replicas', payload: { replicas: 1 } });
    assert.equal(r.statusCode, 500);
    assert.equal(r.json().reason, 'InternalError');
    assert.doesNotMatch(r.body, /secret|x\.ts|TypeError/);
  });

  it('answers /healthz 503 in the RFD health shape when the API server is not ready', async () => {
    const r = await app({ health: false }).inject('/healthz');
    assert.equal(r.statusCode, 503);
    assert.equal(r.headers['retry-after'], '2');
    assert.deepEqual(r.json(), { status: 'error', message: 'API server unreachable (ECONNREFUSED)' });
  });

  it('answers HEAD like GET without a body', async () => {
    const r = await app({ items: [d('a', 'x')] }).inject({ method: 'HEAD', url: '/deployments' });
    assert.equal(r.statusCode, 200);
    assert.equal(r.body, '');
  });

  it('answers 405 before looking at the body', async () => {
    const r = await app().inject({ method: 'PATCH', url: '/deployments/ns/web/replicas', headers: { 'content-type': 'text/plain' }, payload: 'x'.repeat(5000) });
    assert.equal(r.statusCode, 405);
    assert.equal(r.headers.allow, 'GET, HEAD, PUT');
  });

  it('serves only /livez and /readyz on the probe listener', async () => {
    const h = buildHealthServer({ readiness: { check: () => ({ ready: false, message: 'deployments cache not synced yet' }) }, logger: pino({ level: 'silent' }) });
    assert.equal((await h.inject('/livez')).statusCode, 200);
    const ready = await h.inject('/readyz');
    assert.equal(ready.statusCode, 503);
    assert.deepEqual(ready.json(), { status: 'error', message: 'deployments cache not synced yet' });
    assert.equal((await h.inject('/deployments')).statusCode, 404);
    assert.equal((await h.inject('/healthz')).statusCode, 404);
  });
});
