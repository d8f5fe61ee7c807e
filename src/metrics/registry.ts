import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { HotCounter, HotHistogram, type CounterSlot, type HistogramSlot } from './hot-families.js';
import type { ReflectorRecorder, UpstreamRecorder, WriteRecorder, WriteOutcome } from '../kube/kube-metrics.js';
import { NOOP_REFLECTOR_RECORDER, NOOP_UPSTREAM_RECORDER, NOOP_WRITE_RECORDER } from '../kube/kube-metrics.js';
import {
  CONNECTION_CAPS, HTTP_METHODS, NOOP_AUDIT_RECORDER, NOOP_AUTHZ_RECORDER, NOOP_HTTP_RECORDER, NOOP_TLS_RECORDER, REFUSAL_REASONS,
  type AuditRecorder, type AuthzRecorder, type HttpRecorder, type MetricsEndpoint, type TlsRecorder,
} from './recorders.js';

/** Every family this proxy defines starts with this (Prometheus naming: one prefix per exporter). */
export const METRIC_PREFIX = 'k8s_api_proxy_';

/** Request latency buckets (seconds): cached reads answer in well under a millisecond, writes in tens of ms. */
const HTTP_DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Response sizes (bytes): a replicas view is ~60 B, a list of thousands of Deployments some hundred KiB. */
const RESPONSE_SIZE_BUCKETS = [64, 256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304];
/** API server call latency buckets (seconds), up to the 30 s list timeout. */
const UPSTREAM_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Reflector backoff buckets (seconds): 0.8 s doubling to 30 s, jittered. */
const BACKOFF_BUCKETS = [0.5, 1, 2, 4, 8, 16, 32];
const WATCH_EVENT_TYPES: ReadonlySet<string> = new Set(['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR']);
const WRITE_OUTCOMES: ReadonlySet<string> = new Set<WriteOutcome>(['updated', 'unchanged', 'conflict', 'not_found', 'invalid', 'refused', 'timeout', 'aborted', 'queue_full', 'upstream_error', 'error']);
const STATUS_CODE = /^[1-5]\d\d$/;
const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** What one cache reports at scrape time; a `Reflector` satisfies it. */
export interface CacheStatusSource {
  status(): { resource: string; objects: number; synced: boolean; lastContactMs: number };
}

/** Every recorder the proxy hands to its layers, plus (when enabled) the scrape endpoint. */
export interface ProxyMetrics {
  http: HttpRecorder;
  tls: TlsRecorder;
  upstream: UpstreamRecorder;
  reflector: ReflectorRecorder;
  writes: WriteRecorder;
  authz: AuthzRecorder;
  audit: AuditRecorder;
  /** Reports a cache's object count, sync state and last contact at each scrape (no cost per event). */
  observeCache(source: CacheStatusSource): void;
  /** Undefined when metrics are off (`--metrics=false`): nothing is served. */
  endpoint?: MetricsEndpoint;
}

/** Build identity for `k8s_api_proxy_build_info`. */
export interface BuildInfo {
  version: string;
  nodeVersion: string;
}

/** Metrics switched off: every recorder is a no-op and there is no endpoint. */
export function disabledMetrics(): ProxyMetrics {
  return {
    http: NOOP_HTTP_RECORDER, tls: NOOP_TLS_RECORDER, upstream: NOOP_UPSTREAM_RECORDER, reflector: NOOP_REFLECTOR_RECORDER,
    writes: NOOP_WRITE_RECORDER, authz: NOOP_AUTHZ_RECORDER, audit: NOOP_AUDIT_RECORDER, observeCache: () => undefined,
  };
}

/** `value` when it is one of `allowed`, else `fallback`: the one guard every label value passes. */
function bounded(value: string, allowed: ReadonlySet<string>, fallback: string): string {
  return allowed.has(value) ? value : fallback;
}

/**
 * Creates the proxy's one prom-client registry (with prom-client's default process and
 * Node.js metrics) and the recorders that write into it. Label values are bounded here,
 * whatever a caller passes: methods, status codes, reasons, outcomes and event types to
 * closed sets; routes and resources are registrations, not client input.
 */
