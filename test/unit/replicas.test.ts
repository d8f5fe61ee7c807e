import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_CONFLICT_RETRY, KubeReplicaService, WriteOverlay, admissionRefusal, rvAtLeast, toProblem, upstreamText } from '../../src/kube/replicas.js';
import { KubeStatusError, KubeTimeoutError, KubeUnreachableError, type KubeClient } from '../../src/kube/kube-client.js';
import type { CacheReader } from '../../src/kube/object-store.js';
import type { CachedDeployment } from '../../src/kube/deployments.js';
import { ProblemError } from '../../src/errors.js';
import { pino } from 'pino';

const dep = (replicas: number, rv: string, uid?: string): CachedDeployment => ({ metadata: { name: 'web', namespace: 'ns', resourceVersion: rv, ...(uid ? { uid } : {}) }, spec: { replicas }, status: {} });

function cacheOf(d?: CachedDeployment, synced = true): CacheReader<CachedDeployment> {
  return { get: () => d, list: () => (d ? [d] : []), hasSynced: () => synced };
}

/** A KubeClient stand-in that plays a script of answers for GET/PUT on the scale subresource. */
function scriptedClient(script: Array<(method: string, body?: unknown) => unknown>): KubeClient & { calls: Array<{ method: string; path: string; body?: unknown }> } {
  const calls: Array<{ method: string; path: string; body?: unknown }> = [];
  return {
    calls,
    request: async (method: string, path: string, opts: { body?: unknown } = {}) => {
      calls.push({ method, path, body: opts.body });
      const step = script.shift();
      if (!step) throw new Error('unexpected call');
      return step(method, opts.body);
    },
  } as unknown as KubeClient & { calls: Array<{ method: string; path: string; body?: unknown }> };
}

const scale = (replicas: number, rv: string) => () => ({ metadata: { name: 'web', namespace: 'ns', resourceVersion: rv }, spec: { replicas } });
const conflict = () => { throw new KubeStatusError(409, 'Conflict', 'the object has been modified'); };
const noSleep = { sleep: async () => undefined, random: () => 0.5 };

