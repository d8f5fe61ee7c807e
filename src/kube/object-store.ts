/** The metadata every cached object carries. */
export interface CachedObject {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
}

/** Read access to a cache: what routes see. Never exposes the informer's lifecycle. */
export interface CacheReader<T extends CachedObject> {
  /** The object `namespace/name`, or undefined when the cache has none. Returned objects are frozen. */
  get(namespace: string, name: string): T | undefined;
  /** Every object, or one namespace's, in insertion order (callers sort). Uses the namespace index. */
  list(namespace?: string): T[];
  /** True once the first list has been stored. */
  hasSynced(): boolean;
}

/**
 * The sorted name index of a store, for views that serialize lists once per change
 * (src/views/). Names only change on add and delete, so an update of an object's
 * status or replicas leaves every generation, and so every serialized list, as it was.
 */
export interface NameIndex {
  /** Namespaces that hold at least one object, sorted (UTF-16 code unit order, which is byte order for Kubernetes names). */
  namespaces(): readonly string[];
  /**
   * The object names of `namespace`, sorted. The array is the store's own and changes in
   * place on add and delete: copy it (`slice()`) before any await.
   */
  names(namespace: string): readonly string[];
  /** Changes whenever an object is added to or removed from `namespace` (and after a relist). */
  namespaceGeneration(namespace: string): number;
  /** Changes whenever any namespace's membership changes. */
  generation(): number;
}

/**
 * Objects indexed by namespace, then name: one namespace's list reads one map, not the
 * whole cluster (controller-runtime gives every informer the same namespace index).
 * Stored objects are deep-frozen so a caller cannot change the cache by accident.
 * Beside the maps it keeps each namespace's names sorted (binary insertion on add), so
 * a list view never sorts the whole cluster per request.
 */
export class ObjectStore<T extends CachedObject> implements NameIndex {
  private readonly byNamespace = new Map<string, Map<string, T>>();
  private readonly sortedNames = new Map<string, string[]>();
  private readonly nsGenerations = new Map<string, number>();
  private sortedNamespaces: string[] = [];
  private count = 0;
  private gen = 0;

  get size(): number {
    return this.count;
  }

  get(namespace: string, name: string): T | undefined {
    return this.byNamespace.get(namespace)?.get(name);
  }

  list(namespace?: string): T[] {
    if (namespace !== undefined) return [...(this.byNamespace.get(namespace)?.values() ?? [])];
    const out: T[] = [];
    for (const objects of this.byNamespace.values()) out.push(...objects.values());
    return out;
  }

  namespaces(): readonly string[] {
    return this.sortedNamespaces;
  }

  names(namespace: string): readonly string[] {
    return this.sortedNames.get(namespace) ?? EMPTY;
  }

  namespaceGeneration(namespace: string): number {
    return this.nsGenerations.get(namespace) ?? 0;
  }

  generation(): number {
    return this.gen;
  }

  upsert(obj: T): void {
    const ns = obj.metadata.namespace ?? '';
    let objects = this.byNamespace.get(ns);
    if (!objects) {
      this.byNamespace.set(ns, (objects = new Map()));
      this.sortedNames.set(ns, []);
      insertSorted(this.sortedNamespaces, ns);
    }
    if (!objects.has(obj.metadata.name)) {
      this.count++;
      insertSorted(this.sortedNames.get(ns)!, obj.metadata.name);
      this.touch(ns);
    }
    objects.set(obj.metadata.name, deepFreeze(obj));
  }

  delete(namespace: string, name: string): void {
    const objects = this.byNamespace.get(namespace);
    if (!objects?.delete(name)) return;
    this.count--;
    if (objects.size === 0) {
      this.byNamespace.delete(namespace);
      this.sortedNames.delete(namespace);
      this.sortedNamespaces.splice(lowerBound(this.sortedNamespaces, namespace), 1);
    } else {
      const names = this.sortedNames.get(namespace)!;
      names.splice(lowerBound(names, name), 1);
    }
    this.touch(namespace);
  }

  /** Replaces the whole content (after a relist): objects absent from `items` disappear. */
  replace(items: T[]): void {
    for (const ns of this.byNamespace.keys()) this.touch(ns);
    this.byNamespace.clear();
    this.sortedNames.clear();
    this.count = 0;
    // kube-apiserver lists in key order, so names usually arrive sorted per namespace:
    // append, and sort only a namespace that arrived out of order.
    const unsorted = new Set<string>();
    for (const item of items) {
      const ns = item.metadata.namespace ?? '';
      let objects = this.byNamespace.get(ns);
      let names = this.sortedNames.get(ns);
      if (!objects || !names) {
        this.byNamespace.set(ns, (objects = new Map()));
        this.sortedNames.set(ns, (names = []));
      }
      if (!objects.has(item.metadata.name)) {
        this.count++;
        if (names.length > 0 && names[names.length - 1] >= item.metadata.name) unsorted.add(ns);
        names.push(item.metadata.name);
      }
      objects.set(item.metadata.name, deepFreeze(item));
    }
    for (const ns of unsorted) this.sortedNames.set(ns, [...new Set(this.sortedNames.get(ns))].sort());
    this.sortedNamespaces = [...this.byNamespace.keys()].sort();
    for (const ns of this.byNamespace.keys()) this.touch(ns);
  }

  private touch(namespace: string): void {
    this.gen++;
    this.nsGenerations.set(namespace, this.gen);
  }
}

const EMPTY: readonly string[] = Object.freeze([]);

/** First index whose element is >= `value` in the sorted array `xs`. */
function lowerBound(xs: readonly string[], value: string): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function insertSorted(xs: string[], value: string): void {
  xs.splice(lowerBound(xs, value), 0, value);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
