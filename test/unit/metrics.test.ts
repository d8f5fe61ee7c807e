import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { createMetrics, disabledMetrics, METRIC_PREFIX, type ProxyMetrics } from '../../src/metrics/registry.js';
import { buildHealthServer, buildServer } from '../../src/server.js';
import { serverTlsOptions } from '../../src/tls/server-tls.js';
import { Reflector, type ReflectorClock } from '../../src/kube/reflector.js';
import { DEPLOYMENTS, type CachedDeployment } from '../../src/kube/deployments.js';
import { KubeReplicaService } from '../../src/kube/replicas.js';
import { KubeClient, KubeStatusError } from '../../src/kube/kube-client.js';
import type { CacheReader } from '../../src/kube/object-store.js';
import { KubeConfig } from '@kubernetes/client-node';
import { fakeApiServer, json, deployment } from '../helpers/fake-api-server.js';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';
import { familyNames, parseSamples, sampleValue } from '../helpers/metrics.js';
import { waitFor } from '../helpers/wait.js';
import { VERSION } from '../../src/version.js';
import { OPEN_ACCESS } from '../helpers/open-access.js';
import { listsOf, replicasAnswer as answer } from '../helpers/stand-ins.js';

const ROOT = join(import.meta.dirname, '../..');
const silent = pino({ level: 'silent' });

/** The proxy's own families, as the README's metric table lists them. */
const FAMILIES = [
  'build_info',
  'http_requests_total', 'http_request_duration_seconds', 'http_requests_in_flight', 'http_response_size_bytes',
  'tls_handshakes_accepted_total', 'tls_handshakes_refused_total', 'tls_open_connections', 'connections_closed_by_cap_total',
  'cache_objects', 'cache_synced', 'cache_last_sync_timestamp_seconds', 'cache_watch_starts_total', 'cache_relists_total',
  'cache_list_pages_total', 'cache_watch_events_total', 'cache_backoff_seconds',
  'upstream_requests_total', 'upstream_request_duration_seconds',
  'write_conflicts_retried_total', 'writes_total', 'authorization_decisions_total', 'audit_events_total',
].map((f) => `${METRIC_PREFIX}${f}`);

const fresh = (): ProxyMetrics => createMetrics({ version: VERSION, nodeVersion: process.version }, { defaultMetrics: false });
const scrape = (m: ProxyMetrics): Promise<string> => m.endpoint!.render();


function apiApp(m: ProxyMetrics, over: Partial<Parameters<typeof buildServer>[0]> = {}, options: Parameters<typeof buildServer>[1] = {}): FastifyInstance {
  const items = [{ metadata: { name: 'web', namespace: 'shop' }, spec: { replicas: 2 } } as CachedDeployment];
  return buildServer({
    ...OPEN_ACCESS,
    lists: listsOf(items),
    replicas: { get: (namespace, deployment) => answer(namespace, deployment, 2), read: async (namespace, deployment) => answer(namespace, deployment, 2), set: async (namespace, deployment, replicas) => answer(namespace, deployment, replicas) },
    apiHealth: async () => ({ ok: true }), readiness: { check: () => ({ ready: true }) }, logger: silent, recorders: m, ...over,
  }, options);
}

