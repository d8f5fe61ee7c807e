/**
 * Typed errors and their RFC 9457 problem-details rendering.
 *
 * Every error a client sees is an `application/problem+json` body
 * `{type, title, status, detail, reason}` (https://www.rfc-editor.org/rfc/rfc9457).
 * `reason` is stable and mirrors Kubernetes' `metav1.StatusReason` names where one fits.
 */

import type { FastifyReply } from 'fastify';

/** The problem each response carried, by raw response, for the request log line. */
const sentProblems = new WeakMap<object, ProblemError>();

/** The {@link ProblemError} that {@link sendProblem} sent on this raw response, if any. */
export function problemSentOn(res: object): ProblemError | undefined {
  return sentProblems.get(res);
}

/** Media type of every error body (RFC 9457 §3). */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
/** Problem type URIs are URNs (RFC 9457 §3.1.1 allows non-dereferenceable URIs); the README's Errors table lists them. */
const PROBLEM_TYPE_BASE = 'urn:k8s-api-proxy:problem';

/** Stable machine-readable reasons, one per kind of failure. */
export type ProblemReason =
  | 'BadRequest'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotFound'
  | 'MethodNotAllowed'
  | 'RequestTimeout'
  | 'Conflict'
  | 'ManagedByAutoscaler'
  | 'Expired'
  | 'PayloadTooLarge'
  | 'UnsupportedMediaType'
  | 'ExpectationFailed'
  | 'Invalid'
  | 'TooManyRequests'
  | 'RequestHeaderFieldsTooLarge'
  | 'InternalError'
  | 'BadGateway'
  | 'ServiceUnavailable'
  | 'GatewayTimeout';

const TITLES: Record<ProblemReason, string> = {
  BadRequest: 'Bad Request',
  Unauthorized: 'Unauthorized',
  Forbidden: 'Forbidden',
  NotFound: 'Not Found',
  MethodNotAllowed: 'Method Not Allowed',
  RequestTimeout: 'Request Timeout',
  Conflict: 'Conflict',
  ManagedByAutoscaler: 'Conflict',
  Expired: 'Gone',
  PayloadTooLarge: 'Content Too Large',
  UnsupportedMediaType: 'Unsupported Media Type',
  ExpectationFailed: 'Expectation Failed',
  Invalid: 'Unprocessable Content',
  TooManyRequests: 'Too Many Requests',
  RequestHeaderFieldsTooLarge: 'Request Header Fields Too Large',
  InternalError: 'Internal Server Error',
  BadGateway: 'Bad Gateway',
  ServiceUnavailable: 'Service Unavailable',
  GatewayTimeout: 'Gateway Timeout',
};

/** The JSON body of a problem response (RFC 9457 §3 members plus `reason`). */
export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  reason: ProblemReason;
}

/**
 * An error that knows its HTTP response. Thrown by routes and the kube layer;
 * rendered by the server's single error handler.
 *
 * `headers` carries response headers such as `Retry-After` or `Allow`.
 */
export class ProblemError extends Error {
  readonly status: number;
  readonly reason: ProblemReason;
  readonly headers: Record<string, string>;

  constructor(status: number, reason: ProblemReason, detail: string, options: { headers?: Record<string, string>; cause?: unknown } = {}) {
    super(detail, { cause: options.cause });
    this.name = 'ProblemError';
    this.status = status;
    this.reason = reason;
    this.headers = options.headers ?? {};
  }

  /** The RFC 9457 body for this error. */
  toBody(): ProblemBody {
    return {
      type: `${PROBLEM_TYPE_BASE}:${this.reason}`,
      title: TITLES[this.reason],
      status: this.status,
      detail: this.message,
      reason: this.reason,
    };
  }
}

/** 400: the request is malformed (bad path, query or JSON); `detail` names the field. */
export const badRequest = (detail: string): ProblemError => new ProblemError(400, 'BadRequest', detail);
/** 404: no such route or object. */
export const notFound = (detail: string): ProblemError => new ProblemError(404, 'NotFound', detail);
/** 409: concurrent changes won every retry. */
export const conflict = (detail: string): ProblemError => new ProblemError(409, 'Conflict', detail);
/** 503 with `Retry-After` in whole seconds (RFC 9110 §10.2.3). */
export const unavailable = (detail: string, retryAfterSeconds = 1): ProblemError =>
  new ProblemError(503, 'ServiceUnavailable', detail, { headers: { 'retry-after': String(retryAfterSeconds) } });

/** Writes `problem` as an `application/problem+json` response, with its extra headers. */
export function sendProblem(reply: FastifyReply, problem: ProblemError): FastifyReply {
  sentProblems.set(reply.raw, problem);
  return reply.code(problem.status).headers(problem.headers).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem.toBody()));
}
