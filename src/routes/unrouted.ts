import type { FastifyInstance } from 'fastify';
import { ProblemError, sendProblem } from '../errors.js';

/** A known path pattern (Fastify syntax, `:param` segments) and the methods it serves. */
interface KnownPath {
  url: string;
  re: RegExp;
  allow: string;
}

/**
 * The paths this server serves, so a request that matches no route can be answered
 * precisely: 405 with `Allow` (RFC 9110 §15.5.6) for a known path, else 404. This covers
 * every method Node accepts (TRACE, PROPFIND, …), not only the ones Fastify routes.
 */
export class KnownPaths {
  private readonly paths: KnownPath[] = [];

  add(url: string, allowed: string[]): void {
    const re = new RegExp(`^${url.split('/').map((s) => (s.startsWith(':') ? '[^/]+' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/')}$`);
    this.paths.push({ url, re, allow: allowed.join(', ') });
  }

  /** The `Allow` value for `path`, or undefined when no known path matches. */
  allowFor(path: string): string | undefined {
    return this.paths.find((p) => p.re.test(path))?.allow;
  }
}

/**
 * Answers requests that match no route in `onRequest`, before any body is read or
 * parsed: an unknown path is 404 whatever its body, a known path with another method 405.
 */
export function answerUnrouted(app: FastifyInstance, known: KnownPaths): void {
  app.addHook('onRequest', async (req, reply) => {
    if (!req.is404) return;
    const path = req.url.split('?')[0];
    const allow = known.allowFor(path);
    if (allow) {
      sendProblem(reply.header('allow', allow), new ProblemError(405, 'MethodNotAllowed', `${req.method} is not allowed on ${path}; allowed: ${allow}`));
    } else {
      sendProblem(reply, new ProblemError(404, 'NotFound', `no route for ${req.method} ${path}`));
    }
    return reply;
  });
}
