import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestNamespace, kubectl, kubectlOk, PROXY_KUBECONFIG, PROXY_RBAC_NAME } from '../helpers/cluster.js';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.js';
import { waitFor } from '../helpers/wait.js';
import { connect as tlsConnect } from 'node:tls';
import { connect as tcpConnect } from 'node:net';
import type { CallResult } from '../helpers/https.js';

const PROBLEM_KEYS = ['detail', 'reason', 'status', 'title', 'type'];
/** This file tests write semantics (queueing, conflicts, read-your-writes) with one client certificate; the per-client write rate limit has its own test (hardening.test.ts). */
const NO_WRITE_LIMIT = ['--rate-limit-write-rps', '0'];

function assertProblem(r: { status: number; headers: Record<string, unknown>; json: Record<string, unknown> }, status: number, reason: string, detail?: RegExp): void {
  assert.equal(r.status, status, JSON.stringify(r.json));
  assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
  assert.deepEqual(Object.keys(r.json).sort(), PROBLEM_KEYS);
  assert.equal(r.json.status, status);
  assert.equal(r.json.reason, reason);
  if (detail) assert.match(String(r.json.detail), detail);
}

describe('the proxy API on a real control plane (least-privilege ServiceAccount)', () => {
  let certs: CertFixture;
  let proxy: ProxyProcess;
  let a: TestNamespace;
  let b: TestNamespace;

  before(async () => {
    certs = await makeCertFixture();
    a = await TestNamespace.create('api-a');
    b = await TestNamespace.create('api-b');
    await a.createDeployment('foo', { replicas: 3, labels: { team: 'x' }, annotations: { note: 'keep-me' } });
    await a.createDeployment('bar', { replicas: 1 });
    await b.createDeployment('alpha', { replicas: 0 });
    await a.setDeploymentStatus('foo', { observedGeneration: 1, replicas: 3, readyReplicas: 3, availableReplicas: 3, updatedReplicas: 3 });
    // No --max-replicas cap here: these tests hold the RFD's own bounds (int32); the cap is tested in scale.test.ts.
    proxy = await startProxy({ certs, args: [...NO_WRITE_LIMIT, '--max-replicas', '0'] });
  });
  after(async () => {
    await proxy?.stop();
    await a?.cleanup();
    await b?.cleanup();
  });

  describe('GET /healthz', () => {
    it('answers {"status":"ok"} while the API server is ready', async () => {
      const r = await proxy.request('/healthz');
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, { status: 'ok' });
    });
  });

  describe('GET /livez and /readyz on the mTLS listener', () => {
    it('answers both with the health shape', async () => {
      for (const path of ['/livez', '/readyz']) {
        const r = await proxy.request(path);
        assert.equal(r.status, 200, path);
        assert.deepEqual(r.json, { status: 'ok' });
      }
    });
  });

  describe('GET /deployments', () => {
    it('lists every Deployment sorted by namespace, then name, with exactly name and namespace', async () => {
      const r = await proxy.request('/deployments');
      assert.equal(r.status, 200);
      const mine = (r.json as Array<{ name: string; namespace: string }>).filter((d) => d.namespace === a.name || d.namespace === b.name);
      const expected = [{ name: 'bar', namespace: a.name }, { name: 'foo', namespace: a.name }, { name: 'alpha', namespace: b.name }]
        .sort((x, y) => (x.namespace + x.name < y.namespace + y.name ? -1 : 1));
      assert.deepEqual(mine, expected);
      const all = r.json as Array<{ name: string; namespace: string }>;
      const keys = all.map((d) => `${d.namespace}\u0000${d.name}`);
      assert.deepEqual(keys, [...keys].sort());
    });

    it('filters by ?namespace=', async () => {
      const r = await proxy.request(`/deployments?namespace=${a.name}`);
      assert.deepEqual(r.json, [{ name: 'bar', namespace: a.name }, { name: 'foo', namespace: a.name }]);
    });

    it('answers [] for a namespace that does not exist', async () => {
      const r = await proxy.request('/deployments?namespace=no-such-namespace');
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, []);
    });

    for (const [label, query] of [['an invalid namespace', '?namespace=Not_Valid'], ['a repeated namespace', '?namespace=a&namespace=b'], ['an empty namespace', '?namespace=']] as const) {
      it(`answers 400 for ${label}`, async () => {
        assertProblem(await proxy.request(`/deployments${query}`), 400, 'BadRequest', /namespace/);
      });
    }
  });

  describe('GET /deployments/{namespace}/{deployment}/replicas', () => {
    it('answers spec.replicas in the RFD shape', async () => {
      const r = await proxy.request(`/deployments/${a.name}/foo/replicas`);
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, { deployment: 'foo', namespace: a.name, replicas: 3 });
      assert.deepEqual((await proxy.request(`/deployments/${b.name}/alpha/replicas`)).json, { deployment: 'alpha', namespace: b.name, replicas: 0 });
    });

    it('answers 404 for a missing Deployment', async () => {
      assertProblem(await proxy.request(`/deployments/${a.name}/missing/replicas`), 404, 'NotFound', /"missing".*namespace/);
    });

    it('answers 400 for an invalid namespace or Deployment name', async () => {
      assertProblem(await proxy.request('/deployments/UPPER/foo/replicas'), 400, 'BadRequest', /params\.namespace/);
      assertProblem(await proxy.request(`/deployments/${a.name}/bad_name!/replicas`), 400, 'BadRequest', /params\.deployment/);
      assertProblem(await proxy.request(`/deployments/${'n'.repeat(64)}/foo/replicas`), 400, 'BadRequest', /params\.namespace/);
    });
  });

  describe('PUT /deployments/{namespace}/{deployment}/replicas', () => {
    it('writes through deployments/scale and answers the committed value; nothing else changes', async () => {
      const before = await a.getDeployment('foo');
      const r = await proxy.request(`/deployments/${a.name}/foo/replicas`, { method: 'PUT', body: { replicas: 5 } });
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, { deployment: 'foo', namespace: a.name, replicas: 5 });
      const after = await a.getDeployment('foo');
      assert.equal(after.spec.replicas, 5);
      assert.deepEqual(after.metadata.labels, before.metadata.labels);
      assert.deepEqual(after.metadata.annotations, before.metadata.annotations);
      assert.deepEqual(after.spec.template, before.spec.template);
      assert.deepEqual(after.spec.selector, before.spec.selector);
      assert.deepEqual(after.spec.strategy, before.spec.strategy);
    });

    it('answers 404 for a missing Deployment and creates nothing', async () => {
      assertProblem(await proxy.request(`/deployments/${a.name}/ghost/replicas`, { method: 'PUT', body: { replicas: 2 } }), 404, 'NotFound');
      const r = await kubectl(['-n', a.name, 'get', 'deployment', 'ghost']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /NotFound|not found/);
    });

    const bad: Array<[string, string, number, string, RegExp]> = [
      ['malformed JSON', '{"replicas": 3', 400, 'BadRequest', /malformed JSON/],
      ['an empty body', '', 400, 'BadRequest', /body/],
      ['replicas missing', '{}', 422, 'Invalid', /replicas/],
      ['replicas a string', '{"replicas":"3"}', 422, 'Invalid', /replicas/],
      ['replicas a fraction', '{"replicas":1.5}', 422, 'Invalid', /replicas/],
      ['replicas negative', '{"replicas":-1}', 422, 'Invalid', /replicas/],
      ['replicas above int32', '{"replicas":2147483648}', 422, 'Invalid', /replicas/],
      ['replicas 2.9999999999999999 (JSON.parse would read 3)', '{"replicas":2.9999999999999999}', 422, 'Invalid', /body\.replicas: 2\.9999999999999999 is not a plain integer/],
      ['replicas 1e2', '{"replicas":1e2}', 422, 'Invalid', /body\.replicas: 1e2 is not a plain integer/],
      ['replicas 3.0', '{"replicas":3.0}', 422, 'Invalid', /body\.replicas: 3\.0 is not a plain integer/],
      ['replicas -0', '{"replicas":-0}', 422, 'Invalid', /body\.replicas: -0 /],
      ['replicas null', '{"replicas":null}', 422, 'Invalid', /replicas/],
      ['another property', '{"replicas":2,"image":"evil"}', 422, 'Invalid', /image/],
      ['an array', '[2]', 422, 'Invalid', /body/],
      ['a __proto__ key (an unknown property, not malformed JSON)', '{"replicas":2,"__proto__":{"x":1}}', 422, 'Invalid', /__proto__/],
      ['a constructor key', '{"replicas":2,"constructor":{"prototype":{}}}', 422, 'Invalid', /constructor/],
    ];
    for (const [label, raw, status, reason, detail] of bad) {
      it(`answers ${status} for ${label} and changes nothing`, async () => {
        const before = await a.getDeployment('bar');
        const r = await proxy.request(`/deployments/${a.name}/bar/replicas`, { method: 'PUT', rawBody: raw, headers: { 'content-type': 'application/json' } });
        assertProblem(r, status, reason, detail);
        const after = await a.getDeployment('bar');
        assert.equal(after.metadata.resourceVersion, before.metadata.resourceVersion);
      });
    }

    it('answers 400 for a PUT without any body or Content-Type', async () => {
      assertProblem(await proxy.request(`/deployments/${a.name}/bar/replicas`, { method: 'PUT' }), 400, 'BadRequest', /body: missing/);
    });

    it('answers 415 for JSON in a charset other than UTF-8', async () => {
      const r = await proxy.request(`/deployments/${a.name}/bar/replicas`, { method: 'PUT', rawBody: '{"replicas":2}', headers: { 'content-type': 'application/json; charset=utf-16' } });
      assertProblem(r, 415, 'UnsupportedMediaType', /utf-16/);
    });

    it('records its writes under field manager k8s-api-proxy', async () => {
      await proxy.request(`/deployments/${a.name}/bar/replicas`, { method: 'PUT', body: { replicas: 3 } });
      const d = JSON.parse(await kubectlOk(['-n', a.name, 'get', 'deployment', 'bar', '-o', 'json', '--show-managed-fields']));
      const mine = d.metadata.managedFields.find((f: { manager: string }) => f.manager === 'k8s-api-proxy');
      assert.ok(mine, JSON.stringify(d.metadata.managedFields.map((f: { manager: string }) => f.manager)));
      assert.ok(mine.fieldsV1['f:spec']['f:replicas']);
    });

    it('answers 415 for a Content-Type other than application/json', async () => {
      const r = await proxy.request(`/deployments/${a.name}/bar/replicas`, { method: 'PUT', rawBody: '{"replicas":2}', headers: { 'content-type': 'text/plain' } });
      assertProblem(r, 415, 'UnsupportedMediaType', /application\/json/);
    });

    it('answers 413 for a body over 1 KiB', async () => {
      const r = await proxy.request(`/deployments/${a.name}/bar/replicas`, { method: 'PUT', rawBody: JSON.stringify({ replicas: 2, pad: 'x'.repeat(2000) }), headers: { 'content-type': 'application/json' } });
      assertProblem(r, 413, 'PayloadTooLarge', /1024 bytes/);
    });

    it('accepts the plain literals 3, the largest int32 (with --max-replicas 0) and 0', async () => {
      for (const n of [3, 2147483647, 0]) {
        const r = await proxy.request(`/deployments/${b.name}/alpha/replicas`, { method: 'PUT', rawBody: `{"replicas":${n}}`, headers: { 'content-type': 'application/json' } });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.replicas, n);
      }
    });
  });

  describe('long names', () => {
    it('serves a Deployment whose name is a valid 200-character DNS-1123 subdomain', async () => {
      const name = `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(17)}`;
      assert.equal(name.length, 200);
      await kubectl(['create', '-f', '-'], { input: JSON.stringify({
        apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: a.name },
        spec: { replicas: 2, selector: { matchLabels: { app: 'long' } }, template: { metadata: { labels: { app: 'long' } }, spec: { containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] } } },
      }) });
      await waitFor('long name cached', async () => (await proxy.request(`/deployments/${a.name}/${name}/replicas`)).status === 200);
      const put = await proxy.request(`/deployments/${a.name}/${name}/replicas`, { method: 'PUT', body: { replicas: 4 } });
      assert.equal(put.status, 200, put.text);
      assertProblem(await proxy.request(`/deployments/${a.name}/${'x'.repeat(254)}/replicas`), 400, 'BadRequest', /params\.deployment/);
      await kubectl(['-n', a.name, 'delete', 'deployment', name]);
    });
  });

  describe('malformed HTTP gets problem+json too', () => {
    it('answers 400 for a malformed percent-encoding', async () => {
      assertProblem(await proxy.request('/deployments/%ZZ/foo/replicas'), 400, 'BadRequest', /malformed URL/);
    });

    /** Sends raw bytes over mTLS (as the fixture's client, or `client`) and returns the raw response. */
    const raw = (text: string, client: { cert: string; key: string } = certs.client): Promise<string> => new Promise((resolve) => {
      const { port } = new URL(proxy.apiUrl);
      // write, not end: a FIN right after the request means "gone" to the proxy (it stops
      // work for clients that disconnect); each of these answers closes the connection itself.
      const sock = tlsConnect({ host: 'localhost', port: Number(port), ca: certs.ca, ...client }, () => sock.write(Buffer.from(text, 'latin1')));
      setTimeout(() => sock.destroy(), 10_000).unref();
      let out = '';
      sock.setEncoding('utf8');
      sock.on('data', (c: string) => { out += c; });
      sock.on('close', () => resolve(out));
      sock.on('error', () => resolve(out)); // a reset after the answer still leaves the answer
    });

    const cases: Array<[string, string, number]> = [
      ['headers over 16 KiB', `GET /deployments HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
      ['Content-Length and Transfer-Encoding together', 'PUT /deployments/a/b/replicas HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
      ['an unknown method token', 'FOO /deployments HTTP/1.1\r\nHost: x\r\n\r\n', 400],
      ['HTTP/1.1 without a Host header', 'GET /deployments HTTP/1.1\r\nConnection: close\r\n\r\n', 400],
      ['CONNECT on a known path', 'CONNECT /deployments HTTP/1.1\r\nHost: x\r\n\r\n', 405],
      ['CONNECT to a host (forward-proxy use)', 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', 405],
      ['an Expect other than 100-continue', 'PUT /deployments/a/b/replicas HTTP/1.1\r\nHost: x\r\nExpect: foo\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{"replicas":1}', 417],
      ['a gzip Content-Encoding', 'PUT /deployments/a/b/replicas HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Encoding: gzip\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{"replicas":1}', 415],
      ['a body that is not valid UTF-8', 'PUT /deployments/a/b/replicas HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"replicas":\xff1}', 400],
      ['two Content-Length headers', 'PUT /deployments/a/b/replicas HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 14\r\nContent-Length: 15\r\n\r\n{"replicas":1}', 400],
      // A GET's body is never read: refused from its headers, the connection closed (1 GB announced, 5 bytes sent).
      ['a GET announcing a body', 'GET /deployments HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\nhello', 400],
      ['a GET with a chunked body', 'GET /deployments/a/b/replicas HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n', 400],
    ];
    for (const [label, text, status] of cases) {
      it(`answers ${status} problem+json with an X-Request-Id for ${label}`, async () => {
        const out = await raw(text);
        assert.match(out, new RegExp(`^HTTP/1.1 ${status} `));
        assert.match(out, /content-type: application\/problem\+json/i);
        assert.match(out, /\r\nx-request-id: [0-9a-f-]{36}\r\n/i, 'every answer carries X-Request-Id');
        const body = JSON.parse(out.slice(out.indexOf('\r\n\r\n') + 4));
        assert.equal(body.status, status);
      });
    }

    it('refuses a GET announcing a body on the probe listener too, from its headers, and closes', async () => {
      const { port } = new URL(proxy.healthUrl);
      const out = await new Promise<string>((resolve) => {
        const sock = tcpConnect(Number(port), '127.0.0.1', () => sock.write('GET /livez HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\nhello'));
        setTimeout(() => sock.destroy(), 10_000).unref();
        let text = '';
        sock.setEncoding('utf8');
        sock.on('data', (c: string) => { text += c; });
        sock.on('close', () => resolve(text));
        sock.on('error', () => resolve(text));
      });
      assert.match(out, /^HTTP\/1.1 400 /, out.slice(0, 200));
      assert.match(out, /\r\nconnection: close\r\n/i);
      assert.match(out, /a GET request carries no body/);
    });

    it('sends 100 Continue only to a request that authorization allowed: a client without a role gets the 403 alone', async () => {
      const put = (who: string) => `PUT /deployments/${a.name}/foo/replicas HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 14\r\nConnection: close\r\nX-Request-Id: ${who}\r\n\r\n`;
      const refused = await raw(put('no-role'), await certs.issueClient('no-role-anywhere'));
      assert.match(refused, /^HTTP\/1.1 403 /, refused.slice(0, 200));
      assert.doesNotMatch(refused, /100 Continue/);
      // The allowed client gets the 100 first (its body is not sent: the first bytes back are read, then it goes).
      const first = await new Promise<string>((resolve) => {
        const sock = tlsConnect({ host: 'localhost', port: Number(new URL(proxy.apiUrl).port), ca: certs.ca, ...certs.client }, () => sock.write(put('allowed')));
        sock.setEncoding('utf8');
        sock.once('data', (c: string) => { resolve(c); sock.destroy(); });
        setTimeout(() => { resolve('(nothing within 5 s)'); sock.destroy(); }, 5_000).unref();
      });
      assert.match(first, /^HTTP\/1.1 100 Continue\r\n/, first.slice(0, 200));
    });

    for (const method of ['TRACE', 'PROPFIND', 'LOCK']) {
      it(`answers 405 with Allow to ${method} on a known path`, async () => {
        const r = await proxy.request('/deployments', { method });
        assertProblem(r, 405, 'MethodNotAllowed');
        assert.equal(r.headers.allow, 'GET, HEAD');
      });
    }

    it('answers 404 for an unknown path whatever its body', async () => {
      assertProblem(await proxy.request('/nope', { method: 'POST', rawBody: '{bad', headers: { 'content-type': 'application/json' } }), 404, 'NotFound');
      assertProblem(await proxy.request('/nope', { method: 'PUT', rawBody: 'x'.repeat(2000), headers: { 'content-type': 'application/json' } }), 404, 'NotFound');
    });
  });

  describe('routing', () => {
    it('answers 404 problem+json for an unknown path', async () => {
      assertProblem(await proxy.request('/nope'), 404, 'NotFound', /\/nope/);
      assertProblem(await proxy.request('/deployments/a/b/replicas/extra'), 404, 'NotFound');
    });

    it('answers 405 with Allow for a known path with another method', async () => {
      const r = await proxy.request('/deployments', { method: 'DELETE' });
      assertProblem(r, 405, 'MethodNotAllowed');
      assert.equal(r.headers.allow, 'GET, HEAD');
      const p = await proxy.request(`/deployments/${a.name}/foo/replicas`, { method: 'POST', body: { replicas: 1 } });
      assertProblem(p, 405, 'MethodNotAllowed');
      assert.equal(p.headers.allow, 'GET, HEAD, PUT');
    });

    it('logs each request with the client certificate CN and no credentials', async () => {
      await proxy.request('/deployments');
      const line = await waitFor('request log line', () => proxy.logs.find((l) => l.msg === 'request' && l.path === '/deployments' && l.status === 200)) as Record<string, unknown>;
      assert.equal(line.client, 'ci-pipeline');
      assert.equal(line.method, 'GET');
      assert.equal(typeof line.durationMs, 'number');
      assert.ok(line.reqId);
      const all = JSON.stringify(proxy.logs) + proxy.stderr();
      assert.doesNotMatch(all, /eyJhbGciOi/, 'no ServiceAccount token (JWT) in logs');
      assert.doesNotMatch(all, /PRIVATE KEY/);
    });
  });

  describe('the cache follows the cluster', () => {
    it('shows kubectl scale, create and delete within 2 s', async () => {
      await a.scale('bar', 4);
      await waitFor('scale visible', async () => (await proxy.request(`/deployments/${a.name}/bar/replicas`)).json.replicas === 4, 2_000);
      await a.createDeployment('fresh', { replicas: 2 });
      await waitFor('create visible', async () => (await proxy.request(`/deployments/${a.name}/fresh/replicas`)).status === 200, 2_000);
      await a.deleteDeployment('fresh');
      await waitFor('delete visible', async () => (await proxy.request(`/deployments/${a.name}/fresh/replicas`)).status === 404, 2_000);
      const list = await proxy.request(`/deployments?namespace=${a.name}`);
      assert.deepEqual(list.json.map((d: { name: string }) => d.name), ['bar', 'foo']);
    });
  });

  describe('read your writes', () => {
    // With a live watch this cannot tell read-your-writes from a fast watch (the event
    // arrives before the next GET); faults.test.ts holds the watch back to prove it.
    it('never shows the old value after a PUT answered 200 (50 times in a row)', async () => {
      for (let i = 0; i < 50; i++) {
        const value = 10 + (i % 7) + (i % 2) * 20;
        const put = await proxy.request(`/deployments/${a.name}/foo/replicas`, { method: 'PUT', body: { replicas: value } });
        assert.equal(put.status, 200, put.text);
        const get = await proxy.request(`/deployments/${a.name}/foo/replicas`);
        assert.equal(get.json.replicas, value, `iteration ${i}`);
      }
    });
  });

  describe('concurrent writers', () => {
    it('20 concurrent PUTs with distinct values: each 200 or, past 10 in line, 429 with Retry-After; the final value is one answered 200, nothing else changes', async (t) => {
      const before = await a.getDeployment('foo');
      const values = Array.from({ length: 20 }, (_, i) => 100 + i);
      const answers = await Promise.all(values.map((v) => proxy.request(`/deployments/${a.name}/foo/replicas`, { method: 'PUT', body: { replicas: v } })));
      const statuses = answers.map((r) => r.status);
      assert.ok(statuses.every((s) => s < 500), `no 5xx: ${statuses}`);
      const ok = answers.filter((r) => r.status === 200).map((r) => r.json.replicas as number);
      const conflicts = statuses.filter((s) => s === 409).length;
      const queueFull = answers.filter((r) => r.status === 429);
      assert.equal(ok.length + conflicts + queueFull.length, 20);
      assert.ok(ok.length >= 10, `at least the 10 in line succeed: ${statuses}`);
      for (const r of queueFull) assertProblem(r, 429, 'TooManyRequests', /already in line/);
      assert.ok(queueFull.every((r) => r.headers['retry-after'] === '1'));
      assert.equal(conflicts, 0, 'no request ran out of conflict retries');
      t.diagnostic(`409 answers: ${conflicts}; conflicts retried so far: ${proxy.logs.filter((l) => String(l.msg).startsWith('409 Conflict')).length}`);
      const after = await a.getDeployment('foo');
      assert.ok(ok.includes(after.spec.replicas), `final ${after.spec.replicas} is one answered 200`);
      assert.deepEqual(after.metadata.labels, before.metadata.labels);
      assert.deepEqual(after.metadata.annotations, before.metadata.annotations);
      assert.deepEqual(after.spec.template, before.spec.template);
    });

    it('20 concurrent PUTs split across two proxies (as the 2 chart replicas would see them): all 200', async (t) => {
      const second = await startProxy({ certs, args: NO_WRITE_LIMIT });
      try {
        const values = Array.from({ length: 20 }, (_, i) => 200 + i);
        const answers = await Promise.all(values.map((v, i) => (i % 2 ? second : proxy).request(`/deployments/${a.name}/foo/replicas`, { method: 'PUT', body: { replicas: v } })));
        assert.deepEqual(answers.map((r) => r.status), Array(20).fill(200), answers.map((r) => r.text).join('\n'));
        const final = (await a.getDeployment('foo')).spec.replicas;
        assert.ok(values.includes(final));
        const retried = [...proxy.logs, ...second.logs].filter((l) => String(l.msg).startsWith('409 Conflict')).length;
        t.diagnostic(`conflicts retried across both proxies: ${retried}`);
        for (const p of [proxy, second]) {
          await waitFor('both caches converge', async () => (await p.request(`/deployments/${a.name}/foo/replicas`)).json.replicas === final, 2_000);
        }
      } finally {
        await second.stop();
      }
    });
    // A real 409 retried (and one that exhausts the retries) is in faults.test.ts: a
    // competing kubectl process is too slow to land between the proxy's read and write.

    it('writes while another writer keeps changing the Deployment: every PUT 200, the last value wins', async (t) => {
      // A second writer (admin) bumps the resourceVersion with label edits while the
      // proxy writes: an absolute set carries no resourceVersion, so nothing conflicts.
      let stop = false;
      const churn = (async () => {
        for (let i = 0; !stop && i < 200; i++) await kubectl(['-n', a.name, 'label', 'deployment', 'bar', `churn=${i}`, '--overwrite']);
      })();
      const results = [];
      for (let i = 0; i < 15; i++) results.push(await proxy.request(`/deployments/${a.name}/bar/replicas`, { method: 'PUT', body: { replicas: 50 + i } }));
      stop = true;
      await churn;
      assert.deepEqual(results.map((r) => r.status), Array(15).fill(200));
      t.diagnostic(`conflicts retried by the proxy: ${proxy.logs.filter((l) => String(l.msg).startsWith('409 Conflict')).length}`);
      assert.equal((await a.getDeployment('bar')).spec.replicas, 64);
    });
  });

  describe('when the API server refuses the proxy', () => {
    it('answers 502 BadGateway without naming the proxy identity or upstream path, and recovers', async () => {
      const binding = JSON.parse(await kubectlOk(['get', 'clusterrolebinding', PROXY_RBAC_NAME, '-o', 'json']));
      await kubectlOk(['delete', 'clusterrolebinding', PROXY_RBAC_NAME]);
      try {
        const r = await waitFor('forbidden', async () => {
          const x = await proxy.request(`/deployments/${a.name}/bar/replicas`, { method: 'PUT', body: { replicas: 2 } });
          return x.status === 502 ? x : undefined;
        }, 5_000) as CallResult;
        // Which 502 depends on whether this client's authorization decision is still cached
        // (10 s): the write refused by the proxy's RBAC, or the proxy's own SubjectAccessReview
        // refused. Both name the proxy's permissions, never its identity.
        assertProblem(r, 502, 'BadGateway', /refused the proxy's request \(HTTP 403 Forbidden\): the proxy's own RBAC role does not allow|refused the proxy's SubjectAccessReview/);
        assert.doesNotMatch(r.text, /system:serviceaccount|\/apis\//);
        // The API server's /readyz still answers (granted to every authenticated user), but
        // this proxy cannot serve: /healthz and /readyz say so.
        const h = await waitFor('/healthz 503', async () => { const x = await proxy.request('/healthz'); return x.status === 503 ? x : undefined; }, 8_000) as CallResult;
        assert.match(String((h.json as { message: string }).message), /^the proxy lacks access its role should give \(RBAC\): list deployments\.apps, watch deployments\.apps, get deployments\/scale\.apps, update deployments\/scale\.apps, list horizontalpodautoscalers\.autoscaling, watch horizontalpodautoscalers\.autoscaling$/);
        assert.equal((await fetch(`${proxy.healthUrl}/readyz`)).status, 503);
      } finally {
        delete binding.metadata.resourceVersion;
        delete binding.metadata.uid;
        delete binding.metadata.creationTimestamp;
        delete binding.metadata.managedFields;
        await kubectlOk(['create', '-f', '-'], JSON.stringify(binding));
      }
      await waitFor('write works again', async () => (await proxy.request(`/deployments/${a.name}/bar/replicas`, { method: 'PUT', body: { replicas: 2 } })).status === 200, 5_000);
      await waitFor('/healthz 200 again', async () => (await proxy.request('/healthz')).status === 200, 8_000);
    });
  });

  describe('least privilege', () => {
    it("the proxy's token cannot update or patch a Deployment's pod template", async () => {
      const patch = await kubectl(['-n', a.name, 'patch', 'deployment', 'foo', '--type=merge', '-p', '{"spec":{"template":{"spec":{"containers":[{"name":"main","image":"evil:latest"}]}}}}'], { kubeconfig: PROXY_KUBECONFIG });
      assert.notEqual(patch.code, 0);
      assert.match(patch.stderr, /forbidden/i);
      const dep = await a.getDeployment('foo');
      dep.spec.template.spec.containers[0].image = 'evil:latest';
      const update = await kubectl(['replace', '-f', '-'], { kubeconfig: PROXY_KUBECONFIG, input: JSON.stringify(dep) });
      assert.notEqual(update.code, 0);
      assert.match(update.stderr, /forbidden/i);
      assert.equal((await a.getDeployment('foo')).spec.template.spec.containers[0].image, 'registry.k8s.io/pause:3.10');
    });
  });
});
