import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { buildServer } from '../../src/server.js';
import type { RateLimits } from '../../src/http/rate-limit.js';
import { OPEN_ACCESS } from '../helpers/open-access.js';
import { listsOf, replicasAnswer as answer } from '../helpers/stand-ins.js';

function app(rateLimits: RateLimits) {
  return buildServer({
    lists: listsOf(),
    replicas: {
      get: (namespace, deployment) => answer(namespace, deployment, 1),
      read: async (namespace, deployment) => answer(namespace, deployment, 1),
      set: async (namespace, deployment, replicas) => answer(namespace, deployment, replicas),
    },
    apiHealth: async () => ({ ok: true }), readiness: { check: () => ({ ready: true }) }, logger: pino({ level: 'silent' }),
    ...OPEN_ACCESS,
  }, { rateLimits });
}
const put = { method: 'PUT' as const, url: '/deployments/ns/web/replicas', payload: { replicas: 1 } };

describe('per-client rate limits (@fastify/rate-limit)', () => {
  it('answers 429 TooManyRequests problem+json with Retry-After past the write burst; reads keep their own budget', async () => {
    const a = app({ read: { rps: 100, burst: 100 }, write: { rps: 1, burst: 3 } });
    for (let i = 0; i < 3; i++) assert.equal((await a.inject(put)).statusCode, 200);
    const r = await a.inject(put);
    assert.equal(r.statusCode, 429);
    assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
    assert.equal(r.json().reason, 'TooManyRequests');
    assert.match(r.json().detail, /write rate limit \(1 per second, bursts of 3\)/);
    assert.equal(r.headers['retry-after'], '1', 'one token per second (token-bucket.test.ts drives the clock)');
    assert.equal((await a.inject('/deployments')).statusCode, 200, 'reads are counted apart');
  });

  it('limits reads too, and rps 0 switches a limit off', async () => {
    const a = app({ read: { rps: 1, burst: 2 }, write: { rps: 0, burst: 1 } });
    assert.deepEqual([(await a.inject('/deployments')).statusCode, (await a.inject('/deployments')).statusCode, (await a.inject('/deployments')).statusCode], [200, 200, 429]);
    for (let i = 0; i < 10; i++) assert.equal((await a.inject(put)).statusCode, 200);
  });
});
