import type { ResourceSpec } from './reflector.js';
import type { CachedObject } from './object-store.js';

/**
 * A Deployment as cached: a projection holding only what the proxy serves or will serve
 * (identity, spec.replicas and the rollout counters of `status`), not the whole object.
 * A typical Deployment is 2–8 KB of JSON; this is a few hundred bytes of heap.
 */
export interface CachedDeployment extends CachedObject {
  metadata: { name: string; namespace: string; uid?: string; resourceVersion?: string; generation?: number };
  spec: { replicas?: number };
  status: DeploymentStatusCounts;
}

/** The counters of `status` kept in the cache; absent fields are absent in the API object too. */
export interface DeploymentStatusCounts {
  observedGeneration?: number;
  replicas?: number;
  updatedReplicas?: number;
  readyReplicas?: number;
  availableReplicas?: number;
  unavailableReplicas?: number;
}

interface RawDeployment {
  metadata?: { name?: unknown; namespace?: unknown; uid?: unknown; resourceVersion?: unknown; generation?: unknown };
  spec?: { replicas?: unknown };
  status?: Record<string, unknown>;
}

const STATUS_COUNTS = ['observedGeneration', 'replicas', 'updatedReplicas', 'readyReplicas', 'availableReplicas', 'unavailableReplicas'] as const;

/** Projects a raw API Deployment onto {@link CachedDeployment}; everything else (managedFields, template, labels…) is dropped. */
export function projectDeployment(raw: Record<string, unknown>): CachedDeployment {
  const r = raw as RawDeployment;
  const m = r.metadata ?? {};
  const status: DeploymentStatusCounts = {};
  for (const k of STATUS_COUNTS) {
    const v = r.status?.[k];
    if (typeof v === 'number') status[k] = v;
  }
  return {
    metadata: {
      name: String(m.name ?? ''),
      namespace: String(m.namespace ?? ''),
      ...(typeof m.uid === 'string' ? { uid: m.uid } : {}),
      ...(typeof m.resourceVersion === 'string' ? { resourceVersion: m.resourceVersion } : {}),
      ...(typeof m.generation === 'number' ? { generation: m.generation } : {}),
    },
    spec: typeof r.spec?.replicas === 'number' ? { replicas: r.spec.replicas } : {},
    status,
  };
}

/**
 * The Deployment cache registration: every Deployment in the cluster, projected before
 * storing. controller-runtime strips managedFields by default
 * (`TransformStripManagedFields`) for the same reason: the proxy never reads them.
 */
export const DEPLOYMENTS: ResourceSpec<CachedDeployment> = {
  name: 'deployments',
  path: '/apis/apps/v1/deployments',
  transform: projectDeployment,
};

/** `spec.replicas` with the API's default of 1 when unset (apps/v1 defaulting). */
export function specReplicas(d: CachedDeployment): number {
  return d.spec?.replicas ?? 1;
}
