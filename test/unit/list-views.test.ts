import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ObjectStore } from '../../src/kube/object-store.js';
import type { CachedDeployment } from '../../src/kube/deployments.js';
import { ListViews } from '../../src/views/list-views.js';
import { ProblemError } from '../../src/errors.js';

const d = (namespace: string, name: string, rv = '1', replicas = 1): CachedDeployment => ({ metadata: { name, namespace, resourceVersion: rv }, spec: { replicas }, status: {} });

function setup(items: CachedDeployment[], options = {}) {
  const store = new ObjectStore<CachedDeployment>();
  store.replace(items);
  let rv = '100';
  const views = new ListViews(store, () => rv, options);
  return { store, views, setRv: (v: string) => { rv = v; } };
}

const names = (body: Buffer): string[] => (JSON.parse(body.toString()) as Array<{ name: string; namespace: string }>).map((i) => `${i.namespace}/${i.name}`);

describe('ObjectStore name index', () => {
  it('keeps names and namespaces sorted through relists, adds and deletes', () => {
    const store = new ObjectStore<CachedDeployment>();
    store.replace([d('b', 'y'), d('a', 'z'), d('a', 'b'), d('a-b', 'x')]);
    assert.deepEqual(store.namespaces(), ['a', 'a-b', 'b']);
    assert.deepEqual(store.names('a'), ['b', 'z']);
    store.upsert(d('a', 'm'));
    store.upsert(d('0', 'first'));
    assert.deepEqual(store.names('a'), ['b', 'm', 'z']);
    assert.deepEqual(store.namespaces(), ['0', 'a', 'a-b', 'b']);
    store.delete('a-b', 'x');
    store.delete('a', 'b');
    assert.deepEqual(store.namespaces(), ['0', 'a', 'b']);
    assert.deepEqual(store.names('a'), ['m', 'z']);
  });

  it('changes a namespace generation on add and delete, but not on an update of an existing object', () => {
    const store = new ObjectStore<CachedDeployment>();
    store.replace([d('a', 'x'), d('b', 'y')]);
    const [ga, gb, g] = [store.namespaceGeneration('a'), store.namespaceGeneration('b'), store.generation()];
    store.upsert(d('a', 'x', '2', 5));
    assert.deepEqual([store.namespaceGeneration('a'), store.generation()], [ga, g], 'an update changes no list');
    store.upsert(d('a', 'new'));
    assert.notEqual(store.namespaceGeneration('a'), ga);
    assert.equal(store.namespaceGeneration('b'), gb);
    assert.notEqual(store.generation(), g);
  });
});

