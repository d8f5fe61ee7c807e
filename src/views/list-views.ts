import { createHash } from 'node:crypto';
import type { NameIndex } from '../kube/object-store.js';
import { ProblemError, badRequest } from '../errors.js';

/**
 * Which namespaces a list answer covers: one namespace, a set (e.g. the namespaces a
 * client may list), or a predicate. Absent: every namespace.
 */
export type NamespaceFilter = string | ReadonlySet<string> | ((namespace: string) => boolean);

/** A serialized list answer. */
export interface ListAnswer {
  /** UTF-8 JSON, ready to send. */
  body: Buffer;
  /** Strong entity tag, quoted (`"…"`): equal bytes give equal tags, on any replica. */
  etag: string;
  /** The cache's resourceVersion this answer reflects (the state of the cluster at or after it). */
  resourceVersion: string;
  /** Items in this answer (a page's, when paginated). */
  items: number;
}

/**
 * One namespace's list, serialized once per change of its membership: the JSON array
 * `[{"name":…,"namespace":…},…]`, sorted by name, with the byte offset of every item so
 * that a page or a concatenation with other namespaces slices it without re-serializing.
 */
interface Fragment {
  namespace: string;
  generation: number;
  body: Buffer;
  /** `offsets[k]` is where item k starts; item k ends at `offsets[k + 1] - 1` (a `,` or the closing `]`). */
  offsets: Uint32Array;
  count: number;
  /** Content hash of `body` (base64url). */
  hash: string;
}

/** An immutable list state: the fragments of the selected namespaces, in namespace order. */
interface Snapshot {
  fragments: readonly Fragment[];
  count: number;
  /** Quoted entity tag of the full (unpaginated) answer. */
  etag: string;
  resourceVersion: string;
  body?: Buffer;
}

/** Tuning of {@link ListViews}. */
export interface ListViewOptions {
  /**
   * Longest stretch of serialization work before yielding to the event loop, in
   * milliseconds; keeps `/livez` and small requests answering while a big list is rebuilt.
   */
  sliceMs?: number;
  /** Items serialized between two checks of the clock. */
  chunkItems?: number;
}

/** Default work slice: well under the 20 ms the README promises for event-loop stalls. */
export const DEFAULT_SLICE_MS = 4;
const DEFAULT_CHUNK_ITEMS = 512;
const TOKEN_VERSION = 1;
const OPEN = Buffer.from('[');
const CLOSE = Buffer.from(']');
const COMMA = Buffer.from(',');

/**
 * Pre-serialized Deployment lists. Each namespace's answer is built lazily, once per
 * change of its membership (an update of replicas or status changes no list), in
 * slices of at most `sliceMs` of work, and kept as bytes. The all-namespaces answer
 * is the concatenation of those fragments; so is any subset of namespaces
 * ({@link NamespaceFilter}), without re-sorting or re-serializing anything. Pages
 * (`limit`/`continue`) are slices of the same bytes; their continue tokens are bound
 * to the entity tag of the list state they were issued for.
 */
export class ListViews {
  private readonly fragments = new Map<string, Fragment>();
  private readonly building = new Map<string, { generation: number; done: Promise<Fragment> }>();
  private all?: { generation: number; snapshot: Snapshot };
  private readonly sliceMs: number;
  private readonly chunkItems: number;

  /**
   * @param index the store's sorted names
   * @param resourceVersion the store's current resourceVersion
   */
  constructor(private readonly index: NameIndex, private readonly resourceVersion: () => string, options: ListViewOptions = {}) {
    this.sliceMs = options.sliceMs ?? DEFAULT_SLICE_MS;
    this.chunkItems = options.chunkItems ?? DEFAULT_CHUNK_ITEMS;
  }

  /**
   * The whole list for `namespaces`, or one page of it when `limit` or `continueToken` is given.
   * @param limit items per page (≥ 1)
   * @throws ProblemError 400 (malformed token), 410 `Expired` (the list changed since the token was issued).
   */
  async list(namespaces?: NamespaceFilter, page?: { limit?: number; continueToken?: string }): Promise<ListAnswer> {
    const snap = await this.snapshot(namespaces);
    if (!page || (page.limit === undefined && page.continueToken === undefined)) {
      return { body: bodyOf(snap), etag: snap.etag, resourceVersion: snap.resourceVersion, items: snap.count };
    }
    const scope = scopeOf(namespaces);
    const start = page.continueToken === undefined ? 0 : decodeToken(page.continueToken, snap, scope);
    const limit = page.limit ?? snap.count;
    return pageOf(snap, start, limit, scope);
  }

