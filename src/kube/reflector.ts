import type { Logger } from 'pino';
import { KubeResponseTooLargeError, KubeStatusError, type KubeClient, type WatchEvent } from './kube-client.js';
import { ObjectStore, type CacheReader, type CachedObject, type NameIndex } from './object-store.js';
import { rvAtLeast } from './resource-version.js';
import { NOOP_REFLECTOR_RECORDER, type ReflectorRecorder } from './kube-metrics.js';

/**
 * Backoff between failed list/watch attempts, after client-go's reflector
 * (tools/cache/reflector.go: 800 ms doubling to 30 s, jittered, reset after 2 min healthy).
 */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  factor: number;
  /** Each delay is multiplied by a random factor in [1 - jitter/2, 1 + jitter/2]. */
  jitter: number;
}

/** client-go's reflector backoff: 0.8 s doubling to 30 s, jittered ±25%. */
export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 800, maxMs: 30_000, factor: 2, jitter: 0.5 };
/** client-go picks a random watch timeout between 5 and 10 minutes. */
export const DEFAULT_WATCH_TIMEOUT_SECONDS: readonly [number, number] = [300, 600];
/** kube-apiserver sends a BOOKMARK about every minute to watchers that allow them; silence beyond this is a stall. */
export const DEFAULT_WATCH_INACTIVITY_MS = 150_000;
/** Objects per list page (`limit`), as client-go's pager. */
export const DEFAULT_PAGE_SIZE = 500;
/** A watch that ends normally sooner than this counts as a failure for backoff, so a flapping server cannot drive a tight loop. */
const MIN_HEALTHY_WATCH_MS = 1_000;
/** A 410 Gone on a watch whose list is at least this old relists at once, without backoff. */
const RELIST_AT_ONCE_AFTER_MS = 10_000;

/** What to cache: one registration per resource. */
export interface ResourceSpec<T extends CachedObject> {
  /** Short name for logs and status, e.g. `deployments`. */
  name: string;
  /** Cluster-wide collection path, e.g. `/apis/apps/v1/deployments`. */
  path: string;
  /** Shapes each object before it is stored (e.g. strip `managedFields`). */
  transform: (raw: Record<string, unknown>) => T;
}

/**
 * A change the cache applied, in the order applied: from a watch event, or (after a
 * relist) from the difference between the old and the new content, as client-go's
 * DeltaFIFO `Replace` reports deletions it missed. `resourceVersion` is the event
 * object's (for a relist: the list's).
 */
export interface CacheChange<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: T;
  resourceVersion: string;
}

/** Injectable time and randomness, so tests can drive backoff without waiting. */
export interface ReflectorClock {
  now(): number;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
  random(): number;
}

/** Tuning of a {@link Reflector}; every field has a client-go-like default. */
export interface ReflectorOptions {
  backoff?: BackoffPolicy;
  watchTimeoutSeconds?: readonly [number, number];
  inactivityMs?: number;
  pageSize?: number;
  requestTimeoutMs?: number;
  clock?: ReflectorClock;
  logger?: Logger;
  /** Receives list pages, relists, watch starts, events and backoffs (metrics). */
  recorder?: ReflectorRecorder;
}

/** A reflector's health, for `/readyz`, logs and tests. */
export interface ReflectorStatus {
  resource: string;
  synced: boolean;
  watching: boolean;
  resourceVersion: string;
  objects: number;
  /** Epoch ms of the last successful list or watch byte; 0 before any. */
  lastContactMs: number;
  lastError: string;
  /** HTTP status of the last failed list or watch (e.g. 401, 403) until one succeeds; 0 otherwise. */
  lastErrorStatus: number;
  /** Failed attempts in a row (drives the backoff). */
  failures: number;
  relists: number;
  /** Page size (`limit`) of the last list request; below the configured one after an oversized page. */
  pageSize: number;
}

/** What a consistent read needs from a cache: its resourceVersion, and a way to wait for a newer one. */
export interface ResourceVersionSource {
  /** The resourceVersion the cache reflects ('' before the first list). */
  resourceVersion(): string;
  /**
   * Resolves true once the cache reflects `resourceVersion` or newer, false after
   * `timeoutMs` (milliseconds) or when `signal` aborts.
   */
  waitForResourceVersion(resourceVersion: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
}

const realClock: ReflectorClock = {
  now: () => Date.now(),
  random: () => Math.random(),
  sleep: (ms, signal) => new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void { clearTimeout(t); signal.removeEventListener('abort', done); resolve(); }
    signal.addEventListener('abort', done, { once: true });
  }),
};