describe('KubeReplicaService.set', () => {
  it('writes the Scale in one call, without resourceVersion, with the cached uid as precondition, and answers the committed value', async () => {
    const client = scriptedClient([(_m, body) => ({ ...(body as object), metadata: { name: 'web', namespace: 'ns', resourceVersion: '11' } })]);
    const svc = new KubeReplicaService(client, cacheOf(dep(1, '10', 'uid-1')), noSleep);
    assert.deepEqual(await svc.set('ns', 'web', 4), { view: { deployment: 'web', namespace: 'ns', replicas: 4 }, etag: '"11"', resourceVersion: '11', previousReplicas: 1 }, 'previousReplicas: what the cache held');
    assert.deepEqual(client.calls.map((c) => c.method), ['PUT']);
    assert.deepEqual(client.calls[0].body, { apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name: 'web', namespace: 'ns', uid: 'uid-1' }, spec: { replicas: 4 } });
  });

  it('writes also when the value is already set (the API server then changes nothing), and without uid when the cache has no such Deployment', async () => {
    const client = scriptedClient([scale(4, '10')]);
    const svc = new KubeReplicaService(client, cacheOf(undefined), noSleep);
    const answer = await svc.set('ns', 'web', 4);
    assert.equal(answer.view.replicas, 4);
    assert.ok(!('previousReplicas' in answer), 'unknown before: the audit event leaves replicas-before out');
    assert.deepEqual(client.calls.map((c) => c.method), ['PUT']);
    assert.deepEqual((client.calls[0].body as { metadata: object }).metadata, { name: 'web', namespace: 'ns' });
  });

  it('counts a write as updated also when its own watch event reached the cache before its answer', async () => {
    let cached = dep(1, '10', 'uid-1');
    const outcomes: string[] = [];
    // The API server commits rv 11; the watch delivers it to the cache before the PUT's answer arrives.
    const client = scriptedClient([() => { cached = dep(4, '11', 'uid-1'); return scale(4, '11')(); }]);
    const cache: CacheReader<CachedDeployment> = { get: () => cached, list: () => [cached], hasSynced: () => true };
    const svc = new KubeReplicaService(client, cache, { ...noSleep, recorder: { write: (o) => { outcomes.push(o); }, conflictRetried: () => undefined } });
    await svc.set('ns', 'web', 4);
    assert.deepEqual(outcomes, ['updated']);
  });

  it('answers 409 without retrying when the uid precondition fails (deleted and recreated under the same name)', async () => {
    const client = scriptedClient([() => { throw new KubeStatusError(409, 'Conflict', 'Operation cannot be fulfilled on deployments.apps "web": Precondition failed: UID in precondition: uid-1, UID in object meta: uid-2'); }]);
    const svc = new KubeReplicaService(client, cacheOf(dep(1, '10', 'uid-1')), noSleep);
    await assert.rejects(svc.set('ns', 'web', 4), (e: ProblemError) => e.status === 409 && /deleted and recreated/.test(e.message));
    assert.equal(client.calls.length, 1);
  });

  it('falls back to read-then-write with the resourceVersion read when the API server requires one (422), retrying 409 with a fresh read', async () => {
    const requires = () => { throw new KubeStatusError(422, 'Invalid', 'Scale.autoscaling "web" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update'); };
    const client = scriptedClient([requires, scale(1, '10'), conflict, scale(2, '12'), scale(5, '13')]);
    const svc = new KubeReplicaService(client, cacheOf(dep(1, '10')), noSleep);
    assert.equal((await svc.set('ns', 'web', 5)).view.replicas, 5);
    assert.deepEqual(client.calls.map((c) => c.method), ['PUT', 'GET', 'PUT', 'GET', 'PUT']);
    assert.equal((client.calls[4].body as { metadata: { resourceVersion: string } }).metadata.resourceVersion, '12');
    assert.equal(svc.conflicts, 1);
  });

  it('on the read-first fallback, bounds and aborts the read like the write, and takes replicas-before from the read (0 when omitted)', async () => {
    const requires = () => { throw new KubeStatusError(422, 'Invalid', 'metadata.resourceVersion: Invalid value: 0x0: must be specified for an update'); };
    const seen: Array<{ method: string; timeoutMs?: number; signal?: AbortSignal }> = [];
    const inner = scriptedClient([requires, () => ({ metadata: { name: 'web', namespace: 'ns', resourceVersion: '10' }, spec: {} }), scale(5, '11')]);
    const client = { request: (m: string, p: string, o: { timeoutMs?: number; signal?: AbortSignal }) => { seen.push({ method: m, timeoutMs: o.timeoutMs, signal: o.signal }); return inner.request(m, p, o); } } as unknown as KubeClient;
    const signal = new AbortController().signal;
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => { lines.push(JSON.parse(l)); } });
    const answer = await new KubeReplicaService(client, cacheOf(dep(3, '10')), { ...noSleep, logger, now: () => 0 }).set('ns', 'web', 5, signal);
    assert.equal(answer.previousReplicas, 0, 'the Scale read had no spec.replicas');
    assert.deepEqual(seen, [{ method: 'PUT', timeoutMs: 5_000, signal }, { method: 'GET', timeoutMs: 5_000, signal }, { method: 'PUT', timeoutMs: 5_000, signal }]);
    assert.deepEqual(lines.map((l) => [l.msg, l.namespace, l.deployment]), [['the API server requires a resourceVersion on scale updates; reading first', 'ns', 'web']]);
  });

  it('switches to read-first once: a 422 about resourceVersion on the read-first write is passed on, and only a 422 switches', async () => {
    const requires = () => { throw new KubeStatusError(422, 'Invalid', 'metadata.resourceVersion: Invalid value: 0x0: must be specified for an update'); };
    const again = scriptedClient([requires, scale(1, '10'), requires, scale(1, '10'), scale(4, '11')]);
    await assert.rejects(new KubeReplicaService(again, cacheOf(dep(1, '10')), noSleep).set('ns', 'web', 4), (e: ProblemError) => e.status === 422);
    assert.deepEqual(again.calls.map((c) => c.method), ['PUT', 'GET', 'PUT']);
    const other = scriptedClient([() => { throw new KubeStatusError(500, 'InternalError', 'etcd: resourceVersion too old'); }, scale(1, '10'), scale(4, '11')]);
    await assert.rejects(new KubeReplicaService(other, cacheOf(dep(1, '10')), noSleep).set('ns', 'web', 4), (e: ProblemError) => e.status === 502);
    assert.deepEqual(other.calls.map((c) => c.method), ['PUT']);
  });

  it('answers 422 at once, without reading, when the 422 is not about a missing resourceVersion', async () => {
    const client = scriptedClient([() => { throw new KubeStatusError(422, 'Invalid', 'spec.replicas: must be >= 0'); }, scale(1, '2')]);
    await assert.rejects(new KubeReplicaService(client, cacheOf(dep(1, '1')), noSleep).set('ns', 'web', 4), (e: ProblemError) => e.status === 422);
    assert.deepEqual(client.calls.map((c) => c.method), ['PUT']);
  });

  it('answers 409 only when every retry conflicted', async () => {
    const svc = new KubeReplicaService(scriptedClient([conflict, conflict, conflict]), cacheOf(dep(1, '1')), { ...noSleep, retry: { steps: 3, initialMs: 1, factor: 2, maxMs: 4 } });
    await assert.rejects(svc.set('ns', 'web', 9), (e: ProblemError) => e.status === 409 && e.reason === 'Conflict' && /3 conflicting attempts/.test(e.message));
  });

  it('retries on the README schedule: 10 attempts, waits jittered up to 10 ms doubling to a 640 ms cap', async () => {
    const waits: number[] = [];
    const client = scriptedClient(Array(10).fill(conflict));
    // random() = 1 gives the upper bound of each fully jittered wait (+1 ms so a wait is never 0).
    const svc = new KubeReplicaService(client, cacheOf(dep(1, '1')), { sleep: async (ms) => { waits.push(ms); }, random: () => 1 });
    await assert.rejects(svc.set('ns', 'web', 9), (e: ProblemError) => e.status === 409 && /10 conflicting attempts/.test(e.message));
    assert.equal(client.calls.length, 10, '10 writes, no reads');
    assert.deepEqual(waits, [11, 21, 41, 81, 161, 321, 641, 641, 641]);
    assert.deepEqual(DEFAULT_CONFLICT_RETRY, { steps: 10, initialMs: 10, factor: 2, maxMs: 640 });
    const low: number[] = [];
    const again = new KubeReplicaService(scriptedClient([conflict, conflict, scale(9, '4')]), cacheOf(dep(1, '1')), { sleep: async (ms) => { low.push(ms); }, random: () => 0 });
    await again.set('ns', 'web', 9);
    assert.deepEqual(low, [1, 1], 'random() = 0 waits the 1 ms floor');
  });

  it('starts no further attempt when the client disconnects during a conflict backoff', async () => {
    const gone = new AbortController();
    const client = scriptedClient([conflict]);
    const svc = new KubeReplicaService(client, cacheOf(dep(1, '1')), { sleep: async () => { gone.abort(); }, random: () => 0.5 });
    await assert.rejects(svc.set('ns', 'web', 3, gone.signal), (e: ProblemError) => e.status === 408 && e.reason === 'RequestTimeout' && /not started/.test(e.message));
    assert.deepEqual(client.calls.map((c) => c.method), ['PUT'], 'no second write');
  });

  it('passes the client signal to each call, so an in-flight call is aborted too', async () => {
    const gone = new AbortController();
    const seen: Array<AbortSignal | undefined> = [];
    const client = { request: async (_m: string, _p: string, o: { signal?: AbortSignal }) => { seen.push(o.signal); return scale(3, '1')(); } } as unknown as KubeClient;
    await new KubeReplicaService(client, cacheOf(dep(3, '1')), noSleep).set('ns', 'web', 3, gone.signal);
    assert.deepEqual(seen, [gone.signal]);
  });

  it('scales to 0 when the API server omits spec.replicas (omitempty) from its Scale answer', async () => {
    const client = scriptedClient([() => ({ metadata: { name: 'web', namespace: 'ns', resourceVersion: '11' }, spec: {} })]);
    const svc = new KubeReplicaService(client, cacheOf(dep(2, '10')), noSleep);
    assert.equal((await svc.set('ns', 'web', 0)).view.replicas, 0);
  });

  it('bounds each call at 5 s, and at what is left of the 10 s budget near its end', async () => {
    let clock = 0;
    const timeouts: number[] = [];
    const client = scriptedClient([conflict, scale(1, '2')]);
    const timed = { request: async (method: string, path: string, o: { timeoutMs: number }) => { timeouts.push(o.timeoutMs); clock += 7_000; return client.request(method, path, o); } } as unknown as KubeClient;
    await new KubeReplicaService(timed, cacheOf(dep(0, '1')), { ...noSleep, now: () => clock }).set('ns', 'web', 1);
    assert.deepEqual(timeouts, [5_000, 3_000]);
  });

  it('logs each conflict retry at info', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => { lines.push(JSON.parse(l)); } });
    const svc = new KubeReplicaService(scriptedClient([conflict, scale(3, '3')]), cacheOf(dep(1, '1')), { ...noSleep, logger });
    await svc.set('ns', 'web', 3);
    assert.deepEqual(lines.map((l) => [l.level, l.msg, l.namespace, l.deployment, l.attempt]), [[30, '409 Conflict on scale update; retrying', 'ns', 'web', 1]]);
  });

  it('lets the next queued write run once the one before it failed', async () => {
    const client = scriptedClient([() => { throw new KubeStatusError(500, '', 'boom'); }, (_m, body) => ({ ...(body as object), metadata: { name: 'web', namespace: 'ns', resourceVersion: '2' } })]);
    const svc = new KubeReplicaService(client, cacheOf(dep(1, '1')), noSleep);
    const [first, second] = await Promise.allSettled([svc.set('ns', 'web', 2), svc.set('ns', 'web', 3)]);
    assert.equal(first.status, 'rejected');
    assert.deepEqual(second, { status: 'fulfilled', value: { view: { deployment: 'web', namespace: 'ns', replicas: 3 }, etag: '"2"', resourceVersion: '2', previousReplicas: 1 } });
  });

  it('writes the scale subresource of that Deployment, recording field manager k8s-api-proxy', async () => {
    const client = scriptedClient([(_m, body) => ({ ...(body as object), metadata: { name: 'web', namespace: 'ns', resourceVersion: '11' } })]);
    await new KubeReplicaService(client, cacheOf(dep(1, '10')), noSleep).set('ns', 'web', 2);
    assert.deepEqual(client.calls.map((c) => c.path), ['/apis/apps/v1/namespaces/ns/deployments/web/scale?fieldManager=k8s-api-proxy']);
  });

  it('gives up with 504 naming the Deployment and the 10 s bound once no time is left, without a call bounded at 0 ms', async () => {
    let clock = 0;
    const timeouts: number[] = [];
    const client = { request: async (_m: string, _p: string, o: { timeoutMs: number }) => { timeouts.push(o.timeoutMs); clock = 10_000; return conflict(); } } as unknown as KubeClient;
    const svc = new KubeReplicaService(client, cacheOf(dep(0, '1')), { ...noSleep, now: () => clock });
    await assert.rejects(svc.set('ns', 'web', 1), (e: ProblemError) => e.status === 504 && e.reason === 'GatewayTimeout' && e.message === 'gave up on deployment "web" in namespace "ns" after 10 s (API server slow or other writes queued ahead)');
    assert.deepEqual(timeouts, [5_000]);
  });

  it('writes to different Deployments in parallel (one queue per Deployment)', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const client = { request: async (_m: string, _p: string, o: { body?: { spec: { replicas: number } } } = {}) => {
      inFlight++; maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      return { metadata: { resourceVersion: '2' }, spec: o.body!.spec };
    } } as unknown as KubeClient;
    const svc = new KubeReplicaService(client, cacheOf(dep(0, '1')), noSleep);
    await Promise.all([svc.set('ns', 'a', 1), svc.set('ns', 'b', 1)]);
    assert.equal(maxInFlight, 2);
  });

  it('starts nothing once the client has gone away', async () => {
    const client = scriptedClient([]);
    const gone = new AbortController();
    gone.abort();
    const svc = new KubeReplicaService(client, cacheOf(dep(1, '1')), noSleep);
    await assert.rejects(svc.set('ns', 'web', 3, gone.signal), (e: ProblemError) => e.status === 408 && e.reason === 'RequestTimeout' && e.message === 'the client closed the connection; the write was not started');
    assert.equal(client.calls.length, 0);
  });

  it('gives up with 504, without writing, when queued behind slow writes past the deadline', async () => {
    let clock = 0;
    const client = {
      calls: 0,
      request: async (method: string) => {
        client.calls++;
        clock += 11_000; // each call takes 11 s of (fake) time
        return method === 'GET' ? scale(0, '1')() : { metadata: { resourceVersion: '2' }, spec: { replicas: 1 } };
      },
    };
    const svc = new KubeReplicaService(client as unknown as KubeClient, cacheOf(dep(0, '1')), { ...noSleep, now: () => clock });
    const first = svc.set('ns', 'web', 1);
    const second = svc.set('ns', 'web', 2);
    assert.equal((await first).view.replicas, 1, 'the first write finishes at t=11 s (its PUT started within budget)');
    await assert.rejects(second, (e: ProblemError) => e.status === 504 && /gave up/.test(e.message));
    assert.equal(client.calls, 1, 'the queued write never reached the API server');
  });

  it('queues writes to the same Deployment so they do not conflict with each other', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const client = {
      request: async (method: string, _p: string, o: { body?: { spec: { replicas: number } } } = {}) => {
        inFlight++; maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((r) => setTimeout(r, 2));
        inFlight--;
        return method === 'GET' ? scale(0, '1')() : { metadata: { resourceVersion: '2' }, spec: o.body!.spec };
      },
    } as unknown as KubeClient;
    const svc = new KubeReplicaService(client, cacheOf(dep(0, '1')), noSleep);
    await Promise.all([1, 2, 3, 4, 5].map((n) => svc.set('ns', 'web', n)));
    assert.equal(maxInFlight, 1);
  });

  it('keeps one queue per Deployment only while writes are in line: a third write waits for the second, and the queue is gone once all settle', async () => {
    const started: number[] = [];
    const release: Array<() => void> = [];
    const client = {
      request: async (_m: string, _p: string, o: { body?: { spec: { replicas: number } } } = {}) => {
        started.push(o.body!.spec.replicas);
        await new Promise<void>((r) => release.push(r));
        return { metadata: { resourceVersion: String(started.length + 1) }, spec: o.body!.spec };
      },
    } as unknown as KubeClient;
    const svc = new KubeReplicaService(client, cacheOf(dep(0, '1')), noSleep);
    const turn = () => new Promise((r) => setImmediate(r));
    const first = svc.set('ns', 'web', 1);
    const second = svc.set('ns', 'web', 2);
    await turn();
    assert.deepEqual(started, [1]);
    release.shift()!();
    assert.equal((await first).view.replicas, 1);
    await turn();
    assert.deepEqual(started, [1, 2], 'the second write runs once the first has settled');
    // The first write's clean-up must not drop the queue the second one is running in.
    const third = svc.set('ns', 'web', 3);
    await turn();
    assert.deepEqual(started, [1, 2], 'the third write waits for the second, never runs beside it');
    assert.equal(svc.writeQueues, 1);
    release.shift()!();
    assert.equal((await second).view.replicas, 2);
    await turn();
    assert.deepEqual(started, [1, 2, 3]);
    release.shift()!();
    assert.equal((await third).view.replicas, 3);
    assert.equal(svc.writeQueues, 0, 'no settled queue is kept per Deployment');
  });

  it('admits a write again as soon as one in line settles, never more than the bound, and counts the queue down to nothing', async () => {
    const release: Array<() => void> = [];
    const client = { request: async (_m: string, _p: string, o: { body?: { spec: { replicas: number } } } = {}) => {
      await new Promise<void>((r) => release.push(r));
      return { metadata: { resourceVersion: '2' }, spec: o.body!.spec };
    } } as unknown as KubeClient;
    const svc = new KubeReplicaService(client, cacheOf(dep(0, '1')), { ...noSleep, maxQueuedWrites: 2 });
    const status = (p: Promise<unknown>) => p.then(() => 'ok', (e: ProblemError) => e.status);
    const w1 = svc.set('ns', 'web', 1);
    const w2 = svc.set('ns', 'web', 2);
    assert.equal(await status(svc.set('ns', 'web', 3)), 429, 'two in line is the bound');
    await new Promise((r) => setImmediate(r));
    release.shift()!();
    await w1;
    const w4 = svc.set('ns', 'web', 4);
    assert.equal(await status(svc.set('ns', 'web', 5)), 429, 'one place freed, one write admitted');
    for (const w of [w2, w4]) {
      await new Promise((r) => setImmediate(r));
      release.shift()!();
      await w;
    }
    assert.equal(svc.writeQueues, 0);
  });

  it('counts each write\'s outcome: updated, or unchanged when the resourceVersion did not move', async () => {
    const outcomes: string[] = [];
    const recorder = { write: (o: string) => { outcomes.push(o); }, conflictRetried: () => { outcomes.push('retry'); } };
    const client = scriptedClient([scale(3, '10'), scale(4, '11'), conflict, () => { throw new KubeStatusError(404, 'NotFound', 'x'); }]);
    const svc = new KubeReplicaService(client, cacheOf(dep(3, '10')), { ...noSleep, recorder });
    await svc.set('ns', 'web', 3);
    await svc.set('ns', 'web', 4);
    await assert.rejects(svc.set('ns', 'web', 5));
    assert.deepEqual(outcomes, ['unchanged', 'updated', 'retry', 'not_found']);
  });

  it('counts a write as updated even when the watch delivers it to the cache before the API server\'s answer arrives', async () => {
    const outcomes: string[] = [];
    let cached = dep(1, '10');
    const cache: CacheReader<CachedDeployment> = { get: () => cached, list: () => [cached], hasSynced: () => true };
    const client = scriptedClient([(_m, body) => { cached = dep(3, '11'); return { ...(body as object), metadata: { name: 'web', namespace: 'ns', resourceVersion: '11' } }; }]);
    await new KubeReplicaService(client, cache, { ...noSleep, recorder: { write: (o: string) => { outcomes.push(o); }, conflictRetried: () => undefined } }).set('ns', 'web', 3);
    assert.deepEqual(outcomes, ['updated']);
  });

  it('really waits between conflict retries when no sleep is injected (the default sleep is a timer)', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const client = scriptedClient([conflict, scale(3, '2')]);
    // random() = 1: the first wait is 10 ms + 1.
    const pending = new KubeReplicaService(client, cacheOf(dep(1, '1')), { random: () => 1 }).set('ns', 'web', 3);
    const turn = () => new Promise((r) => setImmediate(r));
    await turn();
    assert.equal(client.calls.length, 1, 'the conflicting write');
    t.mock.timers.tick(10);
    await turn();
    assert.equal(client.calls.length, 1, 'no retry before 11 ms');
    t.mock.timers.tick(1);
    assert.equal((await pending).view.replicas, 3);
    assert.equal(client.calls.length, 2);
  });

  it('answers 429 at once, with Retry-After, when the Deployment\'s write queue is full (30 PUTs behind a slow API server)', async () => {
    let release!: () => void;
    const slow = new Promise<void>((r) => { release = r; });
    const client = {
      calls: 0,
      request: async (method: string, _p: string, o: { body?: { spec: { replicas: number } } } = {}) => {
        client.calls++;
        await slow; // the API server answers nothing until released
        return method === 'GET' ? scale(0, '1')() : { metadata: { resourceVersion: '2' }, spec: o.body!.spec };
      },
    };
    const svc = new KubeReplicaService(client as unknown as KubeClient, cacheOf(dep(0, '1')), { ...noSleep, maxQueuedWrites: 10 });
    const settled = Array.from({ length: 30 }, (_, i) => svc.set('ns', 'web', i + 1).then((v) => v.view.replicas, (e: ProblemError) => e));
    // Every write past the 10th is refused before the first one has even finished.
    const refused = await Promise.race([Promise.all(settled.slice(10)), new Promise((r) => setTimeout(() => r('waited'), 1_000))]);
    assert.notEqual(refused, 'waited', 'refusals do not wait for the queue');
    for (const e of refused as ProblemError[]) {
      assert.equal(e.status, 429);
      assert.equal(e.reason, 'TooManyRequests');
      assert.equal(e.message, '10 writes to deployment "web" in namespace "ns" are already in line; retry shortly');
      assert.equal(e.headers['retry-after'], '1');
    }
    // Another Deployment has a queue of its own.
    const other = svc.set('ns', 'api', 3);
    release();
    assert.deepEqual(await Promise.all(settled.slice(0, 10)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.equal((await other).view.replicas, 3);
    assert.equal((await svc.set('ns', 'web', 42)).view.replicas, 42, 'the queue admits again once it has drained');
  });
});

