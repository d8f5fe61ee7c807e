import type http from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { badRequest } from '../errors.js';
import type { CacheReader } from '../kube/object-store.js';
import type { CachedDeployment } from '../kube/deployments.js';
import { itemOf, sseFrame, type ChangeStream, type StreamEvent } from '../kube/change-stream.js';

/** A comment line every this many milliseconds keeps proxies and load balancers from closing an idle stream. */
export const DEFAULT_KEEPALIVE_MS = 15_000;
/**
 * Bytes a watcher may have queued and unsent (its TCP window full) before it is cut off:
 * about 7,000 events. A slow watcher is disconnected, never waited for, so it cannot slow
 * the others; it reconnects with `Last-Event-ID`.
 */
export const DEFAULT_MAX_BUFFERED_BYTES = 1024 * 1024;
const KEEPALIVE = Buffer.from(': keep-alive\n\n');
/** How often a stream checks that its connection's CA is still trusted (a hot reload may remove it). */
export const DEFAULT_CONNECTION_CHECK_MS = 1_000;
/** Re-authorization period with the default 10 s allowed TTL: half of it (see {@link reauthorizeEveryMs}). */
export const DEFAULT_REAUTHORIZE_MS = 5_000;
/** setTimeout's longest delay; a later deadline is left to the periodic check. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * How often a stream asks the authorizer again, given `--authorization-cache-allowed-ttl`:
 * half the TTL, at least 500 ms; 1 s when allows are not cached (TTL 0: every check is a
 * SubjectAccessReview). A cached allow answers for at most the TTL, so a revoked grant ends
 * the stream within TTL + this period (plus one review's time).
 */
export function reauthorizeEveryMs(allowedTtlMs: number): number {
  return allowedTtlMs > 0 ? Math.max(500, Math.round(allowedTtlMs / 2)) : 1_000;
}

/** Why the proxy ends a stream: sent to the client as the data of a last event `CLOSED`, and logged. */
export interface StreamEnd {
  reason: 'CertificateExpired' | 'CertificateNoLongerTrusted' | 'MaxConnectionAge' | 'Forbidden' | 'AuthorizationUnavailable';
  message: string;
}

/**
 * Asks the decisions that opened a stream again: resolves undefined while all still allow,
 * else the Forbidden message; rejects when no decision can be had.
 */
export type Reauthorize = () => Promise<string | undefined>;

/** What the watch endpoint needs: the stream, the cache for the initial state, and its limits. */
export interface WatchDeps {
  stream: ChangeStream;
  deployments: CacheReader<CachedDeployment>;
  keepAliveMs?: number;
  maxBufferedBytes?: number;
  /** Period of re-authorization (default {@link DEFAULT_REAUTHORIZE_MS}; the proxy derives it with {@link reauthorizeEveryMs}). */
  reauthorizeEveryMs?: number;
  /** Period of the connection check (CA still trusted; default {@link DEFAULT_CONNECTION_CHECK_MS}). */
  connectionCheckMs?: number;
}

/**
 * `true` for `?watch=true`, false for no `watch` or `watch=false`.
 * @throws ProblemError 400 for any other value.
 */
export function wantsWatch(value: unknown): boolean {
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  throw badRequest(`querystring.watch: ${Array.isArray(value) ? 'given more than once' : `"${String(value)}" must be true or false`}`);
}

/**
 * Extension: `GET /deployments?watch=true[&namespace=NS]`, the cache's changes as
 * Server-Sent Events. Events `ADDED`/`MODIFIED`/`DELETED` carry `{name, namespace, replicas}`
 * and `id:` = the change's resourceVersion. Without `Last-Event-ID` (or when the history no
 * longer reaches back to it: then first an event `RELIST`), the current state comes first
 * as `ADDED` events without id, closed by `SYNCED` whose id is the cache's resourceVersion;
 * with a `Last-Event-ID` the history still covers, the missed changes come first. `visible`
 * filters namespaces (the `namespace` parameter and authorization, decided at connect).
 *
 * The checks a request gets once are repeated for as long as the stream is open, failing
 * closed: the stream ends (a last event `CLOSED` with `{reason, message}`, then the end of
 * the response and of the connection) when the connection's certificate expires (a timer at
 * its notAfter), its CA is removed by a reload (checked every `connectionCheckMs`), the
 * connection reaches its maximum age (a timer), or `reauthorize` (every `reauthorizeEveryMs`)
 * finds a decision no longer allowed or cannot have one.
 */
