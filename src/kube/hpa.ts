import type { ResourceSpec } from './reflector.js';
import type { CacheReader, CachedObject } from './object-store.js';

/**
 * A HorizontalPodAutoscaler as cached: a projection of what the proxy needs to know
 * whether a Deployment is autoscaled (its target and range), nothing else.
 */
export interface CachedHpa extends CachedObject {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: { scaleTargetRef: { apiVersion: string; kind: string; name: string }; minReplicas: number; maxReplicas: number };
}

/** What a PUT and the status endpoint say about an autoscaler. */
export interface AutoscalerView {
  name: string;
  minReplicas: number;
  maxReplicas: number;
}

interface RawHpa {
  metadata?: { name?: unknown; namespace?: unknown; resourceVersion?: unknown };
  spec?: { scaleTargetRef?: { apiVersion?: unknown; kind?: unknown; name?: unknown }; minReplicas?: unknown; maxReplicas?: unknown };
}

/** Projects a raw `autoscaling/v2` HPA; `minReplicas` defaults to 1 as the API does. */
export function projectHpa(raw: Record<string, unknown>): CachedHpa {
  const r = raw as RawHpa;
  const ref = r.spec?.scaleTargetRef ?? {};
  return {
    metadata: {
      name: String(r.metadata?.name ?? ''),
      namespace: String(r.metadata?.namespace ?? ''),
      ...(typeof r.metadata?.resourceVersion === 'string' ? { resourceVersion: r.metadata.resourceVersion } : {}),
    },
    spec: {
      scaleTargetRef: { apiVersion: String(ref.apiVersion ?? ''), kind: String(ref.kind ?? ''), name: String(ref.name ?? '') },
      minReplicas: typeof r.spec?.minReplicas === 'number' ? r.spec.minReplicas : 1,
      maxReplicas: typeof r.spec?.maxReplicas === 'number' ? r.spec.maxReplicas : 0,
    },
  };
}

/**
 * The HPA cache registration: every `autoscaling/v2` HorizontalPodAutoscaler, through
 * the same reflector as Deployments (one more registration, not a copy).
 */
export const HORIZONTAL_POD_AUTOSCALERS: ResourceSpec<CachedHpa> = {
  name: 'horizontalpodautoscalers',
  path: '/apis/autoscaling/v2/horizontalpodautoscalers',
  transform: projectHpa,
};

/**
 * The HPAs whose `scaleTargetRef` names Deployment `name` in `namespace`, sorted by name.
 * A target apiVersion of `apps/<any>` or `extensions/<any>` counts (the HPA controller
 * resolves the kind through the scale subresource of whatever group it names); more than
 * one is a misconfiguration the HPA controller itself reports (`AmbiguousSelector`).
 */
export function autoscalersOf(hpas: CacheReader<CachedHpa>, namespace: string, name: string): AutoscalerView[] {
  return hpas.list(namespace)
    .filter((h) => h.spec.scaleTargetRef.kind === 'Deployment' && h.spec.scaleTargetRef.name === name
      && /^(apps|extensions)\//.test(h.spec.scaleTargetRef.apiVersion))
    .map((h) => ({ name: h.metadata.name, minReplicas: h.spec.minReplicas, maxReplicas: h.spec.maxReplicas }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