  private async snapshot(filter?: NamespaceFilter): Promise<Snapshot> {
    const select = selector(filter);
    for (let pass = 0; ; pass++) {
      const generation = this.index.generation();
      const rv = this.resourceVersion();
      if (filter === undefined && this.all?.generation === generation) {
        bodyOf(this.all.snapshot); // memoized on the cached snapshot, so its copies share it
        return { ...this.all.snapshot, resourceVersion: rv };
      }
      const namespaces = typeof filter === 'string' ? [filter] : this.index.namespaces().filter(select);
      const fragments: Fragment[] = [];
      for (const ns of namespaces) {
        const f = await this.fragment(ns);
        if (f.count > 0) fragments.push(f);
      }
      const stable = this.index.generation() === generation;
      // Under constant churn, stop after three passes: every fragment is then at least as
      // new as the pass's start, so the answer reflects that pass's resourceVersion.
      if (!stable && pass < 2) continue;
      const snapshot: Snapshot = {
        fragments, count: fragments.reduce((n, f) => n + f.count, 0),
        etag: `"${combine(fragments.map((f) => f.hash))}"`, resourceVersion: stable ? this.resourceVersion() : rv,
      };
      if (filter === undefined && stable) {
        this.all = { generation, snapshot };
        for (const ns of this.fragments.keys()) if (this.index.names(ns).length === 0) this.fragments.delete(ns);
      }
      return snapshot;
    }
  }

  private fragment(ns: string): Fragment | Promise<Fragment> {
    const generation = this.index.namespaceGeneration(ns);
    const cached = this.fragments.get(ns);
    if (cached?.generation === generation) return cached;
    const pending = this.building.get(ns);
    if (pending?.generation === generation) return pending.done;
    // Copy the names now: the store changes its arrays in place between our slices.
    const done = this.build(ns, this.index.names(ns).slice(), generation).then((f) => {
      if (this.building.get(ns)?.done === done) this.building.delete(ns);
      if (f.count === 0) this.fragments.delete(ns);
      else if ((this.fragments.get(ns)?.generation ?? -1) < generation) this.fragments.set(ns, f);
      return f;
    });
    this.building.set(ns, { generation, done });
    return done;
  }

  private async build(ns: string, names: string[], generation: number): Promise<Fragment> {
    const nsJson = JSON.stringify(ns);
    const offsets = new Uint32Array(names.length + 1);
    const parts: Buffer[] = [OPEN];
    const hash = createHash('sha256').update(OPEN);
    let pos = 1;
    let sliceStart = performance.now();
    for (let i = 0; i < names.length;) {
      const end = Math.min(names.length, i + this.chunkItems);
      let text = '';
      for (; i < end; i++) {
        const item = `{"name":${JSON.stringify(names[i])},"namespace":${nsJson}}`;
        offsets[i] = pos;
        pos += Buffer.byteLength(item) + 1;
        text += i + 1 < names.length ? `${item},` : item;
      }
      const chunk = Buffer.from(text);
      parts.push(chunk);
      hash.update(chunk);
      if (performance.now() - sliceStart >= this.sliceMs) {
        await new Promise<void>((r) => setImmediate(r));
        sliceStart = performance.now();
      }
    }
    parts.push(CLOSE);
    hash.update(CLOSE);
    const body = Buffer.concat(parts);
    offsets[names.length] = body.length;
    return { namespace: ns, generation, body, offsets, count: names.length, hash: hash.digest('base64url').slice(0, 27) };
  }
}

function selector(filter?: NamespaceFilter): (ns: string) => boolean {
  if (filter === undefined) return () => true;
  if (typeof filter === 'string') return (ns) => ns === filter;
  if (typeof filter === 'function') return filter;
  return (ns) => filter.has(ns);
}