export function serveWatch(deps: WatchDeps, req: FastifyRequest, reply: FastifyReply, visible: (namespace: string) => boolean, reauthorize?: Reauthorize): void {
  const max = deps.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
  const lastEventId = req.headers['last-event-id'];
  reply.hijack();
  const res = reply.raw;
  // Connection: close: the connection ends with the stream, so one the stream was ended for
  // (certificate, CA, age) is not reused either.
  // Hijacked: Fastify sends none of the headers set so far (X-Request-Id), so they go here.
  // Sent at once, so a client knows the stream is open before the first event.
  res.writeHead(200, { ...(reply.getHeaders() as http.OutgoingHttpHeaders), 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'close' });
  res.flushHeaders();
  let open = true;
  const queued = (): number => res.writableLength + (res.socket?.writableLength ?? 0);
  const send = (frame: Buffer): void => {
    if (!open) return;
    res.write(frame);
    if (queued() > max) {
      req.log.warn({ client: req.clientCN, queuedBytes: queued(), maxBufferedBytes: max }, 'watcher too slow: disconnected');
      close();
      res.destroy();
    }
  };
  const dumpState = (): void => {
    const items = deps.deployments.list().filter((d) => visible(d.metadata.namespace ?? ''))
      .map(itemOf).sort((a, b) => cmp(a.namespace, b.namespace) || cmp(a.name, b.name));
    for (const item of items) send(sseFrame('ADDED', item));
    const rv = deps.stream.resourceVersion();
    send(sseFrame('SYNCED', { resourceVersion: rv }, rv));
  };
  // Catch-up and subscription happen in one synchronous step: no change can fall between them.
  if (typeof lastEventId === 'string' && lastEventId !== '') {
    const c = deps.stream.since(lastEventId.trim());
    if (c.kind === 'resume') {
      for (const ev of c.events) if (visible(ev.namespace)) send(ev.frame);
    } else {
      send(sseFrame('RELIST', { reason: 'Expired', message: `${c.reason}; the complete state follows, ending with SYNCED` }));
      dumpState();
    }
  } else {
    dumpState();
  }
  const unsubscribe = deps.stream.subscribe((ev: StreamEvent) => { if (visible(ev.namespace)) send(ev.frame); }, () => { close(); res.end(); });
  const timers: Array<ReturnType<typeof setInterval>> = [setInterval(() => send(KEEPALIVE), deps.keepAliveMs ?? DEFAULT_KEEPALIVE_MS)];
  const end = (why: StreamEnd, cause?: unknown): void => {
    if (!open) return;
    send(sseFrame('CLOSED', why));
    if (!open) return; // cut off as too slow by that very frame
    close();
    const level = why.reason === 'MaxConnectionAge' || why.reason === 'Forbidden' ? 'info' : 'warn';
    req.log[level]({
      client: req.clientCN, clientSha256: req.clientFingerprint || undefined, reason: why.reason, detail: why.message,
      ...(cause === undefined ? {} : { cause: cause instanceof Error ? cause.message : String(cause) }),
    }, 'watch stream ended by the proxy');
    res.end();
  };
  const term = req.connectionTerm;
  if (term) {
    const checkConnection = (): void => {
      const e = term.endReason();
      if (e) end(e);
    };
    const untilDeadline = term.deadlineMs - Date.now();
    if (untilDeadline <= MAX_TIMER_MS) timers.push(setTimeout(checkConnection, Math.max(0, untilDeadline)));
    timers.push(setInterval(checkConnection, deps.connectionCheckMs ?? DEFAULT_CONNECTION_CHECK_MS));
  }
  if (reauthorize) {
    let asking = false;
    timers.push(setInterval(() => {
      if (asking || !open) return;
      asking = true;
      reauthorize().then(
        (forbidden) => { if (forbidden !== undefined) end({ reason: 'Forbidden', message: forbidden }); },
        // AuthorizerUnavailableError, or anything else: no decision, no stream (fail closed).
        (err: unknown) => end({
          reason: 'AuthorizationUnavailable',
          message: 'authorization could not be checked again (the proxy log has details), and nothing is streamed without a decision; reconnect',
        }, err),
      ).finally(() => { asking = false; });
    }, deps.reauthorizeEveryMs ?? DEFAULT_REAUTHORIZE_MS));
  }
  function close(): void {
    if (!open) return;
    open = false;
    unsubscribe();
    for (const t of timers) clearInterval(t);
  }
  res.once('close', close);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
