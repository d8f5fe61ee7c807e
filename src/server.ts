import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { ServerTlsOptions } from './tls/server-tls.js';
import type { Logger } from 'pino';
import { PROBLEM_CONTENT_TYPE, ProblemError, sendProblem, type ProblemReason } from './errors.js';
import { KnownPaths, answerUnrouted } from './routes/unrouted.js';
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

/** Server TLS material and policy (omit `tls` for plain HTTP, as tests with `inject` do) and transport limits. */
export interface ServerOptions {
  tls?: ServerTlsOptions;
  limits?: HttpLimits;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Subject CN of the verified client certificate ('' when not on TLS, e.g. inject()). */
    clientCN: string;
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
/** A DNS-1123 subdomain is at most 253 characters; leave room for percent-encoding checks. */
const MAX_PARAM_LENGTH = 260;

/**
 * Builds the API app (never listens): mTLS-only HTTPS when `options.tls` is given,
 * RFD 0001 routes, problem+json errors (also for malformed HTTP), one log line per
 * request naming the client.
 */
export function buildServer(deps: ServerDeps, options: ServerOptions = {}): FastifyInstance {
  const limits = options.limits ?? DEFAULT_HTTP_LIMITS;
  const unfit = new WeakSet<TLSSocket>();
  const app = Fastify({
    ...commonOptions(deps.logger),
    bodyLimit: BODY_LIMIT_BYTES,
    requestTimeout: limits.requestTimeoutMs,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Node honours requestTimeout only when given to the server's constructor (seen on 20,
    // kept on 24); setting it afterwards, as Fastify does, is ignored: pass it in both places.
    ...(options.tls ? { https: { ...options.tls, requestTimeout: limits.requestTimeoutMs, requireHostHeader: false } } : {}),
  });
  const known = new KnownPaths();
  decorate(app, known);
  if (options.tls) {
    // A client whose certificate lacks clientAuth, is a CA, has no single CN, or has
    // expired since a cached session is dropped here. prependListener runs this before
    // Node's HTTP connection listener, so a refused client's bytes never reach the parser.
    app.server.prependListener('secureConnection', (socket: TLSSocket) => {
      if (!rejectUnfitClient(socket, deps.logger)) unfit.add(socket);
    });
    // Belt and braces (after decorate's hook has read the identity): a request on a
    // refused or unverified socket never reaches a route.
    app.addHook('onRequest', async (req, reply) => {
      if (unfit.has(req.raw.socket as TLSSocket) || req.clientCN === '') {
        req.raw.socket.destroy();
        return reply;
      }
    });
  }
  app.register(healthRoutes, { apiHealth: deps.apiHealth, readiness: deps.readiness, known });
  app.register(deploymentRoutes, { deployments: deps.deployments, replicas: deps.replicas, known });
  return app;
}

/**
 * The probe app for `--health-listen`: plain HTTP, only `/livez` and `/readyz`, because
 * kubelet probes present no client certificate (controller-runtime serves probes the same way).
 */
export function buildHealthServer(deps: Pick<ServerDeps, 'readiness' | 'logger'>): FastifyInstance {
  const app = Fastify({
    ...commonOptions(deps.logger), requestTimeout: HEALTH_REQUEST_TIMEOUT_MS, return503OnClosing: false, forceCloseConnections: true,
    http: { requestTimeout: HEALTH_REQUEST_TIMEOUT_MS, connectionsCheckingInterval: 1_000, requireHostHeader: false },
  });
  const known = new KnownPaths();
  decorate(app, known, false);
  app.register(healthRoutes, { readiness: deps.readiness, known });
  return app;
}

function commonOptions(logger: Logger) {
  return {
    loggerInstance: logger as FastifyBaseLogger,
    // We log one line per request ourselves (onResponse / onRequestAbort).
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: false as const,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false, verbose: true } },
    // Malformed URLs (bad percent-encoding, an over-long segment) reach no route.
    frameworkErrors: (err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
      const detail = err.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? `a path segment is longer than ${MAX_PARAM_LENGTH} characters`
        : `malformed URL: ${req.url.slice(0, 200)}`;
      sendProblem(reply, new ProblemError(400, 'BadRequest', detail));
    },
    // Requests Node's HTTP parser refuses never become Fastify requests; answer them in
    // problem+json too, and log them, instead of Fastify's plain JSON.
    clientErrorHandler: (err: NodeJS.ErrnoException, socket: Duplex) => {
      // One answer per connection: bytes after it (e.g. the rest of a slow body) are not a new error.
      if (err.code === 'ECONNRESET' || socket.destroyed || socket.writableEnded) return void socket.destroy();
      const [status, reason, detail]: [number, ProblemReason, string] =
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'RequestTimeout', 'the request was not received in time']
          : err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'RequestHeaderFieldsTooLarge', 'request headers exceed 16 KiB']
            : [400, 'BadRequest', `malformed HTTP request (${err.code ?? 'parse error'})`];
      logger.warn({ remote: (socket as unknown as { remoteAddress?: string }).remoteAddress, code: err.code, status }, 'malformed HTTP request refused');
      writeRawProblem(socket, new ProblemError(status, reason, detail));
    },
  };
}

