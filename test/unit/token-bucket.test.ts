import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { createRequire } from 'node:module';
import { MAX_TRACKED_CLIENTS, TokenBuckets, registerRateLimits, retryAfterSeconds, type Rate, type RateLimits } from '../../src/http/rate-limit.js';

/** The plugin's default store (its fixed window), which is not among its typed exports. */
type IncrCallback = (err: Error | null, r: { current: number; ttl: number }) => void;
const LocalStore = createRequire(import.meta.url)('@fastify/rate-limit/store/LocalStore.js') as new (continueExceeding: boolean, exponentialBackoff: boolean, cache: number) => {
  incr(key: string, cb: IncrCallback, timeWindow: number, max: number): void;
};

/** A clock the test moves by hand, in milliseconds. */
function manualClock(startMs = 1_000) {
  let now = startMs;
  return { nowMs: () => now, advance: (ms: number) => void (now += ms), set: (ms: number) => void (now = ms) };
}

/** Sends one request at each of `timesMs` through `take`, moving `clock`; returns the times that were allowed. */
function allowedAt(timesMs: number[], clock: { set: (ms: number) => void }, take: () => boolean): number[] {
  return timesMs.filter((t) => {
    clock.set(t);
    return take();
  });
}

/** The most requests allowed within any `spanMs` (inclusive) of `allowed` (sorted times). */
function mostWithin(allowed: number[], spanMs: number): number {
  let most = 0;
  for (let i = 0, j = 0; j < allowed.length; j++) {
    while (allowed[j] - allowed[i] > spanMs) i++;
    most = Math.max(most, j - i + 1);
  }
  return most;
}

describe('token buckets (injected clock)', () => {
  const cases: Array<{ name: string; rate: Rate; steps: Array<[advanceMs: number, expect: true | number]> }> = [
    { name: 'a full bucket lets burst requests through at once, and refuses the next until 1/rps s have passed', rate: { rps: 4, burst: 3 },
      steps: [[0, true], [0, true], [0, true], [0, 250], [249, 1], [1, true], [0, 250]] },
    { name: 'exactly one more request passes 1/rps s after the burst, even when 1/rps is not a whole number of ms', rate: { rps: 3, burst: 2 },
      steps: [[0, true], [0, true], [0, 1000 / 3], [1000 / 3, true], [0, 1000 / 3]] },
    { name: 'a refused request takes no token: retrying early does not push the next token further away', rate: { rps: 1, burst: 1 },
      steps: [[0, true], [0, 1000], [400, 600], [400, 200], [200, true]] },
    { name: 'the bucket refills to burst and no further, however long the client was idle', rate: { rps: 10, burst: 2 },
      steps: [[0, true], [0, true], [3_600_000, true], [0, true], [0, 100]] },
    { name: 'rates below one per second wait whole seconds (0.5 rps: 2 s per token)', rate: { rps: 0.5, burst: 1 },
      steps: [[0, true], [0, 2000], [1500, 500], [500, true]] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const clock = manualClock();
      const buckets = new TokenBuckets(c.rate, { nowMs: clock.nowMs });
      for (const [i, [advanceMs, expect]] of c.steps.entries()) {
        clock.advance(advanceMs);
        const t = buckets.take('alice');
        if (expect === true) assert.ok(t.allowed, `step ${i}: allowed`);
        else {
          assert.equal(t.allowed, false, `step ${i}: refused`);
          // A number: the milliseconds until the next token, to within float rounding.
          assert.ok(Math.abs(t.retryAfterMs - expect) < 1e-6, `step ${i}: retryAfterMs ${t.retryAfterMs}, expected ${expect}`);
        }
      }
    });
  }

  it('never lets more than burst + rps·t requests through in any t seconds, window edges included (a fixed window lets 2x burst through)', () => {
    const rate = { rps: 5, burst: 10 };
    const clock = manualClock(0);
    const buckets = new TokenBuckets(rate, { nowMs: clock.nowMs });
    // A client sending as fast as it can: one request every 10 ms for 20 s.
    const times = Array.from({ length: 2_000 }, (_, i) => i * 10);
    const allowed = allowedAt(times, clock, () => buckets.take('alice').allowed);
    for (const spanMs of [0, 10, 100, 1_000, 1_990, 2_000, 5_000, 19_990]) {
      const bound = rate.burst + Math.floor((rate.rps * spanMs) / 1000);
      assert.ok(mostWithin(allowed, spanMs) <= bound, `${mostWithin(allowed, spanMs)} requests within ${spanMs} ms, bound ${bound}`);
    }
    // And it gets its full rate: burst at once, then rps per second.
    assert.equal(allowed.length, rate.burst + Math.floor((rate.rps * times.at(-1)!) / 1000));
  });

  it('the same check fails for @fastify/rate-limit\'s own fixed-window store (what the token bucket replaced)', (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 0 });
    const clock = { set: (ms: number) => t.mock.timers.setTime(ms) };
    const rate = { rps: 5, burst: 10 };
    const windowMs = (rate.burst / rate.rps) * 1000;
    const store = new LocalStore(false, false, 10);
    const take = () => {
      let current = 0;
      store.incr('alice', (_err, r) => void (current = r.current), windowMs, rate.burst);
      return current <= rate.burst;
    };
    // One request opens the window; idle until just before its edge, then as fast as it can across it.
    const times = [0, ...Array.from({ length: 40 }, (_, i) => windowMs - 100 + i * 5)];
    const allowed = allowedAt(times, clock, take);
    const bound = rate.burst + Math.floor((rate.rps * 200) / 1000);
    assert.equal(mostWithin(allowed, 200), 2 * rate.burst - 1, 'the fixed window lets all but one of 2x burst through within 200 ms');
    assert.ok(mostWithin(allowed, 200) > bound, `over the token bucket's bound of ${bound}`);
  });

  it('tracks at most maxClients clients; one forgotten starts again with a full bucket', () => {
    const clock = manualClock();
    const buckets = new TokenBuckets({ rps: 1, burst: 1 }, { nowMs: clock.nowMs, maxClients: 2 });
    for (const who of ['a', 'b', 'c']) assert.ok(buckets.take(who).allowed);
    assert.equal(buckets.size, 2);
    assert.equal(buckets.take('c').allowed, false, 'c is remembered');
    assert.ok(buckets.take('a').allowed, 'a was forgotten (least recently used)');
  });

  it('tracks 10,000 clients by default (README: Operations)', () => {
    const buckets = new TokenBuckets({ rps: 1, burst: 1 });
    for (let i = 0; i <= 10_000; i++) buckets.take(`client-${i}`);
    assert.equal(buckets.size, 10_000);
    assert.equal(MAX_TRACKED_CLIENTS, 10_000);
  });

  it('a clock step backwards neither refills nor drains a bucket', () => {
    const clock = manualClock(10_000);
    const buckets = new TokenBuckets({ rps: 1, burst: 2 }, { nowMs: clock.nowMs });
    assert.ok(buckets.take('a').allowed);
    clock.advance(-5_000);
    assert.ok(buckets.take('a').allowed);
    assert.equal(buckets.take('a').allowed, false);
    clock.advance(5_999);
    assert.equal(buckets.take('a').allowed, false, 'the step back did not count as time passed');
    clock.advance(1);
    assert.ok(buckets.take('a').allowed);
  });

  it('refuses a rate it cannot serve (rps 0 means no limiter at all, not an empty bucket)', () => {
    assert.throws(() => new TokenBuckets({ rps: 0, burst: 1 }), /rps > 0/);
    assert.throws(() => new TokenBuckets({ rps: 1, burst: 0 }), /burst >= 1/);
  });

  const retry: Array<[ms: number, seconds: number]> = [[0, 1], [1, 1], [250, 1], [1000, 1], [1000 + 1e-10, 1], [1000.5, 2], [2000, 2], [59_001, 60]];
  for (const [ms, seconds] of retry) {
    it(`Retry-After for a wait of ${ms} ms is ${seconds} s (rounded up, at least 1)`, () => assert.equal(retryAfterSeconds(ms), seconds));
  }
});

