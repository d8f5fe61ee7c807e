import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CachingAuthorizer } from '../../src/authz/decision-cache.js';
import { SubjectAccessReviewAuthorizer, SUBJECT_ACCESS_REVIEW_PATH } from '../../src/authz/subject-access-review.js';
import { AuthorizerUnavailableError, forbiddenMessage, type Authorizer, type Decision, type ResourceAttributes, type UserInfo } from '../../src/authz/authorizer.js';
import { KubeStatusError, KubeTimeoutError, KubeUnreachableError, type RequestOptions } from '../../src/kube/kube-client.js';

const ci: UserInfo = { username: 'ci', groups: ['team', 'system:authenticated'] };
const scaleWeb: ResourceAttributes = { verb: 'update', group: 'apps', resource: 'deployments', subresource: 'scale', namespace: 'shop', name: 'web' };

/** An authorizer that answers from a script and counts the questions. */
function scripted(answer: (u: UserInfo, a: ResourceAttributes) => Decision | Promise<Decision>): Authorizer & { asked: number } {
  const double = { asked: 0, authorize: async (u: UserInfo, a: ResourceAttributes) => { double.asked++; return answer(u, a); } };
  return double;
}

describe('CachingAuthorizer', () => {
  it('reuses an allow for the allowed TTL, then asks again', async () => {
    let now = 0;
    const inner = scripted(() => ({ allowed: true, reason: '' }));
    const cache = new CachingAuthorizer(inner, { allowedTtlMs: 10_000, deniedTtlMs: 5_000, now: () => now });
    await cache.authorize(ci, scaleWeb);
    now = 4_999;
    await cache.authorize(ci, scaleWeb);
    assert.equal(inner.asked, 1);
    now = 10_000;
    await cache.authorize(ci, scaleWeb);
    assert.equal(inner.asked, 2);
  });

  it('answers a hit past half the TTL from the cache and renews the entry in the background', async () => {
    let now = 0;
    let allowed = true;
    let release: () => void = () => undefined;
    const inner = scripted(async () => { if (inner.asked > 1) await new Promise<void>((r) => { release = r; }); return { allowed, reason: '' }; });
    const cache = new CachingAuthorizer(inner, { allowedTtlMs: 10_000, deniedTtlMs: 5_000, now: () => now });
    await cache.authorize(ci, scaleWeb);
    now = 6_000;
    allowed = false; // revoked at 6 s: the background review sees it
    assert.equal((await cache.authorize(ci, scaleWeb)).allowed, true, 'answered from the cache, not behind the review');
    assert.equal((await cache.authorize(ci, scaleWeb)).allowed, true);
    assert.equal(inner.asked, 2, 'one background review for both hits');
    release();
    await new Promise((r) => setImmediate(r));
    assert.equal((await cache.authorize(ci, scaleWeb)).allowed, false, 'the renewed entry holds the revocation, within the TTL of the first answer');
  });

  it('keeps the entry until it expires when a background review fails', async () => {
    let now = 0;
    let fail = false;
    const inner = scripted(() => { if (fail) throw new AuthorizerUnavailableError('down', 503); return { allowed: true, reason: '' }; });
    const cache = new CachingAuthorizer(inner, { allowedTtlMs: 10_000, deniedTtlMs: 5_000, now: () => now });
    await cache.authorize(ci, scaleWeb);
    fail = true;
    now = 7_000;
    assert.equal((await cache.authorize(ci, scaleWeb)).allowed, true);
    await new Promise((r) => setImmediate(r));
    now = 9_999;
    assert.equal((await cache.authorize(ci, scaleWeb)).allowed, true, 'still the first answer');
    now = 10_000;
    await assert.rejects(cache.authorize(ci, scaleWeb), AuthorizerUnavailableError, 'expired: asks, and the failure is the answer');
  });

  it('reuses a deny only for the denied TTL', async () => {
    let now = 0;
    const inner = scripted(() => ({ allowed: false, reason: 'no' }));
    const cache = new CachingAuthorizer(inner, { allowedTtlMs: 10_000, deniedTtlMs: 5_000, now: () => now });
    assert.equal((await cache.authorize(ci, scaleWeb)).allowed, false);
    now = 2_499;
    await cache.authorize(ci, scaleWeb);
    assert.equal(inner.asked, 1);
    now = 5_000;
    await cache.authorize(ci, scaleWeb);
    assert.equal(inner.asked, 2);
  });

  it('keeps separate decisions per user, group set, verb, namespace and name', async () => {
    const inner = scripted((u, a) => ({ allowed: u.username === 'ci' && a.name === 'web', reason: '' }));
    const cache = new CachingAuthorizer(inner, { allowedTtlMs: 10_000, deniedTtlMs: 10_000 });
    assert.equal((await cache.authorize(ci, scaleWeb)).allowed, true);
    assert.equal((await cache.authorize({ ...ci, username: 'other' }, scaleWeb)).allowed, false);
    assert.equal((await cache.authorize(ci, { ...scaleWeb, name: 'api' })).allowed, false);
    await cache.authorize({ ...ci, groups: ['system:authenticated'] }, scaleWeb);
    await cache.authorize(ci, { ...scaleWeb, verb: 'get' });
    await cache.authorize(ci, { ...scaleWeb, namespace: 'other' });
    assert.equal(inner.asked, 6);
  });

  it('never caches a failure: the next request asks again', async () => {
    let fail = true;
    const inner = scripted(() => { if (fail) throw new AuthorizerUnavailableError('down', 503); return { allowed: true, reason: '' }; });
    const cache = new CachingAuthorizer(inner, { allowedTtlMs: 10_000, deniedTtlMs: 5_000 });
    await assert.rejects(cache.authorize(ci, scaleWeb), AuthorizerUnavailableError);
    fail = false;
    assert.equal((await cache.authorize(ci, scaleWeb)).allowed, true);
    assert.equal(inner.asked, 2);
  });

  it('shares one review among concurrent identical questions', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const inner = scripted(async () => { await gate; return { allowed: true, reason: '' }; });
    const cache = new CachingAuthorizer(inner, { allowedTtlMs: 10_000, deniedTtlMs: 5_000 });
    const all = Promise.all(Array.from({ length: 20 }, () => cache.authorize(ci, scaleWeb)));
    release();
    assert.ok((await all).every((d) => d.allowed));
    assert.equal(inner.asked, 1);
  });

  it('holds at most maxEntries decisions, dropping the oldest', async () => {
    const inner = scripted(() => ({ allowed: true, reason: '' }));
    const cache = new CachingAuthorizer(inner, { allowedTtlMs: 60_000, deniedTtlMs: 60_000, maxEntries: 3 });
    for (const name of ['a', 'b', 'c', 'd']) await cache.authorize(ci, { ...scaleWeb, name });
    assert.equal(cache.size, 3);
    await cache.authorize(ci, { ...scaleWeb, name: 'd' });
    assert.equal(inner.asked, 4, 'd still cached');
    await cache.authorize(ci, { ...scaleWeb, name: 'a' });
    assert.equal(inner.asked, 5, 'a was evicted');
  });

  it('caches nothing with TTLs of 0', async () => {
    const inner = scripted(() => ({ allowed: true, reason: '' }));
    const cache = new CachingAuthorizer(inner, { allowedTtlMs: 0, deniedTtlMs: 0 });
    await cache.authorize(ci, scaleWeb);
    await cache.authorize(ci, scaleWeb);
    assert.equal(inner.asked, 2);
  });
});

