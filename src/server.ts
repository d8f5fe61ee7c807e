import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import type { TLSSocket } from 'node:tls';
import type { ServerTlsOptions } from './tls/server-tls.js';
import type { Logger } from 'pino';
import { ProblemError, sendProblem } from './errors.js';
import { clientIdentity, rejectUnfitClient } from './auth/client-identity.js';
import { deploymentRoutes } from './routes/deployments.js';
import { healthRoutes, type Readiness } from './routes/health.js';
import type { CacheReader } from './kube/object-store.js';
import type { CachedDeployment } from './kube/deployments.js';
import type { ReplicaService } from './kube/replicas.js';
import type { ApiHealthCheck } from './kube/api-health.js';

/** Largest request body accepted (bytes); a replicas body is ~20 bytes. */
export const BODY_LIMIT_BYTES = 1024;

/** What the HTTP layer depends on; everything is injected so tests can drive it. */
export interface ServerDeps {
  deployments: CacheReader<CachedDeployment>;
  replicas: ReplicaService;
  apiHealth: ApiHealthCheck;
  readiness: Readiness;
  logger: Logger;
}

/** Server TLS material and policy. Omit `tls` (tests with `inject`) for plain HTTP. */
export interface ServerOptions {
  tls?: ServerTlsOptions;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Subject CN of the verified client certificate ('' when not on TLS, e.g. inject()). */
    clientCN: string;
  }
}

/**
 * Builds the API app (never listens): mTLS-only HTTPS when `options.tls` is given,
 * RFD 0001 routes, problem+json errors, one log line per request naming the client.
 */
export function buildServer(deps: ServerDeps, options: ServerOptions = {}): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    disableRequestLogging: true,
    bodyLimit: BODY_LIMIT_BYTES,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    requestIdHeader: false,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false, verbose: true } },
    ...(options.tls ? { https: options.tls } : {}),
  });
  if (options.tls) {
    // Runs before any byte of HTTP is parsed: a client whose certificate lacks the
    // clientAuth usage or has expired since a cached session is dropped here.
    app.server.on('secureConnection', (socket: TLSSocket) => rejectUnfitClient(socket, deps.logger));
  }
  decorate(app);
  app.register(healthRoutes, { apiHealth: deps.apiHealth, readiness: deps.readiness });
  app.register(deploymentRoutes, { deployments: deps.deployments, replicas: deps.replicas });
  return app;
}

/**
 * The probe app for `--health-listen`: plain HTTP, only `/livez` and `/readyz`, because
 * kubelet probes present no client certificate (controller-runtime serves probes the same way).
 */
export function buildHealthServer(deps: Pick<ServerDeps, 'readiness' | 'logger'>): FastifyInstance {
  const app = Fastify({ loggerInstance: deps.logger as FastifyBaseLogger, disableRequestLogging: true, return503OnClosing: false, forceCloseConnections: true });
  decorate(app, false);
  app.register(healthRoutes, { readiness: deps.readiness });
  return app;
}

function decorate(app: FastifyInstance, logRequests = true): void {
  app.removeContentTypeParser('text/plain');
  app.decorateRequest('clientCN', '');
  app.addHook('onRequest', async (req) => {
    req.clientCN = clientIdentity(req.raw.socket as TLSSocket)?.commonName ?? '';
  });
  if (logRequests) {
    app.addHook('onResponse', async (req, reply) => {
      req.log.info({
        client: req.clientCN, method: req.method, path: req.url.split('?')[0],
        status: reply.statusCode, durationMs: Math.round(reply.elapsedTime),
      }, 'request');
    });
  }
  app.setNotFoundHandler((req, reply) => {
    sendProblem(reply, new ProblemError(404, 'NotFound', `no route for ${req.method} ${req.url.split('?')[0]}`));
  });
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const problem = toHttpProblem(err);
    if (problem.status >= 500) req.log.error({ err, reqId: req.id }, 'request failed');
    sendProblem(reply, problem);
  });
}

const NAME_RULES: Record<string, string> = {
  'params.namespace': 'a valid namespace (a DNS-1123 label: lowercase letters, digits and "-", starting and ending with a letter or digit, at most 63 characters)',
  'params.deployment': 'a valid Deployment name (a DNS-1123 subdomain: lowercase letters, digits, "-" and ".", at most 253 characters)',
};

const FASTIFY_CODES: Record<string, (err: FastifyError) => ProblemError> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: (e) => new ProblemError(415, 'UnsupportedMediaType', `Content-Type must be application/json (${e.message})`),
  FST_ERR_CTP_BODY_TOO_LARGE: () => new ProblemError(413, 'PayloadTooLarge', `request body exceeds ${BODY_LIMIT_BYTES} bytes`),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () => new ProblemError(400, 'BadRequest', 'Content-Length does not match the body'),
  FST_ERR_CTP_EMPTY_JSON_BODY: () => new ProblemError(400, 'BadRequest', 'body: empty; expected a JSON object such as {"replicas": 3}'),
  FST_ERR_CTP_INVALID_JSON_BODY: (e) => new ProblemError(400, 'BadRequest', `body: malformed JSON (${e.message})`),
};

function toHttpProblem(err: FastifyError): ProblemError {
  if (err instanceof ProblemError) return err;
  if (err.code && FASTIFY_CODES[err.code]) return FASTIFY_CODES[err.code](err);
  if (err.validation) {
    const where = err.validationContext ?? 'request';
    const first = err.validation[0];
    const field = `${where}${first?.instancePath ? first.instancePath.replaceAll('/', '.') : ''}`;
    let detail = `${field} ${first?.message ?? 'is invalid'}`;
    const rule = first?.keyword === 'pattern' || first?.keyword === 'maxLength' ? NAME_RULES[field] : undefined;
    if (rule) detail = `${field}: "${String((first as { data?: unknown } | undefined)?.data ?? "")}" is not ${rule}`;
    if (first?.keyword === 'additionalProperties') detail = `${where}: unknown property "${String(first.params.additionalProperty)}"; only "replicas" is allowed`;
    if (first?.keyword === 'required') detail = `${where}: missing required property "${String(first.params.missingProperty)}"`;
    // A well-formed body with wrong content is 422 (RFC 9110 §15.5.21); a bad path or query is 400.
    return where === 'body' ? new ProblemError(422, 'Invalid', detail) : new ProblemError(400, 'BadRequest', detail);
  }
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return new ProblemError(err.statusCode, 'BadRequest', err.message);
  }
  return new ProblemError(500, 'InternalError', 'internal error; see the proxy logs', { cause: err });
}
