import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { ProblemError, sendProblem } from './errors.js';
import { KnownPaths, answerUnrouted } from './routes/unrouted.js';
import { deploymentRoutes } from './routes/deployments.js';
import { healthRoutes, type Readiness } from './routes/health.js';
import type { DeploymentLists } from './views/deployment-lists.js';
import type { ReplicaService } from './kube/replicas.js';
import type { ApiHealthCheck } from './kube/api-health.js';
import type { ClientIdentity } from './auth/client-identity.js';
import type { Authorizer } from './authz/authorizer.js';
import type { AuditSink } from './audit/audit-log.js';
import type { ServerTlsOptions } from './tls/server-tls.js';
import { DEFAULT_CONNECTION_LIMITS, TlsGuard, type ConnectionLimits, type ConnectionTerm } from './tls/guard.js';
import { RefusalLog } from './tls/refusal-log.js';
import { TrustedCas } from './tls/trust.js';
import { answerOutsideFastify, malformedHttpOptions, refuseBodyOnRead } from './http/malformed-http.js';
import { parseJsonBody } from './http/json-body.js';
import { BODY_LIMIT_BYTES, toHttpProblem } from './http/error-mapping.js';
import { registerRateLimits, type RateLimits } from './http/rate-limit.js';
import { installRequestLog } from './http/request-log.js';
import { RateLimitedLog } from './log/rate-limited-log.js';
import { NOOP_HTTP_RECORDER, NOOP_TLS_RECORDER, type HttpRecorder, type MetricsEndpoint, type TlsRecorder } from './metrics/recorders.js';
import { instrumentRequests, observeRequest } from './http/request-metrics.js';
import { REQUEST_ID_HEADER, echoRequestId, requestIdOf } from './http/request-id.js';
import { observeHandshakes, recordRefusal } from './tls/handshake-metrics.js';
import { metricsRoutes } from './routes/metrics.js';
import { registerOpenApi } from './routes/openapi.js';
import type { ScaleExtensionDeps } from './routes/deployment-status.js';
import type { WatchDeps } from './routes/watch.js';

export { BODY_LIMIT_BYTES } from './http/error-mapping.js';

/** What the HTTP layer depends on; everything is injected so tests can drive it. */
export interface ServerDeps {
  lists: DeploymentLists;
  replicas: ReplicaService;
  apiHealth: ApiHealthCheck;
  readiness: Readiness;
  logger: Logger;
  /** Request and TLS metrics (no-ops when omitted). */
  recorders?: { http: HttpRecorder; tls: TlsRecorder };
  /** Served at `/metrics` on the probe listener; omitted (`--metrics=false`), there is no `/metrics`. */
  metrics?: MetricsEndpoint;
  /** Asked before every Deployment endpoint (`--authorization`). */
  authorizer: Authorizer;
  /** Receives one event per PUT and per denial. */
  audit: AuditSink;
  /** Extensions of the Deployment endpoints (guardrails, autoscalers, rollout status); omit for the RFD's endpoints only. */
  scale?: ScaleExtensionDeps;
  /** Extension: the `?watch=true` change stream; omit to ignore `watch`. */
  watch?: WatchDeps;
}

/**
 * Server TLS material and policy (omit `tls` for plain HTTP, as tests with `inject` do),
 * transport limits, connection limits and per-client rate limits (none when omitted).
 * `trust` and `refusals` are shared with the certificate reloader and shutdown.
 */
export interface ServerOptions {
  tls?: ServerTlsOptions;
  limits?: HttpLimits;
  connections?: ConnectionLimits;
  rateLimits?: RateLimits;
  trust?: TrustedCas;
  refusals?: RefusalLog;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Subject CN of the verified client certificate ('' when not on TLS, e.g. inject()). */
    clientCN: string;
    /** SHA-256 fingerprint of that certificate, logged beside the CN ('' when not on TLS). */
    clientFingerprint: string;
    /** The verified client's whole identity: user, groups, fingerprint (undefined when not on TLS). */
    clientIdentity: ClientIdentity | undefined;
    /** What a response outliving this request (a watch stream) must keep checking about the connection (undefined when not on TLS). */
    connectionTerm: ConnectionTerm | undefined;
  }
}

