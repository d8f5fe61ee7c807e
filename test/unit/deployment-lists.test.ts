import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { ObjectStore } from '../../src/kube/object-store.js';
import type { CachedDeployment } from '../../src/kube/deployments.js';
import { CachedDeploymentLists, type ListReadThrough } from '../../src/views/deployment-lists.js';
import { READ_THROUGH_TIMEOUT_MS, deploymentReadThrough } from '../../src/kube/read-through.js';
import { KubeStatusError, KubeTimeoutError, type KubeClient } from '../../src/kube/kube-client.js';
import { ProblemError } from '../../src/errors.js';

const d = (namespace: string, name: string, rv = '1'): CachedDeployment => ({ metadata: { name, namespace, resourceVersion: rv }, spec: { replicas: 1 }, status: {} });
const names = (body: Buffer): string[] => (JSON.parse(body.toString()) as Array<{ name: string; namespace: string }>).map((i) => `${i.namespace}/${i.name}`);

/** A cache at `rv` holding `items`; `reaches` is the resourceVersion a wait gets it to (none: every wait times out). */
function world(items: CachedDeployment[], rv: string, opts: { reaches?: string; synced?: boolean; upstream?: CachedDeployment[] } = {}) {
  const store = new ObjectStore<CachedDeployment>();
  store.replace(items);
  let current = rv;
  const waits: Array<[string, number, AbortSignal | undefined]> = [];
  const reads: Array<[string | undefined, AbortSignal | undefined]> = [];
  const cache = {
    index: store,
    hasSynced: () => opts.synced ?? true,
    resourceVersion: () => current,
    waitForResourceVersion: async (want: string, ms: number, signal?: AbortSignal) => {
      waits.push([want, ms, signal]);
      if (opts.reaches === undefined) return false;
      current = opts.reaches;
      return true;
    },
  };
  const readThrough: ListReadThrough = async (ns, signal) => { reads.push([ns, signal]); return { items: opts.upstream ?? [], resourceVersion: '90' }; };
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => { lines.push(JSON.parse(l) as Record<string, unknown>); } });
  const lists = new CachedDeploymentLists(cache, readThrough, { consistencyWaitMs: 250, logger });
  return { lists, waits, reads, lines, store };
}

