import type { FastifyPluginAsync } from 'fastify';
import { ProblemError, badRequest, unavailable } from '../errors.js';
import { numberSource } from '../json-numbers.js';
import type { CacheReader } from '../kube/object-store.js';
import type { CachedDeployment } from '../kube/deployments.js';
import type { ReplicaService } from '../kube/replicas.js';
import type { KnownPaths } from './unrouted.js';
import { problemResponses } from './problem-schema.js';
import type { Authorizer, ResourceAttributes } from '../authz/authorizer.js';
import type { AuditSink } from '../audit/audit-log.js';
import { ANNOTATIONS } from '../audit/audit-event.js';
import { RouteAuthorization } from './authorization.js';
import { serveWatch, wantsWatch, type WatchDeps } from './watch.js';
import { SCALE_QUERY, SCALE_RESPONSES, WATCH_QUERY, answerAfterRollout, checkScale, deploymentStatusRoutes, parseScaleQuery, type ScaleExtensionDeps } from './deployment-status.js';

/** Kubernetes' limit on `spec.replicas` (int32). */
export const MAX_REPLICAS = 2_147_483_647;

/** DNS-1123 label: namespaces (https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#dns-label-names). */
export const DNS1123_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
/** DNS-1123 subdomain: Deployment names (same page, #dns-subdomain-names). */
export const DNS1123_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
const DNS1123_LABEL_RE = new RegExp(DNS1123_LABEL);
const DNS1123_SUBDOMAIN_RE = new RegExp(DNS1123_SUBDOMAIN);

/** What the Deployment routes read from (cache), write through (service), ask (authorizer), record to (audit) and register 405s in. */
export interface DeploymentRouteOptions {
  deployments: CacheReader<CachedDeployment>;
  replicas: ReplicaService;
  authorizer: Authorizer;
  audit: AuditSink;
  known: KnownPaths;
  /** Extensions (guardrails, autoscalers, rollout status and waits); without them the RFD's endpoints only. */
  scale?: ScaleExtensionDeps;
  /** Extension: `?watch=true` change stream; without it `watch` is ignored. */
  watch?: WatchDeps;
}

/** The RBAC resource every Deployment endpoint is authorized against. */
const DEPLOYMENTS = { group: 'apps', resource: 'deployments' } as const;

const replicasView = {
  type: 'object',
  required: ['deployment', 'namespace', 'replicas'],
  properties: { deployment: { type: 'string' }, namespace: { type: 'string' }, replicas: { type: 'integer' } },
  additionalProperties: false,
} as const;

const params = {
  type: 'object',
  required: ['namespace', 'deployment'],
  properties: {
    namespace: { type: 'string', maxLength: 63, pattern: DNS1123_LABEL },
    deployment: { type: 'string', maxLength: 253, pattern: DNS1123_SUBDOMAIN },
  },
} as const;

const listSchema = {
  querystring: { type: 'object', properties: { namespace: {}, ...WATCH_QUERY } },
  response: {
    200: {
      description: 'Deployments, sorted by namespace, then name',
      type: 'array',
      items: {
        type: 'object', required: ['name', 'namespace'],
        properties: { name: { type: 'string' }, namespace: { type: 'string' } }, additionalProperties: false,
      },
    },
    ...problemResponses(400, 403, 500, 502, 503),
  },
};

interface ReplicasParams { namespace: string; deployment: string }
const REPLICAS_PATH = '/deployments/:namespace/:deployment/replicas';

/** `get`/`update` on `apps/deployments/scale` of one Deployment: what kube-apiserver checks for the same scale call. */
const scaleAttributes = (verb: 'get' | 'update', p: ReplicasParams): ResourceAttributes =>
  ({ verb, ...DEPLOYMENTS, subresource: 'scale', namespace: p.namespace, name: p.deployment });

/** Syntactically invalid names are answered 400 by the schema, without asking anyone. */
const validParams = (p: ReplicasParams): boolean =>
  p.namespace.length <= 63 && DNS1123_LABEL_RE.test(p.namespace) && p.deployment.length <= 253 && DNS1123_SUBDOMAIN_RE.test(p.deployment);

/**
 * RFD 0001's Deployment endpoints. Reads come from the watch-fed cache only;
 * the PUT goes to the API server through {@link ReplicaService}.
 */
