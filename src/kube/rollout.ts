/**
 * The rollout verdict of a Deployment, computed from its cached object exactly as
 * `kubectl rollout status` does: k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go,
 * `DeploymentStatusViewer.Status` (the messages below are kubectl's own):
 *
 * 1. `metadata.generation > status.observedGeneration`: the controller has not seen the
 *    spec yet → "Waiting for deployment spec update to be observed...".
 * 2. condition `Progressing` has reason `ProgressDeadlineExceeded` → kubectl fails with
 *    "deployment NAME exceeded its progress deadline" (our `Stalled`).
 * 3. `status.updatedReplicas < spec.replicas`, `status.replicas > status.updatedReplicas`
 *    (old replicas pending termination), or `status.availableReplicas < status.updatedReplicas`
 *    → waiting (our `Progressing`).
 * 4. otherwise "successfully rolled out" (our `Complete`, or `ScaledToZero` when
 *    `spec.replicas` is 0: kubectl says rolled out there too).
 */

/** `Complete`, `Progressing`, `Stalled` (ProgressDeadlineExceeded) or `ScaledToZero`. */
export type RolloutVerdict = 'Complete' | 'Progressing' | 'Stalled' | 'ScaledToZero';

/** The deployment controller's reason on `Progressing` once `progressDeadlineSeconds` passed (deploymentutil.TimedOutReason). */
export const PROGRESS_DEADLINE_EXCEEDED = 'ProgressDeadlineExceeded';

/** A Deployment condition as the API serves it (times are RFC 3339 strings). */
export interface DeploymentConditionView {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastUpdateTime?: string;
  lastTransitionTime?: string;
}

/** The fields of a Deployment the verdict and the status endpoint read. */
export interface RolloutFields {
  metadata: { name: string; namespace?: string; generation?: number };
  spec?: { replicas?: number };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    readyReplicas?: number;
    availableReplicas?: number;
    conditions?: readonly DeploymentConditionView[];
  };
}

/** A verdict and kubectl's sentence for it. */
export interface Rollout {
  verdict: RolloutVerdict;
  message: string;
}

/** The verdict of `d`, as `kubectl rollout status deployment/NAME` (latest revision) would give it. */
export function rolloutOf(d: RolloutFields): Rollout {
  const name = d.metadata.name;
  const st = d.status ?? {};
  const generation = d.metadata.generation ?? 0;
  if (generation > (st.observedGeneration ?? 0)) {
    return { verdict: 'Progressing', message: 'Waiting for deployment spec update to be observed...' };
  }
  const progressing = st.conditions?.find((c) => c.type === 'Progressing');
  if (progressing?.reason === PROGRESS_DEADLINE_EXCEEDED) {
    return { verdict: 'Stalled', message: `deployment "${name}" exceeded its progress deadline` };
  }
  const replicas = d.spec?.replicas;
  const updated = st.updatedReplicas ?? 0;
  const total = st.replicas ?? 0;
  const available = st.availableReplicas ?? 0;
  if (replicas !== undefined && updated < replicas) {
    return { verdict: 'Progressing', message: `Waiting for deployment "${name}" rollout to finish: ${updated} out of ${replicas} new replicas have been updated...` };
  }
  if (total > updated) {
    return { verdict: 'Progressing', message: `Waiting for deployment "${name}" rollout to finish: ${total - updated} old replicas are pending termination...` };
  }
  if (available < updated) {
    return { verdict: 'Progressing', message: `Waiting for deployment "${name}" rollout to finish: ${available} of ${updated} updated replicas are available...` };
  }
  return { verdict: replicas === 0 ? 'ScaledToZero' : 'Complete', message: `deployment "${name}" successfully rolled out` };
}

/** True for the verdicts `kubectl rollout status` ends with success on. */
export function isRolledOut(v: RolloutVerdict): boolean {
  return v === 'Complete' || v === 'ScaledToZero';
}
