import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { DEFAULT_BACKOFF, Reflector, backoffDelayMs, listAll, type CacheChange, type ReflectorOptions, type ResourceSpec } from '../../src/kube/reflector.js';
import { KubeResponseTooLargeError, KubeStatusError } from '../../src/kube/kube-client.js';
import type { CachedObject } from '../../src/kube/object-store.js';
import { manualClock, scriptedKube, turn, turnsUntil, type ListHandler, type ScriptedKube } from '../helpers/scripted-kube.js';

// The reflector's loop driven through its injected clock and an in-memory client: no
// sockets, no real waits (test/unit/reflector.test.ts covers it over real HTTP). Each
// test is bounded so a mutant that stalls the loop fails in a fraction of a second.
const T = { timeout: 2_000 };

interface Thing extends CachedObject { shaped: true; spec?: { n?: number } }
/** A resource whose transform marks what it shaped, so tests can tell shaped objects from raw ones. */
const THINGS: ResourceSpec<Thing> = {
  name: 'things',
  path: '/apis/x/v1/things',
  transform: (raw) => ({ metadata: raw.metadata as Thing['metadata'], spec: raw.spec as Thing['spec'], shaped: true }),
};
const obj = (ns: string, name: string, rv: string, n = 1) => ({ metadata: { name, namespace: ns, resourceVersion: rv }, spec: { n } });
const page = (rv: string, items: unknown[], cont?: string) => ({ metadata: { resourceVersion: rv, ...(cont ? { continue: cont } : {}) }, items });

function recorder() {
  const seen: string[] = [];
  return {
    seen,
    listPage: (r: string) => { seen.push(`page ${r}`); },
    relisted: (r: string, why: string) => { seen.push(`relisted ${r} ${why}`); },
    watchStarted: (r: string) => { seen.push(`watch ${r}`); },
    event: (r: string, type: string) => { seen.push(`event ${r} ${type}`); },
    backoff: (r: string, s: number) => { seen.push(`backoff ${r} ${s}`); },
  };
}

function logCapture() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => { lines.push(JSON.parse(l) as Record<string, unknown>); } });
  return { lines, logger, msgs: () => lines.map((l) => `${l.level} ${l.msg}`) };
}

const live: Array<Reflector<Thing>> = [];
afterEach(async () => { for (const r of live.splice(0)) await r.stop(); });

function setup(list: ListHandler, options: ReflectorOptions = {}) {
  const kube = scriptedKube(list);
  const clock = manualClock();
  const rec = recorder();
  const log = logCapture();
  const r = new Reflector(kube.client, THINGS, { clock, recorder: rec, logger: log.logger, ...options });
  live.push(r);
  const watch = (i: number) => turnsUntil(`watch ${i}`, () => kube.watches[i]);
  return { kube, clock, rec, log, r, watch };
}

const lists = (kube: ScriptedKube) => kube.calls.filter((c) => c.startsWith('GET '));

