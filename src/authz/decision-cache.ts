import type { Authorizer, Decision, ResourceAttributes, UserInfo } from './authorizer.js';
import type { AuthzRecorder } from '../metrics/recorders.js';

/** Upper bound on cached decisions; the oldest are dropped first (one entry is ~200 bytes). */
export const DEFAULT_MAX_ENTRIES = 10_000;

/** TTLs and bounds of {@link CachingAuthorizer}. */
export interface DecisionCacheOptions {
  /** How long an allow is reused, milliseconds; 0 disables caching allows. */
  allowedTtlMs: number;
  /** How long a deny is reused, milliseconds; 0 disables caching denials. */
  deniedTtlMs: number;
  /** Most entries kept (default {@link DEFAULT_MAX_ENTRIES}). */
  maxEntries?: number;
  /** Clock, for tests. */
  now?: () => number;
  /** Told of every decision and whether the cache answered it (metrics). */
  recorder?: AuthzRecorder;
}

interface Entry {
  decision: Decision;
  expiresAtMs: number;
  /** From here on a hit also asks again in the background (refresh-ahead). */
  refreshAtMs: number;
}

/**
 * Share of an allow's TTL after which a hit still answers from the cache but starts a
 * background review, so a busy key's entry is replaced before it expires and no request
 * waits for a review (without it, every TTL all concurrent requests of a key stalled
 * behind one SubjectAccessReview: a p99 spike). The new entry's TTL counts from its own
 * review, so a revocation still takes effect within the TTL.
 */
const REFRESH_AHEAD_FRACTION = 0.5;

/**
 * Wraps an authorizer with a bounded decision cache, as kube-apiserver's webhook
 * authorizer does (`--authorization-webhook-cache-authorized-ttl` /
 * `-unauthorized-ttl`): an allow is reused for at most `allowedTtlMs`, a deny for at
 * most `deniedTtlMs`, so revoking or granting a RoleBinding takes effect within the TTL.
 * Failures are never cached (the next request asks again), and concurrent identical
 * questions share one review. A hit on an entry past half its TTL is answered from the
 * cache and refreshed in the background (at most one review per key at a time).
 */
export class CachingAuthorizer implements Authorizer {
  private readonly entries = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<Decision>>();
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(private readonly inner: Authorizer, private readonly options: DecisionCacheOptions) {
    this.maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.now = options.now ?? Date.now;
  }

  /** Entries held (expired ones included until they are next looked up or evicted). */
  get size(): number {
    return this.entries.size;
  }

  /**
   * A cached decision younger than its TTL, else the inner authorizer's.
   * @throws whatever the inner authorizer throws (AuthorizerUnavailableError); nothing is cached then.
   */
  authorize(user: UserInfo, attributes: ResourceAttributes): Promise<Decision> {
    const key = cacheKey(user, attributes);
    const hit = this.entries.get(key);
    const recorder = this.options.recorder;
    if (hit) {
      const now = this.now();
      if (now < hit.expiresAtMs) {
        recorder?.decision(hit.decision.allowed ? 'allow' : 'deny', 'hit');
        // A failed background review changes nothing: the entry expires as it would have.
        if (now >= hit.refreshAtMs && !this.inFlight.has(key)) this.ask(key, user, attributes).catch(() => undefined);
        return Promise.resolve(hit.decision);
      }
      this.entries.delete(key);
    }
    return this.inFlight.get(key) ?? this.ask(key, user, attributes);
  }

  /** One review for `key`, shared by everyone asking until it answers; caches its decision. */
  private ask(key: string, user: UserInfo, attributes: ResourceAttributes): Promise<Decision> {
    const recorder = this.options.recorder;
    const asked = this.inner.authorize(user, attributes).then((decision) => {
      recorder?.decision(decision.allowed ? 'allow' : 'deny', 'miss');
      const ttl = decision.allowed ? this.options.allowedTtlMs : this.options.deniedTtlMs;
      const now = this.now();
      if (ttl > 0) this.store(key, { decision, expiresAtMs: now + ttl, refreshAtMs: now + ttl * REFRESH_AHEAD_FRACTION });
      return decision;
    }, (err: unknown) => {
      recorder?.decision('error', 'miss');
      throw err;
    }).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, asked);
    return asked;
  }

  private store(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.entries.set(key, entry);
    // Maps iterate in insertion order: the first keys are the oldest.
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) break;
      this.entries.delete(oldest);
    }
  }
}

function cacheKey(u: UserInfo, a: ResourceAttributes): string {
  return JSON.stringify([u.username, u.groups, a.verb, a.group, a.resource, a.subresource ?? '', a.namespace ?? '', a.name ?? '']);
}
