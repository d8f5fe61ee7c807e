import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CachingAuthorizer } from '../../src/authz/decision-cache.js';
import { AuthorizerUnavailableError, type Authorizer } from '../../src/authz/authorizer.js';
import { openAuditLog } from '../../src/audit/audit-log.js';
import type { AuditEvent } from '../../src/audit/audit-event.js';
import type { AuthzResult } from '../../src/metrics/recorders.js';

const user = { username: 'ci', groups: ['system:authenticated'] };
const attrs = { verb: 'get' as const, group: 'apps', resource: 'deployments', subresource: 'scale', namespace: 'shop', name: 'web' };

describe('authorization and audit report to their metrics recorders', () => {
  it('records each decision with whether the decision cache answered, and errors as misses', async () => {
    const seen: Array<[AuthzResult, string]> = [];
    let answer: 'allow' | 'deny' | 'fail' = 'allow';
    const inner: Authorizer = {
      authorize: async () => {
        if (answer === 'fail') throw new AuthorizerUnavailableError('down', 503);
        return { allowed: answer === 'allow', reason: answer };
      },
    };
    const cache = new CachingAuthorizer(inner, { allowedTtlMs: 10_000, deniedTtlMs: 10_000, recorder: { decision: (r, c) => seen.push([r, c]) } });
    await cache.authorize(user, attrs);
    await cache.authorize(user, attrs);
    answer = 'deny';
    await cache.authorize(user, { ...attrs, name: 'api' });
    answer = 'fail';
    await assert.rejects(cache.authorize(user, { ...attrs, name: 'db' }));
    assert.deepEqual(seen, [['allow', 'miss'], ['allow', 'hit'], ['deny', 'miss'], ['error', 'miss']]);
  });

  it('counts every audit event written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'audit-metrics-'));
    let written = 0;
    const sink = openAuditLog({ path: join(dir, 'audit.log'), maxSizeMb: 1, maxBackups: 1, onError: () => undefined, recorder: { event: (o) => { if (o === 'written') written++; } } });
    for (let i = 0; i < 3; i++) sink.write({ kind: 'Event', apiVersion: 'audit.k8s.io/v1', auditID: `a${i}` } as AuditEvent);
    await sink.close();
    assert.equal(written, 3);
    assert.equal(readFileSync(join(dir, 'audit.log'), 'utf8').trim().split('\n').length, 3);
  });
});
