import type { FastifyPluginAsync } from 'fastify';
import type { ApiHealthCheck } from '../kube/api-health.js';
import type { KnownPaths } from './unrouted.js';

/** Whether this process should receive traffic: caches synced, watches fresh, not shutting down. */
export interface Readiness {
  check(): { ready: true } | { ready: false; message: string };
}

/** Options of {@link healthRoutes}; without `apiHealth`, `/healthz` is not served (probe listener). */
export interface HealthRouteOptions {
  readiness: Readiness;
  apiHealth?: ApiHealthCheck;
  known: KnownPaths;
}

const healthBody = {
  type: 'object',
  required: ['status'],
  properties: { status: { type: 'string', enum: ['ok', 'error'] }, message: { type: 'string' } },
  additionalProperties: false,
} as const;
const healthSchema = { response: { 200: { ...healthBody, description: 'ok' }, 503: { ...healthBody, description: 'not ok (or shutting down), with a message and Retry-After' } } };
const livezSchema = { response: { 200: healthSchema.response[200] } };

/**
 * `/livez` (the process runs: never depends on the API server, so a control-plane blip
 * does not restart pods), `/readyz` (this proxy can serve), and `/healthz` (the RFD's
 * upstream check). Health bodies keep the RFD shape `{"status":"ok"}` /
 * `{"status":"error","message":…}` rather than problem+json, whose `status` member is a number.
 */
export const healthRoutes: FastifyPluginAsync<HealthRouteOptions> = async (app, opts) => {
  app.get('/livez', { schema: livezSchema }, async () => ({ status: 'ok' as const }));

  app.get('/readyz', { schema: healthSchema }, async (_req, reply) => {
    const r = opts.readiness.check();
    if (r.ready) return { status: 'ok' as const };
    return reply.code(503).header('retry-after', '1').send({ status: 'error' as const, message: r.message });
  });

  const paths = ['/livez', '/readyz'];
  if (opts.apiHealth) {
    const check = opts.apiHealth;
    app.get('/healthz', { schema: healthSchema }, async (req, reply) => {
      const h = await check();
      if (h.ok) return { status: 'ok' as const };
      // The request's log line (at warn, as a 5xx) carries what the answer withholds.
      req.logFields.cause = h.cause ?? h.message;
      return reply.code(503).header('retry-after', '2').send({ status: 'error' as const, message: h.message });
    });
    paths.push('/healthz');
  }
  for (const url of paths) opts.known.add(url, ['GET', 'HEAD']);
};
