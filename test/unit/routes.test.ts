import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { pino } from 'pino';
import { buildServer, buildHealthServer } from '../../src/server.js';
import { ObjectStore } from '../../src/kube/object-store.js';
import type { CachedDeployment } from '../../src/kube/deployments.js';
import type { ReplicaService } from '../../src/kube/replicas.js';
import { CachedDeploymentLists } from '../../src/views/deployment-lists.js';
import type { Readiness } from '../../src/routes/health.js';
import { ProblemError, notFound } from '../../src/errors.js';
import { OPEN_ACCESS } from '../helpers/open-access.js';

const d = (namespace: string, name: string, replicas = 1): CachedDeployment => ({ metadata: { name, namespace, resourceVersion: '7' }, spec: { replicas }, status: {} });

/**
 * The HTTP app over an in-memory cluster: the cache and the replica service share `items`,
 * so reads answer the real stored values, writes change them, and a missing Deployment is
 * a 404 from the service as from the real one. `calls` records every service call.
 */
function app(opts: { items?: CachedDeployment[]; synced?: boolean; set?: ReplicaService['set']; health?: boolean; ready?: Readiness } = {}) {
  const items = opts.items ?? [];
  const find = (ns: string, name: string) => items.find((i) => i.metadata.namespace === ns && i.metadata.name === name);
  const store = new ObjectStore<CachedDeployment>();
  // The store freezes what it holds; the service stand-in changes its own copies.
  store.replace(items.map((i) => structuredClone(i)));
  const cache = {
    index: store, hasSynced: () => opts.synced ?? true, resourceVersion: () => '42',
    waitForResourceVersion: async () => false,
  };
  const lists = new CachedDeploymentLists(cache, async () => ({ items: [], resourceVersion: '43' }), { consistencyWaitMs: 0 });
  const answer = (namespace: string, deployment: string, replicas: number, previousReplicas = replicas) =>
    ({ view: { namespace, deployment, replicas }, etag: '"7"', resourceVersion: '42', previousReplicas });
  const calls: Array<{ op: 'get' | 'set'; namespace: string; deployment: string; replicas?: number }> = [];
  const get = (namespace: string, deployment: string) => {
    calls.push({ op: 'get', namespace, deployment });
    const x = find(namespace, deployment);
    if (!x) throw notFound(`deployment "${deployment}" not found in namespace "${namespace}"`);
    return answer(namespace, deployment, x.spec.replicas!);
  };
  const replicas: ReplicaService = {
    get,
    read: async (namespace, deployment) => get(namespace, deployment),
    set: opts.set ?? (async (namespace, deployment, n) => {
      calls.push({ op: 'set', namespace, deployment, replicas: n });
      const x = find(namespace, deployment);
      if (!x) throw notFound(`deployment "${deployment}" not found in namespace "${namespace}"`);
      const previousReplicas = x.spec.replicas!;
      x.spec.replicas = n;
      return answer(namespace, deployment, n, previousReplicas);
    }),
  };
  const server = buildServer({
    lists, replicas, logger: pino({ level: 'silent' }),
    apiHealth: async () => (opts.health === false ? { ok: false, message: 'API server unreachable (ECONNREFUSED)' } : { ok: true }),
    readiness: opts.ready ?? { check: () => ({ ready: true }) },
    ...OPEN_ACCESS,
  });
  return Object.assign(server, { calls });
}