describe('ListViews (pre-serialized lists)', () => {
  it('serves every namespace sorted by namespace then name, and one namespace alone', async () => {
    const { views } = setup([d('b', 'x'), d('a', 'z'), d('a', 'B'), d('a', 'a')]);
    assert.deepEqual(names((await views.list()).body), ['a/B', 'a/a', 'a/z', 'b/x']);
    assert.deepEqual(names((await views.list('a')).body), ['a/B', 'a/a', 'a/z']);
    assert.deepEqual(JSON.parse((await views.list('nope')).body.toString()), []);
    assert.deepEqual(JSON.parse((await views.list()).body.toString())[0], { name: 'B', namespace: 'a' });
  });

  it('serves a subset of namespaces (a set or a predicate) as the concatenation of their fragments', async () => {
    const { views } = setup([d('a', 'x'), d('b', 'y'), d('c', 'z'), d('c', 'w')]);
    assert.deepEqual(names((await views.list(new Set(['a', 'c', 'gone']))).body), ['a/x', 'c/w', 'c/z']);
    assert.deepEqual(names((await views.list((ns) => ns !== 'a')).body), ['b/y', 'c/w', 'c/z']);
    const all = await views.list();
    const everything = await views.list(new Set(['a', 'b', 'c']));
    assert.equal(everything.etag, all.etag, 'same bytes, same tag');
    assert.deepEqual(everything.body, all.body);
  });

  it('keeps the bytes and the ETag across updates that change no name, and changes both on add and delete', async () => {
    const { store, views, setRv } = setup([d('a', 'x'), d('b', 'y')]);
    const first = await views.list();
    store.upsert(d('a', 'x', '101', 9));
    setRv('101');
    const updated = await views.list();
    assert.equal(updated.body, first.body, 'the same Buffer: nothing was rebuilt');
    assert.equal(updated.etag, first.etag);
    assert.equal(updated.resourceVersion, '101', 'the answer still reflects the newest state');
    store.upsert(d('a', 'w'));
    const added = await views.list();
    assert.notEqual(added.etag, first.etag);
    assert.deepEqual(names(added.body), ['a/w', 'a/x', 'b/y']);
    assert.equal((await views.list('b')).etag, (await setup([d('b', 'y')]).views.list('b')).etag, 'tags derive from content: equal on any replica');
    store.delete('a', 'w');
    assert.equal((await views.list()).etag, first.etag, 'back to the same content, back to the same tag');
  });

  it('rebuilds a 20,000-item namespace in slices, yielding to the event loop between them', async () => {
    const items = Array.from({ length: 20_000 }, (_, i) => d('big', `d${String(i).padStart(5, '0')}`));
    const { views } = setup(items, { sliceMs: 0, chunkItems: 1000 });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const answer = await views.list();
    clearInterval(timer);
    assert.equal(answer.items, 20_000);
    assert.equal(JSON.parse(answer.body.toString()).length, 20_000);
    assert.ok(ticks > 0, 'timers ran while the list was being built');
  });

  it('pages with limit/continue, the Kubernetes way, across namespace boundaries', async () => {
    const { views } = setup([d('a', '1'), d('a', '2'), d('b', '3'), d('c', '4'), d('c', '5')]);
    const seen: string[] = [];
    let token: string | undefined;
    const remaining: number[] = [];
    do {
      const page = await views.list(undefined, { limit: 2, continueToken: token });
      const body = JSON.parse(page.body.toString()) as { metadata: { continue?: string; remainingItemCount?: number }; items: Array<{ name: string; namespace: string }> };
      seen.push(...body.items.map((i) => `${i.namespace}/${i.name}`));
      token = body.metadata.continue;
      if (body.metadata.remainingItemCount !== undefined) remaining.push(body.metadata.remainingItemCount);
    } while (token);
    assert.deepEqual(seen, ['a/1', 'a/2', 'b/3', 'c/4', 'c/5']);
    assert.deepEqual(remaining, [3, 1]);
  });

  it('expires a continue token with 410 Expired once the list it was issued for is gone', async () => {
    const { store, views } = setup([d('a', '1'), d('a', '2'), d('a', '3')]);
    const first = JSON.parse((await views.list(undefined, { limit: 1 })).body.toString());
    store.upsert(d('a', '1', '9', 4)); // an update: same list, the token stays good
    assert.equal((await views.list(undefined, { limit: 1, continueToken: first.metadata.continue })).items, 1);
    store.upsert(d('a', '0'));
    await assert.rejects(views.list(undefined, { limit: 1, continueToken: first.metadata.continue }),
      (e: ProblemError) => e.status === 410 && e.reason === 'Expired');
  });

  it('refuses a continue token it did not issue with 400, and one issued for another namespace with 400 naming both', async () => {
    const { views } = setup([d('a', '1'), d('a', '2'), d('b', '3')]);
    for (const bad of ['not-a-token', Buffer.from('{"v":1,"s":"x","i":-1}').toString('base64url'), Buffer.from('[]').toString('base64url')]) {
      await assert.rejects(views.list(undefined, { limit: 1, continueToken: bad }), (e: ProblemError) => e.status === 400 && e.reason === 'BadRequest', bad);
    }
    const token = JSON.parse((await views.list(undefined, { limit: 1 })).body.toString()).metadata.continue;
    await assert.rejects(views.list('a', { limit: 1, continueToken: token }), (e: ProblemError) => e.status === 400
      && e.message === 'querystring.continue: this token pages the list of all namespaces, not of namespace "a"; pass the namespace it was issued with, or list again without continue');
    const ofA = JSON.parse((await views.list('a', { limit: 1 })).body.toString()).metadata.continue;
    await assert.rejects(views.list('b', { limit: 1, continueToken: ofA }), (e: ProblemError) => e.status === 400 && /list of namespace "a", not of namespace "b"/.test(e.message));
    await assert.rejects(views.list(new Set(['a', 'b']), { limit: 1, continueToken: ofA }), (e: ProblemError) => e.status === 400 && /not of all namespaces/.test(e.message));
    assert.equal((await views.list('a', { limit: 1, continueToken: ofA })).items, 1, 'its own list still takes it');
    // A token from before `n` existed is checked by the list state alone: another selection's state is 410.
    const old = Buffer.from(JSON.stringify({ v: 1, s: (await views.list()).etag.slice(1, -1), i: 1 })).toString('base64url');
    await assert.rejects(views.list('a', { limit: 1, continueToken: old }), (e: ProblemError) => e.status === 410);
    assert.equal((await views.list(undefined, { limit: 1, continueToken: old })).items, 1);
  });
});
