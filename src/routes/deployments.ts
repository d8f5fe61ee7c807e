import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { ProblemError, badRequest, unavailable } from '../errors.js';
import { numberSource } from '../json-numbers.js';
import type { ReplicaService } from '../kube/replicas.js';
import { RESOURCE_VERSION_PATTERN } from '../kube/resource-version.js';
import type { DeploymentLists } from '../views/deployment-lists.js';
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
/** Largest `limit` accepted; kube-apiserver has no bound, ours keeps a page's size sane. */
export const MAX_PAGE_LIMIT = 100_000;

/** Response header naming the resourceVersion an answer reflects. */
export const RESOURCE_VERSION_HEADER = 'resource-version';
/** Request header twin of `?minResourceVersion=`. */
export const MIN_RESOURCE_VERSION_HEADER = 'min-resource-version';

/** What the Deployment routes read from (pre-serialized lists, replicas service), write through, ask (authorizer), record to (audit) and register 405s in. */
export interface DeploymentRouteOptions {
  lists: DeploymentLists;
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

const listItem = {
  type: 'object', required: ['name', 'namespace'],
  properties: { name: { type: 'string' }, namespace: { type: 'string' } }, additionalProperties: false,
} as const;

const listSchema = {
  querystring: { type: 'object', properties: { namespace: {}, limit: {}, continue: {}, minResourceVersion: {}, ...WATCH_QUERY }, additionalProperties: false },
  response: {
    200: {
      description: 'Deployments, sorted by namespace, then name; with limit or continue, one page of them as a list object',
      anyOf: [
        { type: 'array', items: listItem },
        {
          type: 'object', required: ['metadata', 'items'], additionalProperties: false,
          properties: {
            metadata: { type: 'object', additionalProperties: false, properties: { continue: { type: 'string' }, remainingItemCount: { type: 'integer' } } },
            items: { type: 'array', items: listItem },
          },
        },
      ],
    },
    304: { description: 'Not Modified: If-None-Match named the ETag', type: 'null' },
    ...problemResponses(400, 403, 410, 500, 502, 503, 504),
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

  app.get<{ Querystring: ListQuerystring }>('/deployments', { schema: listSchema }, async (req, reply) => {
    const q = req.query;
    const ns = single(q.namespace, 'namespace');
    if (ns !== undefined && (ns.length > 63 || !DNS1123_LABEL_RE.test(ns))) {
      throw badRequest(`querystring.namespace: "${ns}" is not a valid namespace (a DNS-1123 label: lowercase letters, digits and '-', at most 63 characters)`);
    }
    const limitText = single(q.limit, 'limit');
    const limit = limitText === undefined ? undefined : Number(limitText);
    if (limit !== undefined && (!/^\d{1,6}$/.test(limitText!) || limit < 1 || limit > MAX_PAGE_LIMIT)) {
      throw badRequest(`querystring.limit: "${limitText}" is not an integer from 1 to ${MAX_PAGE_LIMIT}`);
    }
    const continueToken = single(q.continue, 'continue');
    if (continueToken === '') throw badRequest('querystring.continue: empty; pass the token from the previous page or leave it out');
    const minRv = minResourceVersion(req);
    const watching = opts.watch !== undefined && wantsWatch(q.watch);
    if (watching && (limit !== undefined || continueToken !== undefined)) {
      throw badRequest(`querystring.${limit !== undefined ? 'limit' : 'continue'}: not with watch=true; a change stream has no pages`);
    }
    if (watching && q.minResourceVersion !== undefined) {
      throw badRequest('querystring.minResourceVersion: not with watch=true; a change stream starts from the cache as it is (resume one with Last-Event-ID)');
    }
    let visible: 'all' | Set<string>;
    if (ns !== undefined) {
      await authz.require(req, { verb: 'list', ...DEPLOYMENTS, namespace: ns });
      visible = new Set([ns]);
    } else {
      // All namespaces: everything for a cluster-wide lister, else only the namespaces
      // (present in the cache) where the user may list; never a 403.
      visible = await authz.visibleNamespaces(req, { verb: 'list', ...DEPLOYMENTS }, () => opts.lists.namespaces());
    }
    // The change stream is filtered exactly like the list. For a client without cluster-wide
    // rights the namespaces are those decided at connect time (a namespace created later is
    // not added: fail closed; reconnect to see it). A grant lost later ends the stream.
    if (watching) {
      if (!opts.lists.hasSynced()) throw unavailable('the Deployment cache has not finished its first list from the API server yet', 1);
      // Asked again while the stream is open: the same decisions, for what they granted.
      const granted = visible;
      return serveWatch(opts.watch!, req, reply, (n) => granted === 'all' || granted.has(n),
        () => authz.stillAllowed(req, { verb: 'list', ...DEPLOYMENTS }, granted));
    }
    const answer = await opts.lists.list({
      namespaces: ns ?? (visible === 'all' ? undefined : visible), limit, continueToken, minResourceVersion: minRv, signal: clientGone(reply),
    });
    return sendCacheable(req, reply, answer.etag, answer.resourceVersion, answer.body);
  });

  app.get<{ Params: ReplicasParams; Querystring: { minResourceVersion?: unknown } }>(REPLICAS_PATH, {
    schema: { params, querystring: { type: 'object', properties: { minResourceVersion: {} }, additionalProperties: false }, response: { 200: { ...replicasView, description: 'spec.replicas, from the cache (at least as new as minResourceVersion)' }, 304: { description: 'Not Modified: If-None-Match named the ETag', type: 'null' }, ...problemResponses(400, 403, 404, 500, 502, 503, 504) } },
    onRequest: async (req) => {
      if (validParams(req.params)) await authz.require(req, scaleAttributes('get', req.params));
    },
  }, async (req, reply) => {
    const answer = await opts.replicas.read(req.params.namespace, req.params.deployment, { minResourceVersion: minResourceVersion(req), signal: clientGone(reply) });
    return sendCacheable(req, reply, answer.etag, answer.resourceVersion, answer.view);
  });

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
    const annotations = req.pendingAudit!.annotations;
    annotations[ANNOTATIONS.replicasRequested] = String(req.body.replicas);
    const ext = opts.scale;
    const q = ext ? parseScaleQuery(req.query) : undefined;
    if (ext && q) {
      checkScale(ext, { namespace: req.params.namespace, name: req.params.deployment, replicas: req.body.replicas, force: q.force, client: req.clientCN });
      // A write past an HorizontalPodAutoscaler: the audit event says so.
      if (q.force) annotations[ANNOTATIONS.forced] = 'true';
    }
    const answer = await opts.replicas.set(req.params.namespace, req.params.deployment, req.body.replicas, clientGone(reply));
    if (answer.previousReplicas !== undefined) annotations[ANNOTATIONS.replicasBefore] = String(answer.previousReplicas);
    annotations[ANNOTATIONS.replicasAfter] = String(answer.view.replicas);
    reply.header('etag', answer.etag).header(RESOURCE_VERSION_HEADER, answer.resourceVersion);
    return ext && q?.waitMs !== undefined ? answerAfterRollout(ext, req, reply, answer.view, q.waitMs) : answer.view;
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

interface ListQuerystring { namespace?: unknown; limit?: unknown; continue?: unknown; minResourceVersion?: unknown; watch?: unknown }

/** A query parameter given at most once, as a string. */
function single(value: unknown, name: string): string | undefined {
  if (Array.isArray(value)) throw badRequest(`querystring.${name}: given more than once; pass it once or not at all`);
  return value === undefined ? undefined : String(value);
}

/** `?minResourceVersion=` or the `Min-Resource-Version` header (both must agree when both are given). */
function minResourceVersion(req: FastifyRequest<{ Querystring: { minResourceVersion?: unknown } }>): string | undefined {
  const fromQuery = single(req.query.minResourceVersion, 'minResourceVersion');
  const header = req.headers[MIN_RESOURCE_VERSION_HEADER];
  if (Array.isArray(header)) throw badRequest(`header ${MIN_RESOURCE_VERSION_HEADER}: given more than once`);
  if (fromQuery !== undefined && header !== undefined && fromQuery !== header) {
    throw badRequest(`querystring.minResourceVersion "${fromQuery}" and header ${MIN_RESOURCE_VERSION_HEADER} "${header}" disagree`);
  }
  const rv = fromQuery ?? header;
  if (rv !== undefined && !RESOURCE_VERSION_PATTERN.test(rv)) {
    const field = fromQuery !== undefined ? 'querystring.minResourceVersion' : `header ${MIN_RESOURCE_VERSION_HEADER}`;
    throw badRequest(`${field}: "${rv.slice(0, 40)}" is not a resourceVersion (1 to 20 decimal digits, as in a Resource-Version header or metadata.resourceVersion)`);
  }
  return rv;
}

/** Aborts when the client closes the connection before the answer was sent. */
function clientGone(reply: FastifyReply): AbortSignal {
  const gone = new AbortController();
  reply.raw.once('close', () => { if (!reply.raw.writableFinished) gone.abort(); });
  return gone.signal;
}

/**
 * Sends `body` with its `ETag` and `Resource-Version`, or `304 Not Modified` when
 * `If-None-Match` names the tag (weak comparison, RFC 9110 §13.1.2).
 */
function sendCacheable(req: FastifyRequest, reply: FastifyReply, etag: string, resourceVersion: string, body: Buffer | object): FastifyReply | object {
  reply.header('etag', etag).header(RESOURCE_VERSION_HEADER, resourceVersion);
  if (noneMatch(req.headers['if-none-match'], etag)) return reply.code(304).send();
  if (Buffer.isBuffer(body)) return reply.type('application/json; charset=utf-8').send(body);
  return body;
}

function noneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  const strip = (t: string): string => t.trim().replace(/^W\//, '');
  return header.split(',').some((t) => t.trim() === '*' || strip(t) === etag);
}
