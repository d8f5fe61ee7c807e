import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { projectDeployment } from '../../src/kube/deployments.js';

describe('the cached projection of a Deployment', () => {
  it('keeps what is served (identity, replicas, rollout counters, the proxy\'s own annotations, Available/Progressing) and drops the rest', () => {
    const raw = {
      metadata: {
        name: 'web', namespace: 'shop', uid: 'u1', resourceVersion: '7', generation: 3, labels: { app: 'web' }, managedFields: [{}],
        annotations: { 'k8s-api-proxy.io/max-replicas': '10', 'k8s-api-proxy.io/min-replicas': '2', 'deployment.kubernetes.io/revision': '4', other: 'x' },
      },
      spec: { replicas: 5, template: { spec: { containers: [{ name: 'c', image: 'i' }] } } },
      status: {
        observedGeneration: 3, replicas: 5, updatedReplicas: 5, readyReplicas: 4, availableReplicas: 4, collisionCount: 1,
        conditions: [
          { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'ok', lastUpdateTime: 't1', lastTransitionTime: 't2', extra: 'x' },
          { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable' },
          { type: 'ReplicaFailure', status: 'True' },
        ],
      },
    };
    assert.deepEqual(projectDeployment(raw), {
      metadata: {
        name: 'web', namespace: 'shop', uid: 'u1', resourceVersion: '7', generation: 3,
        annotations: { 'k8s-api-proxy.io/max-replicas': '10', 'k8s-api-proxy.io/min-replicas': '2' },
      },
      spec: { replicas: 5 },
      status: {
        observedGeneration: 3, replicas: 5, updatedReplicas: 5, readyReplicas: 4, availableReplicas: 4,
        conditions: [
          { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'ok', lastUpdateTime: 't1', lastTransitionTime: 't2' },
          { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable' },
        ],
      },
    });
  });

  it('adds no empty annotations or conditions when there are none to keep', () => {
    const d = projectDeployment({ metadata: { name: 'a', namespace: 'b', annotations: { other: 'x' } }, status: { conditions: [{ type: 'ReplicaFailure', status: 'True' }] } });
    assert.deepEqual(d, { metadata: { name: 'a', namespace: 'b' }, spec: {}, status: {} });
  });
});