describe('metrics registry', () => {
  it('defines every family of the README table, and the README table names every family', async () => {
    const names = familyNames(await scrape(fresh())).filter((n) => n.startsWith(METRIC_PREFIX));
    assert.deepEqual([...names].sort(), [...FAMILIES].sort());
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const documented = [...readme.matchAll(/^\| `(k8s_api_proxy_[a-z_]+)`/gm)].map((m) => m[1]);
    assert.deepEqual([...documented].sort(), [...FAMILIES].sort());
  });

  it('reports build info as 1 with the version and the Node.js version', async () => {
    assert.equal(sampleValue(await scrape(fresh()), `${METRIC_PREFIX}build_info`, { version: VERSION, node_version: process.version }), 1);
  });

  it("includes prom-client's default process and Node.js metrics unless told not to", async () => {
    const m = createMetrics({ version: VERSION, nodeVersion: process.version });
    const names = familyNames(await scrape(m));
    for (const n of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
      assert.ok(names.includes(n), n);
    }
  });

  it('counts authorization decisions by result and cache, and audit events by outcome', async () => {
    const m = fresh();
    m.authz.decision('allow', 'miss');
    m.authz.decision('allow', 'hit');
    m.authz.decision('deny', 'hit');
    m.audit.event('written');
    m.audit.event('dropped');
    m.audit.event('dropped');
    const text = await scrape(m);
    assert.equal(sampleValue(text, `${METRIC_PREFIX}authorization_decisions_total`, { result: 'allow', cache: 'hit' }), 1);
    assert.equal(sampleValue(text, `${METRIC_PREFIX}authorization_decisions_total`, { result: 'deny' }), 1);
    assert.equal(sampleValue(text, `${METRIC_PREFIX}audit_events_total`, { outcome: 'dropped' }), 2);
  });

  it('bounds every label value, whatever a recorder is handed', async () => {
    const m = fresh();
    const evil = 'evil"\n{x="1"}';
    m.http.started();
    m.http.finished('/livez', evil, evil, 0.001, 10);
    m.tls.refused(evil as never);
    m.tls.closedByCap(evil as never);
    m.upstream.request(evil, evil, 0.1);
    m.reflector.event('deployments', evil);
    m.reflector.relisted('deployments', evil as never);
    m.writes.write(evil as never);
    m.authz.decision(evil as never, evil as never);
    m.audit.event(evil as never);
    const text = await scrape(m);
    for (const s of parseSamples(text)) {
      for (const v of Object.values(s.labels)) assert.doesNotMatch(v, /evil/, `${s.name} carries ${JSON.stringify(s.labels)}`);
    }
    assert.equal(sampleValue(text, `${METRIC_PREFIX}http_requests_total`, { method: 'OTHER', code: 'other' }), 1);
    assert.equal(sampleValue(text, `${METRIC_PREFIX}tls_handshakes_refused_total`, { reason: 'other' }), 1);
    assert.equal(sampleValue(text, `${METRIC_PREFIX}upstream_requests_total`, { verb: 'OTHER', code: 'error' }), 1);
    assert.equal(sampleValue(text, `${METRIC_PREFIX}cache_watch_events_total`, { type: 'unknown' }), 1);
  });

  it('turned off, records nothing and serves nothing', async () => {
    const off = disabledMetrics();
    assert.equal(off.endpoint, undefined);
    const health = buildHealthServer({ readiness: { check: () => ({ ready: true }) }, logger: silent, metrics: off.endpoint });
    assert.equal((await health.inject('/metrics')).statusCode, 404);
  });
});