describe('SubjectAccessReviewAuthorizer', () => {
  const client = (answer: () => unknown) => {
    const calls: Array<{ method: string; path: string; options?: RequestOptions }> = [];
    return {
      calls,
      request: async <T>(method: string, path: string, options?: RequestOptions): Promise<T> => { calls.push({ method, path, options }); return answer() as T; },
    };
  };

  it('creates a SubjectAccessReview for the user, its groups and the resource attributes', async () => {
    const c = client(() => ({ status: { allowed: true, reason: 'RBAC: allowed by RoleBinding "x"' } }));
    const d = await new SubjectAccessReviewAuthorizer(c).authorize(ci, scaleWeb);
    assert.deepEqual(d, { allowed: true, reason: 'RBAC: allowed by RoleBinding "x"' });
    assert.equal(c.calls[0].method, 'POST');
    assert.equal(c.calls[0].path, SUBJECT_ACCESS_REVIEW_PATH);
    assert.deepEqual(c.calls[0].options?.body, {
      apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
      spec: { user: 'ci', groups: ['team', 'system:authenticated'], resourceAttributes: { verb: 'update', group: 'apps', resource: 'deployments', subresource: 'scale', namespace: 'shop', name: 'web' } },
    });
  });

  it('leaves out the namespace for a cluster-wide question', async () => {
    const c = client(() => ({ status: { allowed: false } }));
    await new SubjectAccessReviewAuthorizer(c).authorize(ci, { verb: 'list', group: 'apps', resource: 'deployments' });
    assert.deepEqual((c.calls[0].options?.body as { spec: { resourceAttributes: unknown } }).spec.resourceAttributes, { verb: 'list', group: 'apps', resource: 'deployments' });
  });

  const denials: Array<[string, unknown, RegExp]> = [
    ['no opinion', { status: { allowed: false } }, /no RBAC rule allows it/],
    ['an explicit deny', { status: { allowed: false, denied: true, reason: 'webhook says no' } }, /webhook says no/],
    ['an evaluation error', { status: { allowed: false, evaluationError: 'role "x" not found' } }, /evaluation error: role "x" not found/],
    ['a body without status', {}, /no RBAC rule/],
  ];
  for (const [label, body, reason] of denials) {
    it(`denies on ${label}`, async () => {
      const d = await new SubjectAccessReviewAuthorizer(client(() => body)).authorize(ci, scaleWeb);
      assert.equal(d.allowed, false);
      assert.match(d.reason, reason);
    });
  }

  const failures: Array<[string, Error, number]> = [
    ['an unreachable API server', new KubeUnreachableError('POST x: ECONNREFUSED'), 503],
    ['a timeout', new KubeTimeoutError('POST x: no answer'), 503],
    ['HTTP 500', new KubeStatusError(500, 'InternalError', 'boom'), 503],
    ['HTTP 429', new KubeStatusError(429, 'TooManyRequests', 'slow down'), 503],
    ['HTTP 403 (the proxy may not create reviews)', new KubeStatusError(403, 'Forbidden', 'cannot create subjectaccessreviews'), 502],
  ];
  for (const [label, err, status] of failures) {
    it(`fails closed on ${label} (${status}), never allowing`, async () => {
      await assert.rejects(new SubjectAccessReviewAuthorizer(client(() => { throw err; })).authorize(ci, scaleWeb),
        (e: AuthorizerUnavailableError) => e instanceof AuthorizerUnavailableError && e.status === status);
    });
  }
});

describe('forbiddenMessage (kube-apiserver wording, naming the client only)', () => {
  it('names user, verb, resource/subresource, object and namespace', () => {
    assert.equal(forbiddenMessage(ci, scaleWeb), 'deployments.apps "web" is forbidden: User "ci" cannot update resource "deployments/scale" in API group "apps" in the namespace "shop"');
  });
  it('words a namespaced list and a cluster-wide one', () => {
    assert.equal(forbiddenMessage(ci, { verb: 'list', group: 'apps', resource: 'deployments', namespace: 'b' }), 'deployments.apps is forbidden: User "ci" cannot list resource "deployments" in API group "apps" in the namespace "b"');
    assert.equal(forbiddenMessage(ci, { verb: 'list', group: 'apps', resource: 'deployments' }), 'deployments.apps is forbidden: User "ci" cannot list resource "deployments" in API group "apps" at the cluster scope');
  });
});
