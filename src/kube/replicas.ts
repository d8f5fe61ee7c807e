import { KubeStatusError, KubeTimeoutError, KubeUnreachableError, type KubeClient } from './kube-client.js';
import type { CacheReader } from './object-store.js';
import { projectDeployment, specReplicas, type CachedDeployment } from './deployments.js';
import { listAll, type ResourceVersionSource } from './reflector.js';
import { ProblemError, conflict, notFound, unavailable } from '../errors.js';
import type { AccessCheck } from './api-health.js';
import type { Logger } from 'pino';
import { NOOP_WRITE_RECORDER, writeOutcomeOf, type WriteRecorder } from './kube-metrics.js';
import { rvAtLeast } from './resource-version.js';
import { SingleFlight } from './single-flight.js';

export { rvAtLeast };

/** The RFD's replicas shape: `{"deployment":"foo","namespace":"default","replicas":3}`. */
export interface ReplicasView {
  deployment: string;
  namespace: string;
  replicas: number;
}

/** A replicas answer and the versions it reflects. */
export interface ReplicasAnswer {
  view: ReplicasView;
  /** Quoted entity tag: the Deployment's resourceVersion the value comes from. */
  etag: string;
  /** The resourceVersion of the state this answer reflects (a client passes it as `minResourceVersion` to another replica). */
  resourceVersion: string;
}

/** Options of {@link ReplicaService.read}. */
export interface ReadOptions {
  /** Answer from a state at least this new (read-your-writes across replicas). */
  minResourceVersion?: string;
  signal?: AbortSignal;
}

/**
 * A committed write: the answer, and `previousReplicas`, the value just before it (for the
 * audit trail's `replicas-before`): as this proxy knew it when the write went out (its
 * cache with its own committed writes), or as read from the API server when the write
 * had to read first; absent when neither knew it (a Deployment not yet in the cache).
 */
export type ScaleAnswer = ReplicasAnswer & { previousReplicas?: number };

/** What the routes need: reads from the cache, writes to the API server. */
export interface ReplicaService {
  /** From the cache (and this proxy's own recent writes). @throws ProblemError 503 (cache not synced) or 404. */
  get(namespace: string, name: string): ReplicasAnswer;
  /**
   * Like {@link get}, but at least as new as `minResourceVersion`: waits (bounded) for the
   * cache to catch up, else reads through from the API server.
   * @throws ProblemError 503 (cache not synced), 404, and 502/503/504 when a read-through fails.
   */
  read(namespace: string, name: string, options?: ReadOptions): Promise<ReplicasAnswer>;
  /**
   * Sets spec.replicas. `signal` aborts when the client has gone: no further attempt starts.
   * @throws ProblemError 404, 409 (the Deployment was recreated, or retries exhausted), 422, 429 (too many writes to it in line), 502, 503, 504.
   */
  set(namespace: string, name: string, replicas: number, signal?: AbortSignal): Promise<ScaleAnswer>;
}

/**
 * Conflict retry, modelled on client-go's `retry.RetryOnConflict` (util/retry/util.go).
 * `DefaultRetry` is 5 steps of ~10 ms; we allow more steps with exponential, fully
 * jittered delays so many concurrent absolute sets from several proxies converge.
 * Within one proxy, writes to the same Deployment are also queued, so they do not
 * conflict with each other at all.
 */
export interface ConflictRetry {
  steps: number;
  initialMs: number;
  factor: number;
  maxMs: number;
}
/** 10 attempts, 10 ms doubling to 640 ms, fully jittered: about 1.3 s in the worst case. */
export const DEFAULT_CONFLICT_RETRY: ConflictRetry = { steps: 10, initialMs: 10, factor: 2, maxMs: 640 };
/** Bound on each call to the API server. */
export const WRITE_CALL_TIMEOUT_MS = 5_000;
/** Bound on a whole PUT, including waiting behind other writes to the same Deployment and retries. */
export const WRITE_DEADLINE_MS = 10_000;
/**
 * Writes to one Deployment in line at once (the running one included). One more is
 * refused with 429 at once rather than waiting to time out behind a slow API server.
 */
export const MAX_QUEUED_WRITES = 10;
/** The field manager recorded in managedFields for the proxy's writes. */
export const FIELD_MANAGER = 'k8s-api-proxy';

interface Scale {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace: string; resourceVersion?: string; uid?: string };
  spec?: { replicas?: number };
}

/**
 * Remembers the last value this proxy committed per Deployment until the watch-fed
 * cache has caught up with it, so a GET after a PUT never shows the older cached value
 * (read-your-writes; controller-runtime leaves this to the caller, see its #3320).
 * "Caught up" compares resourceVersions numerically: etcd revisions are integers, and
 * Kubernetes 1.35 makes that comparison official (KEP-5504). A non-numeric RV only
 * matches by equality.
 */