export function createMetrics(build: BuildInfo, options: { defaultMetrics?: boolean } = {}): ProxyMetrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) {
    collectDefaultMetrics({ register: registry });
    // Gauges named like counters, which `promtool check metrics` flags; each is the sum of
    // its unsuffixed twin (nodejs_active_handles{type} …), so nothing is lost.
    for (const n of LINT_FAILING_DEFAULTS) registry.removeSingleMetric(n);
  }
  const registers = [registry];
  const p = METRIC_PREFIX;

  new Gauge({ name: `${p}build_info`, help: 'Always 1; labels name the proxy version and the Node.js version it runs on.', labelNames: ['version', 'node_version'], registers })
    .set({ version: build.version, node_version: build.nodeVersion }, 1);

  // --- HTTP (API listener): the per-request path, so plain arithmetic on cached slots (hot-families.ts).
  const requests = new HotCounter(`${p}http_requests_total`, 'Requests answered on the API listener, by route template, method and status code (or "aborted").', ['route', 'method', 'code'], registry);
  const duration = new HotHistogram(`${p}http_request_duration_seconds`, 'Time from receiving a request to finishing its response, by route template, method and status code.', ['route', 'method', 'code'], HTTP_DURATION_BUCKETS, registry);
  const size = new HotHistogram(`${p}http_response_size_bytes`, 'Response body size on the API listener, by route template and method.', ['route', 'method'], RESPONSE_SIZE_BUCKETS, registry);
  let inFlight = 0;
  new Gauge({ name: `${p}http_requests_in_flight`, help: 'Requests received on the API listener and not yet answered.', registers, collect() { this.set(inFlight); } });
  type Child = { count: CounterSlot; time: HistogramSlot; bytes: HistogramSlot };
  // route → method → code: lookups by strings V8 has already hashed (no key to build per request).
  const children = new Map<string, Map<string, Map<string, Child>>>();
  const http: HttpRecorder = {
    started: () => { inFlight++; },
    finished(route, method, code, seconds, bytes) {
      inFlight--;
      let byMethod = children.get(route);
      if (!byMethod) children.set(route, byMethod = new Map());
      let byCode = byMethod.get(method);
      if (!byCode) byMethod.set(method, byCode = new Map());
      let child = byCode.get(code);
      if (!child) {
        // First time for this combination: bound the values (every later lookup reuses them).
        const m = bounded(method, HTTP_METHODS, 'OTHER');
        const c = code === 'aborted' || STATUS_CODE.test(code) ? code : 'other';
        child = { count: requests.slot(route, m, c), time: duration.slot(route, m, c), bytes: size.slot(route, m) };
        byCode.set(code, child);
      }
      child.count.value++;
      duration.observe(child.time, seconds);
      if (bytes !== undefined) size.observe(child.bytes, bytes);
    },
  };

  // --- TLS
  const accepted = new Counter({ name: `${p}tls_handshakes_accepted_total`, help: 'TLS handshakes completed on the API listener with a fit client certificate.', registers });
  const refused = new Counter({ name: `${p}tls_handshakes_refused_total`, help: 'TLS clients refused on the API listener, by reason: during the handshake, right after it for an unfit certificate, or on a later request once the certificate no longer holds.', labelNames: ['reason'], registers });
  const open = new Gauge({ name: `${p}tls_open_connections`, help: 'Accepted TLS connections on the API listener that are still open.', registers });
  const capped = new Counter({ name: `${p}connections_closed_by_cap_total`, help: 'Connections closed or refused because a connection cap was reached, by cap.', labelNames: ['cap'], registers });
  for (const r of REFUSAL_REASONS) refused.inc({ reason: r }, 0);
  for (const c of CONNECTION_CAPS) capped.inc({ cap: c }, 0);
  const reasons = new Set<string>(REFUSAL_REASONS);
  const caps = new Set<string>(CONNECTION_CAPS);
  const tls: TlsRecorder = {
    accepted: () => { accepted.inc(); open.inc(); },
    refused: (reason) => refused.inc({ reason: bounded(reason, reasons, 'other') }),
    closed: () => open.dec(),
    closedByCap: (cap) => capped.inc({ cap: bounded(cap, caps, 'other') }),
  };

  // --- cache (reflectors)
  const pages = new Counter({ name: `${p}cache_list_pages_total`, help: 'List pages received from the API server, by cached resource.', labelNames: ['resource'], registers });
  const relists = new Counter({ name: `${p}cache_relists_total`, help: 'Full lists stored, by cached resource and reason ("initial", or "expired" after 410 Gone).', labelNames: ['resource', 'reason'], registers });
  const watchStarts = new Counter({ name: `${p}cache_watch_starts_total`, help: 'Watches the API server accepted (first and restarts), by cached resource.', labelNames: ['resource'], registers });
  const events = new Counter({ name: `${p}cache_watch_events_total`, help: 'Watch events applied, by cached resource and type.', labelNames: ['resource', 'type'], registers });
  const backoff = new Histogram({ name: `${p}cache_backoff_seconds`, help: 'Backoff delays of the list/watch loop after a failure, by cached resource.', labelNames: ['resource'], buckets: BACKOFF_BUCKETS, registers });
  const reflector: ReflectorRecorder = {
    listPage: (resource) => pages.inc({ resource }),
    relisted: (resource, reason) => relists.inc({ resource, reason: reason === 'expired' ? 'expired' : 'initial' }),
    watchStarted: (resource) => watchStarts.inc({ resource }),
    event: (resource, type) => events.inc({ resource, type: bounded(type, WATCH_EVENT_TYPES, 'unknown') }),
    backoff: (resource, seconds) => backoff.observe({ resource }, seconds),
  };
  const caches: CacheStatusSource[] = [];
  const statuses = () => caches.map((c) => c.status());
  new Gauge({
    name: `${p}cache_objects`, help: 'Objects held in the cache, by resource.', labelNames: ['resource'], registers,
    collect() { for (const s of statuses()) this.set({ resource: s.resource }, s.objects); },
  });
  new Gauge({
    name: `${p}cache_synced`, help: '1 once the cache has finished its first list, else 0, by resource.', labelNames: ['resource'], registers,
    collect() { for (const s of statuses()) this.set({ resource: s.resource }, s.synced ? 1 : 0); },
  });
  new Gauge({
    name: `${p}cache_last_sync_timestamp_seconds`, help: 'Unix time of the last successful list or watch event (bookmarks included), by resource; 0 before any.', labelNames: ['resource'], registers,
    collect() { for (const s of statuses()) this.set({ resource: s.resource }, s.lastContactMs / 1000); },
  });

  // --- upstream (API server)
  const upCalls = new Counter({ name: `${p}upstream_requests_total`, help: 'Calls to the API server, by verb (HTTP method, or WATCH) and status code ("error" when no answer came).', labelNames: ['verb', 'code'], registers });
  const upDuration = new Histogram({ name: `${p}upstream_request_duration_seconds`, help: 'Duration of calls to the API server (watches excluded: they are long-running by design), by verb.', labelNames: ['verb'], buckets: UPSTREAM_DURATION_BUCKETS, registers });
  const verbs = new Set([...HTTP_METHODS, 'WATCH']);
  const upstream: UpstreamRecorder = {
    request(verb, code, seconds) {
      const v = bounded(verb, verbs, 'OTHER');
      upCalls.inc({ verb: v, code: STATUS_CODE.test(code) ? code : 'error' });
      if (seconds !== undefined) upDuration.observe({ verb: v }, seconds);
    },
  };

  // --- writes
  const conflicts = new Counter({ name: `${p}write_conflicts_retried_total`, help: '409 Conflicts met by replica writes and retried with a fresh read.', registers });
  const writes = new Counter({ name: `${p}writes_total`, help: 'Replica writes, by outcome (updated, unchanged, conflict, not_found, invalid, refused, timeout, aborted, queue_full, upstream_error, error).', labelNames: ['outcome'], registers });
  const writeRecorder: WriteRecorder = {
    conflictRetried: () => conflicts.inc(),
    write: (outcome) => writes.inc({ outcome: bounded(outcome, WRITE_OUTCOMES, 'error') }),
  };

  // --- authorization and audit (recorded once src/authz and src/audit exist)
  const decisions = new Counter({ name: `${p}authorization_decisions_total`, help: 'Authorization decisions, by result (allow, deny, error) and whether the decision cache answered (hit, miss).', labelNames: ['result', 'cache'], registers });
  const auditEvents = new Counter({ name: `${p}audit_events_total`, help: 'Audit events, by outcome (written, dropped).', labelNames: ['outcome'], registers });
  const results = new Set(['allow', 'deny', 'error']);
  const authz: AuthzRecorder = {
    decision: (result, cache) => decisions.inc({ result: bounded(result, results, 'error'), cache: cache === 'hit' ? 'hit' : 'miss' }),
  };
  const audit: AuditRecorder = { event: (outcome) => auditEvents.inc({ outcome: outcome === 'written' ? 'written' : 'dropped' }) };

  return {
    http, tls, upstream, reflector, writes: writeRecorder, authz, audit,
    observeCache: (source) => { caches.push(source); },
    endpoint: { contentType: registry.contentType, render: () => registry.metrics() },
  };
}
