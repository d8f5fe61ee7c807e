import { KubeStatusError, KubeTimeoutError, KubeUnreachableError, type KubeClient } from './kube-client.js';
import type { Logger } from 'pino';

/** Bound on the upstream health probe, per the API contract (GET /healthz answers within ~2 s). */
export const API_HEALTH_TIMEOUT_MS = 2_000;

/** Result of asking the API server whether it is ready. */
export type ApiHealth = { ok: true } | {
  ok: false;
  /** Safe for any authenticated client: names no upstream path or identity. */
  message: string;
  /** What the message withholds (upstream status and body, error code): for the request's log line only. */
  cause?: string;
};

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
      const cause = `GET /readyz: HTTP ${status}${body ? `: ${body.slice(0, 300)}` : ''}`;
      if (status === 401) return { ok: false, message: "API server rejects the proxy's credentials (HTTP 401 Unauthorized)", cause };
      if (status === 403) {
        // The body names the proxy's identity: log it, do not hand it to clients.
        logger?.warn({ status, body: body.slice(0, 300) }, 'API server refused the proxy on /readyz');
        return { ok: false, message: `API server refused the proxy's credentials (HTTP ${status})`, cause };
      }
      // Failed check names ("[-]etcd failed: reason withheld") are safe and useful.
      const checks = body.split('\n').map((l) => /^\[-\]([\w/.-]+) failed/.exec(l)?.[1]).filter(Boolean).join(', ');
      return { ok: false, message: `API server not ready (HTTP ${status})${checks ? `: ${checks}` : ''}`, cause };
    } catch (err) {
      const cause = (err as Error).message;
      if (err instanceof KubeTimeoutError) return { ok: false, message: `API server did not answer within ${timeoutMs / 1000} s`, cause };
      if (err instanceof KubeUnreachableError) {
        return { ok: false, message: `API server unreachable (${(err.cause as NodeJS.ErrnoException | undefined)?.code ?? 'connection failed'})`, cause };
      }
      return { ok: false, message: 'cannot query the API server; see the proxy log', cause };
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

/** One `SelfSubjectAccessReview` question (authorization.k8s.io/v1 `ResourceAttributes`). */
export interface ResourceAttributes {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
}

/**
 * What the proxy's ClusterRole grants and its work needs
 * (charts/k8s-api-proxy/rbac/clusterrole.yaml): list and watch for the cache, get and
 * update on `deployments/scale` for the only write, list and watch on
 * HorizontalPodAutoscalers for their cache (a PUT on an autoscaled Deployment is refused).
 * Checked cluster-wide.
 */
export const REQUIRED_ACCESS: readonly ResourceAttributes[] = [
  { verb: 'list', group: 'apps', resource: 'deployments' },
  { verb: 'watch', group: 'apps', resource: 'deployments' },
  { verb: 'get', group: 'apps', resource: 'deployments', subresource: 'scale' },
  { verb: 'update', group: 'apps', resource: 'deployments', subresource: 'scale' },
  { verb: 'list', group: 'autoscaling', resource: 'horizontalpodautoscalers' },
  { verb: 'watch', group: 'autoscaling', resource: 'horizontalpodautoscalers' },
];

/** Who the API server takes the proxy for (`SelfSubjectReview.status.userInfo`). */
export interface ProxyIdentity {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

/**
 * The proxy's own access: its identity, or why it cannot serve (message safe for
 * clients). `denied` is true when the API server said no (401, anonymous, RBAC), false
 * when it could not be asked (an outage, which `/readyz` tolerates for a while).
 */
export type AccessResult = { ok: true; identity: ProxyIdentity } | { ok: false; message: string; denied: boolean };

/** Options of {@link AccessCheck}. */
export interface AccessCheckOptions {
  /** Bound on each review call, ms (default {@link API_HEALTH_TIMEOUT_MS}). */
  timeoutMs?: number;
  /** A result is reused this long, ms (default 5000), so `/healthz` does not fan out per call. */
  ttlMs?: number;
  logger?: Logger;
  now?: () => number;
}

const describeAttrs = (a: ResourceAttributes): string => `${a.verb} ${a.resource}${a.subresource ? `/${a.subresource}` : ''}${a.group ? `.${a.group}` : ''}`;

/**
 * Whether the proxy can do its job with its own credentials: a `SelfSubjectReview`
 * (authentication.k8s.io/v1, GA in 1.28) says who the API server takes it for (401 =
 * credentials rejected; `system:anonymous` = no working credentials), then one
 * `SelfSubjectAccessReview` per {@link REQUIRED_ACCESS} entry says whether RBAC still
 * gives it its role (https://kubernetes.io/docs/reference/access-authn-authz/authorization/#checking-api-access).
 * Both reviews are allowed to every authenticated user by the default `system:basic-user` binding.
 */
export class AccessCheck {
  private cached?: { at: number; result: AccessResult };
  private inflight?: Promise<AccessResult>;
  private timer?: NodeJS.Timeout;
  private identityKey = '';
  private readonly timeoutMs: number;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(private readonly client: KubeClient, private readonly options: AccessCheckOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? API_HEALTH_TIMEOUT_MS;
    this.ttlMs = options.ttlMs ?? 5_000;
    this.now = options.now ?? Date.now;
  }

  /** The last result, if any (for `/readyz`, which must not call the API server). */
  last(): AccessResult | undefined {
    return this.cached?.result;
  }

  /** Checks now, or returns a result younger than `ttlMs`. Never throws. */
  check(): Promise<AccessResult> {
    if (this.cached && this.now() - this.cached.at < this.ttlMs) return Promise.resolve(this.cached.result);
    this.inflight ??= this.run().then((result) => {
      const before = this.cached?.result;
      this.cached = { at: this.now(), result };
      this.inflight = undefined;
      if (result.ok && (!before || !before.ok)) this.options.logger?.info('the proxy can serve with its credentials');
      if (!result.ok && (!before || before.ok || before.message !== result.message)) this.options.logger?.warn({ problem: result.message }, 'the proxy cannot serve with its credentials');
      return result;
    });
    return this.inflight;
  }

  /** Re-checks every `intervalMs` in the background (first check at once), so `/readyz` follows. */
  start(intervalMs = 30_000): void {
    void this.check();
    this.timer = setInterval(() => this.invalidate(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /**
   * Marks the cached result stale (e.g. after an upstream 401/403) and checks again at
   * once; `last()` keeps the old result until the new one is in.
   */
  invalidate(): void {
    if (this.cached) this.cached = { ...this.cached, at: -Infinity };
    void this.check();
  }

  /**
   * One `SelfSubjectAccessReview`.
   * @returns whether the API server's authorizer allows it.
   * @throws KubeStatusError, KubeTimeoutError, KubeUnreachableError.
   */
  async allowed(attrs: ResourceAttributes): Promise<boolean> {
    const review = await this.client.request<{ status?: { allowed?: boolean } }>('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', {
      body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: attrs } },
      timeoutMs: this.timeoutMs,
    });
    return review.status?.allowed === true;
  }

  /**
   * Who the API server takes the proxy for.
   * @throws KubeStatusError (401: credentials rejected), KubeTimeoutError, KubeUnreachableError.
   */
  async whoAmI(): Promise<ProxyIdentity> {
    const review = await this.client.request<{ status?: { userInfo?: ProxyIdentity } }>('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
      timeoutMs: this.timeoutMs,
    });
    return review.status?.userInfo ?? { username: '' };
  }

  private async run(): Promise<AccessResult> {
    const logger = this.options.logger;
    let identity: ProxyIdentity;
    try {
      identity = await this.whoAmI();
    } catch (err) {
      logger?.debug({ err: (err as Error).message }, 'SelfSubjectReview failed');
      if (err instanceof KubeStatusError && err.code === 401) {
        return { ok: false, denied: true, message: "API server rejects the proxy's credentials (HTTP 401 Unauthorized)" };
      }
      if (err instanceof KubeStatusError && err.code === 403) {
        // Every authenticated user may create a SelfSubjectReview: a 403 means the API server took the proxy for anonymous.
        return { ok: false, denied: true, message: 'API server does not accept the proxy as authenticated: it has no working credentials (HTTP 403 on SelfSubjectReview, the proxy is anonymous)' };
      }
      return { ok: false, denied: false, message: `cannot verify the proxy's access: ${failureText(err, this.timeoutMs)}` };
    }
    const key = JSON.stringify(identity);
    if (key !== this.identityKey) {
      // Who the API server takes the proxy for, once per change (tokens and certificates rotate).
      this.identityKey = key;
      logger?.info({ user: identity }, 'authenticated to the API server');
    }
    if (identity.username === 'system:anonymous') {
      return { ok: false, denied: true, message: 'API server does not accept the proxy as authenticated: it has no working credentials (the proxy is anonymous)' };
    }
    let denied: string[];
    try {
      const answers = await Promise.all(REQUIRED_ACCESS.map((a) => this.allowed(a)));
      denied = REQUIRED_ACCESS.filter((_a, i) => !answers[i]).map(describeAttrs);
    } catch (err) {
      logger?.debug({ err: (err as Error).message }, 'SelfSubjectAccessReview failed');
      return { ok: false, denied: false, message: `cannot verify the proxy's access: ${failureText(err, this.timeoutMs)}` };
    }
    if (denied.length > 0) {
      // The identity goes to the log only.
      logger?.warn({ user: identity.username, denied }, 'RBAC does not give the proxy the access its role should');
      return { ok: false, denied: true, message: `the proxy lacks access its role should give (RBAC): ${denied.join(', ')}` };
    }
    return { ok: true, identity };
  }
}

function failureText(err: unknown, timeoutMs: number): string {
  if (err instanceof KubeTimeoutError) return `API server did not answer within ${timeoutMs / 1000} s`;
  if (err instanceof KubeUnreachableError) return `API server unreachable (${(err.cause as NodeJS.ErrnoException | undefined)?.code ?? 'connection failed'})`;
  if (err instanceof KubeStatusError) return `HTTP ${err.code}${err.reason ? ` ${err.reason}` : ''}`;
  return 'see the proxy log';
}

/**
 * `GET /healthz`: the API server is ready ({@link apiServerReadyz}) *and* the proxy can
 * serve with its own credentials ({@link AccessCheck}). `{ok: true}` means "this proxy
 * can serve you", not just "something answered". Never throws.
 */
export function proxyHealth(readyz: ApiHealthCheck, access: AccessCheck): ApiHealthCheck {
  return async () => {
    const up = await readyz();
    if (!up.ok) return up;
    const a = await access.check();
    return a.ok ? { ok: true } : { ok: false, message: a.message };
  };
}
