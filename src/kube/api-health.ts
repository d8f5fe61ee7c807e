import type { KubeClient } from './kube-client.js';

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
export function apiServerReadyz(client: KubeClient, timeoutMs = API_HEALTH_TIMEOUT_MS): ApiHealthCheck {
  return async () => {
    try {
      const { status, body } = await client.getText('/readyz', timeoutMs);
      if (status === 200) return { ok: true };
      const detail = body.split('\n').filter((l) => l.startsWith('[-]')).join('; ') || body.trim().slice(0, 200);
      return { ok: false, message: `API server /readyz answered HTTP ${status}${detail ? `: ${detail}` : ''}` };
    } catch (err) {
      return { ok: false, message: (err as Error).message };
    }
  };
}