describe('listAll (paginated list)', () => {
  it('asks page after page with limit and continue, keeps the extra query, shapes every item, answers the last page\'s resourceVersion', T, async () => {
    const kube = scriptedKube((q) => (q.get('continue') ? page('10', [obj('a', 'two', '6')]) : page('', [obj('a', 'one', '5')], 'p2')));
    const sizes: number[] = [];
    let pages = 0;
    const signal = new AbortController().signal;
    const got = await listAll(kube.client, THINGS, { pageSize: 2, timeoutMs: 7, signal, query: { fieldSelector: 'metadata.name=one' }, onPageSize: (n) => sizes.push(n), onPage: () => { pages++; } });
    assert.deepEqual(kube.calls, ['GET /apis/x/v1/things?fieldSelector=metadata.name%3Done&limit=2', 'GET /apis/x/v1/things?fieldSelector=metadata.name%3Done&limit=2&continue=p2']);
    assert.deepEqual(kube.requestOptions.map((o) => [o.timeoutMs, o.signal]), [[7, signal], [7, signal]]);
    assert.deepEqual([sizes, pages], [[2, 2], 2]);
    assert.deepEqual(got, { items: [THINGS.transform(obj('a', 'one', '5')), THINGS.transform(obj('a', 'two', '6'))], resourceVersion: '10' });
  });

  it('reads a page without items or metadata as an empty list at resourceVersion ""', T, async () => {
    assert.deepEqual(await listAll(scriptedKube(() => ({})).client, THINGS, { pageSize: 5, timeoutMs: 1 }), { items: [], resourceVersion: '' });
  });

  it('asks for a page that was too large again in halves, keeping its continue token and the smaller size for later pages', T, async () => {
    const kube = scriptedKube((q) => {
      if (Number(q.get('limit')) > 2) throw new KubeResponseTooLargeError('GET: response over 64 MiB', 67_108_864);
      return q.get('continue') === 'c2' ? page('9', [obj('a', 'z', '3')]) : q.get('continue') === 'c1' ? page('', [obj('a', 'y', '2')], 'c2') : page('', [obj('a', 'x', '1')], 'c1');
    });
    const log = logCapture();
    const sizes: number[] = [];
    const got = await listAll(kube.client, THINGS, { pageSize: 11, timeoutMs: 1, logger: log.logger, onPageSize: (n) => sizes.push(n) });
    assert.deepEqual(sizes, [11, 5, 2, 2, 2], '11 -> 5 -> 2 (halved, rounded down), then kept');
    assert.deepEqual(kube.calls.map((c) => new URL(c.slice(4), 'http://x').search), ['?limit=11', '?limit=5', '?limit=2', '?limit=2&continue=c1', '?limit=2&continue=c2']);
    assert.deepEqual(got.items.map((t) => t.metadata.name), ['x', 'y', 'z']);
    assert.deepEqual(log.lines.map((l) => [l.level, l.msg, l.resource, l.maxBytes, l.pageSize]), [
      [40, 'list page too large; asking for it again with a smaller page size', 'things', 67_108_864, 5],
      [40, 'list page too large; asking for it again with a smaller page size', 'things', 67_108_864, 2],
    ]);
  });

  it('gives up when a single object is too large, and passes any other failure on at once', T, async () => {
    const big = scriptedKube(() => { throw new KubeResponseTooLargeError('too large', 1); });
    await assert.rejects(listAll(big.client, THINGS, { pageSize: 3, timeoutMs: 1 }), KubeResponseTooLargeError);
    assert.deepEqual(big.calls.map((c) => new URL(c.slice(4), 'http://x').searchParams.get('limit')), ['3', '1']);
    const down = scriptedKube(() => { throw new KubeStatusError(500, 'InternalError', 'etcd down'); });
    await assert.rejects(listAll(down.client, THINGS, { pageSize: 8, timeoutMs: 1 }), /etcd down/);
    assert.equal(down.calls.length, 1);
  });
});