/** A PUT of `payload` (a string is sent as is) with `headers`. */
const put = (url: string, payload: string | object, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  ({ method: 'PUT' as const, url, payload: typeof payload === 'string' ? payload : JSON.stringify(payload), headers });

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

  it('refuses an unknown query parameter with 400 naming it and the accepted ones: a typo never widens the answer', async () => {
    const a = app({ items: [d('a', 'x'), d('b', 'y')] });
    const cases: Array<[string, string, RegExp]> = [
      ['GET', '/deployments?namespce=a', /^querystring\.namespce: unknown parameter; only "namespace", "limit", "continue", "minResourceVersion", "watch" are accepted$/],
      ['GET', '/deployments/a/x/replicas?minResourceVerison=5', /^querystring\.minResourceVerison: unknown parameter; only "minResourceVersion" is accepted$/],
      ['PUT', '/deployments/a/x/replicas?forse=true', /^querystring\.forse: unknown parameter; only "force", "wait", "timeout" are accepted$/],
      ['GET', `/deployments?${'z'.repeat(500)}=1`, /^querystring\.z{64}: unknown parameter;/],
    ];
    for (const [method, url, detail] of cases) {
      const r = await a.inject({ method, url, ...(method === 'PUT' ? { payload: { replicas: 7 } } : {}) });
      assert.equal(r.statusCode, 400, url);
      assert.equal(r.json().reason, 'BadRequest', url);
      assert.match(r.json().detail, detail, url);
    }
    assert.equal((await a.inject('/deployments/a/x/replicas')).json().replicas, 1, 'the refused PUT wrote nothing');
  });

  it('ignores a Min-Resource-Version header on a PUT (a client may send it on every call) but refuses the query parameter there', async () => {
    const a = app({ items: [d('a', 'x')] });
    const put = (url: string, headers: Record<string, string> = {}) => a.inject({ method: 'PUT', url, headers, payload: { replicas: 4 } });
    assert.equal((await put('/deployments/a/x/replicas', { 'min-resource-version': 'abc' })).statusCode, 200);
    const q = await put('/deployments/a/x/replicas?minResourceVersion=5');
    assert.equal(q.statusCode, 400);
    assert.match(q.json().detail, /^querystring\.minResourceVersion: unknown parameter;/);
  });

  it('names the field of a refused minResourceVersion and accepts 20 digits, not 21', async () => {
    const a = app({ items: [d('a', 'x')] });
    assert.equal((await a.inject(`/deployments?minResourceVersion=${'1'.repeat(20)}`)).statusCode, 200);
    const q = await a.inject(`/deployments?minResourceVersion=${'1'.repeat(21)}`);
    assert.equal(q.statusCode, 400);
    assert.match(q.json().detail, /^querystring\.minResourceVersion: "1{21}" is not a resourceVersion \(1 to 20 decimal digits/);
    const h = await a.inject({ url: '/deployments/a/x/replicas', headers: { 'min-resource-version': 'abc' } });
    assert.equal(h.statusCode, 400);
    assert.match(h.json().detail, /^header min-resource-version: "abc"/);
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
        const r = await app({ set: async (namespace, deployment, n) => { called = true; return { view: { namespace, deployment, replicas: n }, etag: '"1"', resourceVersion: '1', previousReplicas: 1 }; } })
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
        const r = await app({ items: [d('ns', 'web')] }).inject({ method: 'PUT', url: '/deployments/ns/web/replicas', headers: { 'content-type': 'application/json' }, payload: `{"replicas":${token}}` });
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

describe('Deployment routes over an in-memory cluster (real values, real 4xx)', () => {
  it('filters the list by ?namespace=, asking the cache for that namespace only', async () => {
    const r = await app({ items: [d('b', 'x'), d('a', 'z'), d('c', 'y')] }).inject('/deployments?namespace=b');
    assert.equal(r.statusCode, 200);
    assert.deepEqual(r.json(), [{ name: 'x', namespace: 'b' }]);
    assert.deepEqual((await app({ items: [d('b', 'x')] }).inject('/deployments?namespace=nowhere')).json(), []);
  });

  const badQueries: Array<[string, string, RegExp]> = [
    ['an invalid namespace', '?namespace=Not_Valid', /"Not_Valid" is not a valid namespace/],
    ['an empty namespace', '?namespace=', /"" is not a valid namespace/],
    ['a namespace over 63 characters', `?namespace=${'n'.repeat(64)}`, /is not a valid namespace/],
    ['a repeated namespace', '?namespace=a&namespace=b', /given more than once/],
  ];
  for (const [label, query, detail] of badQueries) {
    it(`answers 400 for ${label} in the list query`, async () => {
      const r = await app({ items: [d('a', 'x')] }).inject(`/deployments${query}`);
      assert.equal(r.statusCode, 400);
      assert.equal(r.json().reason, 'BadRequest');
      assert.match(r.json().detail, detail);
    });
  }

  it('answers the stored replicas of the named Deployment, 0 included', async () => {
    const a = app({ items: [d('ns', 'web', 3), d('ns', 'idle', 0), d('other', 'web', 9)] });
    assert.deepEqual((await a.inject('/deployments/ns/web/replicas')).json(), { deployment: 'web', namespace: 'ns', replicas: 3 });
    assert.deepEqual((await a.inject('/deployments/ns/idle/replicas')).json(), { deployment: 'idle', namespace: 'ns', replicas: 0 });
    assert.deepEqual((await a.inject('/deployments/other/web/replicas')).json(), { deployment: 'web', namespace: 'other', replicas: 9 });
  });

  it('answers 404 problem+json for a Deployment that does not exist (GET and PUT)', async () => {
    const a = app({ items: [d('ns', 'web', 3)] });
    for (const r of [await a.inject('/deployments/ns/ghost/replicas'), await a.inject(put('/deployments/ns/ghost/replicas', { replicas: 2 }))]) {
      assert.equal(r.statusCode, 404);
      assert.equal(r.headers['content-type'], 'application/problem+json; charset=utf-8');
      assert.equal(r.json().reason, 'NotFound');
      assert.match(r.json().detail, /"ghost" not found in namespace "ns"/);
    }
  });

  it('writes the requested value to the named Deployment and answers it; a later GET shows it', async () => {
    const a = app({ items: [d('ns', 'web', 3), d('ns', 'api', 1)] });
    const r = await a.inject(put('/deployments/ns/web/replicas', { replicas: 7 }));
    assert.equal(r.statusCode, 200);
    assert.deepEqual(r.json(), { deployment: 'web', namespace: 'ns', replicas: 7 });
    assert.deepEqual(a.calls.filter((c) => c.op === 'set'), [{ op: 'set', namespace: 'ns', deployment: 'web', replicas: 7 }]);
    assert.equal((await a.inject('/deployments/ns/web/replicas')).json().replicas, 7);
    assert.equal((await a.inject('/deployments/ns/api/replicas')).json().replicas, 1, 'the other Deployment is untouched');
  });

  it('accepts 0 and the int32 maximum', async () => {
    const a = app({ items: [d('ns', 'web', 3)] });
    for (const n of [0, 2147483647]) assert.equal((await a.inject(put('/deployments/ns/web/replicas', { replicas: n }))).json().replicas, n);
  });

  const refused: Array<[string, string, Record<string, string> | undefined, number, string, RegExp]> = [
    ['a body over 1 KiB', JSON.stringify({ replicas: 2, pad: 'x'.repeat(2000) }), undefined, 413, 'PayloadTooLarge', /exceeds 1024 bytes/],
    ['Content-Type text/plain', '{"replicas":2}', { 'content-type': 'text/plain' }, 415, 'UnsupportedMediaType', /application\/json/],
    ['a charset other than UTF-8', '{"replicas":2}', { 'content-type': 'application/json; charset=utf-16' }, 415, 'UnsupportedMediaType', /"utf-16"/],
    ['a gzip Content-Encoding', '{"replicas":2}', { 'content-type': 'application/json', 'content-encoding': 'gzip' }, 415, 'UnsupportedMediaType', /gzip/],
    ['malformed JSON', '{"replicas": 3', undefined, 400, 'BadRequest', /malformed JSON/],
    ['an empty body', ' ', undefined, 400, 'BadRequest', /body: empty/],
    ['replicas missing', '{}', undefined, 422, 'Invalid', /missing required property "replicas"/],
    ['replicas a string', '{"replicas":"3"}', undefined, 422, 'Invalid', /body\.replicas must be integer/],
    ['replicas a fraction', '{"replicas":1.5}', undefined, 422, 'Invalid', /body\.replicas: 1\.5 /],
    ['replicas negative', '{"replicas":-1}', undefined, 422, 'Invalid', /body\.replicas: -1 must be >= 0/],
    ['replicas above int32', '{"replicas":2147483648}', undefined, 422, 'Invalid', /body\.replicas: 2147483648 must be <= 2147483647/],
    ['another property', '{"replicas":2,"image":"evil"}', undefined, 422, 'Invalid', /unknown property "image"/],
    ['a __proto__ key', '{"replicas":2,"__proto__":{"x":1}}', undefined, 422, 'Invalid', /unknown property "__proto__"/],
  ];
  for (const [label, payload, headers, status, reason, detail] of refused) {
    it(`answers ${status} ${reason} for ${label}, and writes nothing`, async () => {
      const a = app({ items: [d('ns', 'web', 3)] });
      const r = await a.inject(put('/deployments/ns/web/replicas', payload, headers));
      assert.equal(r.statusCode, status, r.body);
      assert.equal(r.json().reason, reason);
      assert.match(r.json().detail, detail);
      assert.deepEqual(a.calls, [], 'the service was not asked');
      assert.equal((await a.inject('/deployments/ns/web/replicas')).json().replicas, 3);
    });
  }

  it('answers 400 naming the field for an invalid namespace or Deployment name', async () => {
    const a = app({ items: [d('ns', 'web', 3)] });
    const cases: Array<[string, RegExp]> = [
      ['/deployments/UPPER/web/replicas', /params\.namespace: "UPPER" is not a valid namespace/],
      ['/deployments/ns/bad_name/replicas', /params\.deployment: "bad_name" is not a valid Deployment name/],
      [`/deployments/${'n'.repeat(64)}/web/replicas`, /params\.namespace/],
      [`/deployments/ns/${'x'.repeat(254)}/replicas`, /params\.deployment/],
    ];
    for (const [url, detail] of cases) {
      const r = await a.inject(url);
      assert.equal(r.statusCode, 400, url);
      assert.match(r.json().detail, detail);
    }
    assert.deepEqual(a.calls, []);
  });

  it('answers 400 for a path segment over 260 characters, and serves a 253-character name', async () => {
    const long = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`;
    assert.equal(long.length, 253);
    const a = app({ items: [d('ns', long, 2)] });
    assert.equal((await a.inject(`/deployments/ns/${long}/replicas`)).json().replicas, 2);
    const r = await a.inject(`/deployments/ns/${'x'.repeat(261)}/replicas`);
    assert.equal(r.statusCode, 400);
    assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
    assert.equal(r.json().detail, 'a path segment is longer than 260 characters');
  });

  it('aborts the write when the client disconnects before the answer', { timeout: 5_000 }, async () => {
    let signal: AbortSignal | undefined;
    let started!: () => void;
    const inHandler = new Promise<void>((r) => { started = r; });
    const a = app({
      set: (_ns, _name, _n, s) => {
        signal = s;
        started();
        return new Promise((_resolve, reject) => s!.addEventListener('abort', () => reject(new ProblemError(408, 'RequestTimeout', 'gone'))));
      },
    });
    await a.listen({ port: 0, host: '127.0.0.1' });
    try {
      const { port } = a.server.address() as { port: number };
      const sock = connect(port, '127.0.0.1', () => sock.write('PUT /deployments/ns/web/replicas HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{"replicas":1}'));
      sock.on('error', () => undefined);
      await inHandler;
      assert.equal(signal?.aborted, false, 'not aborted while the client waits');
      sock.destroy();
      await new Promise<void>((r) => signal!.aborted ? r() : signal!.addEventListener('abort', () => r()));
      assert.equal(signal!.aborted, true);
    } finally {
      await a.close();
    }
  });
});