describe('/metrics endpoint', () => {
  it('is served on the probe listener in the Prometheus text format, and not on the API listener', async () => {
    const m = fresh();
    const health = buildHealthServer({ readiness: { check: () => ({ ready: true }) }, logger: silent, metrics: m.endpoint });
    const r = await health.inject('/metrics');
    assert.equal(r.statusCode, 200);
    assert.match(r.headers['content-type'] as string, /^text\/plain; version=0\.0\.4/);
    assert.match(r.body, /^# HELP k8s_api_proxy_/m);
    assert.equal((await health.inject({ method: 'POST', url: '/metrics' })).statusCode, 405);
    assert.equal((await apiApp(m).inject('/metrics')).statusCode, 404);
  });
});

describe('HTTP request metrics (Fastify inject)', () => {
  it('counts a request by route template, method and code, with its duration and size, and in-flight back to 0', async () => {
    const m = fresh();
    const app = apiApp(m);
    const r = await app.inject('/deployments/shop/web/replicas');
    assert.equal(r.statusCode, 200);
    await app.inject('/deployments/shop/web/replicas');
    const text = await scrape(m);
    const labels = { route: '/deployments/:namespace/:deployment/replicas', method: 'GET', code: '200' };
    assert.equal(sampleValue(text, `${METRIC_PREFIX}http_requests_total`, labels), 2);
    assert.equal(sampleValue(text, `${METRIC_PREFIX}http_request_duration_seconds_count`, labels), 2);
    assert.equal(sampleValue(text, `${METRIC_PREFIX}http_response_size_bytes_sum`, { route: labels.route, method: 'GET' }), 2 * r.rawPayload.length);
    assert.equal(sampleValue(text, `${METRIC_PREFIX}http_requests_in_flight`), 0);
  });

  it('holds a request in flight while it runs', async () => {
    const m = fresh();
    let release!: () => void;
    const app = apiApp(m, { replicas: { get: () => { throw new Error('unused'); }, read: () => { throw new Error('unused'); }, set: (namespace, deployment, replicas) => new Promise((r) => { release = () => r(answer(namespace, deployment, replicas)); }) } });
    const pending = app.inject({ method: 'PUT', url: '/deployments/shop/web/replicas', payload: { replicas: 3 } });
    await waitFor('handler running', () => release !== undefined);
    assert.equal(sampleValue(await scrape(m), `${METRIC_PREFIX}http_requests_in_flight`), 1);
    release();
    assert.equal((await pending).statusCode, 200);
    assert.equal(sampleValue(await scrape(m), `${METRIC_PREFIX}http_requests_in_flight`), 0);
  });

  it('takes no label value from client input (paths, namespaces, methods, headers, bodies)', async () => {
    const m = fresh();
    const app = apiApp(m);
    const hostile = [
      { url: '/evilpath' },
      { url: '/deployments/evilns/evildeploy/replicas' },
      { url: '/deployments/EVIL/x/replicas' },
      { url: '/deployments?namespace=evilquery' },
      { url: '/deployments?namespace=EVIL%0A' },
      { url: '/deployments/evilns/evildeploy/replicas', method: 'PUT' as const, payload: { replicas: 1, evil: 1 } },
      { url: '/deployments/evilns/evildeploy/replicas', method: 'PUT' as const, payload: '{"replicas":"evil"}', headers: { 'content-type': 'application/json' } },
      { url: '/deployments', method: 'PROPFIND' as never },
      { url: '/evil/%ZZ' },
      { url: `/deployments/evil${'x'.repeat(300)}/y/replicas` },
      { url: '/deployments', headers: { 'x-request-id': 'evilid', 'user-agent': 'evilagent', host: 'evilhost' } },
    ];
    for (const r of hostile) await app.inject(r);
    const samples = parseSamples(await scrape(m));
    const allowed: Record<string, RegExp> = {
      route: /^(unmatched|\/deployments|\/deployments\/:namespace\/:deployment\/replicas|\/livez|\/readyz|\/healthz|\/openapi\.json)$/,
      method: /^(GET|HEAD|PUT|POST|PATCH|DELETE|OPTIONS|CONNECT|TRACE|OTHER)$/,
      code: /^([1-5]\d\d|aborted|other)$/,
    };
    let seen = 0;
    for (const s of samples.filter((x) => x.name.startsWith(`${METRIC_PREFIX}http_`))) {
      for (const [k, v] of Object.entries(s.labels)) {
        assert.doesNotMatch(v, /evil/i, `${s.name} ${k}="${v}"`);
        if (allowed[k]) assert.match(v, allowed[k], `${s.name} ${k}="${v}"`);
        seen++;
      }
    }
    assert.ok(seen > 0);
    assert.equal(sampleValue(samples.map((s) => `${s.name} ${s.value}`).join('\n'), `${METRIC_PREFIX}http_requests_total`), hostile.length);
    const text = await scrape(m);
    assert.equal(sampleValue(text, `${METRIC_PREFIX}http_requests_total`, { route: 'unmatched', method: 'OTHER', code: '405' }), 1);
    assert.equal(sampleValue(text, `${METRIC_PREFIX}http_requests_total`, { route: '/deployments/:namespace/:deployment/replicas', method: 'PUT', code: '422' }), 2);
  });
});

describe('TLS handshake metrics (real sockets)', () => {
  let certs: CertFixture;
  let m: ProxyMetrics;
  let app: FastifyInstance;
  let port: number;
  before(async () => {
    certs = await makeCertFixture();
    m = fresh();
    const tls = serverTlsOptions(readFileSync(certs.serverCertFile), readFileSync(certs.serverKeyFile), Buffer.from(certs.ca));
    app = apiApp(m, {}, { tls });
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as AddressInfo).port;
  });
  after(() => app.close());

  /** One GET /livez on a fresh connection; resolves with the status, or the error code when refused. */
  const get = (client: { cert?: string; key?: string }, keep?: (agent: https.Agent) => void): Promise<string> => new Promise((resolve) => {
    const agent = new https.Agent({ keepAlive: true, ca: certs.ca, ...client });
    https.get({ host: '127.0.0.1', port, path: '/livez', agent, servername: 'localhost' }, (res) => {
      res.resume();
      res.on('end', () => { if (keep) keep(agent); else agent.destroy(); resolve(String(res.statusCode)); });
    }).on('error', (err: NodeJS.ErrnoException) => { agent.destroy(); resolve(err.code ?? err.message); });
  });

  it('counts an accepted handshake and holds it open until the connection closes', async () => {
    let agent!: https.Agent;
    assert.equal(await get(certs.client, (a) => { agent = a; }), '200');
    const open = `${METRIC_PREFIX}tls_open_connections`;
    assert.equal(sampleValue(await scrape(m), open), 1);
    assert.ok(sampleValue(await scrape(m), `${METRIC_PREFIX}tls_handshakes_accepted_total`) >= 1);
    agent.destroy();
    await waitFor('connection closed', async () => sampleValue(await scrape(m), open) === 0);
  });

  const cases: Array<[string, () => { cert?: string; key?: string }, string]> = [
    ['no client certificate', () => ({}), 'no_certificate'],
    ['a certificate from another CA', () => certs.otherCaClient, 'untrusted_certificate'],
    ['an expired certificate', () => certs.expiredClient, 'expired'],
    ['a serverAuth-only certificate', () => certs.serverAsClient, 'no_client_auth'],
    ['a CA certificate', () => certs.caAsClient, 'ca_certificate'],
    ['a certificate with two CNs', () => certs.twoCnClient, 'bad_subject'],
    ['a certificate without a CN', () => certs.noCnClient, 'bad_subject'],
  ];
  for (const [what, client, reason] of cases) {
    it(`counts a refused handshake with ${what} as reason="${reason}"`, async () => {
      const name = `${METRIC_PREFIX}tls_handshakes_refused_total`;
      const before = sampleValue(await scrape(m), name, { reason });
      assert.notEqual(await get(client()), '200');
      await waitFor(`refusal counted as ${reason}`, async () => sampleValue(await scrape(m), name, { reason }) === before + 1);
    });
  }

  it('counts a plain-HTTP request on the TLS port as a protocol refusal', async () => {
    const name = `${METRIC_PREFIX}tls_handshakes_refused_total`;
    const before = sampleValue(await scrape(m), name, { reason: 'protocol' });
    await new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.end('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      s.on('close', () => resolve());
      s.on('error', () => undefined);
      s.resume();
    });
    await waitFor('protocol refusal', async () => sampleValue(await scrape(m), name, { reason: 'protocol' }) === before + 1);
  });
});

