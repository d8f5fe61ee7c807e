import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { HttpRecorder } from '../metrics/recorders.js';

/** Route label of a request that matched no route (404, 405, malformed requests Fastify still parsed). */
export const UNMATCHED_ROUTE = 'unmatched';

/**
 * Records every request of `app` in `recorder`: in flight from `onRequest` (registered
 * first, so requests answered by an earlier hook count too) until its response closes,
 * then its route template (never the raw path), method, status code (`aborted` when the
 * response did not finish), duration and body size.
 */
export function instrumentRequests(app: FastifyInstance, recorder: HttpRecorder): void {
  app.addHook('onRequest', (req, reply, done) => {
    observeRequest(recorder, req, reply);
    done();
  });
}

/**
 * Records one request from now until its response closes. For requests no hook sees
 * (Fastify's `frameworkErrors`: malformed URLs, over-long path segments).
 */
export function observeRequest(recorder: HttpRecorder, req: FastifyRequest, reply: FastifyReply): void {
  recorder.started();
  // 'close' fires once for every response, finished or not, so in-flight always returns to 0.
  reply.raw.once('close', () => finish(recorder, req, reply));
}

function finish(recorder: HttpRecorder, req: FastifyRequest, reply: FastifyReply): void {
  const finished = reply.raw.writableEnded;
  const length = finished ? Number(reply.getHeader('content-length')) : NaN;
  recorder.finished(
    routeLabel(req), req.method, finished ? String(reply.statusCode) : 'aborted',
    reply.elapsedTime / 1000, Number.isFinite(length) ? length : undefined,
  );
}

/** The matched route template, e.g. `/deployments/:namespace/:deployment/replicas`, or {@link UNMATCHED_ROUTE}. */
export function routeLabel(req: FastifyRequest): string {
  return req.is404 ? UNMATCHED_ROUTE : (req.routeOptions.url ?? UNMATCHED_ROUTE);
}
