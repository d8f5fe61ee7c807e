import { KubeStatusError, KubeTimeoutError, KubeUnreachableError, type KubeClient } from '../kube/kube-client.js';
import { AuthorizerUnavailableError, type Authorizer, type Decision, type ResourceAttributes, type UserInfo } from './authorizer.js';

/** Where SubjectAccessReviews are created (`create` on `authorization.k8s.io/subjectaccessreviews`). */
export const SUBJECT_ACCESS_REVIEW_PATH = '/apis/authorization.k8s.io/v1/subjectaccessreviews';
/** Bound on one review; a client waits at most this long for an uncached decision. */
export const REVIEW_TIMEOUT_MS = 3_000;

/** `SubjectAccessReview.status` (authorization.k8s.io/v1). */
interface ReviewStatus {
  allowed?: boolean;
  denied?: boolean;
  reason?: string;
  evaluationError?: string;
}

/**
 * Asks the API server, with the proxy's own credentials, whether a client may act: one
 * `SubjectAccessReview` per decision, through the project's transport (one keep-alive
 * pool). The API server answers with every authorizer it runs (RBAC, webhooks), exactly
 * as for the client's own requests.
 *
 * Why not impersonation: a proxy token allowed to impersonate can become anyone
 * (cluster-admin included) if it leaks; one allowed to create SubjectAccessReviews can
 * only ask questions.
 */
export class SubjectAccessReviewAuthorizer implements Authorizer {
  constructor(private readonly client: Pick<KubeClient, 'request'>, private readonly timeoutMs = REVIEW_TIMEOUT_MS) {}

  /**
   * @returns allowed only when the review's `status.allowed` is true; anything else
   *   (denied, no opinion, an evaluation error) is a denial with the API server's reason.
   * @throws AuthorizerUnavailableError 503 (unreachable, timeout, 429/5xx) or 502 (the proxy's review was refused, e.g. 401/403).
   */
  async authorize(user: UserInfo, a: ResourceAttributes): Promise<Decision> {
    const body = {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: user.username,
        groups: [...user.groups],
        resourceAttributes: {
          verb: a.verb, group: a.group, resource: a.resource,
          ...(a.subresource ? { subresource: a.subresource } : {}),
          ...(a.namespace ? { namespace: a.namespace } : {}),
          ...(a.name ? { name: a.name } : {}),
        },
      },
    };
    let status: ReviewStatus | undefined;
    try {
      ({ status } = await this.client.request<{ status?: ReviewStatus }>('POST', SUBJECT_ACCESS_REVIEW_PATH, { body, timeoutMs: this.timeoutMs }));
    } catch (err) {
      throw unavailable(err);
    }
    if (status?.allowed === true) return { allowed: true, reason: status.reason ?? '' };
    const reason = [status?.reason, status?.evaluationError && `evaluation error: ${status.evaluationError}`].filter(Boolean).join('; ');
    return { allowed: false, reason: reason || 'no RBAC rule allows it' };
  }
}

function unavailable(err: unknown): AuthorizerUnavailableError {
  if (err instanceof KubeStatusError) {
    const overloaded = err.code === 429 || err.code >= 500;
    return new AuthorizerUnavailableError(`the API server answered a SubjectAccessReview with HTTP ${err.code}`, overloaded ? 503 : 502, err);
  }
  if (err instanceof KubeTimeoutError) return new AuthorizerUnavailableError('the API server did not answer a SubjectAccessReview in time', 503, err);
  if (err instanceof KubeUnreachableError) return new AuthorizerUnavailableError('the API server is unreachable', 503, err);
  return new AuthorizerUnavailableError('SubjectAccessReview failed', 503, err);
}