describe('cache and upstream metrics (reflector against a scripted API server)', () => {
  const clock: ReflectorClock = { now: () => Date.now(), random: () => 0.5, sleep: () => new Promise((r) => setTimeout(r, 1)) };
  const line = (type: string, object: unknown): string => `${JSON.stringify({ type, object })}\n`;

  it('counts list pages, relists after 410, watch (re)starts, events by type, backoff, upstream calls; reports objects and sync', async () => {
    let lists = 0;
    let watches = 0;
    const server = await fakeApiServer((req, res) => {
      const u = new URL(req.url!, 'http://x');
      if (!u.searchParams.get('watch')) {
        lists++;
        if (lists === 1 && !u.searchParams.get('continue')) return json(res, 200, { metadata: { continue: 'p2' }, items: [deployment('a', 'one', '5')] });
        return json(res, 200, { metadata: { resourceVersion: String(100 * lists) }, items: [deployment('a', 'one', '5'), deployment('a', 'two', '6')] });
      }
      watches++;
      res.writeHead(200);
      if (watches === 1) {
        res.write(line('ADDED', deployment('a', 'three', '201')));
        res.write(line('MODIFIED', deployment('a', 'three', '202', 3)));
        res.write(line('DELETED', deployment('a', 'three', '203')));
        res.write(line('BOOKMARK', { metadata: { resourceVersion: '204' } }));
        return void res.end(line('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old' }));
      }
      if (watches === 2) return void res.end(line('ERROR', { kind: 'Status', code: 500, reason: 'InternalError', message: 'boom' }));
      res.flushHeaders();
    });
    const m = fresh();
    const reflector = new Reflector(await KubeClient.create(kubeconfigFor(server.url), { upstream: m.upstream }), DEPLOYMENTS, { clock, pageSize: 1, recorder: m.reflector });
    m.observeCache(reflector);
    try {
      const before = await scrape(m);
      assert.equal(sampleValue(before, `${METRIC_PREFIX}cache_synced`, { resource: 'deployments' }), 0);
      reflector.start();
      await waitFor('third watch', () => watches >= 3, 5_000);
      const text = await scrape(m);
      const r = { resource: 'deployments' };
      assert.equal(sampleValue(text, `${METRIC_PREFIX}cache_list_pages_total`, r), 3, 'two pages, then one on the relist');
      assert.equal(sampleValue(text, `${METRIC_PREFIX}cache_relists_total`, { ...r, reason: 'initial' }), 1);
      assert.equal(sampleValue(text, `${METRIC_PREFIX}cache_relists_total`, { ...r, reason: 'expired' }), 1);
      assert.ok(sampleValue(text, `${METRIC_PREFIX}cache_watch_starts_total`, r) >= 3);
      for (const type of ['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK']) assert.equal(sampleValue(text, `${METRIC_PREFIX}cache_watch_events_total`, { ...r, type }), 1, type);
      assert.equal(sampleValue(text, `${METRIC_PREFIX}cache_watch_events_total`, { ...r, type: 'ERROR' }), 2);
      assert.equal(sampleValue(text, `${METRIC_PREFIX}cache_backoff_seconds_count`, r), 1, 'the 500 ERROR event backs off');
      // The 410 counted as one failure (relisted at once), so the 500 is the second: 0.8 s doubled.
      assert.equal(sampleValue(text, `${METRIC_PREFIX}cache_backoff_seconds_sum`, r), 1.6);
      assert.equal(sampleValue(text, `${METRIC_PREFIX}cache_objects`, r), 2);
      assert.equal(sampleValue(text, `${METRIC_PREFIX}cache_synced`, r), 1);
      const last = sampleValue(text, `${METRIC_PREFIX}cache_last_sync_timestamp_seconds`, r);
      assert.ok(Math.abs(last - Date.now() / 1000) < 10, String(last));
      assert.equal(sampleValue(text, `${METRIC_PREFIX}upstream_requests_total`, { verb: 'GET', code: '200' }), 3);
      assert.ok(sampleValue(text, `${METRIC_PREFIX}upstream_requests_total`, { verb: 'WATCH', code: '200' }) >= 3);
      assert.equal(sampleValue(text, `${METRIC_PREFIX}upstream_request_duration_seconds_count`, { verb: 'GET' }), 3);
      assert.equal(sampleValue(text, `${METRIC_PREFIX}upstream_request_duration_seconds_count`, { verb: 'WATCH' }), 0, 'watches are not timed');
    } finally {
      await reflector.stop();
      await server.close();
    }
  });

  it('counts an upstream call that got no answer as code="error", and a non-2xx by its status', async () => {
    const server = await fakeApiServer((_req, res) => json(res, 403, { kind: 'Status', code: 403, reason: 'Forbidden', message: 'no' }));
    const m = fresh();
    const client = await KubeClient.create(kubeconfigFor(server.url), { upstream: m.upstream });
    await assert.rejects(client.request('GET', '/x'), KubeStatusError);
    await server.close();
    await assert.rejects(client.request('PUT', '/x', { body: {} }));
    client.close();
    const text = await scrape(m);
    assert.equal(sampleValue(text, `${METRIC_PREFIX}upstream_requests_total`, { verb: 'GET', code: '403' }), 1);
    assert.equal(sampleValue(text, `${METRIC_PREFIX}upstream_requests_total`, { verb: 'PUT', code: 'error' }), 1);
  });
});

