/**
 * Authorization: may this user do this to that? The vocabulary is Kubernetes' own
 * (`authorization.k8s.io/v1` ResourceAttributes, the RBAC authorizer's user info), so
 * cluster admins grant proxy access with ordinary Roles and RoleBindings and check it
 * with `kubectl auth can-i --as=USER --as-group=GROUP`.
 *
 * Routes ask an {@link Authorizer} before they touch a service; nothing below Routes
 * knows it exists (ARCHITECTURE.md).
 */

/** The client as kube-apiserver would see the same x509 certificate: CN → username, each O → a group. */
export interface UserInfo {
  username: string;
  /** Subject O values in certificate order, then `system:authenticated`. */
  groups: readonly string[];
}

/**
 * What is asked, as a SubjectAccessReview's `spec.resourceAttributes`
 * (https://kubernetes.io/docs/reference/kubernetes-api/authorization-resources/subject-access-review-v1/).
 * `namespace` absent means cluster-wide (all namespaces).
 */
export interface ResourceAttributes {
  verb: 'get' | 'list' | 'update';
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

/** An authorizer's answer; `reason` is for logs and audit, never for the client. */
export type Decision =
  | { allowed: true; reason: string }
  | { allowed: false; reason: string };

/** Decides whether `user` may act on `attributes`. */
export interface Authorizer {
  /**
   * @returns allow or deny with a reason. Never allows by default.
   * @throws AuthorizerUnavailableError when no decision can be had (the API server did
   *   not answer, or refused the proxy's own review): callers fail closed.
   */
  authorize(user: UserInfo, attributes: ResourceAttributes): Promise<Decision>;
}

/** No decision could be had: callers answer 503 (unreachable, overloaded, timed out) or 502 (the proxy was refused). */
export class AuthorizerUnavailableError extends Error {
  /** 502 when the API server refused the proxy's own request, 503 otherwise. */
  readonly status: 502 | 503;
  constructor(message: string, status: 502 | 503, cause?: unknown) {
    super(message, { cause });
    this.name = 'AuthorizerUnavailableError';
    this.status = status;
  }
}

/** `--authorization=none`: every authenticated client may do everything (the behaviour before authorization existed). */
export const ALLOW_ALL: Authorizer = {
  authorize: async () => ({ allowed: true, reason: 'authorization disabled (--authorization=none)' }),
};

/** `deployments.apps`: a resource qualified by its API group, as kube-apiserver names it in errors. */
function qualified(a: ResourceAttributes): string {
  return a.group === '' ? a.resource : `${a.resource}.${a.group}`;
}

/**
 * kube-apiserver's Forbidden message for the same request (k8s.io/apiserver
 * endpoints/handlers/responsewriters `forbiddenMessage` + `NewForbidden`), e.g.
 * `deployments.apps "web" is forbidden: User "ci" cannot update resource "deployments/scale" in API group "apps" in the namespace "shop"`.
 * Names the client, never the proxy.
 */
export function forbiddenMessage(user: UserInfo, a: ResourceAttributes): string {
  const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const scope = a.namespace ? `in the namespace "${a.namespace}"` : 'at the cluster scope';
  const object = a.name ? `${qualified(a)} "${a.name}"` : qualified(a);
  return `${object} is forbidden: User "${user.username}" cannot ${a.verb} resource "${resource}" in API group "${a.group}" ${scope}`;
}
