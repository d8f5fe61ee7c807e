/** RFC 9457 problem details as every error answer of the API carries them; a shared schema (`$ref: 'Problem#'`). */
export const PROBLEM_SCHEMA = {
  $id: 'Problem',
  type: 'object',
  description: 'RFC 9457 problem details; `reason` is stable and `type` is `urn:k8s-api-proxy:problem:<reason>`.',
  required: ['type', 'title', 'status', 'detail', 'reason'],
  properties: {
    type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' }, detail: { type: 'string' }, reason: { type: 'string' },
  },
} as const;

/** What each status means on this API (the README's tables, shortened). */
const STATUS_MEANING: Record<number, string> = {
  400: 'BadRequest: malformed path, query, body or JSON',
  401: 'Unauthorized: the client certificate of this connection expired since its handshake, or its CA was removed from --client-ca; the connection is closed (reconnect)',
  403: 'Forbidden: the client may not do this (its user and groups, asked with a SubjectAccessReview); on PUT also admission refusing the change (the detail carries the API server\'s message)',
  404: 'NotFound: no such Deployment',
  408: 'RequestTimeout: the request was not fully received in time, or (PUT) the client closed the connection before or during the write',
  409: 'Conflict: every retry met a concurrent change; retry the request',
  413: 'PayloadTooLarge: body over 1 KiB',
  415: 'UnsupportedMediaType: not application/json in UTF-8, or a Content-Encoding was set',
  422: 'Invalid: replicas missing, not an integer, out of range, or another property present',
  429: 'TooManyRequests: this client is over its read or write rate limit, or (PUT) too many writes to this Deployment are in line; see Retry-After',
  500: 'InternalError: a bug in the proxy (details are in its log)',
  410: 'Expired: the continue token names a list state that is gone; list again without continue',
  502: 'BadGateway: the API server refused the proxy or failed',
  503: 'ServiceUnavailable: the cache has not finished its first list, or the API server is unreachable or overloaded (Retry-After)',
  504: 'GatewayTimeout: the API server did not answer in time',
};

/** Statuses every route of the API listener can answer before its handler runs: the per-request certificate check and the rate limits. */
export const LISTENER_STATUSES = [401, 429];

/** Route `response` schema entries answering `application/problem+json` for each of `statuses`. */
export function problemResponses(...statuses: number[]): Record<number, object> {
  return Object.fromEntries(statuses.map((s) => [s, {
    description: STATUS_MEANING[s] ?? 'see the problem detail',
    content: { 'application/problem+json': { schema: { $ref: 'Problem#' } } },
  }]));
}