describe('Reflector loop (injected clock, in-memory client)', () => {
  it('lists with the defaults (500 per page, 30 s per call), then watches from the list\'s resourceVersion with bookmarks, a 5–10 min timeout and a 150 s inactivity bound', T, async () => {
    const { kube, r, watch } = setup(() => page('10', [obj('a', 'one', '5')]));
    r.start();
    const w = await watch(0);
    assert.deepEqual(kube.calls[0], 'GET /apis/x/v1/things?limit=500');
    assert.equal(kube.requestOptions[0].timeoutMs, 30_000);
    assert.ok(kube.requestOptions[0].signal instanceof AbortSignal);
    assert.equal(w.path, '/apis/x/v1/things');
    assert.deepEqual(Object.fromEntries(w.query), { watch: 'true', allowWatchBookmarks: 'true', resourceVersion: '10', timeoutSeconds: '450' });
    assert.deepEqual([w.options.inactivityMs, w.options.connectTimeoutMs, w.options.signal instanceof AbortSignal], [150_000, 30_000, true]);
    assert.equal(r.status().pageSize, 500);
  });

  it('takes page size, call bound, watch timeout range and inactivity bound from its options', T, async () => {
    const clock = manualClock(0.99);
    const { kube, r, watch } = setup(() => page('3', []), { clock, pageSize: 7, requestTimeoutMs: 9, watchTimeoutSeconds: [10, 20], inactivityMs: 11 });
    r.start();
    const w = await watch(0);
    assert.equal(kube.calls[0], 'GET /apis/x/v1/things?limit=7');
    assert.equal(kube.requestOptions[0].timeoutMs, 9);
    assert.equal(w.query.get('timeoutSeconds'), '19', '10 + (20 - 10) × 0.99, rounded down');
    assert.deepEqual([w.options.inactivityMs, w.options.connectTimeoutMs], [11, 9]);
    assert.equal(r.status().pageSize, 7);
  });

  it('reports its status before the first list, once synced, and while watching', T, async () => {
    const { r, clock, watch, rec, log } = setup(() => page('10', [obj('a', 'one', '5'), obj('b', 'two', '6')]));
    assert.deepEqual(r.status(), { resource: 'things', synced: false, watching: false, resourceVersion: '', objects: 0, lastContactMs: 0, lastError: '', lastErrorStatus: 0, failures: 0, relists: 0, pageSize: 500 });
    assert.equal(r.hasSynced(), false);
    assert.equal(r.resourceVersion(), '');
    r.start();
    await r.whenSynced;
    assert.deepEqual([r.hasSynced(), r.resourceVersion(), r.status().relists, r.status().objects, r.status().lastContactMs], [true, '10', 1, 2, clock.now()]);
    assert.deepEqual(r.index.namespaces(), ['a', 'b']);
    assert.deepEqual(r.list('a').map((t) => t.metadata.name), ['one']);
    assert.equal(r.get('b', 'two')?.shaped, true);
    const w = await watch(0);
    assert.equal(r.status().watching, false, 'not before the server accepted the watch');
    clock.advance(3);
    w.open();
    assert.deepEqual([r.status().watching, r.status().lastContactMs], [true, clock.now()]);
    assert.deepEqual(rec.seen, ['page things', 'relisted things initial', 'watch things']);
    assert.deepEqual(log.lines.map((l) => [l.level, l.msg, l.resource, l.objects, l.resourceVersion]), [[30, 'listed', 'things', 2, '10']]);
  });

  it('applies ADDED, MODIFIED, DELETED and BOOKMARK events in order, each moving the resourceVersion, and tells listeners after storing', T, async () => {
    const { r, clock, watch, rec, log } = setup(() => page('10', [obj('a', 'one', '5')]));
    const seen: string[] = [];
    r.subscribe((c: CacheChange<Thing>) => {
      assert.equal(c.object.shaped, true, 'listeners get the shaped object');
      const cached = r.get('a', c.object.metadata.name);
      seen.push(`${c.type} ${c.object.metadata.name} ${c.resourceVersion} ${cached ? cached.spec?.n : 'gone'}`);
    });
    r.start();
    const w = await watch(0);
    w.open();
    clock.advance(5);
    w.send('ADDED', obj('a', 'two', '11', 2));
    assert.equal(r.status().lastContactMs, clock.now(), 'each event is contact');
    w.send('MODIFIED', obj('a', 'one', '12', 3));
    w.send('DELETED', obj('a', 'two', '13'));
    assert.equal(r.resourceVersion(), '13');
    w.send('BOOKMARK', { metadata: { resourceVersion: '20' } });
    assert.equal(r.resourceVersion(), '20');
    w.send('BOOKMARK', { metadata: {} });
    w.send('BOOKMARK', {});
    assert.equal(r.resourceVersion(), '20', 'an event without a resourceVersion keeps the last one');
    assert.deepEqual(seen, ['ADDED one 10 1', 'ADDED two 11 2', 'MODIFIED one 12 3', 'DELETED two 13 gone']);
    assert.deepEqual(r.list('a').map((t) => [t.metadata.name, t.spec?.n]), [['one', 3]]);
    assert.deepEqual(rec.seen.filter((s) => s.startsWith('event')), ['event things ADDED', 'event things MODIFIED', 'event things DELETED', 'event things BOOKMARK', 'event things BOOKMARK', 'event things BOOKMARK']);
    assert.equal(w.closed, false);
    assert.deepEqual(log.lines.filter((l) => l.level === 50), [], 'a bookmark is no change: listeners are not called');
  });

  it('keeps going when a listener throws (logged at error), and stops telling one that unsubscribed', T, async () => {
    const { r, watch, log } = setup(() => page('1', []));
    const got: string[] = [];
    r.subscribe(() => { throw new Error('listener bug'); });
    const off = r.subscribe((c) => { got.push(c.object.metadata.name); });
    r.start();
    const w = await watch(0);
    w.send('ADDED', obj('a', 'x', '2'));
    off();
    w.send('ADDED', obj('a', 'y', '3'));
    assert.deepEqual(got, ['x']);
    assert.deepEqual(r.list('a').map((t) => t.metadata.name), ['x', 'y']);
    const errors = log.lines.filter((l) => l.level === 50);
    assert.deepEqual(errors.map((l) => [l.msg, l.resource, (l.err as { message: string }).message]), [['cache change listener failed', 'things', 'listener bug'], ['cache change listener failed', 'things', 'listener bug']]);
    assert.equal(w.closed, false);
  });

  it('relists at once on a 410 ERROR event, replacing the store and telling listeners the difference', T, async () => {
    let n = 0;
    const { r, watch, clock, rec, log, kube } = setup(() => (++n === 1
      ? page('10', [obj('ns', 'keep', '5'), obj('ns', 'same', '6'), obj('ns', 'gone', '7')])
      : page('50', [obj('ns', 'keep', '40', 3), obj('ns', 'same', '6'), obj('ns', 'new', '45')])));
    const seen: string[] = [];
    r.subscribe((c) => seen.push(`${c.type} ${c.object.metadata.name} ${c.resourceVersion}`));
    r.start();
    const w = await watch(0);
    w.open();
    w.send('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 10 (20)' });
    const w2 = await watch(1);
    assert.equal(w.closed, true);
    assert.equal(w2.query.get('resourceVersion'), '50');
    assert.deepEqual(seen.slice(3), ['MODIFIED keep 50', 'ADDED new 50', 'DELETED gone 50']);
    assert.deepEqual([r.get('ns', 'gone'), r.get('ns', 'keep')?.spec?.n], [undefined, 3]);
    assert.deepEqual(clock.sleeps, [], 'the first 410 relists without a wait');
    const s = r.status();
    assert.deepEqual([s.relists, s.failures, s.lastError, s.lastErrorStatus, s.resourceVersion], [2, 1, 'watch: too old resource version: 10 (20)', 0, '50']);
    assert.deepEqual(rec.seen.filter((x) => x.startsWith('relisted')), ['relisted things initial', 'relisted things expired']);
    assert.ok(log.lines.some((l) => l.level === 30 && l.msg === 'resourceVersion expired (410 Gone); relisting' && l.resource === 'things' && l.resourceVersion === '10'));
    assert.equal(lists(kube).length, 2);
  });

  it('backs off on a second 410 in a row (no tight relist loop), and names an expiry without a message', T, async () => {
    const { r, watch, clock, rec } = setup(() => page('10', []));
    r.start();
    (await watch(0)).send('ERROR', { code: 410 });
    assert.equal((await turnsUntil('lastError', () => r.status().lastError)), 'watch: resourceVersion expired');
    (await watch(1)).send('ERROR', { code: 410 });
    await watch(2);
    assert.deepEqual(clock.sleeps, [1600], 'counted as the second failure');
    assert.deepEqual(rec.seen.filter((x) => x.startsWith('backoff')), ['backoff things 1.6']);
  });

  it('relists on a 410 from the watch call itself (not an event), keeping its status', T, async () => {
    const { r, watch, kube } = setup(() => page('10', []));
    r.start();
    (await watch(0)).fail(new KubeStatusError(410, 'Expired', 'watch: HTTP 410'));
    await watch(1);
    assert.equal(lists(kube).length, 2);
    assert.equal(r.status().relists, 2);
  });

  it('backs off from 800 ms doubling to a 30 s cap while the list fails, never stopping, with the failure logged', T, async () => {
    const { r, clock, rec, log, kube } = setup(() => { throw new KubeStatusError(503, 'ServiceUnavailable', 'etcd down'); });
    r.start();
    await turnsUntil('9 attempts', () => lists(kube).length >= 9);
    assert.deepEqual(clock.sleeps.slice(0, 8), [800, 1600, 3200, 6400, 12_800, 25_600, 30_000, 30_000]);
    assert.deepEqual(rec.seen.slice(0, 3), ['backoff things 0.8', 'backoff things 1.6', 'backoff things 3.2']);
    const s = r.status();
    assert.deepEqual([s.synced, s.lastError, s.lastErrorStatus, s.failures >= 8], [false, 'etcd down', 503, true]);
    assert.deepEqual(log.lines.slice(0, 2).map((l) => [l.level, l.msg, l.resource, l.err, l.failures]), [[40, 'list/watch failed; backing off', 'things', 'etcd down', 1], [40, 'list/watch failed; backing off', 'things', 'etcd down', 2]]);
  });

  it('records status 0 for a failure that is no HTTP status, and clears it once a watch opens', T, async () => {
    let n = 0;
    const { r, watch } = setup(() => { if (++n === 1) throw new KubeStatusError(401, 'Unauthorized', 'no'); return page('10', []); });
    r.start();
    const w = await watch(0);
    assert.equal(r.status().lastErrorStatus, 0, 'the list that succeeded cleared the 401');
    w.fail(new KubeStatusError(500, 'InternalError', 'watch: HTTP 500'));
    const w2 = await watch(1);
    assert.equal(r.status().lastErrorStatus, 500);
    w2.open();
    assert.equal(r.status().lastErrorStatus, 0, 'an accepted watch clears it');
    w2.fail(new Error('socket hang up'));
    await watch(2);
    assert.deepEqual([r.status().lastErrorStatus, r.status().lastError, r.status().watching], [0, 'socket hang up', false]);
  });

  it('turns any other ERROR event into a failure with its code (500 when absent) and message, and an unknown event type too', T, async () => {
    const { r, watch, clock } = setup(() => page('10', []));
    r.start();
    (await watch(0)).send('ERROR', { kind: 'Status', code: 403, reason: 'Forbidden', message: 'nope' });
    await watch(1);
    assert.deepEqual([r.status().lastErrorStatus, r.status().lastError], [403, 'watch error event: nope']);
    (await watch(1)).send('ERROR', {});
    await watch(2);
    assert.deepEqual([r.status().lastErrorStatus, r.status().lastError], [500, 'watch error event: unknown']);
    (await watch(2)).send('SURPRISE', { metadata: { resourceVersion: '99' } });
    await watch(3);
    assert.deepEqual([r.status().lastErrorStatus, r.status().lastError, r.resourceVersion()], [0, 'watch: unknown event type SURPRISE', '10']);
    // Each is a failure (backed off, never relisted); an event of any type but ERROR counts as
    // progress first, so the unknown one starts the count again.
    assert.deepEqual(clock.sleeps, [800, 1600, 800]);
    assert.equal(r.status().relists, 1);
  });

  it('counts a watch that ends before 1 s as a failure, one that lasted 1 s as healthy (failures reset, no wait, no relist)', T, async () => {
    const { r, watch, clock, kube } = setup(() => page('10', []));
    r.start();
    const w = await watch(0);
    w.open();
    clock.advance(999);
    w.end();
    const w2 = await watch(1);
    assert.deepEqual([r.status().lastError, r.status().failures, clock.sleeps], ['watch ended immediately', 1, [800]]);
    w2.send('BOOKMARK', { metadata: { resourceVersion: '11' } });
    w2.fail(new Error('reset'));
    const w3 = await watch(2);
    assert.deepEqual([r.status().failures, clock.sleeps], [1, [800, 800]], 'real progress reset the count before this failure');
    clock.advance(1_000);
    w3.end();
    const w4 = await watch(3);
    assert.deepEqual([r.status().failures, clock.sleeps, r.status().lastError], [0, [800, 800], 'reset'], 'a healthy end is no error');
    assert.equal(w4.query.get('resourceVersion'), '11');
    assert.equal(lists(kube).length, 1);
  });

  it('lets an ERROR event not reset the failure count', T, async () => {
    let n = 0;
    const { r, watch, clock } = setup(() => { if (++n <= 2) throw new Error('down'); return page('10', []); });
    r.start();
    (await watch(0)).send('ERROR', { code: 500, message: 'boom' });
    await watch(1);
    assert.deepEqual(clock.sleeps, [800, 1600, 3200], 'two failed lists, then the ERROR as the third failure');
  });

  it('answers waitForResourceVersion at once when the cache is that new, waits for the list or an event otherwise, and lets each waiter go', T, async () => {
    const { r, watch } = setup(() => page('10', []));
    const early = r.waitForResourceVersion('5', 5_000);
    const later = r.waitForResourceVersion('12', 5_000);
    assert.equal(r.waitingReads, 2);
    r.start();
    assert.equal(await early, true, 'the first list reached it');
    assert.equal(r.waitingReads, 1);
    assert.equal(await r.waitForResourceVersion('10', 5_000), true);
    assert.equal(await r.waitForResourceVersion('9', 0), true, 'already there, whatever the bound');
    const w = await watch(0);
    w.send('BOOKMARK', { metadata: { resourceVersion: '11' } });
    await turn();
    assert.equal(r.waitingReads, 1, '11 is not 12');
    w.send('MODIFIED', obj('a', 'x', '12'));
    assert.equal(await later, true);
    assert.equal(r.waitingReads, 0);
  });

  it('answers waitForResourceVersion false without waiting for a zero bound or an aborted signal, and false on abort or timeout', T, async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { r } = setup(() => page('10', []));
    assert.equal(await r.waitForResourceVersion('1', 0), false, 'not synced, no time to wait');
    assert.equal(await r.waitForResourceVersion('1', -1), false);
    assert.equal(await r.waitForResourceVersion('1', 50, AbortSignal.abort()), false);
    assert.equal(r.waitingReads, 0);
    const gone = new AbortController();
    const aborted = r.waitForResourceVersion('1', 50, gone.signal);
    gone.abort();
    assert.equal(await aborted, false);
    let timedOut: boolean | undefined;
    void r.waitForResourceVersion('1', 50).then((v) => { timedOut = v; });
    t.mock.timers.tick(49);
    await turn();
    assert.equal(timedOut, undefined, 'not before 50 ms');
    t.mock.timers.tick(1);
    await turn();
    assert.equal(timedOut, false);
    assert.equal(r.waitingReads, 0);
  });

  it('starts one loop however often start() is called; stop() aborts the open watch and ends it', T, async () => {
    const { r, watch, kube, log } = setup(() => page('10', []));
    r.start();
    r.start();
    const w = await watch(0);
    w.open();
    assert.equal(lists(kube).length, 1);
    await r.stop();
    assert.equal(w.closed, true);
    const calls = kube.calls.length;
    for (let i = 0; i < 5; i++) await turn();
    assert.equal(kube.calls.length, calls, 'no request after stop');
    assert.deepEqual([r.status().watching, r.status().lastError], [false, '']);
    assert.ok(!log.msgs().some((m) => m.includes('backing off')), 'stopping is no failure');
  });

  it('stop() during a list ends the loop without counting a failure', T, async () => {
    let release!: () => void;
    const held = new Promise<void>((res) => { release = res; });
    const { r, kube, log } = setup(async () => { await held; return page('1', []); });
    r.start();
    await turnsUntil('list asked', () => kube.calls.length === 1);
    const stopped = r.stop();
    release();
    await stopped;
    assert.deepEqual([r.status().failures, r.status().lastError], [0, '']);
    assert.ok(!log.msgs().some((m) => m.includes('backing off')));
  });
});

