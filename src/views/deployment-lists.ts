import type { Logger } from 'pino';
import { ObjectStore, type NameIndex } from '../kube/object-store.js';
import type { ResourceVersionSource } from '../kube/reflector.js';
import type { CachedDeployment } from '../kube/deployments.js';
import { rvAtLeast } from '../kube/resource-version.js';
import { unavailable } from '../errors.js';
import { SingleFlight } from '../kube/single-flight.js';
import { ListViews, type ListAnswer, type ListViewOptions, type NamespaceFilter } from './list-views.js';

export type { ListAnswer, NamespaceFilter };

/** One `GET /deployments` as the route understood it. */
export interface ListQuery {
  /** One namespace, the namespaces a client may list, or (absent) all. */
  namespaces?: NamespaceFilter;
  /** Items per page (≥ 1); with it (or `continueToken`) the answer is a list page. */
  limit?: number;
  continueToken?: string;
  /** Answer from a state at least this new (read-your-writes across replicas). */
  minResourceVersion?: string;
  /** Aborts a consistency wait or read-through when the client has gone. */
  signal?: AbortSignal;
}

/** What the list route reads from. */
export interface DeploymentLists {
  /** Whether the cache has finished its first list (before that, {@link list} answers 503). */
  hasSynced(): boolean;
  /** The namespaces holding at least one cached Deployment, sorted (to decide which a client may see). */
  namespaces(): string[];
  /**
   * The serialized answer for `query`.
   * @throws ProblemError 503 (cache not synced), 400 (malformed continue token), 410 `Expired`
   *   (continue token of a list state that is gone), 502/503/504 (read-through failed).
   */
  list(query: ListQuery): Promise<ListAnswer>;
}

/** A consistent read from the API server, for when the cache is behind: every Deployment of `namespace` (or all), and the list's resourceVersion. */
export type ListReadThrough = (namespace: string | undefined, signal?: AbortSignal) => Promise<{ items: CachedDeployment[]; resourceVersion: string }>;

/** The cache a {@link CachedDeploymentLists} serves from. */
export interface ListSource extends ResourceVersionSource {
  hasSynced(): boolean;
  readonly index: NameIndex;
}

/** Options of {@link CachedDeploymentLists}. */
export interface DeploymentListsOptions {
  /** How long a read with `minResourceVersion` waits for the cache before reading through, milliseconds. */
  consistencyWaitMs: number;
  views?: ListViewOptions;
  logger?: Logger;
}

/**
 * Lists from the pre-serialized views of the watch-fed cache. A query with
 * `minResourceVersion` newer than the cache waits (bounded by `consistencyWaitMs`) for
 * the watch to deliver it, else reads through from the API server with a consistent
 * (quorum) list, so it never answers older than asked and never 504s for the wait.
 */
export class CachedDeploymentLists implements DeploymentLists {
  readonly views: ListViews;
  /** Answers that read through because the cache stayed behind; for tests and logs. */
  readThroughs = 0;
  /**
   * Read-throughs of one scope (a namespace, or all) share one upstream list: a client
   * repeating a `minResourceVersion` the cluster has not reached cannot turn each of its
   * requests into a cluster-wide list on the API server.
   */
  readonly flights = new SingleFlight<{ items: CachedDeployment[]; resourceVersion: string }>();

  constructor(private readonly cache: ListSource, private readonly readThrough: ListReadThrough, private readonly options: DeploymentListsOptions) {
    this.views = new ListViews(cache.index, () => cache.resourceVersion(), options.views);
  }

  hasSynced(): boolean {
    return this.cache.hasSynced();
  }

  namespaces(): string[] {
    // A copy: the store changes its array in place, and the caller awaits between batches.
    return this.cache.index.namespaces().slice();
  }

  async list(q: ListQuery): Promise<ListAnswer> {
    if (!this.cache.hasSynced()) throw unavailable('the Deployment cache has not finished its first list from the API server yet', 1);
    const page = { limit: q.limit, continueToken: q.continueToken };
    const min = q.minResourceVersion;
    // Taken in the tick the request arrived in, and only when it may go upstream.
    const arrived = min !== undefined ? performance.now() : 0;
    if (min !== undefined && !rvAtLeast(this.cache.resourceVersion(), min)
      && !(await this.cache.waitForResourceVersion(min, this.options.consistencyWaitMs, q.signal))) {
      this.readThroughs++;
      this.options.logger?.info({ minResourceVersion: min, cached: this.cache.resourceVersion(), waitedMs: this.options.consistencyWaitMs }, 'cache behind minResourceVersion; reading through');
      const scope = typeof q.namespaces === 'string' ? q.namespaces : undefined;
      const { items, resourceVersion } = await this.flights.run(scope ?? '', () => this.readThrough(scope), q.signal, arrived);
      const store = new ObjectStore<CachedDeployment>();
      store.replace(items);
      return new ListViews(store, () => resourceVersion, this.options.views).list(q.namespaces, page);
    }
    return this.views.list(q.namespaces, page);
  }
}
