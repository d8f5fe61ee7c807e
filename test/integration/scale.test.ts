import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestNamespace, CLUSTER_DIR, apiServerUrl, kubectl, kubectlOk } from '../helpers/cluster.js';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.js';
import { call, type CallResult } from '../helpers/https.js';
import { sleep, waitFor } from '../helpers/wait.js';

/** Status as the deployment controller would write it once every replica is updated and available. */
const done = (replicas: number, generation: number) => ({
  observedGeneration: generation, replicas, updatedReplicas: replicas, readyReplicas: replicas, availableReplicas: replicas,
  conditions: [
    { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'Deployment has minimum availability.' },
    { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable', message: 'ReplicaSet has successfully progressed.' },
  ],
});

/**
 * A merge patch of `status` straight to kube-apiserver as cluster-admin, resolving when
 * the API server has answered (the change is committed): no kubectl start-up in the
 * measured time.
 */
async function patchStatus(ns: string, name: string, status: Record<string, unknown>): Promise<number> {
  const token = readFileSync(join(CLUSTER_DIR, 'tokens.csv'), 'utf8').split(',')[0];
  const r = await call(`${apiServerUrl()}/apis/apps/v1/namespaces/${ns}/deployments/${name}/status`, {
    method: 'PATCH', rawBody: JSON.stringify({ status }),
    headers: { 'content-type': 'application/merge-patch+json', authorization: `Bearer ${token}` },
    tls: { ca: readFileSync(join(CLUSTER_DIR, 'certs/apiserver.crt')) },
  });
  assert.equal(r.status, 200, r.text);
  return performance.now();
}

/** `kubectl rollout status --watch=false`: the oracle's verdict in our vocabulary. */
async function kubectlVerdict(ns: string, name: string): Promise<string> {
  const r = await kubectl(['-n', ns, 'rollout', 'status', `deployment/${name}`, '--watch=false']);
  if (r.code !== 0 && /exceeded its progress deadline/.test(r.stderr)) return 'Stalled';
  assert.equal(r.code, 0, r.stderr);
  if (/successfully rolled out/.test(r.stdout)) return 'rolled out';
  if (/^Waiting for/.test(r.stdout)) return 'Progressing';
  throw new Error(`unexpected kubectl output: ${r.stdout}${r.stderr}`);
}

describe('scaling extensions on a real control plane: guardrails, autoscalers, rollout status, wait', () => {
  let certs: CertFixture;
  let proxy: ProxyProcess;
  let ns: TestNamespace;

  before(async () => {
    certs = await makeCertFixture();
    ns = await TestNamespace.create('scale');
    await ns.createDeployment('capped', { replicas: 2, annotations: { 'k8s-api-proxy.io/max-replicas': '10', 'k8s-api-proxy.io/min-replicas': '1' } });
    await ns.createDeployment('plain', { replicas: 2 });
    await ns.createDeployment('broken', { replicas: 2, annotations: { 'k8s-api-proxy.io/max-replicas': 'lots' } });
    await ns.createDeployment('auto', { replicas: 3 });
    await ns.createDeployment('roll', { replicas: 2 });
    await kubectlOk(['create', '-f', '-'], JSON.stringify({
      apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: { name: 'auto-hpa', namespace: ns.name },
      spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'auto' }, minReplicas: 2, maxReplicas: 6,
        metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 80 } } }] },
    }));
    proxy = await startProxy({ certs, args: ['--max-replicas', '100', '--rate-limit-read-rps', '0', '--rate-limit-write-rps', '0'] });
  });
  after(async () => {
    await proxy?.stop();
    await ns?.cleanup();
  });

  const put = (name: string, replicas: number, query = '') =>
    proxy.request(`/deployments/${ns.name}/${name}/replicas${query}`, { method: 'PUT', body: { replicas }, timeoutMs: 20_000 });

  describe('guardrails', () => {
    it('refuses a PUT above the max-replicas annotation with 422 naming it, and writes nothing', async () => {
      const r = await put('capped', 11);
      assert.equal(r.status, 422, r.text);
      assert.equal(r.json.reason, 'Invalid');
      assert.match(r.json.detail, /above the maximum of 10 .*\(set by annotation k8s-api-proxy\.io\/max-replicas\)/);
      assert.equal((await ns.getDeployment('capped')).spec.replicas, 2);
      assert.equal((await put('capped', 10)).status, 200);
      assert.equal((await ns.getDeployment('capped')).spec.replicas, 10);
    });

    it('refuses a PUT below the min-replicas annotation', async () => {
      const r = await put('capped', 0);
      assert.equal(r.status, 422);
      assert.match(r.json.detail, /below the minimum of 1 .*annotation k8s-api-proxy\.io\/min-replicas/);
    });

    it('refuses a PUT above --max-replicas 100 naming the flag', async () => {
      const r = await put('plain', 101);
      assert.equal(r.status, 422);
      assert.match(r.json.detail, /above the maximum of 100 .*\(set by flag --max-replicas\)/);
      assert.equal((await put('plain', 100)).status, 200);
    });

    it('a malformed annotation does not block writes, is logged, and shows in the status', async () => {
      assert.equal((await put('broken', 5)).status, 200);
      assert.equal((await ns.getDeployment('broken')).spec.replicas, 5);
      const s = await proxy.request(`/deployments/${ns.name}/broken`);
      assert.equal(s.status, 200);
      assert.deepEqual(s.json.guardrails, {
        max: { replicas: 100, source: 'flag --max-replicas' },
        problems: ['k8s-api-proxy.io/max-replicas: "lots" is not a whole number of replicas between 0 and 2147483647; ignored'],
      });
      const line = proxy.logs.find((l) => l.msg === 'malformed replica guardrail annotation ignored' && l.deployment === 'broken');
      assert.ok(line, 'logged');
      assert.equal(line.namespace, ns.name);
    });
  });

  describe('HorizontalPodAutoscalers', () => {
    it('refuses a PUT within the HPA range with 409 ManagedByAutoscaler naming the HPA and its range', async () => {
      const r = await put('auto', 4);
      assert.equal(r.status, 409, r.text);
      assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
      assert.equal(r.json.reason, 'ManagedByAutoscaler');
      assert.equal(r.json.type, 'urn:k8s-api-proxy:problem:ManagedByAutoscaler');
      assert.match(r.json.detail, /HorizontalPodAutoscaler "auto-hpa" \(minReplicas 2, maxReplicas 6\)/);
      assert.equal((await ns.getDeployment('auto')).spec.replicas, 3);
    });

    it('?force=true writes, and the log names the client and the HPA', async () => {
      const r = await put('auto', 4, '?force=true');
      assert.equal(r.status, 200, r.text);
      assert.equal((await ns.getDeployment('auto')).spec.replicas, 4);
      const line = proxy.logs.find((l) => l.msg === 'scale forced on an autoscaled Deployment (?force=true)');
      assert.ok(line);
      assert.equal(line.client, 'ci-pipeline', 'the client certificate CN');
      assert.deepEqual(line.autoscalers, ['auto-hpa']);
    });

    it('follows the HPA cache: once the HPA is deleted the PUT goes through without force', async () => {
      await kubectlOk(['-n', ns.name, 'delete', 'hpa', 'auto-hpa']);
      await waitFor('HPA gone from the status', async () => (await proxy.request(`/deployments/${ns.name}/auto`)).json.autoscalers.length === 0);
      assert.equal((await put('auto', 5)).status, 200);
    });
  });

  describe('GET /deployments/{namespace}/{deployment}', () => {
    it('follows status-subresource changes within 100 ms of the API server committing them', async () => {
      const lags: number[] = [];
      for (let ready = 0; ready <= 2; ready++) {
        const committed = await patchStatus(ns.name, 'roll', { observedGeneration: 1, replicas: 2, updatedReplicas: 2, readyReplicas: ready, availableReplicas: ready });
        await waitFor('status followed', async () => (await proxy.request(`/deployments/${ns.name}/roll`)).json.status.readyReplicas === ready, 2_000, 5);
        lags.push(performance.now() - committed);
      }
      assert.ok(Math.max(...lags) <= 100, `lags ${lags.map((l) => l.toFixed(1)).join(', ')} ms`);
    });

    it('answers the RFD-style view with spec, status, conditions and no autoscaler', async () => {
      await patchStatus(ns.name, 'roll', done(2, 1));
      const s = await waitFor<CallResult | false>('complete', async () => {
        const r = await proxy.request(`/deployments/${ns.name}/roll`);
        return r.json.rollout === 'Complete' ? r : false;
      }) as CallResult;
      assert.deepEqual({ ...s.json, conditions: s.json.conditions.map((c: { type: string; status: string; reason: string }) => [c.type, c.status, c.reason]) }, {
        name: 'roll', namespace: ns.name, replicas: 2, generation: 1,
        status: { observedGeneration: 1, replicas: 2, updatedReplicas: 2, readyReplicas: 2, availableReplicas: 2 },
        conditions: [['Available', 'True', 'MinimumReplicasAvailable'], ['Progressing', 'True', 'NewReplicaSetAvailable']],
        rollout: 'Complete', rolloutMessage: 'deployment "roll" successfully rolled out',
        guardrails: { max: { replicas: 100, source: 'flag --max-replicas' }, problems: [] },
        autoscalers: [],
      });
    });

    it('gives the verdict kubectl rollout status gives: complete, progressing, stalled, scaled to zero', async () => {
      await ns.createDeployment('oracle', { replicas: 3 });
      const gen = (await ns.getDeployment('oracle')).metadata.generation as number;
      const scenarios: Array<[string, () => Promise<unknown>, string, string]> = [
        ['complete', () => patchStatus(ns.name, 'oracle', done(3, gen)), 'Complete', 'rolled out'],
        ['updated replicas not yet available', () => patchStatus(ns.name, 'oracle', { ...done(3, gen), availableReplicas: 1, readyReplicas: 1 }), 'Progressing', 'Progressing'],
        ['old replicas pending termination', () => patchStatus(ns.name, 'oracle', { ...done(3, gen), replicas: 5 }), 'Progressing', 'Progressing'],
        ['progress deadline exceeded', () => patchStatus(ns.name, 'oracle', {
          ...done(3, gen), updatedReplicas: 1,
          conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet "oracle-1" has timed out progressing.' }],
        }), 'Stalled', 'Stalled'],
        ['a new spec not observed yet', () => ns.scale('oracle', 4), 'Progressing', 'Progressing'],
        ['scaled to zero', async () => { await ns.scale('oracle', 0); await patchStatus(ns.name, 'oracle', { ...done(0, gen + 2), conditions: [] }); }, 'ScaledToZero', 'rolled out'],
      ];
      for (const [what, act, ours, kubectls] of scenarios) {
        await act();
        assert.equal(await kubectlVerdict(ns.name, 'oracle'), kubectls, `kubectl: ${what}`);
        const r = await waitFor<CallResult | false>(`${what}: ${ours}`, async () => {
          const s = await proxy.request(`/deployments/${ns.name}/oracle`);
          return s.json.rollout === ours ? s : false;
        }) as CallResult;
        assert.equal(r.json.rollout, ours, what);
      }
    });

    it('answers 404 for an unknown Deployment and 400 for a bad name', async () => {
      assert.equal((await proxy.request(`/deployments/${ns.name}/nope`)).status, 404);
      assert.equal((await proxy.request(`/deployments/${ns.name}/Bad_Name`)).status, 400);
    });
  });

  describe('PUT …/replicas?wait=ready', () => {
    it('holds the answer until the test marks the new Pods ready, then answers 200', async () => {
      await ns.createDeployment('waiter', { replicas: 1 });
      await patchStatus(ns.name, 'waiter', done(1, 1));
      const t0 = performance.now();
      const pending = put('waiter', 3, '?wait=ready&timeout=15s');
      await waitFor('spec written', async () => (await ns.getDeployment('waiter')).spec.replicas === 3, 10_000);
      await sleep(300);
      await patchStatus(ns.name, 'waiter', { ...done(3, 2), readyReplicas: 1, availableReplicas: 1 });
      await sleep(300);
      let settled = false;
      void pending.then(() => { settled = true; });
      await sleep(50);
      assert.equal(settled, false, 'still waiting while 1 of 3 is available');
      await patchStatus(ns.name, 'waiter', done(3, 2));
      const r = await pending;
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, { deployment: 'waiter', namespace: ns.name, replicas: 3 });
      assert.ok(performance.now() - t0 >= 600);
    });

    it('answers 202 with the current status when the timeout passes', async () => {
      const t0 = performance.now();
      const r = await put('waiter', 4, '?wait=ready&timeout=1s');
      assert.equal(r.status, 202, r.text);
      assert.ok(performance.now() - t0 >= 1_000);
      assert.equal(r.json.replicas, 4);
      assert.equal(r.json.rollout, 'Progressing');
      assert.equal((await ns.getDeployment('waiter')).spec.replicas, 4, 'the write itself was made');
    });

    it('stops waiting when the client disconnects', async () => {
      const before = proxy.logs.length;
      await call(`${proxy.apiUrl}/deployments/${ns.name}/waiter/replicas?wait=ready&timeout=60s`, {
        // Long enough for the authorization decision and the write to finish under load, so the
        // disconnect lands while the proxy waits for the rollout.
        method: 'PUT', body: { replicas: 5 }, tls: { ca: certs.ca, ...certs.client }, timeoutMs: 3_000,
      }).then(() => assert.fail('answered'), (err: Error) => assert.match(err.message, /timeout/));
      await waitFor('wait stopped', () => proxy.logs.slice(before).some((l) => l.msg === 'rollout wait stopped: the client disconnected' && l.deployment === 'waiter'), 5_000);
      const line = proxy.logs.slice(before).find((l) => l.msg === 'request' && l.method === 'PUT');
      assert.equal(line?.status, 'aborted');
      assert.equal(line?.wait, 'ready, up to 60000 ms');
    });
  });
});