/** A kubeconfig pointing at a plain-HTTP fake API server. */
function kubeconfigFor(url: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: url, skipTLSVerify: true }], users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'u' }], currentContext: 'fake',
  });
  return kc;
}

describe('write metrics (scripted scale subresource)', () => {
  const cache: CacheReader<CachedDeployment> = { get: () => undefined, list: () => [], hasSynced: () => true };
  const scale = (replicas: number, rv: string) => ({ metadata: { name: 'web', namespace: 'ns', resourceVersion: rv }, spec: { replicas } });
  function client(script: Array<() => unknown>): KubeClient {
    return { request: async () => { const step = script.shift(); if (!step) throw new Error('unexpected call'); return step(); } } as unknown as KubeClient;
  }
  const conflict = () => { throw new KubeStatusError(409, 'Conflict', 'modified'); };

  it('counts each retried conflict and each write by outcome', async () => {
    const m = fresh();
    const opts = { sleep: async () => undefined, random: () => 0.5, recorder: m.writes };
    // One call per write: a conflict is retried with the same call.
    await new KubeReplicaService(client([conflict, conflict, () => scale(4, '4')]), cache, opts).set('ns', 'web', 4);
    // A write that changes nothing keeps the cached object's resourceVersion.
    const cachedAt4: CacheReader<CachedDeployment> = { get: () => ({ metadata: { name: 'web', namespace: 'ns', resourceVersion: '4' }, spec: { replicas: 4 }, status: {} }), list: () => [], hasSynced: () => true };
    await new KubeReplicaService(client([() => scale(4, '4')]), cachedAt4, opts).set('ns', 'web', 4);
    await assert.rejects(new KubeReplicaService(client([() => { throw new KubeStatusError(404, 'NotFound', 'x'); }]), cache, opts).set('ns', 'web', 4));
    const exhausted = new KubeReplicaService(client([conflict, conflict]), cache, { ...opts, retry: { steps: 2, initialMs: 1, factor: 2, maxMs: 1 } });
    await assert.rejects(exhausted.set('ns', 'web', 4));
    const text = await scrape(m);
    assert.equal(sampleValue(text, `${METRIC_PREFIX}write_conflicts_retried_total`), 3, 'two, then one before giving up on the second');
    assert.equal(sampleValue(text, `${METRIC_PREFIX}writes_total`, { outcome: 'updated' }), 1);
    assert.equal(sampleValue(text, `${METRIC_PREFIX}writes_total`, { outcome: 'unchanged' }), 1);
    assert.equal(sampleValue(text, `${METRIC_PREFIX}writes_total`, { outcome: 'not_found' }), 1);
    assert.equal(sampleValue(text, `${METRIC_PREFIX}writes_total`, { outcome: 'conflict' }), 1);
  });
});

