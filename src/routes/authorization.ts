import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ProblemError } from '../errors.js';
import { AuthorizerUnavailableError, forbiddenMessage, type Authorizer, type Decision, type ResourceAttributes, type UserInfo } from '../authz/authorizer.js';
import { ANNOTATIONS, buildAuditEvent, type AuditObjectRef } from '../audit/audit-event.js';
import type { AuditSink } from '../audit/audit-log.js';

/** Per-namespace reviews run at most this many at a time for an all-namespaces list. */
const NAMESPACE_REVIEW_CONCURRENCY = 8;
/** Status recorded for a request whose client closed the connection before the answer (nginx's convention). */
const CLIENT_CLOSED = 499;

/** What the audit trail will say about a request once it completes. */
interface PendingAudit {
  verb: string;
  objectRef: AuditObjectRef;
  annotations: Record<string, string>;
  /** Written at completion: every PUT, and every denial. */
  record: boolean;
  failureReason?: string;
  trackedAtMs: number;
  /** Read when the request arrives: once the connection has closed the socket no longer knows it. */
  sourceIp: string;
  written: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    pendingAudit?: PendingAudit;
  }
}

/**
 * The Routes layer's use of an {@link Authorizer} and the audit trail: turns a route's
 * question into a decision or a problem (403 Forbidden, 503/502 when no decision can be
 * had: fail closed), and writes one audit event per PUT and per denial when the
 * response completes.
 */
export class RouteAuthorization {
  private alwaysAudited: ((req: FastifyRequest) => ResourceAttributes | undefined) | undefined;

  constructor(private readonly authorizer: Authorizer, private readonly audit: AuditSink) {}

  /** The request's user as kube-apiserver would name it (from the verified certificate). */
  static userOf(req: FastifyRequest): UserInfo {
    return { username: req.clientCN, groups: req.clientIdentity?.groups ?? [] };
  }

  /**
   * Registers the audit hooks on the (encapsulated) plugin whose routes use this.
   * `alwaysAudited` names the requests to audit even when the route's own hooks never ran
   * (e.g. a PUT refused earlier by the rate limiter): it returns their attributes.
   */
  register(app: FastifyInstance, alwaysAudited?: (req: FastifyRequest) => ResourceAttributes | undefined): void {
    this.alwaysAudited = alwaysAudited;
    app.addHook('onError', async (req, _reply, err) => {
      if (req.pendingAudit && err instanceof ProblemError) req.pendingAudit.failureReason = err.reason;
    });
    app.addHook('onResponse', async (req, reply) => this.write(req, reply.statusCode, reply.elapsedTime));
    // A connection closed before the response completed (Fastify's onRequestAbort misses
    // requests whose body was already read): recorded as 499 when the response closes.
    app.addHook('onRequest', async (req, reply) => {
      reply.raw.once('close', () => { if (!reply.raw.writableFinished) this.write(req, CLIENT_CLOSED, undefined); });
    });
  }

  /**
   * Starts the audit record of a request (`always`: write it whatever the outcome, as
   * for every PUT); later annotations are added to it.
   */
  track(req: FastifyRequest, attributes: ResourceAttributes, always: boolean): PendingAudit {
    const annotations: Record<string, string> = {};
    if (req.clientIdentity?.fingerprint256) annotations[ANNOTATIONS.certificateSha256] = req.clientIdentity.fingerprint256;
    req.pendingAudit = {
      verb: attributes.verb,
      objectRef: {
        apiGroup: attributes.group, apiVersion: 'v1', resource: attributes.resource,
        ...(attributes.subresource ? { subresource: attributes.subresource } : {}),
        ...(attributes.namespace ? { namespace: attributes.namespace } : {}),
        ...(attributes.name ? { name: attributes.name } : {}),
      },
      annotations, record: always, trackedAtMs: Date.now(), sourceIp: req.ip ?? req.socket?.remoteAddress ?? '', written: false,
    };
    return req.pendingAudit;
  }

  /**
   * Asks the authorizer; returns when allowed.
   * @throws ProblemError 403 Forbidden (denied; the detail names the user and what was refused,
   *   as kube-apiserver would), 503 ServiceUnavailable or 502 BadGateway (no decision could be had).
   */
  async require(req: FastifyRequest, attributes: ResourceAttributes): Promise<void> {
    const pending = req.pendingAudit ?? this.track(req, attributes, false);
    const user = RouteAuthorization.userOf(req);
    const decision = await this.decide(req, user, attributes);
    pending.annotations[ANNOTATIONS.decision] = decision.allowed ? 'allow' : 'forbid';
    if (decision.reason) pending.annotations[ANNOTATIONS.reason] = decision.reason;
    if (!decision.allowed) {
      pending.record = true;
      req.log.info({ user: user.username, groups: user.groups, ...attributes, reason: decision.reason }, 'forbidden');
      throw new ProblemError(403, 'Forbidden', forbiddenMessage(user, attributes));
    }
  }

