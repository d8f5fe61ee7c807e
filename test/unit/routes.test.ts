import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { buildServer, buildHealthServer } from '../../src/server.js';
import type { CacheReader } from '../../src/kube/object-store.js';
import type { CachedDeployment } from '../../src/kube/deployments.js';
import type { ReplicaService } from '../../src/kube/replicas.js';
import type { Readiness } from '../../src/routes/health.js';
import { ProblemError } from '../../src/errors.js';
import { ALLOW_ALL } from '../../src/authz/authorizer.js';

const d = (namespace: string, name: string): CachedDeployment => ({ metadata: { name, namespace }, spec: { replicas: 1 } } as CachedDeployment);

function app(opts: { items?: CachedDeployment[]; synced?: boolean; set?: ReplicaService['set']; health?: boolean; ready?: Readiness } = {}) {
  const items = opts.items ?? [];
  const cache: CacheReader<CachedDeployment> = {
    get: (ns, name) => items.find((i) => i.metadata.namespace === ns && i.metadata.name === name),
    list: (ns) => items.filter((i) => ns === undefined || i.metadata.namespace === ns),
    hasSynced: () => opts.synced ?? true,
  };
  const replicas: ReplicaService = {
    get: (namespace, deployment) => ({ namespace, deployment, replicas: 1 }),
    set: opts.set ?? (async (namespace, deployment, n) => ({ namespace, deployment, replicas: n, previousReplicas: 1 })),
  };
  return buildServer({
    deployments: cache, replicas, logger: pino({ level: 'silent' }),
    apiHealth: async () => (opts.health === false ? { ok: false, message: 'API server unreachable (ECONNREFUSED)' } : { ok: true }),
    readiness: opts.ready ?? { check: () => ({ ready: true }) },
    authorizer: ALLOW_ALL, audit: { write: () => undefined, close: async () => undefined },
  });
}

describe('routes (Fastify inject, faked at the cache/service boundary)', () => {
  it('sorts the list by namespace, then name (byte order)', async () => {
    const r = await app({ items: [d('b', 'x'), d('a', 'z'), d('a', 'B'), d('a', 'a')] }).inject('/deployments');
    assert.deepEqual(r.json(), [{ name: 'B', namespace: 'a' }, { name: 'a', namespace: 'a' }, { name: 'z', namespace: 'a' }, { name: 'x', namespace: 'b' }]);
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
        const r = await app({ set: async (namespace, deployment, n) => { called = true; return { namespace, deployment, replicas: n, previousReplicas: 1 }; } })
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
