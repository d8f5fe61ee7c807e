import fastifyRateLimit, { type CreateRateLimitOptions, type FastifyRateLimitOptions, type FastifyRateLimitStore } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { LruMap } from 'toad-cache';
import { ProblemError } from '../errors.js';

/** One request rate: `rps` requests per second on average, up to `burst` at once; `rps` 0 switches the limit off. */
export interface Rate {
  rps: number;
  burst: number;
}

/** Per-client request rates, reads (GET, HEAD) and writes (every other method) counted apart. */
export interface RateLimits {
  read: Rate;
  write: Rate;
}

/** Defaults: reads are cache hits (cheap), writes reach the API server. */
export const DEFAULT_RATE_LIMITS: RateLimits = { read: { rps: 100, burst: 200 }, write: { rps: 5, burst: 20 } };
/** Clients tracked at once per limiter; the least recently seen is forgotten beyond this (and starts again with a full bucket). */
export const MAX_TRACKED_CLIENTS = 10_000;
/** Tolerance for float arithmetic: a bucket refilled for exactly `1 / rps` s holds one token, not 0.9999999. */
const TOKEN_EPSILON = 1e-9;
/** The key of the createRateLimit option that carries a limiter's {@link Rate} to its store (see {@link tokenBucketStore}). */
const RATE_OPTION = 'tokenBucketRate';

/** The outcome of one request against a bucket. */
export interface Take {
  allowed: boolean;
  /** Tokens left after this request (fractional; 0 ≤ tokens ≤ burst). */
  tokens: number;
  /** When refused: milliseconds until the bucket holds a whole token again; 0 when allowed. */
  retryAfterMs: number;
}

interface Bucket {
  tokens: number;
  atMs: number;
}

/**
 * Token buckets, one per key: each holds up to `rate.burst` tokens, starts full, and
 * refills continuously at `rate.rps` tokens per second; a request takes one token or is
 * refused (a refused request takes nothing). So a client may send `burst` requests at
 * once and `rps` per second after that, and no window edge lets it send more: over any
 * interval of `t` seconds at most `burst + rps·t` requests pass. At most `maxClients` keys
 * are tracked (least recently used forgotten first). `nowMs` is a monotonic clock in
 * milliseconds (default `performance.now`); it is injected by tests.
 */
export class TokenBuckets {
  private readonly buckets: LruMap<Bucket>;
  private readonly nowMs: () => number;

  constructor(readonly rate: Rate, options: { maxClients?: number; nowMs?: () => number } = {}) {
    if (!(rate.rps > 0) || !(rate.burst >= 1)) throw new RangeError(`a token bucket needs rps > 0 and burst >= 1 (got rps ${rate.rps}, burst ${rate.burst})`);
    this.buckets = new LruMap<Bucket>(options.maxClients ?? MAX_TRACKED_CLIENTS);
    this.nowMs = options.nowMs ?? (() => performance.now());
  }

  /** Takes one token from `key`'s bucket if it holds one. */
  take(key: string): Take {
    const { rps, burst } = this.rate;
    const now = this.nowMs();
    let b = this.buckets.get(key);
    if (b === undefined) {
      b = { tokens: burst, atMs: now };
      this.buckets.set(key, b);
    } else if (now > b.atMs) {
      b.tokens = Math.min(burst, b.tokens + ((now - b.atMs) * rps) / 1000);
      b.atMs = now;
    }
    if (b.tokens >= 1 - TOKEN_EPSILON) {
      b.tokens = Math.max(0, b.tokens - 1);
      return { allowed: true, tokens: b.tokens, retryAfterMs: 0 };
    }
    return { allowed: false, tokens: b.tokens, retryAfterMs: ((1 - b.tokens) * 1000) / rps };
  }

  /** Keys tracked now (at most `maxClients`). */
  get size(): number {
    return this.buckets.size;
  }
}

/**
 * A `@fastify/rate-limit` store (its documented `incr`/`child` interface) backed by
 * {@link TokenBuckets}: `incr` answers `current` above `max` when the bucket is empty, and
 * `ttl` = milliseconds until its next token, which the plugin turns into `ttlInSeconds`.
 * Each limiter made with `createRateLimit({ [RATE_OPTION]: rate })` gets its own buckets
 * through `child`; without that option, `max` per `timeWindow` ms is the rate.
 */