  /**
   * For an all-namespaces list: `'all'` when the user may list cluster-wide, otherwise
   * the subset of `namespaces` where it may list (possibly empty). Never a 403.
   * @throws ProblemError 503/502 when any needed decision cannot be had.
   */
  async visibleNamespaces(req: FastifyRequest, base: Omit<ResourceAttributes, 'namespace'>, namespaces: () => Iterable<string>): Promise<'all' | Set<string>> {
    const user = RouteAuthorization.userOf(req);
    if ((await this.decide(req, user, base)).allowed) return 'all';
    const todo = [...new Set(namespaces())];
    const visible = new Set<string>();
    for (let i = 0; i < todo.length; i += NAMESPACE_REVIEW_CONCURRENCY) {
      const batch = todo.slice(i, i + NAMESPACE_REVIEW_CONCURRENCY);
      const decisions = await Promise.all(batch.map((namespace) => this.decide(req, user, { ...base, namespace })));
      decisions.forEach((d, j) => { if (d.allowed) visible.add(batch[j]); });
    }
    return visible;
  }

  /**
   * For a response that outlives its request (a watch stream): asks the authorizer again
   * the decisions that opened it, `granted` being what they granted: `'all'` (the
   * cluster-wide `base`) or these namespaces. Not audited (nothing is answered).
   * @returns undefined while every one is still allowed, else the Forbidden message of the first one no longer allowed.
   * @throws AuthorizerUnavailableError when a decision cannot be had (the caller fails closed).
   */
  async stillAllowed(req: FastifyRequest, base: Omit<ResourceAttributes, 'namespace'>, granted: 'all' | ReadonlySet<string>): Promise<string | undefined> {
    const user = RouteAuthorization.userOf(req);
    const questions: ResourceAttributes[] = granted === 'all' ? [base] : [...granted].map((namespace) => ({ ...base, namespace }));
    for (let i = 0; i < questions.length; i += NAMESPACE_REVIEW_CONCURRENCY) {
      const batch = questions.slice(i, i + NAMESPACE_REVIEW_CONCURRENCY);
      const decisions = await Promise.all(batch.map((a) => this.authorizer.authorize(user, a)));
      const lost = decisions.findIndex((d) => !d.allowed);
      if (lost >= 0) return forbiddenMessage(user, batch[lost]);
    }
    return undefined;
  }

  private async decide(req: FastifyRequest, user: UserInfo, attributes: ResourceAttributes): Promise<Decision> {
    try {
      return await this.authorizer.authorize(user, attributes);
    } catch (err) {
      if (!(err instanceof AuthorizerUnavailableError)) throw err;
      if (req.pendingAudit) req.pendingAudit.annotations[ANNOTATIONS.reason] = `no decision: ${err.message}`;
      throw err.status === 502
        ? new ProblemError(502, 'BadGateway', 'authorization failed: the API server refused the proxy\'s SubjectAccessReview; the proxy log has details', { cause: err })
        : new ProblemError(503, 'ServiceUnavailable', 'authorization is unavailable: the API server did not answer a SubjectAccessReview, and nothing is allowed without a decision', { headers: { 'retry-after': '2' }, cause: err });
    }
  }

  private write(req: FastifyRequest, code: number, elapsedMs: number | undefined): void {
    const late = req.pendingAudit ? undefined : this.alwaysAudited?.(req);
    const pending = late ? this.track(req, late, true) : req.pendingAudit;
    if (!pending || pending.written || !pending.record) return;
    pending.written = true;
    const now = Date.now();
    this.audit.write(buildAuditEvent({
      auditId: String(req.id), requestUri: req.url, verb: pending.verb, user: RouteAuthorization.userOf(req),
      sourceIp: pending.sourceIp, userAgent: req.headers['user-agent'], objectRef: pending.objectRef, code,
      failureReason: pending.failureReason, receivedAtMs: elapsedMs === undefined ? pending.trackedAtMs : now - Math.round(elapsedMs), completedAtMs: now,
      annotations: pending.annotations,
    }));
  }
}
