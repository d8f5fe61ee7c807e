import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { problemSentOn } from '../errors.js';
import type { RateLimitedLog } from '../log/rate-limited-log.js';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * Facts a handler or hook adds to this request's single log line: `cause` (what the
     * response withheld, e.g. the upstream error), `malformed` (the request was not valid
     * HTTP for us: logged at `warn`).
     */
    logFields: RequestLogFields;
  }
}

/** Extra fields of a request's log line; see {@link installRequestLog}. */
export interface RequestLogFields {
  /** The detail the response withholds (upstream status or error code and message). */
  cause?: string;
  /** True for requests refused as malformed HTTP (missing Host, bad URL…): logged at `warn`. */
  malformed?: boolean;
  [key: string]: unknown;
}

/** Log levels of the request line, by outcome. */
export type RequestLogLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * The level of a finished request's line: `error` for 500 (a bug in the proxy), `warn` for
 * other 5xx (an upstream failure), for 401 (a certificate that stopped holding) and for
 * malformed HTTP; `info` for everything else (ordinary 4xx refusals carry their `reason`).
 */
export function requestLogLevel(status: number, malformed: boolean): RequestLogLevel {
  if (status === 500) return 'error';
  if (status >= 500 || status === 401 || malformed) return 'warn';
  return 'info';
}

/**
 * Exactly one log line per request, written when its response closes: `msg: "request"`
 * with `reqId`, `client`, `groups` and `clientSha256` (when on mTLS), `method`, `path` (no query),
 * `status` (the code, or `"aborted"` when the connection closed before the response was
 * complete: a client that gave up during a conflict retry or a hung upstream call),
 * `durationMs`, and for answers of 400 and above the problem's `reason` plus any `cause`
 * the handler recorded. Listening on the raw response's `close` covers every way a request
 * ends (served, refused by a hook, failed, aborted, timed out), where Fastify's
 * `onRequestAbort` misses requests whose body had already been read.
 *
 * Must be installed before any `onRequest` hook that may answer (the TLS guard), so that
 * refused requests are logged too. Lines of malformed requests go through `malformed`, the
 * rate-limited log shared with the other malformed-HTTP answers. `fixedLevel` sets every
 * line's level (the probe listener logs at `debug`, or kubelet's probes would fill the log).
 */
export function installRequestLog(app: FastifyInstance, logger: Logger, malformed: RateLimitedLog, fixedLevel?: RequestLogLevel): void {
  // The logger's redaction paths (src/proxy.ts) name nested keys (`*.token`, `err.config.headers`…),
  // so they can only match inside an object: a line of strings, numbers and string lists
  // is written as is, without walking it for them (a tenth of a cached read's CPU).
  const plain = logger.child({}, { redact: [] });
  const out = (entry: Record<string, unknown>): Logger => (isFlat(entry) ? plain : logger);
  app.decorateRequest('logFields', null as unknown as RequestLogFields);
  app.addHook('onRequest', async (req, reply) => {
    req.logFields = {};
    const started = process.hrtime.bigint();
    const res = reply.raw;
    res.once('close', () => {
      const durationMs = Math.round(Number(process.hrtime.bigint() - started) / 1e6);
      const base = line(req);
      if (!res.writableFinished) {
        const entry = { reqId: req.id, ...base, status: 'aborted', durationMs, ...req.logFields };
        out(entry).warn(entry, 'request');
        return;
      }
      const status = res.statusCode;
      const problem = status >= 400 ? problemSentOn(res) : undefined;
      const { malformed: isMalformed, ...fields } = req.logFields;
      const entry = { reqId: req.id, ...base, status, durationMs, ...(problem ? { reason: problem.reason } : {}), ...fields };
      if (isMalformed === true && !fixedLevel) return void malformed.warn(`HTTP_${status}`, entry, 'request');
      out(entry)[fixedLevel ?? requestLogLevel(status, false)](entry, 'request');
    });
  });
}

/** True when no value of `entry` is an object other than a list of strings. */
function isFlat(entry: Record<string, unknown>): boolean {
  for (const key in entry) {
    const v = entry[key];
    if (v === null || typeof v !== 'object') continue;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) return false;
  }
  return true;
}

function line(req: FastifyRequest): Record<string, unknown> {
  return {
    ...(req.clientCN ? { client: req.clientCN, groups: req.clientIdentity?.groups, clientSha256: req.clientFingerprint } : {}),
    method: req.method,
    path: req.url.split('?')[0],
  };
}
