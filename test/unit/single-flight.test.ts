import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LINGER_MS, SingleFlight } from '../../src/kube/single-flight.js';
import { CachedDeploymentLists } from '../../src/views/deployment-lists.js';
import { ObjectStore } from '../../src/kube/object-store.js';
import type { CachedDeployment } from '../../src/kube/deployments.js';
import { KubeReplicaService } from '../../src/kube/replicas.js';
import type { KubeClient } from '../../src/kube/kube-client.js';

/** A call whose answer the test releases; `calls` counts how many were started. */
function gated() {
  const gates: Array<{ resolve: (v: string) => void; reject: (e: Error) => void }> = [];
  const call = (): Promise<string> => new Promise((resolve, reject) => { gates.push({ resolve, reject }); });
  return { call, gates };
}
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('SingleFlight', () => {
  it('never answers a caller with a call that started before it arrived; later callers share the next call', async () => {
    const sf = new SingleFlight<string>();
    const { call, gates } = gated();
    const first = sf.run('k', call);
    await tick();
    const second = sf.run('k', call);
    const third = sf.run('k', call);
    await tick();
    assert.equal(gates.length, 1, 'the second call waits for the first to settle');
    gates[0].resolve('one');
    assert.equal(await first, 'one');
    await tick();
    assert.equal(gates.length, 2, 'one more call, shared by the two that queued');
    gates[1].resolve('two');
    assert.deepEqual(await Promise.all([second, third]), ['two', 'two']);
    assert.equal(sf.started, 2);
    assert.equal(sf.running, 0, 'nothing left behind once all settled');
  });

  it('lets a caller join a call that started after it arrived, running or finished less than LINGER_MS ago, and forgets the key after that', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const sf = new SingleFlight<string>();
    const { call, gates } = gated();
    const arrivedEarly = performance.now();
    const first = sf.run('k', call);
    await tick();
    const joiner = sf.run('k', call, undefined, arrivedEarly);
    assert.equal(gates.length, 1, 'the caller that arrived before the running call started joins it');
    gates[0].resolve('one');
    assert.deepEqual(await Promise.all([first, joiner]), ['one', 'one']);
    assert.equal(await sf.run('k', call, undefined, arrivedEarly), 'one', 'a finished call that started after the caller arrived still answers it');
    assert.equal(sf.started, 1);
    const late = sf.run('k', call, undefined, performance.now() + 1);
    await tick();
    assert.equal(gates.length, 2, 'a caller that arrived after the call started gets a new one');
    gates[1].resolve('two');
    assert.equal(await late, 'two');
    assert.equal(sf.held, 1, 'its answer lingers');
    t.mock.timers.tick(LINGER_MS);
    assert.equal(sf.held, 0, 'then the key is forgotten');
    assert.equal(sf.running, 0);
  });

  it('counts running calls and held keys: a failure lets go of its key at once, a success lingers', async () => {
    const sf = new SingleFlight<string>();
    const { call, gates } = gated();
    const a = sf.run('a', call);
    const b = sf.run('b', call);
    await tick();
    assert.deepEqual([sf.running, sf.held], [2, 2]);
    gates[0].reject(new Error('down'));
    await assert.rejects(a, /down/);
    await tick();
    assert.deepEqual([sf.running, sf.held], [1, 1], 'a failed call keeps nothing to share');
    gates[1].resolve('ok');
    assert.equal(await b, 'ok');
    await tick();
    assert.deepEqual([sf.running, sf.held], [0, 1], 'a finished answer lingers for late joiners');
  });

  it('runs different keys side by side', async () => {
    const sf = new SingleFlight<string>();
    const { call, gates } = gated();
    const a = sf.run('a', call);
    const b = sf.run('b', call);
    await tick();
    assert.equal(gates.length, 2);
    gates[0].resolve('a');
    gates[1].resolve('b');
    assert.deepEqual(await Promise.all([a, b]), ['a', 'b']);
  });

  it('gives a failure to every sharer of that call, and the next call still runs', async () => {
    const sf = new SingleFlight<string>();
    const { call, gates } = gated();
    const first = sf.run('k', call);
    await tick();
    const q1 = sf.run('k', call);
    const q2 = sf.run('k', call);
    gates[0].reject(new Error('upstream 503'));
    await assert.rejects(first, /upstream 503/);
    await tick();
    gates[1].reject(new Error('still down'));
    await assert.rejects(q1, /still down/);
    await assert.rejects(q2, /still down/);
    const again = sf.run('k', call);
    await tick();
    gates[2].resolve('up');
    assert.equal(await again, 'up');
  });

  it('lets a caller whose client went away stop waiting, while the others get the answer', async () => {
    const sf = new SingleFlight<string>();
    const { call, gates } = gated();
    void sf.run('k', call);
    await tick();
    const gone = new AbortController();
    const leaving = sf.run('k', call, gone.signal);
    const staying = sf.run('k', call);
    gone.abort(new Error('client closed'));
    await assert.rejects(leaving, /client closed/);
    gates[0].resolve('one');
    await tick();
    gates[1].resolve('two');
    assert.equal(await staying, 'two');
    await assert.rejects(sf.run('k', call, gone.signal), /client closed/, 'an already aborted signal rejects at once');
  });

  it('raises no unhandled rejection when every queuer left and the shared call fails', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown): void => { unhandled.push(e); };
    process.on('unhandledRejection', onUnhandled);
    try {
      const sf = new SingleFlight<string>();
      const { call, gates } = gated();
      const first = sf.run('k', call);
      await tick();
      const gone = new AbortController();
      const leaving = sf.run('k', call, gone.signal);
      gone.abort(new Error('gone'));
      await assert.rejects(leaving);
      gates[0].resolve('one');
      await first;
      await tick();
      gates[1].reject(new Error('nobody is listening'));
      await tick();
      await tick();
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});