export function tokenBucketStore(options: { maxClients?: number; nowMs?: () => number } = {}): new (params: FastifyRateLimitOptions) => FastifyRateLimitStore {
  return class TokenBucketStore implements FastifyRateLimitStore {
    private readonly buckets: TokenBuckets;

    /** `pluginParams`: the plugin's merged limiter options (`max`, `timeWindow` in ms, and ours). */
    constructor(pluginParams: FastifyRateLimitOptions) {
      const params = pluginParams as { max?: unknown; timeWindow?: unknown; [RATE_OPTION]?: Rate };
      const max = typeof params.max === 'number' ? params.max : 1;
      const windowMs = typeof params.timeWindow === 'number' && params.timeWindow > 0 ? params.timeWindow : 1000;
      this.buckets = new TokenBuckets(params[RATE_OPTION] ?? { rps: (max * 1000) / windowMs, burst: Math.max(1, max) }, options);
    }

    incr(key: string, callback: (error: Error | null, result?: { current: number; ttl: number }) => void): void {
      const t = this.buckets.take(key);
      const { burst } = this.buckets.rate;
      callback(null, { current: t.allowed ? burst - Math.floor(t.tokens) : burst + 1, ttl: t.retryAfterMs });
    }

    child(params: object): FastifyRateLimitStore {
      return new TokenBucketStore(params as FastifyRateLimitOptions);
    }
  };
}

/** Options of {@link registerRateLimits}; tests inject the clock. */
export interface RateLimitOptions {
  /** Monotonic clock in milliseconds (default `performance.now`). */
  nowMs?: () => number;
  /** Clients tracked per limiter (default {@link MAX_TRACKED_CLIENTS}). */
  maxClients?: number;
}

type Limiter = (req: FastifyRequest) => Promise<{ isAllowed: boolean; isExceeded?: boolean; ttl?: number }>;

/**
 * Per-client rate limits with `@fastify/rate-limit` and a token-bucket store
 * ({@link TokenBuckets}), keyed by the client identity (`req.clientCN`, set from the
 * certificate before this runs), reads and writes apart. Over its rate a client gets 429
 * `TooManyRequests` problem+json with `Retry-After`: the seconds until its next token
 * (rounded up, at least 1). Other clients are unaffected.
 */
export function registerRateLimits(app: FastifyInstance, limits: RateLimits, options: RateLimitOptions = {}): void {
  if (limits.read.rps <= 0 && limits.write.rps <= 0) return;
  app.register(fastifyRateLimit, { global: false, keyGenerator: (req) => req.clientCN, store: tokenBucketStore(options) });
  let read: Limiter | undefined;
  let write: Limiter | undefined;
  const make = (rate: Rate): Limiter | undefined => {
    if (rate.rps <= 0) return undefined;
    const limiterOptions: CreateRateLimitOptions & { [RATE_OPTION]: Rate } = { max: rate.burst, timeWindow: 1000, [RATE_OPTION]: rate };
    return app.createRateLimit(limiterOptions) as Limiter;
  };
  app.after(() => {
    read = make(limits.read);
    write = make(limits.write);
  });
  app.addHook('onRequest', async (req) => {
    const isRead = req.method === 'GET' || req.method === 'HEAD';
    const limiter = isRead ? read : write;
    if (!limiter) return;
    const r = await limiter(req);
    if (r.isAllowed || !r.isExceeded) return;
    const rate = isRead ? limits.read : limits.write;
    const after = String(retryAfterSeconds(r.ttl ?? 0));
    throw new ProblemError(429, 'TooManyRequests', `client "${req.clientCN}" is over its ${isRead ? 'read' : 'write'} rate limit (${rate.rps} per second, bursts of ${rate.burst}); retry after ${after} s`, { headers: { 'retry-after': after } });
  });
}

/** `Retry-After` for a wait of `ms` milliseconds: whole seconds rounded up, at least 1 (RFC 9110 §10.2.3 has no fractions). */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000 - TOKEN_EPSILON));
}
