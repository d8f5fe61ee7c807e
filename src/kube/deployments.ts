import type { V1Deployment } from '@kubernetes/client-node';
import type { ResourceSpec } from './reflector.js';
import type { CachedObject } from './object-store.js';

/** A Deployment as cached: the API object without `metadata.managedFields`. */
export type CachedDeployment = V1DeploymentJson & CachedObject;

/** The raw-JSON shape of a Deployment (client-node's model type, with dates as strings). */
export type V1DeploymentJson = Omit<V1Deployment, 'metadata'> & {
  metadata: { name: string; namespace: string; uid?: string; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
};

/**
 * The Deployment cache registration: every Deployment in the cluster, managedFields
 * stripped before storing. controller-runtime strips them by default
 * (`TransformStripManagedFields`) because they can dominate an object's size and the
 * proxy never reads them.
 */
export const DEPLOYMENTS: ResourceSpec<CachedDeployment> = {
  name: 'deployments',
  path: '/apis/apps/v1/deployments',
  transform: (raw) => {
    const obj = raw as unknown as CachedDeployment & { metadata: { managedFields?: unknown } };
    if (obj.metadata?.managedFields !== undefined) delete obj.metadata.managedFields;
    return obj;
  },
};

/** `spec.replicas` with the API's default of 1 when unset (apps/v1 defaulting). */
export function specReplicas(d: CachedDeployment): number {
  return d.spec?.replicas ?? 1;
}
