import type { Logger } from 'pino';
import { ProblemError } from '../errors.js';

/** Annotation a Deployment's owners set to refuse scaling below N replicas through the proxy. */
export const MIN_REPLICAS_ANNOTATION = 'k8s-api-proxy.io/min-replicas';
/** Annotation a Deployment's owners set to refuse scaling above N replicas through the proxy. */
export const MAX_REPLICAS_ANNOTATION = 'k8s-api-proxy.io/max-replicas';
/** Default of `--max-replicas`: a fat-fingered 2000 is refused; 0 turns the cap off. */
export const DEFAULT_MAX_REPLICAS = 1000;
/** Kubernetes' limit on `spec.replicas` (int32). */
const INT32_MAX = 2_147_483_647;
/** Distinct malformed annotation values remembered so each is logged once, not on every request. */
const MAX_REMEMBERED_WARNINGS = 10_000;

/** One bound and where it comes from (`annotation k8s-api-proxy.io/max-replicas` or `flag --max-replicas`). */
export interface ReplicaBound {
  replicas: number;
  source: string;
}

/** The bounds that apply to one Deployment, and the annotations that were ignored because they are malformed. */
export interface Guardrails {
  min?: ReplicaBound;
  /** Annotation max, or the `--max-replicas` cap when it is lower or no annotation is set. */
  max?: ReplicaBound;
  /** One sentence per malformed annotation (treated as absent); empty when all are well-formed. */
  problems: string[];
}

/** The metadata guardrails read: annotations only. */
export interface Annotated {
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
}

const source = (annotation: string): string => `annotation ${annotation}`;

/**
 * Reads the guardrails of Deployments and checks requested replica counts against them.
 * A malformed annotation (not a plain non-negative int32 decimal, or a min above the max)
 * is logged once per value and treated as absent: it never blocks every write.
 */
export class GuardrailPolicy {
  private readonly warned = new Set<string>();

  /** `maxReplicas`: the `--max-replicas` cap, 0 = none. */
  constructor(readonly maxReplicas: number, private readonly logger?: Logger) {}

  /** The bounds of `deployment`, from its annotations and the global cap. */
  of(deployment: Annotated): Guardrails {
    const ann = deployment.metadata.annotations ?? {};
    const problems: string[] = [];
    let min = parseBound(ann, MIN_REPLICAS_ANNOTATION, problems);
    let max = parseBound(ann, MAX_REPLICAS_ANNOTATION, problems);
    if (min !== undefined && max !== undefined && min > max) {
      problems.push(`${MIN_REPLICAS_ANNOTATION} (${min}) is above ${MAX_REPLICAS_ANNOTATION} (${max}); both are ignored`);
      min = max = undefined;
    }
    if (problems.length > 0) this.warnOnce(deployment, problems);
    const out: Guardrails = { problems };
    if (min !== undefined && min > 0) out.min = { replicas: min, source: source(MIN_REPLICAS_ANNOTATION) };
    if (max !== undefined && (this.maxReplicas === 0 || max <= this.maxReplicas)) out.max = { replicas: max, source: source(MAX_REPLICAS_ANNOTATION) };
    else if (this.maxReplicas > 0) out.max = { replicas: this.maxReplicas, source: 'flag --max-replicas' };
    return out;
  }

  /**
   * @throws ProblemError 422 `Invalid` naming the bound and its source when `replicas`
   *   is outside the guardrails of `deployment`.
   */
  check(deployment: Annotated, replicas: number): Guardrails {
    const g = this.of(deployment);
    const what = `deployment "${deployment.metadata.name}" in namespace "${deployment.metadata.namespace ?? ''}"`;
    if (g.min && replicas < g.min.replicas) {
      throw new ProblemError(422, 'Invalid', `body.replicas: ${replicas} is below the minimum of ${g.min.replicas} for ${what} (set by ${g.min.source})`);
    }
    if (g.max && replicas > g.max.replicas) {
      throw new ProblemError(422, 'Invalid', `body.replicas: ${replicas} is above the maximum of ${g.max.replicas} for ${what} (set by ${g.max.source})`);
    }
    return g;
  }

  private warnOnce(d: Annotated, problems: string[]): void {
    const key = `${d.metadata.namespace ?? ''}/${d.metadata.name}\u0000${problems.join('\u0000')}`;
    if (this.warned.has(key)) return;
    if (this.warned.size >= MAX_REMEMBERED_WARNINGS) this.warned.clear();
    this.warned.add(key);
    this.logger?.warn({ namespace: d.metadata.namespace, deployment: d.metadata.name, problems }, 'malformed replica guardrail annotation ignored');
  }
}

function parseBound(ann: Record<string, string>, key: string, problems: string[]): number | undefined {
  const raw = ann[key];
  if (raw === undefined) return undefined;
  const v = raw.trim();
  if (!/^\d{1,10}$/.test(v) || Number(v) > INT32_MAX) {
    problems.push(`${key}: ${JSON.stringify(raw.slice(0, 64))} is not a whole number of replicas between 0 and ${INT32_MAX}; ignored`);
    return undefined;
  }
  return Number(v);
}