export class WriteOverlay {
  private readonly entries = new Map<string, { replicas: number; resourceVersion: string }>();

  record(namespace: string, name: string, replicas: number, resourceVersion: string): void {
    const key = `${namespace}/${name}`;
    const prev = this.entries.get(key);
    if (prev && !rvAtLeast(resourceVersion, prev.resourceVersion)) return;
    this.entries.set(key, { replicas, resourceVersion });
  }

  /** The replicas to answer for a cached object: the overlay's while the cache is behind it. */
  resolve(namespace: string, name: string, cached: CachedDeployment): number {
    const key = `${namespace}/${name}`;
    const entry = this.entries.get(key);
    if (!entry) return specReplicas(cached);
    if (rvAtLeast(cached.metadata.resourceVersion ?? '', entry.resourceVersion)) {
      this.entries.delete(key);
      return specReplicas(cached);
    }
    return entry.replicas;
  }

  /** The pending write to `namespace/name` (the cache had not caught up with it when last resolved). */
  peek(namespace: string, name: string): { replicas: number; resourceVersion: string } | undefined {
    return this.entries.get(`${namespace}/${name}`);
  }

  forget(namespace: string, name: string): void {
    this.entries.delete(`${namespace}/${name}`);
  }

  get size(): number {
    return this.entries.size;
  }
}

/** Injectable retry policy, logger, clock and sleep for {@link KubeReplicaService}. */
export interface ReplicaServiceOptions {
  retry?: ConflictRetry;
  logger?: Logger;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  /** Default {@link MAX_QUEUED_WRITES}. */
  maxQueuedWrites?: number;
  /**
   * The proxy's own access check: on a 403 it tells the proxy's missing RBAC (502) from
   * a refusal of the client's change by admission (403 with the API server's message).
   */
  access?: Pick<AccessCheck, 'allowed' | 'invalidate' | 'last'>;
  /** Receives conflict retries and write outcomes (metrics). */
  recorder?: WriteRecorder;
  /** How long a read with `minResourceVersion` waits for the cache before reading through, milliseconds (default 1000). */
  consistencyWaitMs?: number;
}

/** `--consistency-wait-ms`'s default. */
export const DEFAULT_CONSISTENCY_WAIT_MS = 1_000;

/**
 * Reads replicas from the Deployment cache; writes them through the `deployments/scale`
 * subresource (the proxy's only write permission) in one call per write, with the
 * cached uid as precondition (see {@link KubeReplicaService.setWithRetry}).
 */
export class KubeReplicaService implements ReplicaService {
  private readonly retry: ConflictRetry;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly logger?: Logger;
  private readonly now: () => number;
  private readonly access?: ReplicaServiceOptions['access'];
  private readonly recorder: WriteRecorder;
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly queued = new Map<string, number>();
  private readonly maxQueued: number;
  readonly overlay = new WriteOverlay();
  /** Conflicts seen (and retried) since start; exposed for tests and logs. */
  conflicts = 0;

  private readonly consistencyWaitMs: number;
  /** Reads that went to the API server because the cache stayed behind; for tests and logs. */
  readThroughs = 0;
  /** Read-throughs of one Deployment share one upstream read (see {@link SingleFlight}). */
  readonly flights = new SingleFlight<{ items: CachedDeployment[]; resourceVersion: string }>();

  constructor(private readonly client: KubeClient, private readonly cache: CacheReader<CachedDeployment> & Partial<ResourceVersionSource>, options: ReplicaServiceOptions = {}) {
    this.consistencyWaitMs = options.consistencyWaitMs ?? DEFAULT_CONSISTENCY_WAIT_MS;
    this.retry = options.retry ?? DEFAULT_CONFLICT_RETRY;
    this.sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.random = options.random ?? Math.random;
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
    this.maxQueued = options.maxQueuedWrites ?? MAX_QUEUED_WRITES;
    this.access = options.access;
    this.recorder = options.recorder ?? NOOP_WRITE_RECORDER;
  }

  /** Deployments this service keeps write state for (a write running or in line; dropped once the last one settles); for tests. */
  get writeQueues(): number {
    return new Set([...this.queues.keys(), ...this.queued.keys()]).size;
  }