describe('README alert expressions', () => {
  it('use only families (and their labels) that the registry defines', async () => {
    const m = fresh();
    // Make every labelled family emit a sample, so its label names can be read from the exposition.
    m.http.started(); m.http.finished('/livez', 'GET', '200', 0.001, 1);
    m.reflector.watchStarted('deployments'); m.reflector.relisted('deployments', 'expired');
    m.tls.refused('expired'); m.upstream.request('GET', '200', 0.01);
    m.observeCache({ status: () => ({ resource: 'deployments', objects: 1, synced: true, lastContactMs: 1 }) });
    const samples = parseSamples(await scrape(m));
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('**What to alert on**'), readme.indexOf('\n\n', readme.indexOf('**What to alert on**') + 30) + 1000);
    const exprs = [...section.matchAll(/`([^`]*k8s_api_proxy_[^`]*)`/g)].map((x) => x[1]);
    assert.ok(exprs.length >= 6, `found ${exprs.length} expressions`);
    for (const expr of exprs) {
      for (const [, name, matchers] of expr.matchAll(/(k8s_api_proxy_[a-z_]+)(?:\{([^}]*)\})?/g)) {
        const family = samples.filter((s) => s.name === name);
        assert.ok(family.length > 0, `${expr}: ${name} is not exposed`);
        for (const [, label] of (matchers ?? '').matchAll(/([a-z_]+)\s*(?:=~|!=|!~|=)/g)) {
          assert.ok(family.some((s) => label in s.labels), `${expr}: ${name} has no label ${label}`);
        }
      }
    }
  });
});