describe('CachedDeploymentLists (the list route\'s source)', () => {
  it('answers 503 with Retry-After before the cache has synced', async () => {
    const { lists } = world([d('a', 'x')], '10', { synced: false });
    assert.equal(lists.hasSynced(), false);
    await assert.rejects(lists.list({}), (e: ProblemError) => e.status === 503 && e.headers['retry-after'] === '1' && e.message === 'the Deployment cache has not finished its first list from the API server yet');
  });

  it('answers from the cache at once when no minResourceVersion is asked or the cache is that new', async () => {
    const { lists, waits, reads } = world([d('a', 'x'), d('b', 'y')], '10');
    assert.equal(lists.hasSynced(), true);
    assert.deepEqual(names((await lists.list({})).body), ['a/x', 'b/y']);
    const answer = await lists.list({ minResourceVersion: '10', namespaces: 'b' });
    assert.deepEqual([names(answer.body), answer.resourceVersion], [['b/y'], '10']);
    assert.deepEqual([waits, reads, lists.readThroughs], [[], [], 0]);
  });

  it('waits (bounded, with the client\'s signal) for a newer state, then answers from the cache', async () => {
    const { lists, waits, reads } = world([d('a', 'x')], '10', { reaches: '20' });
    const signal = new AbortController().signal;
    const answer = await lists.list({ minResourceVersion: '20', signal });
    assert.deepEqual([names(answer.body), answer.resourceVersion], [['a/x'], '20']);
    assert.deepEqual(waits, [['20', 250, signal]]);
    assert.deepEqual([reads, lists.readThroughs], [[], 0]);
  });

  it('reads through when the cache stays behind: one namespace asked of the API server by name, a set filtered from all, pages and the log line', async () => {
    const upstream = [d('a', 'x', '80'), d('b', 'y', '81'), d('b', 'z', '82'), d('c', 'w', '83')];
    const { lists, reads, lines } = world([d('a', 'old')], '10', { upstream });
    const signal = new AbortController().signal;
    const one = await lists.list({ minResourceVersion: '90', namespaces: 'b', signal });
    assert.deepEqual([names(one.body), one.resourceVersion], [['b/y', 'b/z'], '90']);
    const some = await lists.list({ minResourceVersion: '90', namespaces: new Set(['a', 'c']) });
    assert.deepEqual(names(some.body), ['a/x', 'c/w']);
    const page = JSON.parse((await lists.list({ minResourceVersion: '90', limit: 3 })).body.toString()) as { metadata: { remainingItemCount: number }; items: unknown[] };
    assert.deepEqual([page.items.length, page.metadata.remainingItemCount], [3, 1]);
    // The upstream read is shared by every request of its scope (SingleFlight): no one client's signal cancels it.
    assert.deepEqual(reads, [['b', undefined], [undefined, undefined], [undefined, undefined]]);
    assert.equal(lists.readThroughs, 3);
    assert.deepEqual(lines[0], { ...lines[0], level: 30, msg: 'cache behind minResourceVersion; reading through', minResourceVersion: '90', cached: '10', waitedMs: 250 });
    assert.deepEqual(names((await lists.list({})).body), ['a/old'], 'the cache\'s own views are untouched');
  });

  it('reads through without a logger too', async () => {
    const store = new ObjectStore<CachedDeployment>();
    const cache = { index: store, hasSynced: () => true, resourceVersion: () => '1', waitForResourceVersion: async () => false };
    const lists = new CachedDeploymentLists(cache, async () => ({ items: [d('a', 'x')], resourceVersion: '9' }), { consistencyWaitMs: 0 });
    assert.deepEqual(names((await lists.list({ minResourceVersion: '9' })).body), ['a/x']);
  });

  it('lists the namespaces holding Deployments as a copy the store cannot change under the caller', () => {
    const { lists, store } = world([d('b', 'y'), d('a', 'x')], '10');
    const got = lists.namespaces();
    assert.deepEqual(got, ['a', 'b']);
    store.upsert(d('0', 'first'));
    assert.deepEqual(got, ['a', 'b']);
    assert.deepEqual(lists.namespaces(), ['0', 'a', 'b']);
  });
});

describe('deploymentReadThrough (a consistent list from the API server)', () => {
  function client(answer: () => unknown) {
    const calls: Array<{ path: string; timeoutMs?: number; signal?: AbortSignal }> = [];
    const c = { request: async (_m: string, path: string, o: { timeoutMs?: number; signal?: AbortSignal }) => { calls.push({ path, timeoutMs: o.timeoutMs, signal: o.signal }); return answer(); } } as unknown as KubeClient;
    return { c, calls };
  }

  it('lists one namespace, or every one, in pages of 500 bounded at 5 s each, shaped like the cache', async () => {
    const { c, calls } = client(() => ({ metadata: { resourceVersion: '77' }, items: [{ metadata: { name: 'x', namespace: 'n s', resourceVersion: '5', managedFields: [{}] }, spec: { replicas: 2 } }] }));
    const signal = new AbortController().signal;
    const got = await deploymentReadThrough(c)('n s', signal);
    assert.equal(got.resourceVersion, '77');
    assert.deepEqual(got.items.map((i) => [i.metadata.name, i.spec?.replicas, 'managedFields' in i.metadata]), [['x', 2, false]]);
    await deploymentReadThrough(c)(undefined);
    assert.deepEqual(calls, [
      { path: '/apis/apps/v1/namespaces/n%20s/deployments?limit=500', timeoutMs: 5_000, signal },
      { path: '/apis/apps/v1/deployments?limit=500', timeoutMs: READ_THROUGH_TIMEOUT_MS, signal: undefined },
    ]);
  });

  it('maps failures to problems naming what was read, never 404 for an outage', async () => {
    const timeout = client(() => { throw new KubeTimeoutError('x'); });
    await assert.rejects(deploymentReadThrough(timeout.c)(undefined), (e: ProblemError) => e.status === 504);
    const gone = client(() => { throw new KubeStatusError(404, 'NotFound', 'x'); });
    await assert.rejects(deploymentReadThrough(gone.c)('ns'), (e: ProblemError) => e.status === 404 && e.message === 'the Deployments of namespace "ns" not found');
    await assert.rejects(deploymentReadThrough(gone.c)(undefined), (e: ProblemError) => e.message === 'the Deployment list not found');
  });
});
