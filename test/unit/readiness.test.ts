import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cacheReadiness, STALE_AFTER_MS } from '../../src/proxy.js';
import type { ReflectorStatus } from '../../src/kube/reflector.js';

const status = (s: Partial<ReflectorStatus>): { status(): ReflectorStatus } => ({
  status: () => ({ resource: 'deployments', synced: true, watching: true, resourceVersion: '1', objects: 0, lastContactMs: 0, lastError: '', failures: 0, relists: 1, ...s }),
});

describe('cacheReadiness', () => {
  const now = 1_000_000;
  const cases: Array<[string, Partial<ReflectorStatus>, boolean, boolean, RegExp?]> = [
    ['ready when synced and watching', {}, false, true],
    ['not ready before the first list, without leaking upstream detail', { synced: false, lastError: 'GET /apis/apps/v1/deployments?limit=500: ECONNREFUSED', failures: 3 }, false, false, /^deployments cache not synced yet \(3 failed attempts\)$/],
    ['still ready while a watch reconnects briefly', { watching: false, lastContactMs: now - 5_000 }, false, true],
    ['not ready once the watch has been down longer than the bound', { watching: false, lastContactMs: now - STALE_AFTER_MS - 1, lastError: 'x' }, false, false, /watch disconnected/],
    ['not ready while shutting down', {}, true, false, /shutting down/],
  ];
  for (const [name, s, shuttingDown, ready, msg] of cases) {
    it(name, () => {
      const r = cacheReadiness([status(s)], () => shuttingDown, () => now).check();
      assert.equal(r.ready, ready);
      if (!r.ready && msg) assert.match(r.message, msg);
    });
  }
});