/** Transport limits of the API listener. */
export interface HttpLimits {
  /** Whole-request bound (headers and body), milliseconds; slower clients get 408. */
  requestTimeoutMs: number;
}
/** Defaults of {@link HttpLimits}: 30 s to send a whole request. */
export const DEFAULT_HTTP_LIMITS: HttpLimits = { requestTimeoutMs: 30_000 };
const HEALTH_REQUEST_TIMEOUT_MS = 10_000;

/**
 * Builds the API app (never listens): mTLS-only HTTPS behind the TLS guard when
 * `options.tls` is given, per-client rate limits, RFD 0001 routes, problem+json errors
 * (also for malformed HTTP), one log line per request naming the client.
 */
export function buildServer(deps: ServerDeps, options: ServerOptions = {}): FastifyInstance {
  const limits = options.limits ?? DEFAULT_HTTP_LIMITS;
  const connections = options.connections ?? DEFAULT_CONNECTION_LIMITS;
  const malformed = malformedLog(deps.logger);
  const tlsRecorder = deps.recorders?.tls ?? NOOP_TLS_RECORDER;
  const app = Fastify({
    ...commonOptions(deps.logger, malformed, deps.recorders?.http),
    bodyLimit: BODY_LIMIT_BYTES,
    requestTimeout: limits.requestTimeoutMs,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Node honours requestTimeout only when given to the server's constructor (seen on 20,
    // kept on 24); setting it afterwards, as Fastify does, is ignored: pass it in both places.
    // No allowHalfOpen: a client's FIN is how most clients say they are gone, and it must
    // stop a write or a rollout wait (README: "If the client disconnects, no further attempt
    // starts"); Node cannot tell a half-close from a close, so a client that half-closes
    // right after its request is treated as gone too.
    ...(options.tls ? {
      https: { ...options.tls, requestTimeout: limits.requestTimeoutMs, requireHostHeader: false, handshakeTimeout: connections.handshakeTimeoutMs },
    } : { http: { requestTimeout: limits.requestTimeoutMs, requireHostHeader: false } }),
  });
  app.decorateRequest('clientCN', '');
  app.decorateRequest('clientFingerprint', '');
  app.decorateRequest('clientIdentity', undefined);
  app.decorateRequest('connectionTerm', undefined);
  // First hook: every request below, refused by the guard or not, gets its one line.
  installRequestLog(app, deps.logger, malformed);
  // Also before the guard: requests answered by any later hook (guard, 404/405, rate limits)
  // are counted and carry their X-Request-Id too.
  instrumentRequests(app, deps.recorders?.http ?? NOOP_HTTP_RECORDER);
  echoRequestId(app);
  if (options.tls) {
    const guard = new TlsGuard({
      refusals: options.refusals ?? new RefusalLog(deps.logger, { onRefusal: (r) => recordRefusal(tlsRecorder, r.code, r.reason) }),
      trust: options.trust ?? new TrustedCas(options.tls.ca),
      limits: connections,
    });
    guard.install(app.server as unknown as TlsServer);
    // Accepted and open connections; refusals reach the metrics through the RefusalLog.
    observeHandshakes(app.server, tlsRecorder, { refusals: false });
    // Every request: the identity pinned at the handshake, while its certificate holds.
    app.addHook('onRequest', async (req, reply) => {
      const verdict = guard.check(req.raw.socket as TLSSocket);
      if (verdict.kind === 'drop') {
        req.raw.socket.destroy();
        return reply;
      }
      if (verdict.kind === 'refuse') {
        sendProblem(reply.header('connection', 'close'), verdict.problem);
        return reply;
      }
      req.clientCN = verdict.identity.commonName;
      req.clientFingerprint = verdict.identity.fingerprint256;
      req.clientIdentity = verdict.identity;
      req.connectionTerm = guard.term(req.raw.socket as TLSSocket);
      if (verdict.closeAfter) reply.header('connection', 'close');
    });
  }
  if (options.rateLimits) registerRateLimits(app, options.rateLimits);
  const known = new KnownPaths();
  decorate(app, known, malformed);
  registerOpenApi(app, known);
  app.register(healthRoutes, { apiHealth: deps.apiHealth, readiness: deps.readiness, known });
  app.register(deploymentRoutes, { lists: deps.lists, replicas: deps.replicas, authorizer: deps.authorizer, audit: deps.audit, known, scale: deps.scale, watch: deps.watch });
  return app;
}