describe('KubeReplicaService.get', () => {
  it('answers 503 with Retry-After before the cache has synced', () => {
    const svc = new KubeReplicaService(scriptedClient([]), cacheOf(undefined, false));
    assert.throws(() => svc.get('ns', 'web'), (e: ProblemError) => e.status === 503 && e.headers['retry-after'] === '1' && e.message === 'the Deployment cache has not finished its first list from the API server yet');
  });
  it('answers its own last write while the cache is still behind it (read your writes), then the cache', async () => {
    let cached = dep(1, '10');
    const cache: CacheReader<CachedDeployment> = { get: () => cached, list: () => [cached], hasSynced: () => true };
    const client = scriptedClient([(_m, body) => ({ ...(body as object), metadata: { name: 'web', namespace: 'ns', resourceVersion: '11' } })]);
    const svc = new KubeReplicaService(client, cache, noSleep);
    await svc.set('ns', 'web', 4);
    assert.equal(svc.get('ns', 'web').view.replicas, 4, 'the watch has not delivered RV 11 yet');
    cached = dep(6, '12'); // another writer, seen by the watch after ours
    assert.equal(svc.get('ns', 'web').view.replicas, 6);
  });
  it('forgets its own write once the Deployment is gone from the cache', async () => {
    let cached: CachedDeployment | undefined = dep(1, '10');
    const cache: CacheReader<CachedDeployment> = { get: () => cached, list: () => [], hasSynced: () => true };
    const svc = new KubeReplicaService(scriptedClient([(_m, body) => ({ ...(body as object), metadata: { name: 'web', namespace: 'ns', resourceVersion: '11' } })]), cache, noSleep);
    await svc.set('ns', 'web', 4);
    assert.equal(svc.overlay.size, 1);
    cached = undefined;
    assert.throws(() => svc.get('ns', 'web'), (e: ProblemError) => e.status === 404 && e.message === 'deployment "web" not found in namespace "ns"');
    assert.equal(svc.overlay.size, 0);
    cached = dep(2, '5'); // re-created: a new object, whose resourceVersion may be lower than the old write
    assert.equal(svc.get('ns', 'web').view.replicas, 2);
  });
  it('answers 404 for a Deployment the cache does not hold', () => {
    const svc = new KubeReplicaService(scriptedClient([]), cacheOf(undefined));
    assert.throws(() => svc.get('ns', 'web'), (e: ProblemError) => e.status === 404);
  });
});

