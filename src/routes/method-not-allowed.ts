import type { FastifyInstance, HTTPMethods } from 'fastify';
import { ProblemError, sendProblem } from '../errors.js';

const ALL_METHODS: HTTPMethods[] = ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE', 'OPTIONS'];

/**
 * Answers every method of `url` not in `allowed` with 405 and an `Allow` header
 * (RFC 9110 §15.5.6), so a known path never looks like a missing one.
 */
export function methodNotAllowed(app: FastifyInstance, url: string, allowed: HTTPMethods[]): void {
  const allow = allowed.join(', ');
  app.route({
    method: ALL_METHODS.filter((m) => !allowed.includes(m)),
    url,
    // Answer before the body is parsed: its content type or size must not matter.
    onRequest: async (req, reply) => {
      const path = req.url.split('?')[0];
      sendProblem(reply.header('allow', allow), new ProblemError(405, 'MethodNotAllowed', `${req.method} is not allowed on ${path}; allowed: ${allow}`));
      return reply;
    },
    handler: async () => undefined,
  });
}
