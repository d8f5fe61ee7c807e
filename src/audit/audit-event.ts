/**
 * Audit events shaped like Kubernetes' `audit.k8s.io/v1` `Event` at level `Metadata`
 * (https://kubernetes.io/docs/reference/config-api/apiserver-audit.v1/#audit-k8s-io-v1-Event),
 * so pipelines that already read kube-apiserver audit logs read these too.
 * This module knows no HTTP framework: Routes hand it what happened.
 */

/** Annotation keys: kube-apiserver's own for the authorization decision, ours for the rest. */
export const ANNOTATIONS = {
  decision: 'authorization.k8s.io/decision',
  reason: 'authorization.k8s.io/reason',
  replicasBefore: 'k8s-api-proxy/replicas-before',
  replicasAfter: 'k8s-api-proxy/replicas-after',
  replicasRequested: 'k8s-api-proxy/replicas-requested',
  certificateSha256: 'k8s-api-proxy/client-certificate-sha256',
  /** `true` when the client wrote past an HorizontalPodAutoscaler with `?force=true`. */
  forced: 'k8s-api-proxy/forced',
} as const;

/** `audit.k8s.io/v1` ObjectReference (the fields this proxy can name). */
export interface AuditObjectRef {
  apiGroup: string;
  apiVersion: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

/** One `audit.k8s.io/v1` Event at level Metadata, stage ResponseComplete. */
export interface AuditEvent {
  kind: 'Event';
  apiVersion: 'audit.k8s.io/v1';
  level: 'Metadata';
  auditID: string;
  stage: 'ResponseComplete';
  requestURI: string;
  verb: string;
  user: { username: string; groups: string[] };
  sourceIPs: string[];
  userAgent?: string;
  objectRef: AuditObjectRef;
  responseStatus: { metadata: Record<string, never>; code: number; status?: 'Failure'; reason?: string };
  /** RFC 3339 UTC with milliseconds. */
  requestReceivedTimestamp: string;
  stageTimestamp: string;
  annotations: Record<string, string>;
}

/** What a route knows about a finished request, in plain values. */
export interface AuditInput {
  /** The request id (also in the request's log line). */
  auditId: string;
  /** Path and query as received. */
  requestUri: string;
  /** Kubernetes verb: get, list, update. */
  verb: string;
  user: { username: string; groups: readonly string[] };
  sourceIp: string;
  userAgent?: string;
  objectRef: AuditObjectRef;
  /** HTTP status answered (499: the client closed the connection first). */
  code: number;
  /** `reason` of the problem answered, when it failed. */
  failureReason?: string;
  receivedAtMs: number;
  completedAtMs: number;
  annotations: Record<string, string>;
}

/** Builds the Event for `input`; pure. */
export function buildAuditEvent(input: AuditInput): AuditEvent {
  const failed = input.code >= 400;
  return {
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: 'Metadata',
    auditID: input.auditId,
    stage: 'ResponseComplete',
    requestURI: input.requestUri,
    verb: input.verb,
    user: { username: input.user.username, groups: [...input.user.groups] },
    sourceIPs: [input.sourceIp],
    ...(input.userAgent ? { userAgent: input.userAgent } : {}),
    objectRef: input.objectRef,
    responseStatus: { metadata: {}, code: input.code, ...(failed ? { status: 'Failure' as const, ...(input.failureReason ? { reason: input.failureReason } : {}) } : {}) },
    requestReceivedTimestamp: new Date(input.receivedAtMs).toISOString(),
    stageTimestamp: new Date(input.completedAtMs).toISOString(),
    annotations: input.annotations,
  };
}
