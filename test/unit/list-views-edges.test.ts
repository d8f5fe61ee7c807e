import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ObjectStore } from '../../src/kube/object-store.js';
import type { NameIndex } from '../../src/kube/object-store.js';
import type { CachedDeployment } from '../../src/kube/deployments.js';
import { ListViews } from '../../src/views/list-views.js';
import { ProblemError } from '../../src/errors.js';

// Edges of the pre-serialized lists that list-views.test.ts leaves out: tags, token
// checks, page bounds, shared builds and churn.
const d = (namespace: string, name: string): CachedDeployment => ({ metadata: { name, namespace, resourceVersion: '1' }, spec: { replicas: 1 }, status: {} });
const storeOf = (items: CachedDeployment[]) => { const s = new ObjectStore<CachedDeployment>(); s.replace(items); return s; };
const token = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
const json = (b: Buffer) => JSON.parse(b.toString()) as { metadata: { continue?: string; remainingItemCount?: number }; items: Array<{ name: string; namespace: string }> };

describe('ListViews edges', () => {
  it('gives one namespace the same tag and bytes alone, in a set, or as the whole list', async () => {
    const views = new ListViews(storeOf([d('a', 'x'), d('a', 'y')]), () => '5');
    const alone = await views.list('a');
    const inSet = await views.list(new Set(['a']));
    const all = await views.list();
    assert.equal(inSet.etag, alone.etag);
    assert.equal(all.etag, alone.etag);
    assert.equal(all.body, alone.body, 'one fragment is the answer itself, not a copy');
    assert.deepEqual([all.items, all.resourceVersion], [2, '5']);
    const two = await new ListViews(storeOf([d('a', 'x'), d('b', 'y')]), () => '5').list();
    assert.notEqual(two.etag, (await new ListViews(storeOf([d('a', 'x')]), () => '5').list()).etag);
    assert.match(two.etag, /^"[A-Za-z0-9_-]{27}"$/);
  });

  it('answers an empty selection as [] with zero items', async () => {
    const views = new ListViews(storeOf([d('a', 'x')]), () => '5');
    const none = await views.list(() => false);
    assert.deepEqual([none.body.toString(), none.items], ['[]', 0]);
    const missing = await views.list('nope');
    assert.deepEqual([missing.body.toString(), missing.etag], ['[]', none.etag], 'equal bytes, equal tags');
    const emptyStore = await new ListViews(storeOf([]), () => '5').list();
    assert.deepEqual([emptyStore.body.toString(), emptyStore.items], ['[]', 0]);
  });

  it('pages: continue alone reads to the end, a token past the end is refused (never issued), every page has its own tag', async () => {
    const views = new ListViews(storeOf([d('a', '1'), d('a', '2'), d('b', '3'), d('c', '4')]), () => '7');
    const first = await views.list(undefined, { limit: 1 });
    const body = json(first.body);
    assert.deepEqual([body.items.map((i) => i.name), body.metadata.remainingItemCount, first.items, first.resourceVersion], [['1'], 3, 1, '7']);
    const rest = await views.list(undefined, { continueToken: body.metadata.continue });
    assert.deepEqual([json(rest.body).items.map((i) => i.name), json(rest.body).metadata, rest.items], [['2', '3', '4'], {}, 3]);
    const whole = await views.list(undefined, { limit: 4 });
    assert.deepEqual([json(whole.body).metadata, whole.items], [{}, 4]);
    const etagOfAll = (await views.list()).etag.slice(1, -1);
    // The last page carries no token, so a real one always points inside the list: 4 items, i = 4 or 9 was forged.
    for (const i of [4, 9]) {
      await assert.rejects(views.list(undefined, { limit: 2, continueToken: token({ v: 1, s: etagOfAll, i }) }),
        (e: ProblemError) => e.status === 400 && e.message === 'querystring.continue: not a continue token issued by this API', String(i));
    }
    assert.deepEqual(json((await views.list(undefined, { limit: 2, continueToken: token({ v: 1, s: etagOfAll, i: 3 }) })).body).items.map((x) => x.name), ['4']);
    const tags = new Set([first.etag, rest.etag, whole.etag, (await views.list(undefined, { limit: 2 })).etag, (await views.list()).etag]);
    assert.equal(tags.size, 5);
    assert.deepEqual(JSON.parse(Buffer.from(body.metadata.continue!, 'base64url').toString()), { v: 1, s: etagOfAll, i: 1, n: '' });
  });

  it('pages across fragments and build chunks, each item whole', async () => {
    const items = [...Array.from({ length: 7 }, (_, i) => d('a', `n${i}`)), ...Array.from({ length: 5 }, (_, i) => d('b', `m${i}`))];
    const views = new ListViews(storeOf(items), () => '1', { chunkItems: 3, sliceMs: 0 });
    const seen: string[] = [];
    let cont: string | undefined;
    do {
      const page = json((await views.list(undefined, { limit: 5, continueToken: cont })).body);
      seen.push(...page.items.map((i) => `${i.namespace}/${i.name}`));
      cont = page.metadata.continue;
    } while (cont);
    assert.deepEqual(seen, items.map((i) => `${i.metadata.namespace}/${i.metadata.name}`));
    assert.equal(JSON.parse((await views.list('a')).body.toString()).length, 7);
  });

  it('refuses tokens it did not issue with 400, naming the parameter', async () => {
    const views = new ListViews(storeOf([d('a', '1'), d('a', '2')]), () => '1');
    const s = (await views.list()).etag.slice(1, -1);
    for (const bad of [token(null), token({ v: 2, s, i: 1 }), token({ s, i: 1 }), token({ v: 1, s: 5, i: 1 }), token({ v: 1, s, i: 1.5 }), token({ v: 1, s, i: '1' }), token({ v: 1, s, i: -1 }), 'e30', 'not-a-token']) {
      await assert.rejects(views.list(undefined, { limit: 1, continueToken: bad }), (e: ProblemError) => e.status === 400 && e.message === 'querystring.continue: not a continue token issued by this API', bad);
    }
    assert.equal((await views.list(undefined, { limit: 1, continueToken: token({ v: 1, s, i: 0 }) })).items, 1, 'i = 0 is a token');
    await assert.rejects(views.list(undefined, { limit: 1, continueToken: token({ v: 1, s: 'other', i: 1 }) }),
      (e: ProblemError) => e.status === 410 && e.message === 'the list changed since this continue token was issued; list again without continue');
  });

  it('builds a namespace once for concurrent readers, and keeps the newest build', async () => {
    const store = storeOf([d('a', 'x')]);
    let builds = 0;
    const index: NameIndex = {
      namespaces: () => store.namespaces(), namespaceGeneration: (ns) => store.namespaceGeneration(ns), generation: () => store.generation(),
      // A build copies the names (slice()); other reads only look at them.
      names: (ns) => Object.assign([...store.names(ns)], { slice(this: string[]) { builds++; return [...this]; } }),
    };
    const views = new ListViews(index, () => '1', { sliceMs: 0 });
    const [one, two] = await Promise.all([views.list('a'), views.list('a')]);
    assert.equal(one.body, two.body);
    assert.equal(builds, 1);
    await views.list();
    assert.equal(builds, 1, 'the all-namespaces view reuses the fragment');
    store.upsert(d('a', 'y'));
    assert.deepEqual(json(Buffer.from(`{"metadata":{},"items":${(await views.list('a')).body}}`)).items.map((i) => i.name), ['x', 'y']);
    assert.equal(builds, 2);
    store.delete('a', 'x');
    store.delete('a', 'y');
    assert.equal((await views.list()).body.toString(), '[]');
    assert.equal((await views.list('a')).body.toString(), '[]');
  });

  it('under constant churn answers after three passes, with the resourceVersion of the last pass\'s start', async () => {
    const store = storeOf([d('a', 'x')]);
    let gen = 0;
    let rv = 0;
    const index: NameIndex = {
      namespaces: () => store.namespaces(), names: (ns) => store.names(ns), namespaceGeneration: (ns) => store.namespaceGeneration(ns),
      generation: () => ++gen, // a change between every two looks
    };
    const views = new ListViews(index, () => String(++rv));
    const answer = await views.list();
    assert.equal(gen, 6, 'two looks per pass, three passes');
    assert.equal(answer.resourceVersion, '3', 'the third pass started at resourceVersion 3');
    assert.equal(answer.items, 1);
    await views.list();
    assert.equal(gen, 12, 'an unstable answer is not kept as the all-namespaces view');
  });

  it('yields to the event loop with its default work slice (4 ms) while building a big namespace', async () => {
    const views = new ListViews(storeOf(Array.from({ length: 50_000 }, (_, i) => d('big', `d${i}`))), () => '1');
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const answer = await views.list();
    clearInterval(timer);
    assert.equal(answer.items, 50_000);
    assert.ok(ticks > 0, 'timers ran while the list was being built');
  });

  it('a stable answer reflects the resourceVersion at its end', async () => {
    const store = storeOf([d('a', 'x')]);
    let rv = 0;
    const views = new ListViews(store, () => String(++rv));
    assert.equal((await views.list()).resourceVersion, '2', 'read at the start and again once stable');
    assert.equal((await views.list()).resourceVersion, '3', 'a kept view answers the current resourceVersion');
  });
});
