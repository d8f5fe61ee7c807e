import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { AccessCheck, apiServerReadyz, cachedApiHealth, proxyHealth, type ApiHealth } from '../../src/kube/api-health.js';
import { fakeApiServer, json, type FakeApiServer } from '../helpers/fake-api-server.js';

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
    assert.equal(h.ok, false);
    assert.equal(!h.ok && h.message, 'API server unreachable (ECONNREFUSED)');
    assert.match(!h.ok && h.cause || '', /GET \/readyz: ECONNREFUSED/, 'the cause, for the log line only');
  });

  it('reports a silent server as a timeout', async () => {
    server = await fakeApiServer(() => undefined); // never answers
    const h = await apiServerReadyz(await server.client(), 300)();
    assert.equal(!h.ok && h.message, 'API server did not answer within 0.3 s');
    assert.match(!h.ok && h.cause || '', /no answer within 300 ms/);
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

describe('AccessCheck (the proxy\'s own credentials and RBAC)', () => {
  let server: FakeApiServer | undefined;
  afterEach(async () => { await server?.close(); server = undefined; });

  /** A fake API server answering the two reviews. */
  const reviews = (who: { status: number; username?: string }, denied: string[] = []) => fakeApiServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => { body += c.toString(); }).on('end', () => {
      if (req.url?.endsWith('/selfsubjectreviews')) {
        if (who.status !== 201) return void json(res, who.status, { kind: 'Status', code: who.status, reason: who.status === 401 ? 'Unauthorized' : 'Forbidden', message: 'User "system:anonymous" cannot create resource' });
        return void json(res, 201, { status: { userInfo: { username: who.username, groups: ['system:authenticated'] } } });
      }
      const attrs = (JSON.parse(body) as { spec: { resourceAttributes: { verb: string; subresource?: string } } }).spec.resourceAttributes;
      json(res, 201, { status: { allowed: !denied.includes(`${attrs.verb}${attrs.subresource ? `/${attrs.subresource}` : ''}`) } });
    });
  });

  const cases: Array<[string, { status: number; username?: string }, string[], RegExp | null]> = [
    ['ok with its identity when every right is there', { status: 201, username: 'system:serviceaccount:p:proxy' }, [], null],
    ['credentials rejected (401)', { status: 401 }, [], /^API server rejects the proxy's credentials \(HTTP 401 Unauthorized\)$/],
    ['anonymous (403 on SelfSubjectReview)', { status: 403 }, [], /no working credentials .*anonymous/],
    ['anonymous (SelfSubjectReview answered for system:anonymous)', { status: 201, username: 'system:anonymous' }, [], /no working credentials/],
    ['RBAC lacks rights: names them, not the identity', { status: 201, username: 'system:serviceaccount:p:proxy' }, ['watch', 'update/scale'], /^the proxy lacks access its role should give \(RBAC\): watch deployments\.apps, update deployments\/scale\.apps, watch horizontalpodautoscalers\.autoscaling$/],
  ];
  for (const [name, who, denied, want] of cases) {
    it(name, async () => {
      server = await reviews(who, denied);
      const check = new AccessCheck(await server.client());
      const r = await check.check();
      if (!want) return assert.deepEqual(r, { ok: true, identity: { username: who.username, groups: ['system:authenticated'] } });
      assert.equal(r.ok, false);
      if (!r.ok) {
        assert.match(r.message, want);
        assert.doesNotMatch(r.message, /system:serviceaccount/);
      }
      assert.deepEqual(check.last(), r);
    });
  }

  it('reuses a result for ttlMs, then asks again; invalidate() asks at once and keeps last() meanwhile', async () => {
    server = await reviews({ status: 201, username: 'u' });
    let now = 0;
    const check = new AccessCheck(await server.client(), { ttlMs: 5_000, now: () => now });
    await check.check();
    await check.check();
    assert.equal(server.requests.filter((p) => p.endsWith('selfsubjectreviews')).length, 1);
    now = 6_000;
    await check.check();
    assert.equal(server.requests.filter((p) => p.endsWith('selfsubjectreviews')).length, 2);
    check.invalidate();
    assert.equal(check.last()?.ok, true);
    await check.check();
    assert.equal(server.requests.filter((p) => p.endsWith('selfsubjectreviews')).length, 3);
  });

  it('start() checks at once and again every interval, in the background', async () => {
    server = await reviews({ status: 201, username: 'u' });
    const check = new AccessCheck(await server.client(), { ttlMs: 60_000 });
    check.start(100);
    try {
      await new Promise((r) => setTimeout(r, 350));
      assert.ok(server.requests.filter((p) => p.endsWith('selfsubjectreviews')).length >= 3);
      assert.equal(check.last()?.ok, true);
    } finally {
      check.stop();
    }
  });

  it('proxyHealth: /healthz is ok only when the API server is ready and the proxy can serve', async () => {
    server = await reviews({ status: 401 });
    const check = new AccessCheck(await server.client());
    assert.deepEqual(await proxyHealth(async () => ({ ok: false, message: 'API server unreachable (ECONNREFUSED)' }), check)(), { ok: false, message: 'API server unreachable (ECONNREFUSED)' });
    assert.deepEqual(await proxyHealth(async () => ({ ok: true }), check)(), { ok: false, message: "API server rejects the proxy's credentials (HTTP 401 Unauthorized)" });
  });
});
