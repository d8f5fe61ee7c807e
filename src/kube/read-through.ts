import type { KubeClient } from './kube-client.js';
import { DEPLOYMENTS, type CachedDeployment } from './deployments.js';
import { DEFAULT_PAGE_SIZE, listAll } from './reflector.js';
import { toProblem } from './replicas.js';

/** Bound on each page of a read-through list, milliseconds. */
export const READ_THROUGH_TIMEOUT_MS = 5_000;

/**
 * A consistent (quorum) list of Deployments straight from the API server, for reads
 * that asked for a newer state than the cache holds. Failures are problem errors
 * (502/503/504), never 404.
 */
export function deploymentReadThrough(client: KubeClient): (namespace: string | undefined, signal?: AbortSignal) => Promise<{ items: CachedDeployment[]; resourceVersion: string }> {
  return async (namespace, signal) => {
    const path = namespace === undefined ? DEPLOYMENTS.path : `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/deployments`;
    try {
      return await listAll(client, { ...DEPLOYMENTS, path }, { pageSize: DEFAULT_PAGE_SIZE, timeoutMs: READ_THROUGH_TIMEOUT_MS, signal });
    } catch (err) {
      throw toProblem(err, namespace === undefined ? 'the Deployment list' : `the Deployments of namespace "${namespace}"`);
    }
  };
}