describe('KubeReplicaService.read with minResourceVersion (read-your-writes across replicas)', () => {
  /** A cache at resourceVersion `rv` that reaches `reaches` (if given) while a reader waits. */
  function behindCache(cached: CachedDeployment, rv: string, reaches?: { rv: string; replicas: number }) {
    let current = rv;
    let obj = cached;
    return {
      get: () => obj, list: () => [obj], hasSynced: () => true, resourceVersion: () => current,
      waitForResourceVersion: async (want: string) => {
        if (!reaches || !rvAtLeast(reaches.rv, want)) return false;
        current = reaches.rv;
        obj = dep(reaches.replicas, reaches.rv);
        return true;
      },
    };
  }
  const listOf = (replicas: number, rv: string, listRv: string) => () => ({ metadata: { resourceVersion: listRv }, items: [{ metadata: { name: 'web', namespace: 'ns', resourceVersion: rv }, spec: { replicas } }] });

  it('answers from the cache at once when it is already that new', async () => {
    const client = scriptedClient([]);
    const svc = new KubeReplicaService(client, behindCache(dep(3, '10'), '20'));
    assert.deepEqual(await svc.read('ns', 'web', { minResourceVersion: '15' }), { view: { deployment: 'web', namespace: 'ns', replicas: 3 }, etag: '"10"', resourceVersion: '20' });
    assert.equal(client.calls.length, 0);
  });

  it('waits for the watch to deliver the asked resourceVersion, then answers from the cache', async () => {
    const client = scriptedClient([]);
    const svc = new KubeReplicaService(client, behindCache(dep(3, '10'), '10', { rv: '30', replicas: 7 }));
    const a = await svc.read('ns', 'web', { minResourceVersion: '30' });
    assert.deepEqual([a.view.replicas, a.resourceVersion], [7, '30']);
    assert.equal(client.calls.length, 0);
    assert.equal(svc.readThroughs, 0);
  });

  it('reads through from the API server (a consistent list narrowed to the name) when the cache stays behind', async () => {
    const client = scriptedClient([listOf(7, '30', '31')]);
    const svc = new KubeReplicaService(client, behindCache(dep(3, '10'), '10'), { consistencyWaitMs: 5 });
    assert.deepEqual(await svc.read('ns', 'web', { minResourceVersion: '30' }), { view: { deployment: 'web', namespace: 'ns', replicas: 7 }, etag: '"30"', resourceVersion: '31' });
    assert.deepEqual(client.calls.map((c) => c.method), ['GET']);
    assert.equal(svc.readThroughs, 1);
  });

  it('answers this proxy\'s own newer write without waiting', async () => {
    const client = scriptedClient([() => ({ metadata: { name: 'web', namespace: 'ns', resourceVersion: '40' }, spec: { replicas: 8 } })]);
    const svc = new KubeReplicaService(client, behindCache(dep(3, '10'), '10'));
    await svc.set('ns', 'web', 8);
    const a = await svc.read('ns', 'web', { minResourceVersion: '40' });
    assert.deepEqual([a.view.replicas, a.etag, a.resourceVersion], [8, '"40"', '40']);
    assert.equal(client.calls.length, 1, 'no read-through');
  });

  it('answers from the cache, without waiting or reading through, when no minResourceVersion is asked or the cache cannot tell its version', async () => {
    const client = scriptedClient([]);
    assert.equal((await new KubeReplicaService(client, behindCache(dep(3, '10'), '10'), { consistencyWaitMs: 5 }).read('ns', 'web')).view.replicas, 3);
    assert.equal((await new KubeReplicaService(client, cacheOf(dep(4, '10')), { consistencyWaitMs: 5 }).read('ns', 'web', { minResourceVersion: '30' })).view.replicas, 4);
    const unsynced = { ...behindCache(dep(3, '10'), '10'), hasSynced: () => false };
    await assert.rejects(new KubeReplicaService(client, unsynced, { consistencyWaitMs: 5 }).read('ns', 'web', { minResourceVersion: '30' }), (e: ProblemError) => e.status === 503);
    assert.equal(client.calls.length, 0);
  });

  it('reads through with a list of that one name in its namespace, bounded at 5 s, logged, and answers 404 when the API server has no such Deployment', async () => {
    const seen: Array<{ path: string; timeoutMs?: number; signal?: AbortSignal }> = [];
    const client = { request: async (_m: string, path: string, o: { timeoutMs?: number; signal?: AbortSignal }) => { seen.push({ path, timeoutMs: o.timeoutMs, signal: o.signal }); return { metadata: { resourceVersion: '31' }, items: [] }; } } as unknown as KubeClient;
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => { lines.push(JSON.parse(l)); } });
    const signal = new AbortController().signal;
    await assert.rejects(new KubeReplicaService(client, behindCache(dep(3, '10'), '10'), { consistencyWaitMs: 5, logger }).read('n s', 'web', { minResourceVersion: '30', signal }),
      (e: ProblemError) => e.status === 404 && e.message === 'deployment "web" in namespace "n s" not found');
    // Shared by concurrent readers of that Deployment (SingleFlight): bounded by its own timeout, not one client's signal.
    assert.deepEqual(seen, [{ path: '/apis/apps/v1/namespaces/n%20s/deployments?fieldSelector=metadata.name%3Dweb&limit=1', timeoutMs: 5_000, signal: undefined }]);
    assert.deepEqual(lines.map((l) => [l.msg, l.namespace, l.deployment, l.minResourceVersion, l.cached, l.waitedMs]), [['cache behind minResourceVersion; reading through', 'n s', 'web', '30', '10', 5]]);
  });

  it('names the Deployment when a read-through fails', async () => {
    const client = scriptedClient([() => { throw new KubeStatusError(404, 'NotFound', 'x'); }]);
    await assert.rejects(new KubeReplicaService(client, behindCache(dep(3, '10'), '10'), { consistencyWaitMs: 1 }).read('ns', 'web', { minResourceVersion: '30' }),
      (e: ProblemError) => e.status === 404 && e.message === 'deployment "web" in namespace "ns" not found');
  });

  it('maps a failed read-through to 503, not 404 or 504', async () => {
    const client = scriptedClient([() => { throw new KubeUnreachableError('x', Object.assign(new Error('x'), { code: 'ECONNREFUSED' })); }]);
    const svc = new KubeReplicaService(client, behindCache(dep(3, '10'), '10'), { consistencyWaitMs: 1 });
    await assert.rejects(svc.read('ns', 'web', { minResourceVersion: '30' }), (e: ProblemError) => e.status === 503);
  });
});