describe('per-client rate limits on the app (@fastify/rate-limit with the token-bucket store)', () => {
  /** A bare app: the client identity from a header stands in for the certificate CN the TLS guard sets. */
  function limited(limits: RateLimits, nowMs: () => number) {
    const a = Fastify();
    a.decorateRequest('clientCN', '');
    a.addHook('onRequest', async (req) => void (req.clientCN = String(req.headers['x-client'])));
    registerRateLimits(a, limits, { nowMs });
    a.setErrorHandler((err: Error & { status?: number; headers?: Record<string, string> }, _req, reply) => {
      void reply.code(err.status ?? 500).headers(err.headers ?? {}).send({ detail: err.message });
    });
    a.get('/r', async () => 'ok');
    a.put('/w', async () => 'ok');
    return a;
  }
  const as = (client: string, method: 'GET' | 'PUT' = 'PUT') => ({ method, url: method === 'GET' ? '/r' : '/w', headers: { 'x-client': client } });

  it('a client over its write rate gets 429 with Retry-After until its next token, then exactly one more write; other clients and its reads are unaffected', async () => {
    const clock = manualClock();
    const a = limited({ read: { rps: 100, burst: 100 }, write: { rps: 0.5, burst: 2 } }, clock.nowMs);
    for (let i = 0; i < 2; i++) assert.equal((await a.inject(as('alice'))).statusCode, 200);
    const over = await a.inject(as('alice'));
    assert.equal(over.statusCode, 429);
    assert.equal(over.headers['retry-after'], '2', 'one token every 2 s');
    assert.match(over.json().detail, /client "alice" is over its write rate limit \(0\.5 per second, bursts of 2\); retry after 2 s/);
    assert.equal((await a.inject(as('bob'))).statusCode, 200, 'another client has its own bucket');
    assert.equal((await a.inject(as('alice', 'GET'))).statusCode, 200, 'reads are counted apart');
    clock.advance(1_500);
    const early = await a.inject(as('alice'));
    assert.equal(early.statusCode, 429);
    assert.equal(early.headers['retry-after'], '1', '0.5 s left, rounded up');
    clock.advance(500);
    assert.equal((await a.inject(as('alice'))).statusCode, 200, 'after Retry-After, one more');
    assert.equal((await a.inject(as('alice'))).statusCode, 429, 'and only one');
  });

  it('at a window edge a client gets no second burst (the fixed window it replaced allowed 2x)', async () => {
    const clock = manualClock();
    const a = limited({ read: { rps: 2, burst: 4 }, write: { rps: 0, burst: 1 } }, clock.nowMs);
    const codes = async (n: number) => Promise.all(Array.from({ length: n }, async () => (await a.inject(as('alice', 'GET'))).statusCode));
    clock.advance(1_999);
    assert.deepEqual(await codes(5), [200, 200, 200, 200, 429]);
    clock.advance(2);
    // A fixed window of burst/rps = 2 s would have reset here and let 4 more through.
    assert.deepEqual(await codes(4), [429, 429, 429, 429]);
    clock.advance(499);
    assert.deepEqual(await codes(2), [200, 429], '0.5 s after the burst: one token');
  });
});
