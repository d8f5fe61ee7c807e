import type { FastifyPluginAsync } from 'fastify';
import type { MetricsEndpoint } from '../metrics/recorders.js';
import type { KnownPaths } from './unrouted.js';

/** Options of {@link metricsRoutes}. */
export interface MetricsRouteOptions {
  endpoint: MetricsEndpoint;
  known: KnownPaths;
}

/**
 * `GET /metrics`: the Prometheus text exposition, on the plain-HTTP probe listener
 * (Prometheus and kubelet present no client certificate; controller-runtime managers
 * serve metrics the same way). Not in the OpenAPI document: that describes the mTLS API.
 */
export const metricsRoutes: FastifyPluginAsync<MetricsRouteOptions> = async (app, opts) => {
  app.get('/metrics', async (_req, reply) => reply.type(opts.endpoint.contentType).send(await opts.endpoint.render()));
  opts.known.add('/metrics', ['GET', 'HEAD']);
};