describe('WriteOverlay (read your writes)', () => {
  const cases: Array<[string, Array<[number, string]>, CachedDeployment, number]> = [
    ['answers the cache when nothing was written', [], dep(3, '10'), 3],
    ['answers the written value while the cache is older', [[7, '20']], dep(3, '10'), 7],
    ['answers the cache once it reached the written resourceVersion', [[7, '20']], dep(7, '20'), 7],
    ['answers the cache when it moved past the write (a newer writer)', [[7, '20']], dep(9, '25'), 9],
    ['keeps the newest of two writes', [[7, '20'], [8, '18']], dep(3, '10'), 7],
  ];
  for (const [name, writes, cached, want] of cases) {
    it(name, () => {
      const o = new WriteOverlay();
      for (const [r, rv] of writes) o.record('ns', 'web', r, rv);
      assert.equal(o.resolve('ns', 'web', cached), want);
    });
  }
  it('forgets an entry once the cache caught up', () => {
    const o = new WriteOverlay();
    o.record('ns', 'web', 7, '20');
    o.resolve('ns', 'web', dep(7, '21'));
    assert.equal(o.size, 0);
  });
});

describe('toProblem: API server failures never become 404 or a stack trace', () => {
  const cases: Array<[string, unknown, number, string]> = [
    ['404 stays NotFound', new KubeStatusError(404, 'NotFound', 'x'), 404, 'NotFound'],
    ['422 stays Invalid', new KubeStatusError(422, 'Invalid', 'x'), 422, 'Invalid'],
    ['403 (our token refused) is a bad gateway', new KubeStatusError(403, 'Forbidden', 'PUT /apis/apps/v1/namespaces/a/deployments/b/scale: User "system:serviceaccount:p:p" cannot update'), 502, 'BadGateway'],
    ['401 is a bad gateway', new KubeStatusError(401, '', 'x'), 502, 'BadGateway'],
    ['500 is a bad gateway', new KubeStatusError(500, '', 'x'), 502, 'BadGateway'],
    ['429 is unavailable', new KubeStatusError(429, 'TooManyRequests', 'x'), 503, 'ServiceUnavailable'],
    ['a timeout is 504', new KubeTimeoutError('x'), 504, 'GatewayTimeout'],
    ['connection refused is 503', new KubeUnreachableError('GET /apis/apps/v1/x: ECONNREFUSED', Object.assign(new Error('x'), { code: 'ECONNREFUSED' })), 503, 'ServiceUnavailable'],
    ['a timeout hides the upstream path', new KubeTimeoutError('GET /apis/apps/v1/x: no answer within 5000 ms'), 504, 'GatewayTimeout'],
    ['an unknown error is 500 without detail', new TypeError('boom at line 3'), 500, 'InternalError'],
    ['503 is unavailable', new KubeStatusError(503, 'ServiceUnavailable', 'x'), 503, 'ServiceUnavailable'],
    ['a 504 from the API server stays 504', new KubeStatusError(504, 'Timeout', 'x'), 504, 'GatewayTimeout'],
    ['our own abort (the client left) is 408', Object.assign(new Error('aborted'), { name: 'AbortError' }), 408, 'RequestTimeout'],
    ['a ProblemError passes through', new ProblemError(418 as number, 'BadRequest', 'as is'), 418, 'BadRequest'],
  ];
  for (const [name, err, status, reason] of cases) {
    it(name, () => {
      const p = toProblem(err, 'deployment "web"');
      assert.equal(p.status, status);
      assert.equal(p.reason, reason);
      if (status === 500) assert.doesNotMatch(p.message, /boom/);
      assert.doesNotMatch(p.message, /system:serviceaccount|\/apis\//, 'no upstream identity or path in client-facing detail');
    });
  }
});

describe('KubeReplicaService.set: the write names the object (uid precondition)', () => {
  const withUid = (uid: string): CachedDeployment => ({ metadata: { name: 'web', namespace: 'ns', resourceVersion: '10', uid }, spec: { replicas: 1 } } as CachedDeployment);
  const scaleOf = (uid: string, replicas = 1, rv = '10') => () => ({ metadata: { name: 'web', namespace: 'ns', resourceVersion: rv, uid }, spec: { replicas } });

  it('sends the uid the request was resolved against, and no resourceVersion, in its one call', async () => {
    const client = scriptedClient([(_m, body) => ({ ...(body as object), metadata: { name: 'web', namespace: 'ns', resourceVersion: '11', uid: 'u1' } })]);
    await new KubeReplicaService(client, cacheOf(withUid('u1')), noSleep).set('ns', 'web', 4);
    assert.deepEqual((client.calls[0].body as { metadata: unknown }).metadata, { name: 'web', namespace: 'ns', uid: 'u1' });
  });

  it('answers 409 when the API server holds another object of that name (its uid precondition failed, nothing written)', async () => {
    const client = scriptedClient([() => { throw new KubeStatusError(409, 'Conflict', 'Operation cannot be fulfilled on deployments.apps "web": Precondition failed: UID in precondition: u1, UID in object meta: u2'); }]);
    await assert.rejects(new KubeReplicaService(client, cacheOf(withUid('u1')), noSleep).set('ns', 'web', 4),
      (e: ProblemError) => e.status === 409 && /deleted and recreated/.test(e.message));
    assert.deepEqual(client.calls.map((c) => c.method), ['PUT']);
  });

  it('on the read-first fallback, keeps the first read uid across conflict retries when the cache did not know the object', async () => {
    const requires = () => { throw new KubeStatusError(422, 'Invalid', 'metadata.resourceVersion: Invalid value: 0x0: must be specified for an update'); };
    const client = scriptedClient([requires, scaleOf('u1'), conflict, scaleOf('u2', 1, '12')]);
    await assert.rejects(new KubeReplicaService(client, cacheOf(undefined), noSleep).set('ns', 'web', 4), (e: ProblemError) => e.status === 409 && /deleted and recreated/.test(e.message));
    assert.deepEqual(client.calls.map((c) => c.method), ['PUT', 'GET', 'PUT', 'GET']);
  });
});

describe('KubeReplicaService.set: whose refusal a 401/403 is', () => {
  const forbidden = (message: string) => () => { throw new KubeStatusError(403, 'Forbidden', `PUT /apis/...: ${message}`, { message }); };
  const access = (allowed: boolean | Error) => {
    const seen = { invalidated: 0, asked: [] as unknown[] };
    return {
      seen,
      allowed: async (a: unknown) => { seen.asked.push(a); if (allowed instanceof Error) throw allowed; return allowed; },
      invalidate: () => { seen.invalidated++; },
      last: () => ({ ok: true as const, identity: { username: 'system:serviceaccount:p:proxy' } }),
    };
  };

  it('admission (the authorizer allows the verb): 403 Forbidden with the API server\'s message, without the proxy\'s identity', async () => {
    const msg = 'deployments.apps "web" is forbidden: ValidatingAdmissionPolicy \'cap\' with binding \'cap\' denied request: at most 5 (asked by system:serviceaccount:p:proxy)';
    const a = access(true);
    await assert.rejects(new KubeReplicaService(scriptedClient([forbidden(msg)]), cacheOf(dep(1, '10')), { ...noSleep, access: a }).set('ns', 'web', 7), (e: ProblemError) => {
      assert.equal(e.status, 403);
      assert.equal(e.reason, 'Forbidden');
      assert.match(e.message, /ValidatingAdmissionPolicy 'cap' with binding 'cap' denied request: at most 5 \(asked by <proxy>\)/);
      assert.doesNotMatch(e.message, /system:serviceaccount|\/apis\//);
      return true;
    });
    assert.deepEqual(a.seen.asked, [{ verb: 'update', group: 'apps', resource: 'deployments', subresource: 'scale', namespace: 'ns' }]);
    assert.equal(a.seen.invalidated, 0);
  });

  it('RBAC (the authorizer denies the verb): 502 naming the verb, and the access check is refreshed', async () => {
    const a = access(false);
    await assert.rejects(new KubeReplicaService(scriptedClient([forbidden('User "system:serviceaccount:p:proxy" cannot update resource "deployments/scale"')]), cacheOf(dep(1, '10')), { ...noSleep, access: a }).set('ns', 'web', 7),
      (e: ProblemError) => e.status === 502 && e.reason === 'BadGateway' && /RBAC role does not allow update on deployments\/scale/.test(e.message) && !/system:serviceaccount/.test(e.message));
    assert.equal(a.seen.invalidated, 1);
  });

  it('undecidable (the review itself fails): 502, the safe side for a client that retries', async () => {
    await assert.rejects(new KubeReplicaService(scriptedClient([forbidden('x')]), cacheOf(dep(1, '10')), { ...noSleep, access: access(new Error('down')) }).set('ns', 'web', 7),
      (e: ProblemError) => e.status === 502 && /HTTP 403 Forbidden/.test(e.message));
  });

  it('asks about the verb that failed: get, when the read of the read-first fallback is refused', async () => {
    const requires = () => { throw new KubeStatusError(422, 'Invalid', 'metadata.resourceVersion: must be specified for an update'); };
    const a = access(false);
    await assert.rejects(new KubeReplicaService(scriptedClient([requires, forbidden('cannot get')]), cacheOf(dep(1, '10')), { ...noSleep, access: a }).set('ns', 'web', 7),
      (e: ProblemError) => e.status === 502 && /does not allow get on deployments\/scale/.test(e.message) && e.cause instanceof KubeStatusError);
    assert.deepEqual(a.seen.asked, [{ verb: 'get', group: 'apps', resource: 'deployments', subresource: 'scale', namespace: 'ns' }]);
  });

  it('admission refusal without a known proxy identity still hides service-account names', async () => {
    const msg = 'denied: asked by system:serviceaccount:p:proxy';
    const a = { ...access(true), last: () => undefined };
    await assert.rejects(new KubeReplicaService(scriptedClient([forbidden(msg)]), cacheOf(dep(1, '10')), { ...noSleep, access: a }).set('ns', 'web', 7),
      (e: ProblemError) => e.status === 403 && /denied: asked by <proxy>$/.test(e.message));
  });

  it('refreshes the access check on a 401 and on an undecidable 403, never on other failures', async () => {
    const unauthorized = () => { throw new KubeStatusError(401, 'Unauthorized', 'Unauthorized'); };
    const a = access(true);
    await assert.rejects(new KubeReplicaService(scriptedClient([unauthorized]), cacheOf(dep(1, '10')), { ...noSleep, access: a }).set('ns', 'web', 7));
    assert.deepEqual([a.seen.invalidated, a.seen.asked.length], [1, 0], 'a 401 needs no review');
    const u = access(new Error('down'));
    await assert.rejects(new KubeReplicaService(scriptedClient([forbidden('x')]), cacheOf(dep(1, '10')), { ...noSleep, access: u }).set('ns', 'web', 7),
      (e: ProblemError) => e.status === 502 && !/RBAC/.test(e.message));
    assert.equal(u.seen.invalidated, 1);
    const b = access(true);
    await assert.rejects(new KubeReplicaService(scriptedClient([() => { throw new KubeStatusError(500, 'InternalError', 'x'); }]), cacheOf(dep(1, '10')), { ...noSleep, access: b }).set('ns', 'web', 7), (e: ProblemError) => e.status === 502);
    assert.deepEqual([b.seen.invalidated, b.seen.asked.length], [0, 0]);
  });

  it('a 401 or 403 without an access check (no way to ask) is the generic 502', async () => {
    const unauthorized = () => { throw new KubeStatusError(401, 'Unauthorized', 'Unauthorized'); };
    await assert.rejects(new KubeReplicaService(scriptedClient([unauthorized]), cacheOf(dep(1, '10')), noSleep).set('ns', 'web', 7), (e: ProblemError) => e.status === 502);
    await assert.rejects(new KubeReplicaService(scriptedClient([forbidden('x')]), cacheOf(dep(1, '10')), noSleep).set('ns', 'web', 7), (e: ProblemError) => e.status === 502 && /HTTP 403 Forbidden/.test(e.message));
  });

  it('401 is always the proxy\'s credentials: 502', async () => {
    const unauthorized = () => { throw new KubeStatusError(401, 'Unauthorized', 'Unauthorized', { message: 'Unauthorized' }); };
    await assert.rejects(new KubeReplicaService(scriptedClient([unauthorized]), cacheOf(dep(1, '10')), { ...noSleep, access: access(true) }).set('ns', 'web', 7),
      (e: ProblemError) => e.status === 502 && /rejects the proxy's credentials/.test(e.message));
  });

  it('422 from the API server: its message and field causes reach the client', async () => {
    const invalid = () => { throw new KubeStatusError(422, 'Invalid', 'x', { message: 'Scale.autoscaling "web" is invalid', causes: [{ field: 'spec.replicas', message: 'must be <= 5' }] }); };
    await assert.rejects(new KubeReplicaService(scriptedClient([invalid]), cacheOf(dep(1, '10')), noSleep).set('ns', 'web', 7),
      (e: ProblemError) => e.status === 422 && e.message === 'the API server refused the change to deployment "web" in namespace "ns": Scale.autoscaling "web" is invalid (spec.replicas: must be <= 5)');
  });
});

describe('upstreamText and admissionRefusal (the API server\'s words, without the proxy\'s identity)', () => {
  it('falls back to the status and reason when the Status has no message', () => {
    assert.equal(upstreamText(new KubeStatusError(403, 'Forbidden', 'x')), 'HTTP 403 Forbidden');
    assert.equal(upstreamText(new KubeStatusError(500, '', 'x')), 'HTTP 500');
  });
  it('adds the field causes the message does not already name, and nothing when there are none', () => {
    const causes = [{ field: 'spec.replicas', message: 'too big' }, { message: 'no field' }, { field: 'metadata.name', reason: 'FieldValueInvalid' }, { field: 'x' }];
    assert.equal(upstreamText(new KubeStatusError(422, 'Invalid', 'x', { message: 'spec.replicas: too big', causes })), 'spec.replicas: too big (metadata.name: FieldValueInvalid; x: invalid)');
    assert.equal(upstreamText(new KubeStatusError(422, 'Invalid', 'x', { message: 'bad', causes: [{ field: 'spec', message: 'in bad' }].slice(1) })), 'bad');
  });
  it('hides user names and service accounts even when the proxy\'s own name is not known', () => {
    const e = new KubeStatusError(403, 'Forbidden', 'x', { message: 'User "system:serviceaccount:a:b" cannot update; user "bob" neither; asked by system:serviceaccount:p:proxy, then' });
    assert.equal(upstreamText(e), 'User "<proxy>" cannot update; user "<proxy>" neither; asked by <proxy>, then');
    assert.equal(upstreamText(new KubeStatusError(403, 'Forbidden', 'x', { message: 'by system:serviceaccount:kube-system:proxy-sa, group system:serviceaccount:kube-system' })), 'by <proxy>, group <proxy>');
    assert.equal(upstreamText(new KubeStatusError(403, 'Forbidden', 'x', { message: 'by me-the-proxy and me-the-proxy' }), 'me-the-proxy'), 'by <proxy> and <proxy>');
  });
  it('passes a 422 on as Invalid, anything else as Forbidden, keeping the cause', () => {
    const invalid = new KubeStatusError(422, 'Invalid', 'x', { message: 'no' });
    assert.deepEqual([admissionRefusal(invalid, 'it').status, admissionRefusal(invalid, 'it').reason, admissionRefusal(invalid, 'it').message, admissionRefusal(invalid, 'it').cause], [422, 'Invalid', 'the API server refused the change to it: no', invalid]);
    const denied = new KubeStatusError(403, 'Forbidden', 'x', { message: 'no' });
    assert.deepEqual([admissionRefusal(denied, 'it').status, admissionRefusal(denied, 'it').reason], [403, 'Forbidden']);
  });
});

describe('toProblem details a client can act on', () => {
  const detail = (err: unknown): string => toProblem(err, 'deployment "web" in namespace "ns"').message;
  const cases: Array<[string, unknown, string, Record<string, string>]> = [
    ['404 names the object', new KubeStatusError(404, 'NotFound', 'x'), 'deployment "web" in namespace "ns" not found', {}],
    ['429 asks to retry after 1 s', new KubeStatusError(429, 'TooManyRequests', 'x'), 'the API server is overloaded or unavailable (HTTP 429)', { 'retry-after': '1' }],
    ['403 names the status and reason only', new KubeStatusError(403, 'Forbidden', 'secret path'), "the API server refused the proxy's request (HTTP 403 Forbidden); the proxy log has details", {}],
    ['500 without a reason', new KubeStatusError(500, '', 'x'), "the API server refused the proxy's request (HTTP 500); the proxy log has details", {}],
    ['a timeout names the bounds', new KubeTimeoutError('x'), 'the API server did not answer in time (each call is bounded at 5 s, the whole write at 10 s)', {}],
    ['unreachable names the socket error, retry after 2 s', new KubeUnreachableError('x', Object.assign(new Error('x'), { code: 'ECONNRESET' })), 'the API server is unreachable (ECONNRESET)', { 'retry-after': '2' }],
    ['unreachable without a code', new KubeUnreachableError('x'), 'the API server is unreachable (connection failed)', { 'retry-after': '2' }],
    ['the client leaving mid-write', Object.assign(new Error('aborted'), { name: 'AbortError' }), 'the client closed the connection during the write; it may or may not have been applied', {}],
    ['a bug', new TypeError('boom'), 'internal error', {}],
    ['a 504 from the API server', new KubeStatusError(504, 'Timeout', 'x'), 'the API server timed out', {}],
    ['a thrown undefined', undefined, 'internal error', {}],
  ];
  for (const [name, err, want, headers] of cases) {
    it(name, () => {
      assert.equal(detail(err), want);
      assert.deepEqual(toProblem(err, 'x').headers, headers);
    });
  }
  it('keeps the upstream error as the cause, for the log', () => {
    for (const err of [new KubeStatusError(401, '', 'x'), new KubeStatusError(500, '', 'x'), new KubeStatusError(503, '', 'x'), new KubeStatusError(504, '', 'x'), new KubeStatusError(422, '', 'x'), new KubeTimeoutError('x'), new KubeUnreachableError('x'), new TypeError('x')]) {
      assert.equal(toProblem(err, 'w').cause, err, err.message);
    }
  });
});
