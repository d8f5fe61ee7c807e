import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { ProblemError, badRequest, notFound, unavailable } from '../errors.js';
import type { CacheReader } from '../kube/object-store.js';
import { specReplicas, type CachedDeployment } from '../kube/deployments.js';
import type { CacheChange } from '../kube/reflector.js';
import type { GuardrailPolicy, Guardrails } from '../kube/guardrails.js';
import { autoscalersOf, type AutoscalerView, type CachedHpa } from '../kube/hpa.js';
import { isRolledOut, rolloutOf, type DeploymentConditionView, type RolloutFields, type RolloutVerdict } from '../kube/rollout.js';
import type { ReplicasView } from '../kube/replicas.js';
import type { KnownPaths } from './unrouted.js';
import { problemResponses } from './problem-schema.js';

/** `?timeout=` when `?wait=ready` is given without one, milliseconds. */
export const DEFAULT_WAIT_MS = 60_000;
/** Longest `?timeout=` accepted, milliseconds (5 minutes). */
export const MAX_WAIT_MS = 300_000;
/** The conditions the status endpoint shows. */
const SHOWN_CONDITIONS = ['Available', 'Progressing'];

/** A cache whose changes can be followed (the Reflector). */
export interface ChangeSource<T> {
  subscribe(listener: (change: CacheChange<T>) => void): () => void;
}

/** What the scale extensions read: the Deployment and HPA caches and the guardrail policy. */
export interface ScaleExtensionDeps {
  deployments: CacheReader<CachedDeployment> & ChangeSource<CachedDeployment>;
  autoscalers: CacheReader<CachedHpa>;
  guardrails: GuardrailPolicy;
  logger?: Logger;
}

/** `GET /deployments/{namespace}/{deployment}`: one Deployment's rollout state, from the cache. */
export interface DeploymentStatusView {
  name: string;
  namespace: string;
  /** `spec.replicas`. */
  replicas: number;
  /** `metadata.generation`: compare with `status.observedGeneration`. */
  generation: number;
  status: { observedGeneration: number; replicas: number; updatedReplicas: number; readyReplicas: number; availableReplicas: number };
  /** `Available` and `Progressing`, as the API serves them; absent ones are left out. */
  conditions: DeploymentConditionView[];
  rollout: RolloutVerdict;
  /** `kubectl rollout status`'s sentence for the verdict. */
  rolloutMessage: string;
  guardrails: Guardrails;
  /** The HPA(s) targeting this Deployment; empty when none. */
  autoscalers: AutoscalerView[];
}

/** Builds the status view of a cached Deployment. */
export function statusView(d: CachedDeployment, deps: ScaleExtensionDeps): DeploymentStatusView {
  const f = d as unknown as RolloutFields;
  const st = f.status ?? {};
  const { verdict, message } = rolloutOf(f);
  const ns = d.metadata.namespace ?? '';
  return {
    name: d.metadata.name,
    namespace: ns,
    replicas: specReplicas(d),
    generation: f.metadata.generation ?? 0,
    status: {
      observedGeneration: st.observedGeneration ?? 0, replicas: st.replicas ?? 0, updatedReplicas: st.updatedReplicas ?? 0,
      readyReplicas: st.readyReplicas ?? 0, availableReplicas: st.availableReplicas ?? 0,
    },
    conditions: (st.conditions ?? []).filter((c) => SHOWN_CONDITIONS.includes(c.type)).map((c) => ({
      type: c.type, status: c.status,
      ...(c.reason !== undefined ? { reason: c.reason } : {}),
      ...(c.message !== undefined ? { message: c.message } : {}),
      ...(c.lastUpdateTime !== undefined ? { lastUpdateTime: String(c.lastUpdateTime) } : {}),
      ...(c.lastTransitionTime !== undefined ? { lastTransitionTime: String(c.lastTransitionTime) } : {}),
    })),
    rollout: verdict,
    rolloutMessage: message,
    guardrails: deps.guardrails.of(d),
    autoscalers: deps.autoscalers.hasSynced() ? autoscalersOf(deps.autoscalers, ns, d.metadata.name) : [],
  };
}

