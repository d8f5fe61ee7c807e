import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cacheReadiness, STALE_AFTER_MS } from '../../src/proxy.js';
import type { ReflectorStatus } from '../../src/kube/reflector.js';
import type { AccessResult } from '../../src/kube/api-health.js';

const status = (s: Partial<ReflectorStatus>): { status(): ReflectorStatus } => ({
  status: () => ({ resource: 'deployments', synced: true, watching: true, resourceVersion: '1', objects: 0, lastContactMs: 0, lastError: '', lastErrorStatus: 0, failures: 0, relists: 1, pageSize: 500, ...s }),
});

describe('cacheReadiness', () => {
  const now = 1_000_000;
  const cases: Array<[string, Partial<ReflectorStatus>, boolean, boolean, RegExp?]> = [
    ['ready when synced and watching', {}, false, true],
    ['not ready before the first list, without leaking upstream detail', { synced: false, lastError: 'GET /apis/apps/v1/deployments?limit=500: ECONNREFUSED', failures: 3 }, false, false, /^deployments cache not synced yet \(3 failed attempts\)$/],
    ['still ready while a watch reconnects briefly', { watching: false, lastContactMs: now - 5_000 }, false, true],
    ['not ready once the watch has been down longer than the bound', { watching: false, lastContactMs: now - STALE_AFTER_MS - 1, lastError: 'x' }, false, false, /watch disconnected/],
    ['not ready while shutting down', {}, true, false, /shutting down/],
    ['not ready at once when a list/watch is refused with 401, even while recently in contact', { watching: false, lastContactMs: now - 1_000, lastErrorStatus: 401 }, false, false, /rejects the proxy's credentials \(HTTP 401\)/],
    ['not ready at once when a list/watch is refused with 403', { watching: false, lastContactMs: now - 1_000, lastErrorStatus: 403 }, false, false, /HTTP 403/],
  ];
  for (const [name, s, shuttingDown, ready, msg] of cases) {
    it(name, () => {
      const r = cacheReadiness([status(s)], () => shuttingDown, () => now).check();
      assert.equal(r.ready, ready);
      if (!r.ready && msg) assert.match(r.message, msg);
    });
  }

  it('is not ready while the last access check was refused, ready during an outage, and ready again once it passes', () => {
    let last: AccessResult = { ok: false, denied: true, message: 'the proxy lacks access its role should give (RBAC): update deployments/scale.apps' };
    const readiness = cacheReadiness([status({})], () => false, () => now, { last: () => last });
    assert.deepEqual(readiness.check(), { ready: false, message: last.message });
    last = { ok: false, denied: false, message: "cannot verify the proxy's access: API server unreachable (ECONNREFUSED)" };
    assert.deepEqual(readiness.check(), { ready: true }, 'an outage is not a refusal: the watch staleness bound covers it');
    last = { ok: true, identity: { username: 'system:serviceaccount:p:p' } };
    assert.deepEqual(readiness.check(), { ready: true });
  });
});
