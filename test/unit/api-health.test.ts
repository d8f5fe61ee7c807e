import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { apiServerReadyz, cachedApiHealth, type ApiHealth } from '../../src/kube/api-health.js';
import { fakeApiServer, type FakeApiServer } from '../helpers/fake-api-server.js';

describe('apiServerReadyz (GET /healthz upstream check)', () => {
  let server: FakeApiServer | undefined;
  afterEach(async () => { await server?.close(); server = undefined; });

  const cases: Array<[string, number, string, RegExp]> = [
    ['ok', 200, 'ok', /^$/],
    ['names failed checks, not their reasons', 500, '[+]ping ok\n[-]etcd failed: reason withheld\n[-]poststarthook/rbac failed: not finished\nreadyz check failed', /^API server not ready \(HTTP 500\): etcd, poststarthook\/rbac$/],
    ['hides the identity in a 403 body', 403, '{"kind":"Status","message":"forbidden: User \\"system:serviceaccount:p:p\\" cannot get path \\"/readyz\\""}', /^API server refused the proxy's credentials \(HTTP 403\)$/],
  ];
  for (const [name, status, body, want] of cases) {
    it(name, async () => {
      server = await fakeApiServer((_req, res) => res.writeHead(status).end(body));
      const h = await apiServerReadyz(await server.client(), 500)();
      if (status === 200) return assert.deepEqual(h, { ok: true });
      assert.equal(h.ok, false);
      if (!h.ok) {
        assert.match(h.message, want);
        assert.doesNotMatch(h.message, /system:serviceaccount/);
      }
    });
  }

  it('reports an unreachable server by error code only', async () => {
    server = await fakeApiServer(() => undefined);
    const client = await server.client();
    await server.close();
    server = undefined;
    const h = await apiServerReadyz(client, 500)();
    assert.deepEqual(h, { ok: false, message: 'API server unreachable (ECONNREFUSED)' });
  });

  it('reports a silent server as a timeout', async () => {
    server = await fakeApiServer(() => undefined); // never answers
    const h = await apiServerReadyz(await server.client(), 300)();
    assert.deepEqual(h, { ok: false, message: 'API server did not answer within 0.3 s' });
  });
});

describe('cachedApiHealth (GET /healthz cannot amplify load on the API server)', () => {
  it('makes one upstream call for any number of concurrent and repeated checks within 1 s, then asks again', async () => {
    let clock = 0;
    let calls = 0;
    let answer: ApiHealth = { ok: true };
    const check = cachedApiHealth(async () => { calls++; await new Promise((r) => setTimeout(r, 5)); return answer; }, 1_000, () => clock);
    const first = await Promise.all(Array.from({ length: 100 }, () => check()));
    assert.equal(calls, 1, 'concurrent checks share one call');
    assert.ok(first.every((h) => h.ok));
    clock = 999;
    answer = { ok: false, message: 'API server unreachable (ECONNREFUSED)' };
    assert.deepEqual(await check(), { ok: true }, 'the cached answer serves within 1 s');
    assert.equal(calls, 1);
    clock = 1_000;
    assert.deepEqual(await check(), answer, 'after 1 s the API server is asked again');
    assert.equal(calls, 2);
  });
});