const bound = { type: 'object', required: ['replicas', 'source'], properties: { replicas: { type: 'integer' }, source: { type: 'string' } }, additionalProperties: false } as const;
const intProps = (names: string[]) => Object.fromEntries(names.map((n) => [n, { type: 'integer' }]));

/** JSON schema of {@link DeploymentStatusView} (also the 202 body of a PUT whose wait timed out). */
export const statusSchema = {
  type: 'object',
  required: ['name', 'namespace', 'replicas', 'generation', 'status', 'conditions', 'rollout', 'rolloutMessage', 'guardrails', 'autoscalers'],
  properties: {
    name: { type: 'string' }, namespace: { type: 'string' }, replicas: { type: 'integer' }, generation: { type: 'integer' },
    status: { type: 'object', properties: intProps(['observedGeneration', 'replicas', 'updatedReplicas', 'readyReplicas', 'availableReplicas']), additionalProperties: false },
    conditions: {
      type: 'array',
      items: { type: 'object', properties: Object.fromEntries(['type', 'status', 'reason', 'message', 'lastUpdateTime', 'lastTransitionTime'].map((k) => [k, { type: 'string' }])), additionalProperties: false },
    },
    rollout: { type: 'string', enum: ['Complete', 'Progressing', 'Stalled', 'ScaledToZero'] },
    rolloutMessage: { type: 'string' },
    guardrails: { type: 'object', properties: { min: bound, max: bound, problems: { type: 'array', items: { type: 'string' } } }, additionalProperties: false },
    autoscalers: {
      type: 'array',
      items: { type: 'object', properties: { name: { type: 'string' }, minReplicas: { type: 'integer' }, maxReplicas: { type: 'integer' } }, additionalProperties: false },
    },
  },
  additionalProperties: false,
} as const;

interface StatusParams { namespace: string; deployment: string }

/**
 * The PUT's extension query parameters: no type, so Fastify checks only that no other
 * parameter is given; {@link parseScaleQuery} checks their values, with its own messages.
 */
export const SCALE_QUERY = {
  type: 'object',
  properties: {
    force: { description: '(extension) true: write even though a HorizontalPodAutoscaler targets the Deployment (logged); guardrails still apply' },
    wait: { description: '(extension) ready: answer once the rollout at the new count is complete (200), or 202 with the status at timeout' },
    timeout: { description: '(extension) with wait=ready: how long to wait, e.g. 60s, 1500ms, 2m; default 60s, at most 5m' },
  },
  additionalProperties: false,
} as const;

/** The list's extension query parameter (documentation only, see {@link SCALE_QUERY}). */
export const WATCH_QUERY = {
  watch: { description: '(extension) true: a text/event-stream of ADDED/MODIFIED/DELETED events instead of the list; Last-Event-ID resumes' },
} as const;

/** The PUT's extension answers: 202 after a wait that timed out; 409 and 422 also from the checks. */
export const SCALE_RESPONSES = {
  202: { ...statusSchema, description: '(extension, wait=ready) the rollout did not complete within timeout: the current status' },
  409: {
    ...problemResponses(409)[409],
    description: 'Conflict: every retry met a concurrent change; or (extension) ManagedByAutoscaler: a HorizontalPodAutoscaler targets the Deployment (see force)',
  },
  422: {
    ...problemResponses(422)[422],
    description: 'Invalid: replicas missing, not an integer, out of range, or another property present; or (extension) outside the Deployment\'s guardrails or above --max-replicas',
  },
};

/** Options of {@link deploymentStatusRoutes}: the shared path-parameter schema and the 405 registry. */
export interface DeploymentStatusRouteOptions {
  /** Decides, before anything is read, whether the client may `get` this Deployment (throws 403/502/503 problems). */
  authorize: (req: FastifyRequest, namespace: string, name: string) => Promise<void>;
  deps: ScaleExtensionDeps;
  params: object;
  known: KnownPaths;
}