/** Delay before retry number `failures` (1-based) under `policy`, in ms. */
export function backoffDelayMs(policy: BackoffPolicy, failures: number, random: () => number): number {
  const base = Math.min(policy.maxMs, policy.initialMs * policy.factor ** Math.max(0, failures - 1));
  const jittered = base * (1 - policy.jitter / 2 + policy.jitter * random());
  return Math.round(Math.min(jittered, policy.maxMs));
}

class GoneError extends Error {}

/** Options of {@link listAll}. */
export interface ListAllOptions {
  /** Objects per page (`limit`). */
  pageSize: number;
  /** Bound on each page request, milliseconds. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Extra query parameters, e.g. a `fieldSelector`. */
  query?: Record<string, string>;
  logger?: Logger;
  /** Told the `limit` of every page request. */
  onPageSize?: (pageSize: number) => void;
  /** Told of every page received. */
  onPage?: () => void;
}

/**
 * A paginated list (`limit`/`continue`) of `path`, every item shaped by `spec.transform`.
 * A page over the transport's response bound would fail the same way on every retry, so
 * that page is asked for again in halves (its continue token stays valid; kube-apiserver
 * allows a different limit per page) rather than failing the whole list.
 * @throws KubeStatusError (410 when a continue token expired), KubeTimeoutError, KubeUnreachableError.
 */
export async function listAll<T>(client: KubeClient, spec: { name: string; path: string; transform: (raw: Record<string, unknown>) => T }, o: ListAllOptions): Promise<{ items: T[]; resourceVersion: string }> {
  const items: T[] = [];
  let cont = '';
  let limit = o.pageSize;
  for (;;) {
    const q = new URLSearchParams({ ...o.query, limit: String(limit) });
    if (cont) q.set('continue', cont);
    o.onPageSize?.(limit);
    let page: ListPage;
    try {
      page = await client.request<ListPage>('GET', `${spec.path}?${q}`, { timeoutMs: o.timeoutMs, signal: o.signal });
    } catch (err) {
      if (err instanceof KubeResponseTooLargeError && limit > 1) {
        limit = Math.max(1, Math.floor(limit / 2));
        o.logger?.warn({ resource: spec.name, maxBytes: err.maxBytes, pageSize: limit }, 'list page too large; asking for it again with a smaller page size');
        continue;
      }
      throw err;
    }
    o.onPage?.();
    for (const raw of page.items ?? []) items.push(spec.transform(raw));
    cont = page.metadata?.continue ?? '';
    if (!cont) return { items, resourceVersion: page.metadata?.resourceVersion ?? '' };
  }
}

interface ListPage {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: Record<string, unknown>[];
}

/**
 * Keeps an {@link ObjectStore} equal to one resource in the cluster: a paginated list,
 * then a watch from the list's resourceVersion, reconnecting from the last seen
 * resourceVersion; 410 Gone (expired resourceVersion) relists and replaces the store,
 * so objects deleted during a gap disappear. Failures back off with jitter and never
 * stop the loop; a watch silent for `inactivityMs` is torn down and restarted.
 *
 * This replaces client-node's `ListWatch` (still so in 2.0.1), which stops for good on
 * most errors and can stall on a half-open connection (see test/unit/client-node-gaps.test.ts).
 */
export class Reflector<T extends CachedObject> implements CacheReader<T>, ResourceVersionSource {
  private readonly store = new ObjectStore<T>();
  private readonly opts: Required<Omit<ReflectorOptions, 'logger'>> & { logger?: Logger };
  private readonly abort = new AbortController();
  private running?: Promise<void>;
  /** The resourceVersion of the cache's content: the last list's, then each event's. */
  private rv = '';
  /** Set when the next turn must list (first start, or the watch's resourceVersion expired). */
  private needList = true;
  /** When the last list was stored (clock ms); a 410 long after it is compaction, not a loop. */
  private listedAtMs = Number.NEGATIVE_INFINITY;
  private synced = false;
  private watching = false;
  private lastContactMs = 0;
  private lastError = '';
  private lastErrorStatus = 0;
  private failures = 0;
  private relists = 0;
  private readonly listeners = new Set<(change: CacheChange<T>) => void>();
  private lastPageSize: number;
  private readonly waiters = new Set<{ rv: string; done: (ok: boolean) => void }>();
  private resolveSynced!: () => void;
  /** Resolves once the first list is stored. */
  readonly whenSynced: Promise<void> = new Promise((r) => { this.resolveSynced = r; });