describe('Reflector without a logger', () => {
  it('keeps going through a throwing listener and a 410 relist', T, async () => {
    let n = 0;
    const kube = scriptedKube(() => page(String(++n * 10), []));
    const r = new Reflector(kube.client, THINGS, { clock: manualClock() });
    live.push(r);
    r.subscribe(() => { throw new Error('listener bug'); });
    r.start();
    const w = await turnsUntil('watch', () => kube.watches[0]);
    w.send('ADDED', obj('a', 'x', '11'));
    assert.equal(w.closed, false);
    w.send('ERROR', { code: 410, message: 'too old' });
    const w2 = await turnsUntil('watch after the relist', () => kube.watches[1]);
    assert.equal(w2.query.get('resourceVersion'), '20');
  });
});

describe('Reflector details', () => {
  it('reports the page size it fell back to after a page that was too large', T, async () => {
    const kube = scriptedKube((q) => { if (q.get('limit') === '500') throw new KubeResponseTooLargeError('too large', 1); return page('1', []); });
    const r = new Reflector(kube.client, THINGS, { clock: manualClock() });
    live.push(r);
    r.start();
    await r.whenSynced;
    assert.equal(r.status().pageSize, 250);
  });

  it('never answers "already there" before the first list', T, async () => {
    const r = new Reflector(scriptedKube(() => page('1', [])).client, THINGS, { clock: manualClock() });
    assert.equal(await r.waitForResourceVersion('', 0), false);
  });

  it('spreads backoff delays ±25 % around 800 ms doubling, never above 30 s', () => {
    assert.equal(backoffDelayMs(DEFAULT_BACKOFF, 3, () => 0), 2400);
    assert.equal(backoffDelayMs(DEFAULT_BACKOFF, 3, () => 0.5), 3200);
    assert.equal(backoffDelayMs(DEFAULT_BACKOFF, 3, () => 1), 4000);
    assert.equal(backoffDelayMs(DEFAULT_BACKOFF, 0, () => 0.5), 800, 'failures below 1 count as the first');
    assert.equal(backoffDelayMs(DEFAULT_BACKOFF, 6, () => 1), 30_000, '25.6 s + 25 % is capped');
    assert.equal(backoffDelayMs({ initialMs: 100, maxMs: 1_000, factor: 3, jitter: 0 }, 3, () => 0.9), 900);
  });
});

