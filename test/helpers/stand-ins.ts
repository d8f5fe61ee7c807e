import { ObjectStore } from '../../src/kube/object-store.js';
import type { CachedDeployment } from '../../src/kube/deployments.js';
import type { ScaleAnswer } from '../../src/kube/replicas.js';
import { CachedDeploymentLists } from '../../src/views/deployment-lists.js';

/**
 * A replicas answer as {@link ReplicaService} gives it: the view, an entity tag, the
 * resourceVersion it reflects, and (for a write) `previousReplicas` (1 unless given).
 */
export function replicasAnswer(namespace: string, deployment: string, replicas: number, previousReplicas = 1, resourceVersion = '1'): ScaleAnswer {
  return { view: { namespace, deployment, replicas }, etag: `"${resourceVersion}"`, resourceVersion, previousReplicas };
}

/**
 * The real list views over a fixed set of Deployments (synced unless `synced` is false;
 * a read with a newer minResourceVersion reads through to the same items).
 */
export function listsOf(items: CachedDeployment[] = [], opts: { synced?: boolean; resourceVersion?: string } = {}): CachedDeploymentLists {
  const store = new ObjectStore<CachedDeployment>();
  store.replace(items);
  const rv = opts.resourceVersion ?? '1';
  const cache = { index: store, hasSynced: () => opts.synced ?? true, resourceVersion: () => rv, waitForResourceVersion: async () => false };
  return new CachedDeploymentLists(cache, async () => ({ items, resourceVersion: rv }), { consistencyWaitMs: 0 });
}
