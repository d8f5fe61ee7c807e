import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import swagger from '@fastify/swagger';
import { VERSION } from '../version.js';
import { LISTENER_STATUSES, PROBLEM_SCHEMA, problemResponses } from './problem-schema.js';
import type { KnownPaths } from './unrouted.js';

/** Where the API's OpenAPI document is served (over mTLS, like every API route). */
export const OPENAPI_PATH = '/openapi.json';

/**
 * Makes `app` self-describing: the shared problem schema, `@fastify/swagger` collecting
 * every route registered after this call into an OpenAPI 3.1 document, and
 * `GET /openapi.json` serving it. Call before registering the routes.
 */
export function registerOpenApi(app: FastifyInstance, known: KnownPaths): void {
  app.addSchema(PROBLEM_SCHEMA);
  app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'k8s-api-proxy',
        version: VERSION,
        description: 'List Deployments and read or set their replica counts. Every endpoint requires mutual TLS. '
          + 'Any path answers 404 (unknown path) or 405 with Allow (known path, other method) in application/problem+json; '
          + 'every answer carries X-Request-Id (the client\'s when it is 1-64 characters of [A-Za-z0-9._-], else a generated UUID).',
        license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
      },
    },
    // The TLS guard and the rate limits answer for every route (hooks, not route schemas).
    transform: ({ schema, url }) => ({ schema: { ...schema, response: { ...(schema?.response as object | undefined), ...problemResponses(...LISTENER_STATUSES) } }, url }),
    // Shared schemas keep their $id as their name under components.schemas ("Problem").
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  app.register(openApiRoute, { known });
}

const openApiRoute: FastifyPluginAsync<{ known: KnownPaths }> = async (app, opts) => {
  app.get(OPENAPI_PATH, {
    schema: { description: 'This document.', response: { 200: { description: 'OpenAPI 3.1 document', type: 'object', additionalProperties: true } } },
  }, async () => app.swagger());
  opts.known.add(OPENAPI_PATH, ['GET', 'HEAD']);
};
