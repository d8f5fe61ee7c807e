import { KubeTimeoutError, KubeUnreachableError, type KubeClient } from './kube-client.js';
import type { Logger } from 'pino';

/** Bound on the upstream health probe, per the API contract (GET /healthz answers within ~2 s). */
export const API_HEALTH_TIMEOUT_MS = 2_000;

/** Result of asking the API server whether it is ready. */
export type ApiHealth = { ok: true } | { ok: false; message: string };

/** Something that can tell whether the API server is healthy. */
export type ApiHealthCheck = () => Promise<ApiHealth>;

/**
 * Asks the API server's `/readyz`, the maintained successor of the `/healthz` the RFD
 * names (deprecated since Kubernetes 1.16; https://kubernetes.io/docs/reference/using-api/health-checks/).
 * Never throws: an unreachable or slow server is `{ok: false}` with the reason.
 */
export function apiServerReadyz(client: KubeClient, timeoutMs = API_HEALTH_TIMEOUT_MS, logger?: Logger): ApiHealthCheck {
  return async () => {
    try {
      const { status, body } = await client.getText('/readyz', timeoutMs);
      if (status === 200) return { ok: true };
      if (status === 401 || status === 403) {
        // The body names the proxy's identity: log it, do not hand it to clients.
        logger?.warn({ status, body: body.slice(0, 300) }, 'API server refused the proxy on /readyz');
        return { ok: false, message: `API server refused the proxy's credentials (HTTP ${status})` };
      }
      // Failed check names ("[-]etcd failed: reason withheld") are safe and useful.
      const checks = body.split('\n').map((l) => /^\[-\]([\w/.-]+) failed/.exec(l)?.[1]).filter(Boolean).join(', ');
      return { ok: false, message: `API server not ready (HTTP ${status})${checks ? `: ${checks}` : ''}` };
    } catch (err) {
      logger?.debug({ err: (err as Error).message }, 'API server /readyz failed');
      if (err instanceof KubeTimeoutError) return { ok: false, message: `API server did not answer within ${timeoutMs / 1000} s` };
      if (err instanceof KubeUnreachableError) {
        return { ok: false, message: `API server unreachable (${(err.cause as NodeJS.ErrnoException | undefined)?.code ?? 'connection failed'})` };
      }
      return { ok: false, message: 'cannot query the API server; see the proxy log' };
    }
  };
}

/** How long one upstream answer serves `GET /healthz`. */
export const API_HEALTH_CACHE_MS = 1_000;

/**
 * `check` behind a short cache: one upstream call at a time, its answer reused for
 * `ttlMs` after it arrives, so `GET /healthz` cannot be used to multiply load on the API
 * server (any number of requests per second cost at most one `/readyz` call per `ttlMs`).
 */
export function cachedApiHealth(check: ApiHealthCheck, ttlMs = API_HEALTH_CACHE_MS, now: () => number = Date.now): ApiHealthCheck {
  let last: { at: number; health: ApiHealth } | undefined;
  let inFlight: Promise<ApiHealth> | undefined;
  return () => {
    if (last && now() - last.at < ttlMs) return Promise.resolve(last.health);
    inFlight ??= check().then((health) => {
      last = { at: now(), health };
      return health;
    }).finally(() => { inFlight = undefined; });
    return inFlight;
  };
}
