import type { FastifyRequest } from 'fastify';
import { ProblemError } from '../errors.js';
import { recordNumberSource } from '../json-numbers.js';

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The only body parser: strict JSON in UTF-8. A charset other than UTF-8, or any
 * Content-Encoding (gzip…), is 415; invalid UTF-8, an empty or a malformed body is 400.
 * `JSON.parse` keeps a `__proto__` key as an ordinary own property (no prototype is
 * touched), so the schema reports it as an unknown property (422), not "malformed JSON".
 */
export function parseJsonBody(req: FastifyRequest, body: string | Buffer, done: (err: Error | null, value?: unknown) => void): void {
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
    done(null, JSON.parse(text, recordNumberSource));
  } catch (err) {
    done(new ProblemError(400, 'BadRequest', `body: malformed JSON (${(err as Error).message})`));
  }
}

