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

/** What the watch endpoint needs: the stream, the cache for the initial state, and its limits. */
export interface WatchDeps {
  stream: ChangeStream;
  deployments: CacheReader<CachedDeployment>;
  keepAliveMs?: number;
  maxBufferedBytes?: number;
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
 * filters namespaces (the `namespace` parameter; authorization when it lands).
 */
export function serveWatch(deps: WatchDeps, req: FastifyRequest, reply: FastifyReply, visible: (namespace: string) => boolean): void {
  const max = deps.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
  const lastEventId = req.headers['last-event-id'];
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' });
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
  const timer = setInterval(() => send(KEEPALIVE), deps.keepAliveMs ?? DEFAULT_KEEPALIVE_MS);
  function close(): void {
    if (!open) return;
    open = false;
    unsubscribe();
    clearInterval(timer);
  }
  res.once('close', close);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