/** Extension: `GET /deployments/{namespace}/{deployment}`, the rollout status from the cache. */
export const deploymentStatusRoutes: FastifyPluginAsync<DeploymentStatusRouteOptions> = async (app, opts) => {
  app.get<{ Params: StatusParams }>('/deployments/:namespace/:deployment', {
    schema: {
      description: '(extension) One Deployment\'s rollout status from the cache, with the verdict kubectl rollout status would give, its guardrails and autoscalers.',
      params: opts.params,
      querystring: { type: 'object', properties: {}, additionalProperties: false },
      response: { 200: { ...statusSchema, description: 'the rollout status' }, ...problemResponses(400, 403, 404, 500, 502, 503) },
    },
    onRequest: async (req) => {
      const p = req.params;
      if (typeof p.namespace === 'string' && typeof p.deployment === 'string') await opts.authorize(req, p.namespace, p.deployment);
    },
  }, async (req) => statusView(cachedOr404(opts.deps, req.params.namespace, req.params.deployment), opts.deps));
  opts.known.add('/deployments/:namespace/:deployment', ['GET', 'HEAD']);
};

function cachedOr404(deps: ScaleExtensionDeps, namespace: string, name: string): CachedDeployment {
  if (!deps.deployments.hasSynced()) throw unavailable('the Deployment cache has not finished its first list from the API server yet', 1);
  const d = deps.deployments.get(namespace, name);
  if (!d) throw notFound(`deployment "${name}" not found in namespace "${namespace}"`);
  return d;
}

/** The PUT's query options (extensions): `force=true`, `wait=ready`, `timeout=60s`. */
export interface ScaleQuery {
  force: boolean;
  /** Milliseconds to wait for the rollout; undefined without `wait=ready`. */
  waitMs?: number;
}

/**
 * Parses the PUT's query. `timeout` is a whole number of `ms`, `s` or `m` (Go duration
 * style, one unit), at most {@link MAX_WAIT_MS}; it needs `wait=ready`.
 * @throws ProblemError 400 naming the parameter.
 */
export function parseScaleQuery(query: Record<string, unknown>): ScaleQuery {
  const one = (k: string): string | undefined => {
    const v = query[k];
    if (Array.isArray(v)) throw badRequest(`querystring.${k}: given more than once`);
    return v === undefined ? undefined : String(v);
  };
  const force = one('force');
  if (force !== undefined && force !== 'true' && force !== 'false') throw badRequest(`querystring.force: "${force}" must be true or false`);
  const wait = one('wait');
  if (wait !== undefined && wait !== 'ready') throw badRequest(`querystring.wait: "${wait}" is not supported; the only value is "ready"`);
  const timeout = one('timeout');
  if (timeout !== undefined && wait === undefined) throw badRequest('querystring.timeout: only meaningful with wait=ready');
  let waitMs: number | undefined;
  if (wait !== undefined) {
    waitMs = DEFAULT_WAIT_MS;
    if (timeout !== undefined) {
      const m = /^(\d{1,7})(ms|s|m)$/.exec(timeout);
      const ms = m ? Number(m[1]) * ({ ms: 1, s: 1_000, m: 60_000 } as const)[m[2] as 'ms' | 's' | 'm'] : NaN;
      if (!m || ms > MAX_WAIT_MS) throw badRequest(`querystring.timeout: "${timeout}" is not a duration such as 60s, 1500ms or 2m, up to ${MAX_WAIT_MS / 1000}s`);
      waitMs = ms;
    }
  }
  return { force: force === 'true', waitMs };
}

/**
 * Checks a PUT against the cache before anything is written: the guardrails (422 naming
 * the bound and its source), then the autoscalers (409 `ManagedByAutoscaler` naming each
 * HPA and its range; `force` skips only this check, and is logged at warn with the
 * client). A Deployment the cache does not hold is left to the write (404).
 * @throws ProblemError 422, 409, 503 (a cache not synced yet: the checks cannot be made).
 */