/** One hash naming a sequence of fragments; a single fragment keeps its own, so a namespace's tag is the same in every view. */
function combine(hashes: string[]): string {
  if (hashes.length === 1) return hashes[0];
  return createHash('sha256').update(hashes.join(' ')).digest('base64url').slice(0, 27);
}

function bodyOf(snap: Snapshot): Buffer {
  if (snap.body) return snap.body;
  if (snap.fragments.length === 1) return (snap.body = snap.fragments[0].body);
  const parts: Buffer[] = [OPEN];
  for (const [i, f] of snap.fragments.entries()) {
    if (i > 0) parts.push(COMMA);
    parts.push(f.body.subarray(1, f.body.length - 1));
  }
  parts.push(CLOSE);
  return (snap.body = Buffer.concat(parts));
}

/** Which list a continue token belongs to: one namespace's (its name), or all namespaces' (''). */
function scopeOf(filter?: NamespaceFilter): string {
  return typeof filter === 'string' ? filter : '';
}

/** Items `[start, start + limit)` of the snapshot as a Kubernetes-style list page. */
function pageOf(snap: Snapshot, start: number, limit: number, scope: string): ListAnswer {
  const end = Math.min(snap.count, start + limit);
  const items: Buffer[] = [];
  let base = 0;
  for (const f of snap.fragments) {
    const from = Math.max(start - base, 0);
    const to = Math.min(end - base, f.count);
    if (from < to) {
      if (items.length > 0) items.push(COMMA);
      items.push(f.body.subarray(f.offsets[from], f.offsets[to] - 1));
    }
    base += f.count;
    if (base >= end) break;
  }
  const remaining = snap.count - end;
  const metadata = remaining > 0 ? `{"continue":${JSON.stringify(encodeToken(snap.etag, end, scope))},"remainingItemCount":${remaining}}` : '{}';
  const body = Buffer.concat([Buffer.from(`{"metadata":${metadata},"items":[`), ...items, Buffer.from(']}')]);
  const etag = `"${createHash('sha256').update(`${snap.etag} ${start} ${limit}`).digest('base64url').slice(0, 27)}"`;
  return { body, etag, resourceVersion: snap.resourceVersion, items: Math.max(0, end - start) };
}

/**
 * An opaque continue token: the list state's tag, the index of the next item and the list
 * it belongs to (`n`: a namespace, or '' for all), as base64url JSON (kube-apiserver's are
 * base64 JSON). Tokens without `n` (issued before it existed) are checked by the tag alone.
 */
function encodeToken(etag: string, next: number, scope: string): string {
  return Buffer.from(JSON.stringify({ v: TOKEN_VERSION, s: etag.slice(1, -1), i: next, n: scope })).toString('base64url');
}

/**
 * The index of the next item named by `token`, a token of `snap`'s list state for `scope`.
 * @throws ProblemError 400 (not a token this API issued; another scope's), 410 `Expired` (another state's).
 */
function decodeToken(token: string, snap: Pick<Snapshot, 'etag' | 'count'>, scope: string): number {
  const notIssued = (): ProblemError => badRequest('querystring.continue: not a continue token issued by this API');
  let t: { v?: unknown; s?: unknown; i?: unknown; n?: unknown };
  try {
    t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as typeof t;
  } catch {
    throw notIssued();
  }
  if (t?.v !== TOKEN_VERSION || typeof t.s !== 'string' || !Number.isSafeInteger(t.i) || (t.i as number) < 0) throw notIssued();
  if (typeof t.n === 'string' && t.n !== scope) {
    const of = (n: string): string => (n === '' ? 'all namespaces' : `namespace "${n}"`);
    throw badRequest(`querystring.continue: this token pages the list of ${of(t.n)}, not of ${of(scope)}; pass the namespace it was issued with, or list again without continue`);
  }
  if (`"${t.s}"` !== snap.etag) {
    throw new ProblemError(410, 'Expired', 'the list changed since this continue token was issued; list again without continue');
  }
  // The last page carries no token: one this API issued for this state points inside it.
  if ((t.i as number) >= snap.count) throw notIssued();
  return t.i as number;
}
