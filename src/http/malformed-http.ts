import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { PROBLEM_CONTENT_TYPE, ProblemError, sendProblem, type ProblemReason } from '../errors.js';
import type { KnownPaths } from '../routes/unrouted.js';
import type { RateLimitedLog } from '../log/rate-limited-log.js';
import { REQUEST_ID_HEADER, requestIdOf } from './request-id.js';

/** A DNS-1123 subdomain is at most 253 characters; leave room for percent-encoding checks. */
export const MAX_PARAM_LENGTH = 260;

/**
 * Fastify options that answer malformed HTTP in problem+json: URLs no route can parse
 * (bad percent-encoding, an over-long segment), and requests Node's HTTP parser refuses
 * (400/408/431), which never become Fastify requests. Neither passes Fastify's request
 * hooks, so each is logged here, once, at `warn` through the rate-limited `log`.
 */
export function malformedHttpOptions(log: RateLimitedLog) {
  return {
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    frameworkErrors: (err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
      const detail = err.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? `a path segment is longer than ${MAX_PARAM_LENGTH} characters`
        : `malformed URL: ${req.url.slice(0, 200)}`;
      log.warn(err.code, { reqId: req.id, method: req.method, path: req.url.split('?')[0]?.slice(0, 300), status: 400, reason: 'BadRequest', code: err.code }, 'request');
      sendProblem(reply, new ProblemError(400, 'BadRequest', detail));
    },
    clientErrorHandler: (err: NodeJS.ErrnoException, socket: Duplex) => {
      // One answer per connection: bytes after it (e.g. the rest of a slow body) are not a new error.
      if (err.code === 'ECONNRESET' || socket.destroyed || socket.writableEnded) return void socket.destroy();
      const [status, reason, detail]: [number, ProblemReason, string] =
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'RequestTimeout', 'the request was not received in time']
          : err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'RequestHeaderFieldsTooLarge', 'request headers exceed 16 KiB']
            : [400, 'BadRequest', `malformed HTTP request (${err.code ?? 'parse error'})`];
      const reqId = randomUUID();
      log.warn(err.code ?? 'HTTP_PARSE_ERROR', { reqId, remote: (socket as unknown as { remoteAddress?: string }).remoteAddress, code: err.code, status }, 'malformed HTTP request refused');
      writeRawProblem(socket, new ProblemError(status, reason, detail), reqId);
    },
  };
}

/**
 * Requests Node handles before Fastify sees them: CONNECT (Node would close the
 * connection silently) and an `Expect` other than 100-continue (Node would answer a
 * bare 417). Both get problem+json like everything else.
 */
export function answerOutsideFastify(app: FastifyInstance, known: KnownPaths, log: RateLimitedLog): void {
  app.server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    const path = (req.url ?? '').split('?')[0];
    const allow = known.allowFor(path);
    const problem = allow
      ? new ProblemError(405, 'MethodNotAllowed', `CONNECT is not allowed on ${path}; allowed: ${allow}`, { headers: { allow } })
      : new ProblemError(405, 'MethodNotAllowed', 'CONNECT is not supported: this is not a forward proxy');
    const reqId = requestIdOf(req);
    log.warn('CONNECT', { reqId, method: 'CONNECT', path, status: 405, reason: 'MethodNotAllowed' }, 'request refused');
    writeRawProblem(socket, problem, reqId);
  });
  app.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const problem = new ProblemError(417, 'ExpectationFailed', `Expect: ${String(req.headers.expect)} is not supported; only 100-continue is`);
    const reqId = requestIdOf(req);
    log.warn('EXPECT', { reqId, method: req.method, path: (req.url ?? '').split('?')[0], status: 417, reason: 'ExpectationFailed' }, 'request refused');
    const body = JSON.stringify(problem.toBody());
    res.writeHead(417, { 'content-type': PROBLEM_CONTENT_TYPE, 'content-length': Buffer.byteLength(body), [REQUEST_ID_HEADER]: reqId, connection: 'close' }).end(body);
  });
  // Node answers `Expect: 100-continue` with 100 Continue before any hook runs, inviting the
  // body of a request that authorization may refuse. Taken over here: the request goes on
  // without it, and the 100 goes out when the body is about to be read: after every
  // onRequest hook (the TLS guard, rate limits, authorization) has let the request through.
  app.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    app.server.emit('request', req, res);
  });
  app.addHook('preParsing', async (req, reply, payload) => {
    if (req.headers.expect?.toLowerCase() === '100-continue' && !reply.sent) reply.raw.writeContinue();
    return payload;
  });
}

/**
 * A request that carries a body where none belongs (GET, HEAD: a body has no meaning
 * there, RFC 9110 §9.3.1) is refused from its headers, and the connection closed, so
 * the proxy never reads (decrypts and discards) what a client may make gigabytes long.
 */
export function refuseBodyOnRead(app: FastifyInstance): void {
  app.addHook('onRequest', async (req, reply) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return;
    const length = req.headers['content-length'];
    if (req.headers['transfer-encoding'] === undefined && (length === undefined || /^0+$/.test(length))) return;
    req.logFields.malformed = true;
    sendProblem(reply.header('connection', 'close'), new ProblemError(400, 'BadRequest', `a ${req.method} request carries no body; send it without Content-Length or Transfer-Encoding`));
    return reply;
  });
}

/** Writes a complete HTTP/1.1 problem response, with `X-Request-Id: reqId`, on a raw socket and closes it gracefully. */
function writeRawProblem(socket: Duplex, problem: ProblemError, reqId: string): void {
  if (!socket.writable) return void socket.destroy();
  const body = JSON.stringify(problem.toBody());
  const extra = Object.entries({ ...problem.headers, 'X-Request-Id': reqId }).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  // end() rather than destroy(): let the answer reach the client before the close;
  // destroy anyway if the client does not finish the close within a second.
  socket.end(`HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status]}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`);
  setTimeout(() => socket.destroy(), 1_000).unref();
}