  get(namespace: string, name: string): ReplicasAnswer {
    if (!this.cache.hasSynced()) throw unavailable('the Deployment cache has not finished its first list from the API server yet', 1);
    const d = this.cache.get(namespace, name);
    if (!d) {
      this.overlay.forget(namespace, name);
      throw notFound(`deployment "${name}" not found in namespace "${namespace}"`);
    }
    const replicas = this.overlay.resolve(namespace, name, d);
    const own = this.overlay.peek(namespace, name);
    return {
      view: { deployment: name, namespace, replicas },
      etag: `"${own?.resourceVersion ?? d.metadata.resourceVersion ?? ''}"`,
      resourceVersion: own?.resourceVersion ?? this.cache.resourceVersion?.() ?? d.metadata.resourceVersion ?? '',
    };
  }

  async read(namespace: string, name: string, options: ReadOptions = {}): Promise<ReplicasAnswer> {
    const min = options.minResourceVersion;
    if (min === undefined || !this.cache.hasSynced() || !this.cache.resourceVersion || !this.cache.waitForResourceVersion) return this.get(namespace, name);
    if (rvAtLeast(this.cache.resourceVersion(), min)) return this.get(namespace, name);
    // This proxy's own write at or after `min` already is that state of the object.
    const own = this.overlay.peek(namespace, name);
    if (own && rvAtLeast(own.resourceVersion, min) && this.cache.get(namespace, name)) return this.get(namespace, name);
    // Still the tick the request arrived in: only a read that may go upstream takes the time.
    const arrived = performance.now();
    if (await this.cache.waitForResourceVersion(min, this.consistencyWaitMs, options.signal)) return this.get(namespace, name);
    return this.readThrough(namespace, name, min, options.signal, arrived);
  }

  /** A consistent (quorum) read from the API server: a list narrowed to one name, whose resourceVersion is the state read. */
  private async readThrough(namespace: string, name: string, min: string, signal?: AbortSignal, arrived?: number): Promise<ReplicasAnswer> {
    this.readThroughs++;
    this.logger?.info({ namespace, deployment: name, minResourceVersion: min, cached: this.cache.resourceVersion?.(), waitedMs: this.consistencyWaitMs }, 'cache behind minResourceVersion; reading through');
    const what = `deployment "${name}" in namespace "${namespace}"`;
    let found: { items: CachedDeployment[]; resourceVersion: string };
    try {
      found = await this.flights.run(`${namespace}/${name}`, () => listAll(this.client, { name: 'deployments', path: `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/deployments`, transform: projectDeployment }, {
        pageSize: 1, timeoutMs: WRITE_CALL_TIMEOUT_MS, query: { fieldSelector: `metadata.name=${name}` },
      }), signal, arrived);
    } catch (err) {
      throw toProblem(err, what);
    }
    const d = found.items[0];
    if (!d) throw notFound(`${what} not found`);
    return { view: { deployment: name, namespace, replicas: specReplicas(d) }, etag: `"${d.metadata.resourceVersion ?? ''}"`, resourceVersion: found.resourceVersion };
  }

  async set(namespace: string, name: string, replicas: number, signal?: AbortSignal): Promise<ScaleAnswer> {
    const key = `${namespace}/${name}`;
    const inLine = this.queued.get(key) ?? 0;
    if (inLine >= this.maxQueued) {
      this.recorder.write('queue_full');
      throw new ProblemError(429, 'TooManyRequests', `${this.maxQueued} writes to deployment "${name}" in namespace "${namespace}" are already in line; retry shortly`, { headers: { 'retry-after': '1' } });
    }
    this.queued.set(key, inLine + 1);
    const deadline = this.now() + WRITE_DEADLINE_MS;
    // The object this request is resolved against, as the proxy knows it on arrival.
    const uid = this.cache.get(namespace, name)?.metadata.uid;
    const prev = this.queues.get(key) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(() => this.setWithRetry(namespace, name, replicas, deadline, signal, uid));
    this.queues.set(key, run);
    try {
      return await run;
    } catch (err) {
      this.recorder.write(writeOutcomeOf((err as ProblemError).status ?? 500));
      throw err;
    } finally {
      if (this.queues.get(key) === run) this.queues.delete(key);
      const left = (this.queued.get(key) ?? 1) - 1;
      if (left <= 0) this.queued.delete(key);
      else this.queued.set(key, left);
    }
  }

