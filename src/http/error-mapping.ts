import type { FastifyError } from 'fastify';
import { ProblemError } from '../errors.js';

/** Largest request body accepted (bytes); a replicas body is ~20 bytes. */
export const BODY_LIMIT_BYTES = 1024;

const NAME_RULES: Record<string, string> = {
  'params.namespace': 'a valid namespace (a DNS-1123 label: lowercase letters, digits and "-", starting and ending with a letter or digit, at most 63 characters)',
  'params.deployment': 'a valid Deployment name (a DNS-1123 subdomain: lowercase letters, digits, "-" and ".", at most 253 characters)',
};

const FASTIFY_CODES: Record<string, (err: FastifyError) => ProblemError> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: (e) => new ProblemError(415, 'UnsupportedMediaType', `Content-Type must be application/json (${e.message})`),
  FST_ERR_CTP_BODY_TOO_LARGE: () => new ProblemError(413, 'PayloadTooLarge', `request body exceeds ${BODY_LIMIT_BYTES} bytes`),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () => new ProblemError(400, 'BadRequest', 'Content-Length does not match the body'),
};

/**
 * Maps any error a route or Fastify raised to the problem the client gets: ProblemErrors
 * as they are, Fastify's body and validation errors as 4xx naming the field, anything
 * else as a 500 whose detail stays in the log.
 */
export function toHttpProblem(err: FastifyError): ProblemError {
  if (err instanceof ProblemError) return err;
  if (err.code && FASTIFY_CODES[err.code]) return FASTIFY_CODES[err.code](err);
  if (err.validation) {
    const where = err.validationContext ?? 'request';
    const first = err.validation[0];
    const field = `${where}${first?.instancePath ? first.instancePath.replaceAll('/', '.') : ''}`;
    let detail = `${field} ${first?.message ?? 'is invalid'}`;
    const rule = first?.keyword === 'pattern' || first?.keyword === 'maxLength' ? NAME_RULES[field] : undefined;
    if (rule) detail = `${field}: "${String((first as { data?: unknown } | undefined)?.data ?? "")}" is not ${rule}`;
    if (first?.keyword === 'additionalProperties') {
      const known = Object.keys((first as { parentSchema?: { properties?: object } }).parentSchema?.properties ?? {});
      const name = String(first.params.additionalProperty).slice(0, 64);
      const allowed = known.length === 0 ? 'none is accepted' : `only ${known.map((k) => `"${k}"`).join(', ')} ${known.length === 1 ? 'is' : 'are'} accepted`;
      detail = where === 'querystring' ? `querystring.${name}: unknown parameter; ${allowed}` : `${where}: unknown property "${name}"; ${allowed}`;
    }
    if (first?.keyword === 'required') detail = `${where}: missing required property "${String(first.params.missingProperty)}"`;
    // A well-formed body with wrong content is 422 (RFC 9110 §15.5.21); a bad path or query is 400.
    return where === 'body' ? new ProblemError(422, 'Invalid', detail) : new ProblemError(400, 'BadRequest', detail);
  }
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return new ProblemError(err.statusCode, 'BadRequest', err.message);
  }
  return new ProblemError(500, 'InternalError', 'internal error; see the proxy logs', { cause: err });
}