describe('list read-throughs are coalesced', () => {
  it('50 concurrent reads with a minResourceVersion the cache never reaches make at most 2 upstream lists, and each answers what was read', async () => {
    const store = new ObjectStore<CachedDeployment>();
    store.replace([{ metadata: { name: 'web', namespace: 'shop', resourceVersion: '5' }, spec: { replicas: 1 }, status: {} }]);
    let upstream = 0;
    const lists = new CachedDeploymentLists(
      { index: store, hasSynced: () => true, resourceVersion: () => '5', waitForResourceVersion: async () => false },
      async () => {
        upstream++;
        await new Promise((r) => setTimeout(r, 20));
        return { items: [{ metadata: { name: 'api', namespace: 'shop', resourceVersion: '9' }, spec: { replicas: 2 }, status: {} }], resourceVersion: '9' };
      },
      { consistencyWaitMs: 0 },
    );
    const answers = await Promise.all(Array.from({ length: 50 }, () => lists.list({ minResourceVersion: '999999' })));
    assert.ok(upstream >= 1 && upstream <= 2, `upstream lists: ${upstream}`);
    for (const a of answers) {
      assert.equal(a.resourceVersion, '9');
      assert.deepEqual(JSON.parse(a.body.toString()), [{ name: 'api', namespace: 'shop' }]);
    }
    assert.equal(lists.readThroughs, 50);
  });
});

describe('list read-throughs of requests arriving one after another', () => {
  it('30 requests 10 ms apart, each waiting 100 ms for the cache, share a few upstream lists, not one each', async () => {
    const store = new ObjectStore<CachedDeployment>();
    let upstream = 0;
    const lists = new CachedDeploymentLists(
      { index: store, hasSynced: () => true, resourceVersion: () => '5', waitForResourceVersion: (_rv, ms) => new Promise((r) => setTimeout(() => r(false), ms)) },
      async () => { upstream++; await new Promise((r) => setTimeout(r, 5)); return { items: [], resourceVersion: '9' }; },
      { consistencyWaitMs: 100 },
    );
    const pending: Array<Promise<unknown>> = [];
    for (let i = 0; i < 30; i++) {
      pending.push(lists.list({ minResourceVersion: '999999' }));
      await new Promise((r) => setTimeout(r, 10));
    }
    await Promise.all(pending);
    assert.ok(upstream <= 8, `upstream lists: ${upstream} for 30 requests`);
  });
});

describe('replicas read-throughs are coalesced', () => {
  it('20 concurrent reads of one Deployment past the cache make at most 2 upstream reads', async () => {
    const d: CachedDeployment = { metadata: { name: 'web', namespace: 'shop', resourceVersion: '5' }, spec: { replicas: 1 }, status: {} };
    let upstream = 0;
    const client = { request: async () => {
      upstream++;
      await new Promise((r) => setTimeout(r, 20));
      return { metadata: { resourceVersion: '9' }, items: [{ metadata: { name: 'web', namespace: 'shop', resourceVersion: '8' }, spec: { replicas: 4 } }] };
    } } as unknown as KubeClient;
    const cache = { get: () => d, list: () => [d], hasSynced: () => true, resourceVersion: () => '5', waitForResourceVersion: async () => false };
    const svc = new KubeReplicaService(client, cache, { consistencyWaitMs: 0 });
    const answers = await Promise.all(Array.from({ length: 20 }, () => svc.read('shop', 'web', { minResourceVersion: '999999' })));
    assert.ok(upstream >= 1 && upstream <= 2, `upstream reads: ${upstream}`);
    for (const a of answers) assert.deepEqual([a.view.replicas, a.resourceVersion], [4, '9']);
  });
});
