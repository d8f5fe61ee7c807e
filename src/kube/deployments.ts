import type { ResourceSpec } from './reflector.js';
import type { CachedObject } from './object-store.js';
import type { DeploymentConditionView } from './rollout.js';

/**
 * A Deployment as cached: a projection holding only what the proxy serves (identity,
 * spec.replicas, the rollout counters and the `Available`/`Progressing` conditions of
 * `status` for the status endpoint, and the proxy's own `k8s-api-proxy.io/` annotations
 * for the guardrails), not the whole object. A typical Deployment is 2–8 KB of JSON;
 * this is a few hundred bytes of heap.
 */
export interface CachedDeployment extends CachedObject {
  metadata: { name: string; namespace: string; uid?: string; resourceVersion?: string; generation?: number; annotations?: Record<string, string> };
  spec: { replicas?: number };
  status: DeploymentStatusCounts & { conditions?: DeploymentConditionView[] };
}

/** Annotations kept in the cache: the proxy's own (guardrails); all others are dropped. */
export const KEPT_ANNOTATION_PREFIX = 'k8s-api-proxy.io/';
/** Conditions kept in the cache: those the status endpoint and the rollout verdict read. */
export const KEPT_CONDITIONS: readonly string[] = ['Available', 'Progressing'];
const CONDITION_FIELDS = ['reason', 'message', 'lastUpdateTime', 'lastTransitionTime'] as const;

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
  metadata?: { name?: unknown; namespace?: unknown; uid?: unknown; resourceVersion?: unknown; generation?: unknown; annotations?: unknown };
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
  const conditions = projectConditions(r.status?.conditions);
  const annotations = keptAnnotations(m.annotations);
  return {
    metadata: {
      name: String(m.name ?? ''),
      namespace: String(m.namespace ?? ''),
      ...(typeof m.uid === 'string' ? { uid: m.uid } : {}),
      ...(typeof m.resourceVersion === 'string' ? { resourceVersion: m.resourceVersion } : {}),
      ...(typeof m.generation === 'number' ? { generation: m.generation } : {}),
      ...(annotations ? { annotations } : {}),
    },
    spec: typeof r.spec?.replicas === 'number' ? { replicas: r.spec.replicas } : {},
    status: conditions ? { ...status, conditions } : status,
  };
}

function keptAnnotations(raw: unknown): Record<string, string> | undefined {
  if (!raw || typeof raw !== 'object') return undefined;
  let kept: Record<string, string> | undefined;
  for (const [k, v] of Object.entries(raw)) {
    if (k.startsWith(KEPT_ANNOTATION_PREFIX) && typeof v === 'string') (kept ??= {})[k] = v;
  }
  return kept;
}

function projectConditions(raw: unknown): DeploymentConditionView[] | undefined {
  if (!Array.isArray(raw)) return undefined;
  const out: DeploymentConditionView[] = [];
  for (const c of raw as Record<string, unknown>[]) {
    if (!c || typeof c.type !== 'string' || !KEPT_CONDITIONS.includes(c.type) || typeof c.status !== 'string') continue;
    const view: DeploymentConditionView = { type: c.type, status: c.status };
    for (const f of CONDITION_FIELDS) if (typeof c[f] === 'string') view[f] = c[f];
    out.push(view);
  }
  return out.length > 0 ? out : undefined;
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