function decorate(app: FastifyInstance, known: KnownPaths, logRequests = true): void {
  app.removeContentTypeParser('text/plain');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, parseJsonBody);
  app.decorateRequest('clientCN', '');
  app.addHook('onRequest', async (req) => {
    req.clientCN = clientIdentity(req.raw.socket as TLSSocket)?.commonName ?? '';
  });
  // Node refuses HTTP/1.1 without Host with a bare 400; we let it through to say why.
  app.addHook('onRequest', async (req, reply) => {
    if (req.raw.httpVersion === '1.1' && !req.headers.host) {
      sendProblem(reply, new ProblemError(400, 'BadRequest', 'the Host header is required in HTTP/1.1 (RFC 9112 §3.2)'));
      return reply;
    }
  });
  answerUnrouted(app, known);
  answerOutsideFastify(app, known);
  if (logRequests) {
    const line = (req: FastifyRequest) => ({ client: req.clientCN, method: req.method, path: req.url.split('?')[0] });
    app.addHook('onResponse', async (req, reply) => {
      req.log.info({ ...line(req), status: reply.statusCode, durationMs: Math.round(reply.elapsedTime) }, 'request');
    });
    app.addHook('onRequestAbort', async (req) => {
      req.log.warn({ ...line(req), status: 'aborted' }, 'request aborted by the client');
    });
  }
  app.setNotFoundHandler((req, reply) => {
    sendProblem(reply, new ProblemError(404, 'NotFound', `no route for ${req.method} ${req.url.split('?')[0]}`));
  });
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const problem = toHttpProblem(err);
    if (problem.status === 500) req.log.error({ err }, 'request failed');
    else if (problem.status >= 500) req.log.warn({ status: problem.status, cause: (problem.cause as Error | undefined)?.message ?? problem.message }, 'upstream failure');
    sendProblem(reply, problem);
  });
}

/**
 * Requests Node handles before Fastify sees them: CONNECT (Node would close the
 * connection silently) and an `Expect` other than 100-continue (Node would answer a
 * bare 417). Both get problem+json like everything else.
 */
function answerOutsideFastify(app: FastifyInstance, known: KnownPaths): void {
  app.server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    const path = (req.url ?? '').split('?')[0];
    const allow = known.allowFor(path);
    const problem = allow
      ? new ProblemError(405, 'MethodNotAllowed', `CONNECT is not allowed on ${path}; allowed: ${allow}`, { headers: { allow } })
      : new ProblemError(405, 'MethodNotAllowed', 'CONNECT is not supported: this is not a forward proxy');
    app.log.warn({ method: 'CONNECT', path, status: 405 }, 'request refused');
    writeRawProblem(socket, problem);
  });
  app.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const problem = new ProblemError(417, 'ExpectationFailed', `Expect: ${String(req.headers.expect)} is not supported; only 100-continue is`);
    app.log.warn({ method: req.method, path: (req.url ?? '').split('?')[0], status: 417 }, 'request refused');
    const body = JSON.stringify(problem.toBody());
    res.writeHead(417, { 'content-type': PROBLEM_CONTENT_TYPE, 'content-length': Buffer.byteLength(body), connection: 'close' }).end(body);
  });
}

/** Writes a complete HTTP/1.1 problem response on a raw socket and closes it gracefully. */
function writeRawProblem(socket: Duplex, problem: ProblemError): void {
  if (!socket.writable) return void socket.destroy();
  const body = JSON.stringify(problem.toBody());
  const extra = Object.entries(problem.headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  // end() rather than destroy(): let the answer reach the client before the close;
  // destroy anyway if the client does not finish the close within a second.
  socket.end(`HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status]}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`);
  setTimeout(() => socket.destroy(), 1_000).unref();
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The only body parser: strict JSON in UTF-8. A charset other than UTF-8, or any
 * Content-Encoding (gzip…), is 415; invalid UTF-8, an empty or a malformed body is 400.
 * `JSON.parse` keeps a `__proto__` key as an ordinary own property (no prototype is
 * touched), so the schema reports it as an unknown property (422), not "malformed JSON".
 */
function parseJsonBody(req: FastifyRequest, body: string | Buffer, done: (err: Error | null, value?: unknown) => void): void {
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(req.headers['content-type'] ?? '')?.[1]?.toLowerCase();
  if (charset && charset !== 'utf-8' && charset !== 'utf8') {
    return done(new ProblemError(415, 'UnsupportedMediaType', `Content-Type charset "${charset}" is not supported; send application/json in UTF-8`));
  }
  const encoding = req.headers['content-encoding'];
  if (encoding && encoding.toLowerCase() !== 'identity') {
    return done(new ProblemError(415, 'UnsupportedMediaType', `Content-Encoding "${encoding}" is not supported; send the body uncompressed`));
  }
  let text: string;
  try {
    text = UTF8.decode(body as Buffer);
  } catch {
    return done(new ProblemError(400, 'BadRequest', 'body: not valid UTF-8'));
  }
  if (text.trim() === '') return done(new ProblemError(400, 'BadRequest', 'body: empty; expected a JSON object such as {"replicas": 3}'));
  try {
    done(null, JSON.parse(text));
  } catch (err) {
    done(new ProblemError(400, 'BadRequest', `body: malformed JSON (${(err as Error).message})`));
  }
}

const NAME_RULES: Record<string, string> = {
  'params.namespace': 'a valid namespace (a DNS-1123 label: lowercase letters, digits and "-", starting and ending with a letter or digit, at most 63 characters)',
  'params.deployment': 'a valid Deployment name (a DNS-1123 subdomain: lowercase letters, digits, "-" and ".", at most 253 characters)',
};

const FASTIFY_CODES: Record<string, (err: FastifyError) => ProblemError> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: (e) => new ProblemError(415, 'UnsupportedMediaType', `Content-Type must be application/json (${e.message})`),
  FST_ERR_CTP_BODY_TOO_LARGE: () => new ProblemError(413, 'PayloadTooLarge', `request body exceeds ${BODY_LIMIT_BYTES} bytes`),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () => new ProblemError(400, 'BadRequest', 'Content-Length does not match the body'),
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