  /**
   * One round trip: an absolute set needs no read-modify-write, so the Scale goes out
   * without a resourceVersion (the last write wins, as `kubectl scale` without
   * `--resource-version`), carrying as its only precondition the uid of the Deployment
   * the request was resolved against (from the cache on arrival): a Deployment deleted
   * and recreated under the same name is another object and is never written (409).
   * Only if the API server refuses an update without resourceVersion (422, as for
   * resources that disallow unconditional updates) does it fall back to reading the
   * scale and writing with that resourceVersion, retrying on 409 with backoff.
   */
  private async setWithRetry(namespace: string, name: string, replicas: number, deadline: number, signal?: AbortSignal, uid?: string): Promise<ScaleAnswer> {
    const path = `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/deployments/${encodeURIComponent(name)}/scale`;
    const what = `deployment "${name}" in namespace "${namespace}"`;
    let delay = this.retry.initialMs;
    let readFirst = false;
    let pinned = uid;
    const budget = (): number => {
      if (signal?.aborted) throw new ProblemError(408, 'RequestTimeout', 'the client closed the connection; the write was not started');
      const left = deadline - this.now();
      if (left <= 0) throw new ProblemError(504, 'GatewayTimeout', `gave up on ${what} after ${WRITE_DEADLINE_MS / 1000} s (API server slow or other writes queued ahead)`);
      return Math.min(WRITE_CALL_TIMEOUT_MS, left);
    };
    const recreated = (): ProblemError => conflict(`${what} was deleted and recreated (it is another object now) since this request was resolved; nothing was written: read it again and retry`);
    // Attempts that met a 409; the switch to read-first after a 422 is not one.
    let attempt = 1;
    for (;;) {
      let verb: 'get' | 'update' = 'update';
      try {
        let resourceVersion: string | undefined;
        const known = this.cache.get(namespace, name);
        let previousReplicas = known ? this.overlay.resolve(namespace, name, known) : undefined;
        if (readFirst) {
          verb = 'get';
          const current = await this.client.request<Scale>('GET', path, { timeoutMs: budget(), signal });
          pinned ??= current.metadata.uid;
          if (pinned && current.metadata.uid && current.metadata.uid !== pinned) throw recreated();
          resourceVersion = current.metadata.resourceVersion;
          previousReplicas = current.spec?.replicas ?? 0;
        }
        const body: Scale = {
          apiVersion: 'autoscaling/v1', kind: 'Scale',
          metadata: { name, namespace, ...(pinned ? { uid: pinned } : {}), ...(resourceVersion ? { resourceVersion } : {}) },
          spec: { replicas },
        };
        verb = 'update';
        // Taken before the call: the watch event of this very write may reach the cache before its answer does.
        const rvBefore = resourceVersion ?? known?.metadata.resourceVersion;
        const committed = await this.client.request<Scale>('PUT', `${path}?fieldManager=${FIELD_MANAGER}`, { body, timeoutMs: budget(), signal });
        const value = committed.spec?.replicas ?? 0;
        const rv = committed.metadata.resourceVersion ?? '';
        // A write that changes nothing keeps the object's resourceVersion (as last cached or read).
        this.recorder.write(rv !== '' && rv === rvBefore ? 'unchanged' : 'updated');
        this.overlay.record(namespace, name, value, rv);
        return { view: { deployment: name, namespace, replicas: value }, etag: `"${rv}"`, resourceVersion: rv, ...(previousReplicas !== undefined ? { previousReplicas } : {}) };
      } catch (err) {
        if (!readFirst && err instanceof KubeStatusError && err.code === 422 && /resourceVersion/.test(err.message)) {
          this.logger?.info({ namespace, deployment: name }, 'the API server requires a resourceVersion on scale updates; reading first');
          readFirst = true;
          continue;
        }
        if (err instanceof KubeStatusError && err.code === 409) {
          // Without a resourceVersion only the uid precondition can fail: another object.
          if (/\buid\b/i.test(err.message)) throw recreated();
          this.conflicts++;
          this.logger?.info({ namespace, deployment: name, attempt }, '409 Conflict on scale update; retrying');
          if (attempt >= this.retry.steps) {
            throw conflict(`${what} kept changing: gave up after ${attempt} conflicting attempts; retry the request`);
          }
          this.recorder.conflictRetried();
          await this.sleep(Math.round(delay * this.random()) + 1);
          delay = Math.min(this.retry.maxMs, delay * this.retry.factor);
          attempt++;
          continue;
        }
        if (err instanceof KubeStatusError && (err.code === 401 || err.code === 403)) throw await refusal(this.access, err, namespace, verb, what);
        throw toProblem(err, what);
      }
    }
  }
}

/**
 * Whose refusal a 401/403 is. 401 is always the proxy's credentials. For 403 the
 * authorizer (RBAC) and admission (ValidatingAdmissionPolicy, webhooks, ResourceQuota…)
 * answer alike, so we ask the authorizer itself with a SelfSubjectAccessReview for the
 * verb that failed: allowed means admission refused the client's change.
 */