describe('hot families (the per-request path without prom-client label hashing)', () => {
  it("render exactly as prom-client's own Counter and Histogram for the same observations", async () => {
    const { Registry, Counter, Histogram } = await import('prom-client');
    const { HotCounter, HotHistogram } = await import('../../src/metrics/hot-families.js');
    const bounds = [0.001, 0.01, 0.1, 1];
    const values = [0, 0.0005, 0.001, 0.0011, 0.05, 0.1, 0.7, 1, 3, 42];
    const ours = new Registry();
    const theirs = new Registry();
    const hc = new HotCounter('c_total', 'help "quoted" \\ text', ['a', 'b'], ours);
    const hh = new HotHistogram('h_seconds', 'h', ['a', 'b'], bounds, ours);
    const pc = new Counter({ name: 'c_total', help: 'help "quoted" \\ text', labelNames: ['a', 'b'], registers: [theirs] });
    const ph = new Histogram({ name: 'h_seconds', help: 'h', labelNames: ['a', 'b'], buckets: bounds, registers: [theirs] });
    for (const [i, v] of values.entries()) {
      const labels = ['x', i % 2 ? 'odd"\\\n' : 'even'];
      hc.slot(...labels).value++;
      hh.observe(hh.slot(...labels), v);
      pc.inc({ a: labels[0], b: labels[1] });
      ph.observe({ a: labels[0], b: labels[1] }, v);
    }
    assert.equal(await ours.metrics(), await theirs.metrics());
    ours.resetMetrics();
    assert.doesNotMatch(await ours.metrics(), /_bucket|c_total\{/);
  });
});

describe('recordRefusal (for a refusal log that reports codes)', () => {
  const cases: Array<[string, string, string]> = [
    ['MAX_CONNECTIONS', '', 'cap=max_connections'],
    ['MAX_CONNECTIONS_PER_IP', '', 'cap=per_client_ip'],
    ['NO_CLIENT_CERTIFICATE', '', 'no_certificate'],
    ['ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE', '', 'no_certificate'],
    ['CERT_HAS_EXPIRED', '', 'expired'],
    ['CERT_NOT_YET_VALID', '', 'not_yet_valid'],
    ['INVALID_PURPOSE', '', 'no_client_auth'],
    ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', '', 'untrusted_certificate'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', '', 'untrusted_certificate'],
    ['UNFIT_CERTIFICATE', 'a CA certificate (basicConstraints CA:TRUE) is not a client certificate', 'ca_certificate'],
    ['UNFIT_CERTIFICATE', 'certificate subject has 2 CNs; exactly one is required', 'bad_subject'],
    ['UNFIT_CERTIFICATE', 'certificate subject O holds Unicode control or format characters', 'bad_subject'],
    ['UNFIT_CERTIFICATE', 'certificate lacks the clientAuth extended key usage', 'no_client_auth'],
    ['ERR_TLS_HANDSHAKE_TIMEOUT', '', 'aborted'],
    ['ECONNRESET', '', 'aborted'],
    ['ERR_SSL_UNSUPPORTED_PROTOCOL', '', 'protocol'],
    ['ERR_SSL_HTTP_REQUEST', '', 'protocol'],
    ['SOMETHING_NEW', '', 'untrusted_certificate'],
    ['CERTIFICATE_EXPIRED_ON_CONNECTION', '', 'expired'],
    ['CA_NO_LONGER_TRUSTED', '', 'untrusted_certificate'],
    ['UNVERIFIED', '', 'untrusted_certificate'],
    ['TLS_ERROR', '', 'other'],
    ['ERR_SOMETHING_NEW', '', 'other'],
  ];
  for (const [code, reason, want] of cases) {
    it(`counts ${code}${reason ? ` (${reason.slice(0, 30)}…)` : ''} as ${want}`, async () => {
      const { recordRefusal } = await import('../../src/tls/handshake-metrics.js');
      const seen: string[] = [];
      recordRefusal({ accepted: () => undefined, closed: () => undefined, refused: (r) => seen.push(r), closedByCap: (c) => seen.push(`cap=${c}`) }, code, reason);
      assert.deepEqual(seen, [want]);
    });
  }
});

describe('write outcomes of refusals before or outside the retry loop', () => {
  it('counts a write refused by admission (403) as refused, and one over the queue bound (429) as queue_full', async () => {
    const m = fresh();
    const cache: CacheReader<CachedDeployment> = { get: () => undefined, list: () => [], hasSynced: () => true };
    const scale = { metadata: { name: 'web', namespace: 'ns', resourceVersion: '1', uid: 'u1' }, spec: { replicas: 1 } };
    let release!: () => void;
    const held = new Promise<void>((r) => { release = r; });
    const client = {
      request: async (method: string) => {
        if (method === 'GET') { await held; return scale; }
        throw new KubeStatusError(422, 'Invalid', 'denied by policy');
      },
    } as unknown as KubeClient;
    const svc = new KubeReplicaService(client, cache, { sleep: async () => undefined, random: () => 0.5, recorder: m.writes, maxQueuedWrites: 1 });
    const first = svc.set('ns', 'web', 3);
    await assert.rejects(svc.set('ns', 'web', 4), (e: { status?: number }) => e.status === 429);
    release();
    await assert.rejects(first);
    const text = await scrape(m);
    assert.equal(sampleValue(text, `${METRIC_PREFIX}writes_total`, { outcome: 'queue_full' }), 1);
    assert.equal(sampleValue(text, `${METRIC_PREFIX}writes_total`, { outcome: 'invalid' }), 1);
    const { writeOutcomeOf } = await import('../../src/kube/kube-metrics.js');
    assert.equal(writeOutcomeOf(403), 'refused');
  });
});