/**
 * The probe app for `--health-listen`: plain HTTP, only `/livez`, `/readyz` and (unless
 * metrics are off) `/metrics`, because kubelet probes and Prometheus present no client
 * certificate (controller-runtime serves probes and metrics the same way).
 */
export function buildHealthServer(deps: Pick<ServerDeps, 'readiness' | 'logger' | 'metrics'>): FastifyInstance {
  const malformed = malformedLog(deps.logger);
  const app = Fastify({
    ...commonOptions(deps.logger, malformed), requestTimeout: HEALTH_REQUEST_TIMEOUT_MS, return503OnClosing: false, forceCloseConnections: true,
    http: { requestTimeout: HEALTH_REQUEST_TIMEOUT_MS, connectionsCheckingInterval: 1_000, requireHostHeader: false },
  });
  installRequestLog(app, deps.logger, malformed, 'debug');
  echoRequestId(app);
  const known = new KnownPaths();
  decorate(app, known, malformed);
  app.register(healthRoutes, { readiness: deps.readiness, known });
  if (deps.metrics) app.register(metricsRoutes, { endpoint: deps.metrics, known });
  return app;
}

/** One rate-limited `warn` log per listener for malformed HTTP, so a flood of it cannot fill the disk. */
function malformedLog(logger: Logger): RateLimitedLog {
  return new RateLimitedLog(logger, 'malformed HTTP requests not logged individually (log rate limit)');
}

function commonOptions(logger: Logger, malformed: RateLimitedLog, http: HttpRecorder = NOOP_HTTP_RECORDER) {
  const options = malformedHttpOptions(malformed);
  return {
    loggerInstance: logger as FastifyBaseLogger,
    // We log one line per request ourselves (src/http/request-log.ts).
    logController: new LogController({ disableRequestLogging: true }),
    // X-Request-Id is validated by requestIdOf (Fastify's requestIdHeader would take any value).
    requestIdHeader: false as const,
    genReqId: requestIdOf,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false, verbose: true } },
    ...options,
    // No hook runs for these (malformed URLs): record the request and echo its id here.
    frameworkErrors: (err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
      observeRequest(http, req, reply);
      reply.header(REQUEST_ID_HEADER, req.id);
      options.frameworkErrors(err, req, reply);
    },
  };
}

function decorate(app: FastifyInstance, known: KnownPaths, malformed: RateLimitedLog): void {
  app.removeContentTypeParser('text/plain');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, parseJsonBody);
  // Node refuses HTTP/1.1 without Host with a bare 400; we let it through to say why.
  app.addHook('onRequest', async (req, reply) => {
    if (req.raw.httpVersion === '1.1' && !req.headers.host) {
      req.logFields.malformed = true;
      sendProblem(reply, new ProblemError(400, 'BadRequest', 'the Host header is required in HTTP/1.1 (RFC 9112 §3.2)'));
      return reply;
    }
  });
  refuseBodyOnRead(app);
  answerUnrouted(app, known);
  answerOutsideFastify(app, known, malformed);
  app.setNotFoundHandler((req, reply) => {
    sendProblem(reply, new ProblemError(404, 'NotFound', `no route for ${req.method} ${req.url.split('?')[0]}`));
  });
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const problem = toHttpProblem(err);
    // The request's one log line carries what the response withholds.
    if (problem.status === 500) req.logFields.err = err;
    else if (problem.status >= 500) req.logFields.cause = (problem.cause as Error | undefined)?.message ?? problem.message;
    sendProblem(reply, problem);
  });
}