async function refusal(access: ReplicaServiceOptions['access'], err: KubeStatusError, namespace: string, verb: 'get' | 'update', what: string): Promise<ProblemError> {
  if (err.code === 403 && access) {
    let allowed: boolean | undefined;
    try {
      allowed = await access.allowed({ verb, group: 'apps', resource: 'deployments', subresource: 'scale', namespace });
    } catch {
      // Cannot tell: the generic 502 below, the safe side for a client that retries.
    }
    if (allowed === true) {
      const identity = access.last();
      return admissionRefusal(err, what, identity?.ok ? identity.identity.username : undefined);
    }
    if (allowed === false) {
      access.invalidate();
      return new ProblemError(502, 'BadGateway', `the API server refused the proxy's request (HTTP 403 Forbidden): the proxy's own RBAC role does not allow ${verb} on deployments/scale; the proxy log has details`, { cause: err });
    }
  }
  access?.invalidate();
  return toProblem(err, what);
}

/**
 * A refusal of the client's change by admission, passed on with the API server's message
 * (written for users), minus the proxy's identity: 403 `Forbidden`, or 422 `Invalid`.
 */
export function admissionRefusal(err: KubeStatusError, what: string, proxyUser?: string): ProblemError {
  const status = err.code === 422 ? 422 : 403;
  return new ProblemError(status, status === 422 ? 'Invalid' : 'Forbidden', `the API server refused the change to ${what}: ${upstreamText(err, proxyUser)}`, { cause: err });
}

/** The Status message plus any field causes it does not already name, without the proxy's identity. */
export function upstreamText(err: KubeStatusError, proxyUser?: string): string {
  let text = err.statusMessage || `HTTP ${err.code}${err.reason ? ` ${err.reason}` : ''}`;
  const extra = err.causes
    .filter((c) => c.field && !text.includes(c.field))
    .map((c) => `${c.field}: ${c.message ?? c.reason ?? 'invalid'}`);
  if (extra.length > 0) text += ` (${extra.join('; ')})`;
  if (proxyUser) text = text.split(proxyUser).join('<proxy>');
  return text.replace(/\b(User|user) "[^"]*"/g, '$1 "<proxy>"').replace(/system:serviceaccount:[^\s"':,]+(?::[^\s"':,]+)?/g, '<proxy>');
}

function withCause(p: ProblemError, cause: unknown): ProblemError {
  return new ProblemError(p.status, p.reason, p.message, { headers: p.headers, cause });
}

/**
 * Maps a kube-layer failure to the client-facing problem: 404 stays 404; 422 stays
 * 422; the proxy's own credentials being refused (401/403) or an API server error
 * is 502; 429/503 and unreachable are 503; timeouts are 504. Never 404 for an outage.
 */
export function toProblem(err: unknown, what: string): ProblemError {
  if (err instanceof ProblemError) return err;
  // Our own abort: the client closed the connection while the call was in flight.
  if ((err as Error | undefined)?.name === 'AbortError') return new ProblemError(408, 'RequestTimeout', 'the client closed the connection during the write; it may or may not have been applied');
  if (err instanceof KubeStatusError) {
    switch (err.code) {
      case 404: return notFound(`${what} not found`);
      case 422: return new ProblemError(422, 'Invalid', `the API server refused the change to ${what}: ${upstreamText(err)}`, { cause: err });
      case 429:
      case 503: return withCause(unavailable(`the API server is overloaded or unavailable (HTTP ${err.code})`, 1), err);
      case 504: return new ProblemError(504, 'GatewayTimeout', 'the API server timed out', { cause: err });
      case 401: return new ProblemError(502, 'BadGateway', "the API server refused the proxy's request (HTTP 401 Unauthorized): it rejects the proxy's credentials; the proxy log has details", { cause: err });
      // Details (the proxy's identity, upstream paths) go to the log, not to the client.
      default: return new ProblemError(502, 'BadGateway', `the API server refused the proxy's request (HTTP ${err.code}${err.reason ? ` ${err.reason}` : ''}); the proxy log has details`, { cause: err });
    }
  }
  if (err instanceof KubeTimeoutError) {
    return new ProblemError(504, 'GatewayTimeout', `the API server did not answer in time (each call is bounded at ${WRITE_CALL_TIMEOUT_MS / 1000} s, the whole write at ${WRITE_DEADLINE_MS / 1000} s)`, { cause: err });
  }
  if (err instanceof KubeUnreachableError) {
    const code = ((err.cause as NodeJS.ErrnoException | undefined)?.code) ?? 'connection failed';
    return withCause(unavailable(`the API server is unreachable (${code})`, 2), err);
  }
  return new ProblemError(500, 'InternalError', 'internal error', { cause: err });
}