export const deploymentRoutes: FastifyPluginAsync<DeploymentRouteOptions> = async (app, opts) => {
  const authz = new RouteAuthorization(opts.authorizer, opts.audit);
  // Every PUT is audited, also one refused before this plugin's hooks ran (rate limit).
  authz.register(app, (req) => (req.method === 'PUT' && req.routeOptions.url === REPLICAS_PATH
    ? scaleAttributes('update', req.params as ReplicasParams) : undefined));
  const notSynced = () => unavailable('the Deployment cache has not finished its first list from the API server yet', 1);

  app.get<{ Querystring: { namespace?: unknown } }>('/deployments', { schema: listSchema }, async (req, reply) => {
    const ns = req.query.namespace;
    if (Array.isArray(ns)) throw badRequest('querystring.namespace: given more than once; pass one namespace or none');
    if (ns !== undefined && (typeof ns !== 'string' || ns.length > 63 || !DNS1123_LABEL_RE.test(ns))) {
      throw badRequest(`querystring.namespace: "${String(ns)}" is not a valid namespace (a DNS-1123 label: lowercase letters, digits and '-', at most 63 characters)`);
    }
    let visible: 'all' | Set<string>;
    if (ns !== undefined) {
      await authz.require(req, { verb: 'list', ...DEPLOYMENTS, namespace: ns });
      visible = new Set([ns]);
    } else {
      // All namespaces: everything for a cluster-wide lister, else only the namespaces
      // (present in the cache) where the user may list; never a 403.
      visible = await authz.visibleNamespaces(req, { verb: 'list', ...DEPLOYMENTS }, () => opts.deployments.list().map((d) => d.metadata.namespace));
    }
    if (!opts.deployments.hasSynced()) throw notSynced();
    // The change stream is filtered exactly like the list. For a client without cluster-wide
    // rights the namespaces are those decided at connect time (a namespace created later is
    // not added: fail closed; reconnect to see it).
    if (opts.watch && wantsWatch((req.query as Record<string, unknown>).watch)) {
      return serveWatch(opts.watch, req, reply, (n) => visible === 'all' || visible.has(n));
    }
    const items = visible === 'all' ? opts.deployments.list() : [...visible].flatMap((n) => opts.deployments.list(n));
    return items
      .map((d) => ({ name: d.metadata.name, namespace: d.metadata.namespace }))
      .sort((a, b) => cmp(a.namespace, b.namespace) || cmp(a.name, b.name));
  });

  app.get<{ Params: ReplicasParams }>(REPLICAS_PATH, {
    schema: { params, response: { 200: { ...replicasView, description: 'spec.replicas, from the cache' }, ...problemResponses(400, 403, 404, 500, 502, 503) } },
    onRequest: async (req) => {
      if (validParams(req.params)) await authz.require(req, scaleAttributes('get', req.params));
    },
  }, async (req) => opts.replicas.get(req.params.namespace, req.params.deployment));

  app.put<{ Params: ReplicasParams; Body: { replicas: number }; Querystring: Record<string, unknown> }>(REPLICAS_PATH, {
    schema: {
      params,
      body: {
        type: 'object',
        required: ['replicas'],
        properties: { replicas: { type: 'integer', minimum: 0, maximum: MAX_REPLICAS } },
        additionalProperties: false,
      },
      querystring: SCALE_QUERY,
      response: {
        200: { ...replicasView, description: 'the committed spec.replicas' },
        ...problemResponses(400, 403, 404, 408, 409, 413, 415, 422, 500, 502, 503, 504),
        ...SCALE_RESPONSES,
      },
    },
    // Decided before the body is read or any write starts; every PUT is audited, whatever its outcome.
    onRequest: async (req) => {
      authz.track(req, scaleAttributes('update', req.params), true);
      if (validParams(req.params)) await authz.require(req, scaleAttributes('update', req.params));
    },
    // No body at all (and so no Content-Type) is a malformed request, not an invalid object.
    preValidation: async (req) => {
      if (req.body === undefined) throw badRequest('body: missing; send {"replicas": N} with Content-Type: application/json');
      const source = numberSource(req.body, 'replicas');
      if (source !== undefined) checkReplicasToken(source);
    },
  }, async (req, reply) => {
    // If the client goes away, stop: do not start (or retry) a write nobody waits for.
    const gone = new AbortController();
    reply.raw.once('close', () => { if (!reply.raw.writableFinished) gone.abort(); });
    const annotations = req.pendingAudit!.annotations;
    annotations[ANNOTATIONS.replicasRequested] = String(req.body.replicas);
    const ext = opts.scale;
    const q = ext ? parseScaleQuery(req.query) : undefined;
    if (ext && q) {
      checkScale(ext, { namespace: req.params.namespace, name: req.params.deployment, replicas: req.body.replicas, force: q.force, client: req.clientCN });
      // A write past an HorizontalPodAutoscaler: the audit event says so.
      if (q.force) annotations[ANNOTATIONS.forced] = 'true';
    }
    const { previousReplicas, ...view } = await opts.replicas.set(req.params.namespace, req.params.deployment, req.body.replicas, gone.signal);
    annotations[ANNOTATIONS.replicasBefore] = String(previousReplicas);
    annotations[ANNOTATIONS.replicasAfter] = String(view.replicas);
    return ext && q?.waitMs !== undefined ? answerAfterRollout(ext, req, reply, view, q.waitMs) : view;
  });
  if (opts.scale) {
    await app.register(deploymentStatusRoutes, {
      deps: opts.scale, params, known: opts.known,
      authorize: async (req, namespace, name) => {
        if (validParams({ namespace, deployment: name })) await authz.require(req, { verb: 'get', ...DEPLOYMENTS, namespace, name });
      },
    });
  }

  opts.known.add('/deployments', ['GET', 'HEAD']);
  opts.known.add(REPLICAS_PATH, ['GET', 'HEAD', 'PUT']);
};

/** A plain JSON integer literal: no fraction, no exponent, no leading zero (RFC 8259 §6 `int`). */
const INTEGER_LITERAL = /^-?(0|[1-9][0-9]*)$/;

/**
 * Accepts `replicas` only as kube-apiserver does for an int32 field: a plain integer
 * literal in [0, 2147483647], decided from the token text rather than the parsed double
 * (`JSON.parse` reads `2.9999999999999999` as 3 and `1e2` as 100). `-0` is refused too.
 * @throws ProblemError 422 `Invalid` naming `body.replicas` and the token.
 */
export function checkReplicasToken(source: string): void {
  const invalid = (why: string): ProblemError => new ProblemError(422, 'Invalid', `body.replicas: ${source.slice(0, 40)} ${why}`);
  if (!INTEGER_LITERAL.test(source)) {
    throw invalid('is not a plain integer: write a whole number without fraction or exponent (such as 3, not 3.0 or 3e0)');
  }
  if (source === '-0') throw invalid('is not a plain integer: -0 is not accepted; write 0');
  const n = BigInt(source);
  if (n < 0n) throw invalid('must be >= 0');
  if (n > BigInt(MAX_REPLICAS)) throw invalid(`must be <= ${MAX_REPLICAS} (int32)`);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
