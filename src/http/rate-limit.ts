import fastifyRateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
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
/** Clients tracked at once; the least recently seen is forgotten beyond this. */
const MAX_TRACKED_CLIENTS = 10_000;

type Limiter = (req: FastifyRequest) => Promise<{ isAllowed: boolean; isExceeded?: boolean; ttlInSeconds?: number }>;

/**
 * Per-client rate limits with `@fastify/rate-limit`, keyed by the client identity
 * (`req.clientCN`, set from the certificate before this runs). Each client may send
 * `burst` requests per window of `burst / rps` seconds (the library's fixed window), so
 * its sustained rate is at most `rps`. Over it: 429 `TooManyRequests` with `Retry-After`
 * (seconds until its window ends). Other clients are unaffected.
 */
export function registerRateLimits(app: FastifyInstance, limits: RateLimits): void {
  if (limits.read.rps <= 0 && limits.write.rps <= 0) return;
  app.register(fastifyRateLimit, { global: false, cache: MAX_TRACKED_CLIENTS, keyGenerator: (req) => req.clientCN });
  let read: Limiter | undefined;
  let write: Limiter | undefined;
  const make = (rate: Rate): Limiter | undefined => (rate.rps > 0
    ? app.createRateLimit({ max: rate.burst, timeWindow: Math.max(1, Math.round((rate.burst / rate.rps) * 1000)) }) as Limiter
    : undefined);
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
    const after = String(Math.max(1, r.ttlInSeconds ?? 1));
    throw new ProblemError(429, 'TooManyRequests', `client "${req.clientCN}" is over its ${isRead ? 'read' : 'write'} rate limit (${rate.burst} requests per ${rate.burst / rate.rps} s); retry after ${after} s`, { headers: { 'retry-after': after } });
  });
}
