import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, TestNamespace } from '../helpers/cluster.js';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.js';
import { call } from '../helpers/https.js';
import { familyNames, sampleValue } from '../helpers/metrics.js';
import { waitFor } from '../helpers/wait.js';

const P = 'k8s_api_proxy_';
const PROMLINT = Object.fromEntries(
  execFileSync(join(ROOT, 'hack/control-plane/build.sh'), ['--print'], { encoding: 'utf8' }).trim().split('\n').map((l) => l.split('=') as [string, string]),
).PROMLINT;

describe('/metrics of a real proxy on a real control plane', () => {
  let certs: CertFixture;
  let proxy: ProxyProcess;
  let ns: TestNamespace;
  const scrape = async (): Promise<string> => {
    const r = await call(`${proxy.healthUrl}/metrics`);
    assert.equal(r.status, 200);
    return r.text;
  };

  before(async () => {
    certs = await makeCertFixture();
    ns = await TestNamespace.create('metrics');
    await ns.createDeployment('web', { replicas: 1 });
    await ns.createDeployment('api', { replicas: 2 });
    proxy = await startProxy({ certs });
    await waitFor('both Deployments cached', async () => (await proxy.request(`/deployments?namespace=${ns.name}`)).json?.length === 2);
  });
  after(async () => {
    await proxy?.stop();
    await ns?.cleanup();
  });

  it('serves every family on the plain-HTTP probe listener, and promtool\'s linter accepts the whole output', async () => {
    const text = await scrape();
    const names = familyNames(text);
    for (const f of ['build_info', 'http_requests_total', 'http_request_duration_seconds', 'http_requests_in_flight', 'http_response_size_bytes',
      'tls_handshakes_accepted_total', 'tls_handshakes_refused_total', 'tls_open_connections', 'connections_closed_by_cap_total',
      'cache_objects', 'cache_synced', 'cache_last_sync_timestamp_seconds', 'cache_watch_starts_total', 'cache_relists_total', 'cache_list_pages_total',
      'cache_watch_events_total', 'cache_backoff_seconds', 'upstream_requests_total', 'upstream_request_duration_seconds',
      'write_conflicts_retried_total', 'writes_total', 'authorization_decisions_total', 'audit_events_total']) {
      assert.ok(names.includes(`${P}${f}`), f);
    }
    assert.ok(names.includes('process_cpu_seconds_total') && names.includes('nodejs_eventloop_lag_seconds'));
    const lint = spawnSync(PROMLINT, { input: text, encoding: 'utf8' });
    assert.equal(lint.status, 0, `promlint: ${lint.stderr}`);
  });

  it('reports the cache: objects, synced, an initial list, a watch, recent contact', async () => {
    const text = await scrape();
    const r = { resource: 'deployments' };
    assert.ok(sampleValue(text, `${P}cache_objects`, r) >= 2);
    assert.equal(sampleValue(text, `${P}cache_synced`, r), 1);
    assert.equal(sampleValue(text, `${P}cache_relists_total`, { ...r, reason: 'initial' }), 1);
    assert.ok(sampleValue(text, `${P}cache_list_pages_total`, r) >= 1);
    assert.ok(sampleValue(text, `${P}cache_watch_starts_total`, r) >= 1);
    assert.ok(Date.now() / 1000 - sampleValue(text, `${P}cache_last_sync_timestamp_seconds`, r) < 120);
    assert.ok(sampleValue(text, `${P}upstream_requests_total`, { verb: 'GET', code: '200' }) >= 1);
    assert.ok(sampleValue(text, `${P}upstream_requests_total`, { verb: 'WATCH', code: '200' }) >= 1);
    // The HorizontalPodAutoscaler cache (the guardrails read it) is watched the same way, so an alert on it can fire.
    const h = { resource: 'horizontalpodautoscalers' };
    assert.equal(sampleValue(text, `${P}cache_synced`, h), 1);
    assert.ok(sampleValue(text, `${P}cache_objects`, h) >= 0);
    assert.ok(Date.now() / 1000 - sampleValue(text, `${P}cache_last_sync_timestamp_seconds`, h) < 120);
  });

  it('counts a request by route template, and a watch event when kubectl changes a Deployment', async () => {
    const route = { route: '/deployments/:namespace/:deployment/replicas', method: 'GET', code: '200' };
    const before = sampleValue(await scrape(), `${P}http_requests_total`, route);
    const modified = sampleValue(await scrape(), `${P}cache_watch_events_total`, { type: 'MODIFIED' });
    assert.equal((await proxy.request(`/deployments/${ns.name}/web/replicas`)).status, 200);
    await ns.scale('api', 4);
    await waitFor('MODIFIED event counted', async () => sampleValue(await scrape(), `${P}cache_watch_events_total`, { type: 'MODIFIED' }) > modified);
    const text = await scrape();
    assert.equal(sampleValue(text, `${P}http_requests_total`, route), before + 1);
    assert.ok(!text.includes(ns.name), 'no label holds the namespace');
  });

  it('counts a write by outcome and its calls to the API server', async () => {
    const before = await scrape();
    const r = await proxy.request(`/deployments/${ns.name}/web/replicas`, { method: 'PUT', body: { replicas: 3 } });
    assert.equal(r.status, 200);
    const text = await scrape();
    assert.equal(sampleValue(text, `${P}writes_total`, { outcome: 'updated' }), sampleValue(before, `${P}writes_total`, { outcome: 'updated' }) + 1);
    assert.equal(sampleValue(text, `${P}upstream_requests_total`, { verb: 'PUT', code: '200' }), sampleValue(before, `${P}upstream_requests_total`, { verb: 'PUT', code: '200' }) + 1);
  });

  it('counts a refused handshake by reason and accepted ones', async () => {
    const name = `${P}tls_handshakes_refused_total`;
    const before = sampleValue(await scrape(), name, { reason: 'no_certificate' });
    await proxy.request('/deployments', { tls: { ca: certs.ca } }).catch(() => undefined);
    await waitFor('refusal counted', async () => sampleValue(await scrape(), name, { reason: 'no_certificate' }) === before + 1);
    assert.ok(sampleValue(await scrape(), `${P}tls_handshakes_accepted_total`) >= 1);
  });

  it('serves GET /openapi.json over mTLS, equal to the committed openapi.json, and echoes X-Request-Id into the log', async () => {
    const r = await proxy.request('/openapi.json', { headers: { 'x-request-id': 'it-openapi-1' } });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, JSON.parse(readFileSync(join(ROOT, 'openapi.json'), 'utf8')));
    assert.equal(r.headers['x-request-id'], 'it-openapi-1');
    await waitFor('log line with the reqId', () => proxy.logs.some((l) => l.reqId === 'it-openapi-1' && l.msg === 'request'));
  });

  it('with --metrics=false serves no /metrics', async () => {
    const off = await startProxy({ certs, args: ['--metrics=false'] });
    try {
      assert.equal((await call(`${off.healthUrl}/metrics`)).status, 404);
      assert.equal((await call(`${off.healthUrl}/readyz`)).status, 200);
    } finally {
      await off.stop();
    }
  });
});
