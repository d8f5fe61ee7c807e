import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';

/** The header a client may send its own request id in, and the one every answer carries it back in. */
export const REQUEST_ID_HEADER = 'x-request-id';

/**
 * A client's request id is kept when it is 1–64 characters of `[A-Za-z0-9._-]`: enough
 * for UUIDs, ULIDs and trace ids, and nothing that could forge a log line or a header.
 */
export const SAFE_REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * Fastify's `genReqId`: the client's `X-Request-Id` when it is a safe token (see
 * {@link SAFE_REQUEST_ID}; one header only), else a random UUID. The result is
 * `request.id`: the log's `reqId`, echoed in `X-Request-Id`, and what an audit event
 * should use as its `auditID`.
 */
export function requestIdOf(raw: IncomingMessage): string {
  const given = raw.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && SAFE_REQUEST_ID.test(given) ? given : randomUUID();
}

/** Echoes `request.id` in `X-Request-Id` on every answer `app` sends, errors included. */
export function echoRequestId(app: FastifyInstance): void {
  app.addHook('onRequest', (req, reply, done) => {
    reply.header(REQUEST_ID_HEADER, req.id);
    done();
  });
}