describe('Reflector with its real clock (mock timers)', () => {
  it('really waits its jittered backoff before retrying, and stop() ends that wait at once', T, async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const kube = scriptedKube(() => { throw new Error('down'); });
    const before = Date.now();
    const r = new Reflector(kube.client, THINGS);
    live.push(r);
    r.start();
    await turnsUntil('first list', () => kube.calls.length === 1);
    for (let i = 0; i < 5; i++) await turn();
    t.mock.timers.tick(599);
    for (let i = 0; i < 5; i++) await turn();
    assert.equal(kube.calls.length, 1, 'the first wait is 800 ms ± 25 %: not before 600 ms');
    t.mock.timers.tick(401);
    await turnsUntil('retried by 1000 ms', () => kube.calls.length === 2);
    await turn();
    await r.stop();
    assert.equal(kube.calls.length, 2);
    assert.equal(r.status().lastContactMs, 0);
    assert.ok(Date.now() >= before);
  });

  it('stamps contact with the wall clock', T, async () => {
    const kube = scriptedKube(() => page('1', []));
    const r = new Reflector(kube.client, THINGS);
    live.push(r);
    const before = Date.now();
    r.start();
    await r.whenSynced;
    const at = r.status().lastContactMs;
    assert.ok(at >= before && at <= Date.now(), `${at} within the test's run`);
  });
});