  constructor(private readonly client: KubeClient, readonly spec: ResourceSpec<T>, options: ReflectorOptions = {}) {
    this.opts = {
      backoff: options.backoff ?? DEFAULT_BACKOFF,
      watchTimeoutSeconds: options.watchTimeoutSeconds ?? DEFAULT_WATCH_TIMEOUT_SECONDS,
      inactivityMs: options.inactivityMs ?? DEFAULT_WATCH_INACTIVITY_MS,
      pageSize: options.pageSize ?? DEFAULT_PAGE_SIZE,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      clock: options.clock ?? realClock,
      recorder: options.recorder ?? NOOP_REFLECTOR_RECORDER,
      logger: options.logger,
    };
    this.lastPageSize = this.opts.pageSize;
  }

  /** The sorted name index of the cached objects, for list views. */
  get index(): NameIndex {
    return this.store;
  }

  resourceVersion(): string {
    return this.synced ? this.rv : '';
  }

  waitForResourceVersion(resourceVersion: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.synced && rvAtLeast(this.rv, resourceVersion)) return Promise.resolve(true);
    if (timeoutMs <= 0 || signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter = { rv: resourceVersion, done: (ok: boolean) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.waiters.delete(waiter);
        resolve(ok);
      } };
      const onAbort = (): void => waiter.done(false);
      const timer = setTimeout(onAbort, timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(waiter);
    });
  }

  /** Reads still waiting in {@link waitForResourceVersion} (each leaves on its answer, timeout or abort); for tests. */
  get waitingReads(): number {
    return this.waiters.size;
  }

  private wakeWaiters(): void {
    if (this.waiters.size === 0 || !this.synced) return;
    for (const w of [...this.waiters]) if (rvAtLeast(this.rv, w.rv)) w.done(true);
  }

  get(namespace: string, name: string): T | undefined {
    return this.store.get(namespace, name);
  }

  list(namespace?: string): T[] {
    return this.store.list(namespace);
  }

  hasSynced(): boolean {
    return this.synced;
  }

  status(): ReflectorStatus {
    return {
      resource: this.spec.name, synced: this.synced, watching: this.watching, resourceVersion: this.rv,
      objects: this.store.size, lastContactMs: this.lastContactMs, lastError: this.lastError, lastErrorStatus: this.lastErrorStatus,
      failures: this.failures, relists: this.relists, pageSize: this.lastPageSize,
    };
  }

  /**
   * Calls `listener` synchronously after each change is stored (the cache already shows
   * it). Returns the unsubscribe function. A throwing listener is logged, never stops the loop.
   */
  subscribe(listener: (change: CacheChange<T>) => void): () => void {
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  }

  private emit(change: CacheChange<T>): void {
    for (const l of this.listeners) {
      try {
        l(change);
      } catch (err) {
        this.opts.logger?.error({ resource: this.spec.name, err }, 'cache change listener failed');
      }
    }
  }

  /** Starts the list/watch loop in the background; idempotent. */
  start(): void {
    this.running ??= this.run();
  }

  /** Stops the loop and any open watch; resolves when the loop has exited. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }

  private async run(): Promise<void> {
    const { clock, logger } = this.opts;
    const signal = this.abort.signal;
    while (!signal.aborted) {
      let healthy = false;
      try {
        if (this.needList) await this.relist(signal);
        const started = clock.now();
        await this.watchOnce(signal);
        healthy = clock.now() - started >= MIN_HEALTHY_WATCH_MS;
        if (!healthy) this.lastError = 'watch ended immediately';
      } catch (err) {
        if (signal.aborted) break;
        this.lastErrorStatus = err instanceof KubeStatusError ? err.code : 0;
        if (err instanceof GoneError || (err instanceof KubeStatusError && err.code === 410)) {
          // The resourceVersion is too old (compacted, or the API server restarted): relist.
          // client-go relists at once; so do we, also after an outage's backoff (the server
          // answered, so it is back) when the list it expired is not a fresh one. A 410 on
          // a list only just made relists at once the first time; a second one in a row goes
          // through the backoff, so a server answering every watch with 410 drives no tight
          // list loop. Until the list lands, reads keep the last resourceVersion.
          logger?.info({ resource: this.spec.name, resourceVersion: this.rv }, 'resourceVersion expired (410 Gone); relisting');
          this.needList = true;
          this.lastError = (err as Error).message;
          if (clock.now() - this.listedAtMs >= RELIST_AT_ONCE_AFTER_MS) continue;
          if (this.failures === 0) { this.failures = 1; continue; }
        } else {
          this.lastError = (err as Error).message;
          logger?.warn({ resource: this.spec.name, err: this.lastError, failures: this.failures + 1 }, 'list/watch failed; backing off');
        }
      } finally {
        this.watching = false;
      }
      if (signal.aborted) break;
      if (healthy) {
        this.failures = 0;
        continue;
      }
      this.failures++;
      const delayMs = backoffDelayMs(this.opts.backoff, this.failures, clock.random);
      this.opts.recorder.backoff(this.spec.name, delayMs / 1000);
      await clock.sleep(delayMs, signal);
    }
  }

  private async relist(signal: AbortSignal): Promise<void> {
    const { items, resourceVersion: rv } = await listAll(this.client, this.spec, {
      pageSize: this.opts.pageSize, timeoutMs: this.opts.requestTimeoutMs, signal, logger: this.opts.logger,
      onPageSize: (n) => { this.lastPageSize = n; },
      onPage: () => this.opts.recorder.listPage(this.spec.name),
    });
    const before = this.listeners.size > 0 ? this.store.list() : undefined;
    this.store.replace(items);
    this.rv = rv;
    this.needList = false;
    this.listedAtMs = this.opts.clock.now();
    if (before) this.emitRelistDiff(before, rv);
    this.relists++;
    this.opts.recorder.relisted(this.spec.name, this.synced ? 'expired' : 'initial');
    this.lastContactMs = this.opts.clock.now();
    this.lastErrorStatus = 0;
    this.opts.logger?.info({ resource: this.spec.name, objects: items.length, resourceVersion: rv }, 'listed');
    if (!this.synced) {
      this.synced = true;
      this.resolveSynced();
    }
    this.wakeWaiters();
  }

  private emitRelistDiff(before: T[], rv: string): void {
    const old = new Map(before.map((o) => [`${o.metadata.namespace ?? ''}/${o.metadata.name}`, o]));
    for (const now of this.store.list()) {
      const key = `${now.metadata.namespace ?? ''}/${now.metadata.name}`;
      const prev = old.get(key);
      old.delete(key);
      if (!prev) this.emit({ type: 'ADDED', object: now, resourceVersion: rv });
      else if (prev.metadata.resourceVersion !== now.metadata.resourceVersion) this.emit({ type: 'MODIFIED', object: now, resourceVersion: rv });
    }
    for (const gone of old.values()) this.emit({ type: 'DELETED', object: gone, resourceVersion: rv });
  }

  private async watchOnce(signal: AbortSignal): Promise<void> {
    const [lo, hi] = this.opts.watchTimeoutSeconds;
    const timeoutSeconds = Math.floor(lo + (hi - lo) * this.opts.clock.random());
    const q = new URLSearchParams({
      watch: 'true', allowWatchBookmarks: 'true', resourceVersion: this.rv, timeoutSeconds: String(timeoutSeconds),
    });
    await this.client.watch(`${this.spec.path}?${q}`, {
      signal,
      inactivityMs: this.opts.inactivityMs,
      connectTimeoutMs: this.opts.requestTimeoutMs,
      onOpen: () => { this.watching = true; this.lastErrorStatus = 0; this.lastContactMs = this.opts.clock.now(); this.opts.recorder.watchStarted(this.spec.name); },
      onEvent: (ev) => this.apply(ev),
    });
  }

  private apply(ev: WatchEvent): void {
    this.lastContactMs = this.opts.clock.now();
    this.opts.recorder.event(this.spec.name, ev.type);
    // Only real progress resets the backoff; an ERROR event is a failure, or a server
    // answering every watch with 410 would drive a tight relist loop.
    if (ev.type !== 'ERROR' && this.failures > 0) this.failures = 0;
    const obj = ev.object as Record<string, unknown> & { metadata?: { name?: string; namespace?: string; resourceVersion?: string } };
    let change: CacheChange<T> | undefined;
    switch (ev.type) {
      case 'ADDED':
      case 'MODIFIED': {
        const stored = this.spec.transform(obj);
        this.store.upsert(stored);
        if (this.listeners.size > 0) change = { type: ev.type, object: stored, resourceVersion: obj.metadata?.resourceVersion ?? '' };
        break;
      }
      case 'DELETED':
        this.store.delete(obj.metadata?.namespace ?? '', obj.metadata?.name ?? '');
        if (this.listeners.size > 0) change = { type: 'DELETED', object: this.spec.transform(obj), resourceVersion: obj.metadata?.resourceVersion ?? '' };
        break;
      case 'BOOKMARK':
        break;
      case 'ERROR': {
        const s = obj as { code?: number; reason?: string; message?: string };
        if (s.code === 410) throw new GoneError(`watch: ${s.message ?? 'resourceVersion expired'}`);
        throw new KubeStatusError(s.code ?? 500, s.reason ?? '', `watch error event: ${s.message ?? 'unknown'}`);
      }
      default:
        throw new Error(`watch: unknown event type ${String((ev as { type: unknown }).type)}`);
    }
    const rv = obj.metadata?.resourceVersion;
    if (rv) this.rv = rv;
    if (change) this.emit(change);
    if (rv) this.wakeWaiters();
  }
}
