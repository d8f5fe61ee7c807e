/**
 * The recorder interfaces the Http layer, authorization and audit report to, and the
 * closed sets their label values come from. A tiny types module: no prom-client, no
 * registry (ARCHITECTURE.md). Kube-layer recorders live beside their consumers in
 * `src/kube/kube-metrics.ts`.
 */

/** One finished request on the API listener. Every argument is already a bounded label value. */
export interface HttpRecorder {
  started(): void;
  /**
   * @param route the matched route template (`/deployments/:namespace/:deployment/replicas`) or `unmatched`.
   * @param method one of {@link HTTP_METHODS} or `OTHER`.
   * @param code the status code (`200`…) or `aborted` when the client went away first.
   * @param bytes response body size, when known.
   */
  finished(route: string, method: string, code: string, seconds: number, bytes: number | undefined): void;
}

/** Methods kept as label values; any other token a client sends is counted as `OTHER`. */
export const HTTP_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE']);

/**
 * Why a TLS client was refused: OpenSSL's verdict on its certificate (`no_certificate`,
 * `untrusted_certificate`, `expired`, `not_yet_valid`, `no_client_auth`), our checks
 * (src/auth/client-identity.ts: `ca_certificate`, `bad_subject`…), a `protocol` mismatch,
 * a client that gave up or timed out mid-handshake (`aborted`), or `other`.
 */
export const REFUSAL_REASONS = [
  'no_certificate', 'untrusted_certificate', 'protocol', 'aborted',
  'no_client_auth', 'ca_certificate', 'bad_subject', 'expired', 'not_yet_valid', 'other',
] as const;
/** One of {@link REFUSAL_REASONS}. */
export type RefusalReason = typeof REFUSAL_REASONS[number];

/**
 * Connection caps a TLS hardening layer may enforce; an unknown name is counted as `other`.
 * `max_connections`: the listener's total; `per_client_ip`: one address's share.
 */
export const CONNECTION_CAPS = ['max_connections', 'per_client_ip', 'other'] as const;
/** One of {@link CONNECTION_CAPS}. */
export type ConnectionCap = typeof CONNECTION_CAPS[number];

/** TLS connections on the API listener. */
export interface TlsRecorder {
  /** A handshake completed and the client certificate is fit; the connection is open until `closed`. */
  accepted(): void;
  /** A handshake failed, or its client certificate was unfit. */
  refused(reason: RefusalReason): void;
  /** An accepted connection closed. */
  closed(): void;
  /** A connection was closed (or refused) because a cap was reached. */
  closedByCap(cap: ConnectionCap): void;
}

/** Result of an authorization decision; `error` when the authorizer could not decide. */
export type AuthzResult = 'allow' | 'deny' | 'error';
/** Authorization decisions (src/authz/), with whether the decision cache answered. */
export interface AuthzRecorder {
  decision(result: AuthzResult, cache: 'hit' | 'miss'): void;
}

/** Audit events (src/audit/): `written` to the sink, or `dropped` (buffer full, sink failing). */
export interface AuditRecorder {
  event(outcome: 'written' | 'dropped'): void;
}

/** The scrape side of the registry: the exposition body and its content type (served at `/metrics`). */
export interface MetricsEndpoint {
  contentType: string;
  render(): Promise<string>;
}

/** Records nothing. */
export const NOOP_HTTP_RECORDER: HttpRecorder = { started: () => undefined, finished: () => undefined };
/** Records nothing. */
export const NOOP_TLS_RECORDER: TlsRecorder = { accepted: () => undefined, refused: () => undefined, closed: () => undefined, closedByCap: () => undefined };
/** Records nothing. */
export const NOOP_AUTHZ_RECORDER: AuthzRecorder = { decision: () => undefined };
/** Records nothing. */
export const NOOP_AUDIT_RECORDER: AuditRecorder = { event: () => undefined };
