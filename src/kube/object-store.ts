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
 * Objects indexed by namespace, then name: one namespace's list reads one map, not the
 * whole cluster (controller-runtime gives every informer the same namespace index).
 * Stored objects are deep-frozen so a caller cannot change the cache by accident.
 */
export class ObjectStore<T extends CachedObject> {
  private readonly byNamespace = new Map<string, Map<string, T>>();
  private count = 0;

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

  upsert(obj: T): void {
    const ns = obj.metadata.namespace ?? '';
    let objects = this.byNamespace.get(ns);
    if (!objects) this.byNamespace.set(ns, (objects = new Map()));
    if (!objects.has(obj.metadata.name)) this.count++;
    objects.set(obj.metadata.name, deepFreeze(obj));
  }

  delete(namespace: string, name: string): void {
    const objects = this.byNamespace.get(namespace);
    if (objects?.delete(name)) {
      this.count--;
      if (objects.size === 0) this.byNamespace.delete(namespace);
    }
  }

  /** Replaces the whole content (after a relist): objects absent from `items` disappear. */
  replace(items: T[]): void {
    this.byNamespace.clear();
    this.count = 0;
    for (const item of items) this.upsert(item);
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