export function checkScale(deps: ScaleExtensionDeps, req: { namespace: string; name: string; replicas: number; force: boolean; client: string }): void {
  if (!deps.deployments.hasSynced()) throw unavailable('the Deployment cache has not finished its first list from the API server yet', 1);
  const d = deps.deployments.get(req.namespace, req.name);
  if (!d) return;
  deps.guardrails.check(d, req.replicas);
  if (!deps.autoscalers.hasSynced()) throw unavailable('the HorizontalPodAutoscaler cache has not finished its first list from the API server yet', 1);
  const hpas = autoscalersOf(deps.autoscalers, req.namespace, req.name);
  if (hpas.length === 0) return;
  const named = hpas.map((h) => `HorizontalPodAutoscaler "${h.name}" (minReplicas ${h.minReplicas}, maxReplicas ${h.maxReplicas})`).join(' and ');
  if (req.force) {
    deps.logger?.warn({ client: req.client, namespace: req.namespace, deployment: req.name, replicas: req.replicas, autoscalers: hpas.map((h) => h.name) }, 'scale forced on an autoscaled Deployment (?force=true)');
    return;
  }
  throw new ProblemError(409, 'ManagedByAutoscaler',
    `deployment "${req.name}" in namespace "${req.namespace}" is scaled by ${named}, which would override this change; change the autoscaler instead, or send ?force=true`);
}

/**
 * Holds a PUT's answer until the cached Deployment shows `replicas` and a rolled-out
 * verdict (`Complete` or `ScaledToZero`), or `waitMs` passes (then 202 with the current
 * status), or the client disconnects (then nothing is sent).
 */
export async function answerAfterRollout(deps: ScaleExtensionDeps, req: FastifyRequest, reply: FastifyReply, view: ReplicasView, waitMs: number): Promise<ReplicasView | FastifyReply> {
  const { namespace, deployment: name, replicas } = view;
  const done = (): boolean => {
    const d = deps.deployments.get(namespace, name);
    return d !== undefined && specReplicas(d) === replicas && isRolledOut(rolloutOf(d as unknown as RolloutFields).verdict);
  };
  if (!done()) {
    // On the request's own log line, also when the client gives up (status "aborted").
    req.logFields.wait = `ready, up to ${waitMs} ms`;
    const outcome = await new Promise<'done' | 'timeout' | 'gone' | 'deleted'>((resolve) => {
      const finish = (o: 'done' | 'timeout' | 'gone' | 'deleted'): void => {
        clearTimeout(timer);
        unsubscribe();
        reply.raw.off('close', onClose);
        resolve(o);
      };
      const onClose = (): void => { if (!reply.raw.writableFinished) finish('gone'); };
      const timer = setTimeout(() => finish('timeout'), waitMs);
      const unsubscribe = deps.deployments.subscribe((c) => {
        if (c.object.metadata.namespace !== namespace || c.object.metadata.name !== name) return;
        if (c.type === 'DELETED') finish('deleted');
        else if (done()) finish('done');
      });
      reply.raw.on('close', onClose);
    });
    // A client that went away stops the wait; the answer below goes nowhere.
    if (outcome === 'gone') req.log.debug({ namespace, deployment: name }, 'rollout wait stopped: the client disconnected');
    if (outcome === 'deleted') throw notFound(`deployment "${name}" in namespace "${namespace}" was deleted while waiting for its rollout`);
    if (outcome === 'timeout' || outcome === 'gone') {
      const d = deps.deployments.get(namespace, name);
      if (!d) throw notFound(`deployment "${name}" not found in namespace "${namespace}"`);
      return reply.code(202).type('application/json; charset=utf-8').send(JSON.stringify(statusView(d, deps)));
    }
  }
  return view;
}
