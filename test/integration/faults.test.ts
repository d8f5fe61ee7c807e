import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { KubeConfig } from '@kubernetes/client-node';
import { TestNamespace, ADMIN_KUBECONFIG, PROXY_KUBECONFIG } from '../helpers/cluster.js';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.js';
import { kubeStatus, startFaultFront, type FaultFront, type FrontAction, type FrontExchange } from '../helpers/fault-front.js';
import { waitFor, sleep } from '../helpers/wait.js';
import { KubeClient } from '../../src/kube/kube-client.js';

const isScaleWrite = (e: { method: string; path: string }): boolean => e.method === 'PUT' && /\/deployments\/[^/]+\/scale\b/.test(e.path);

describe('the proxy behind a fault-injecting front of the real API server', () => {
  let certs: CertFixture;
  let front: FaultFront;
  let proxy: ProxyProcess;
  let ns: TestNamespace;
  let admin: KubeClient;
  let churn = 0;

  /** A competing writer: changes an annotation of `name` as admin, straight to the API server, bumping its resourceVersion. */
  const competingWrite = async (name: string): Promise<void> => {
    const path = `/apis/apps/v1/namespaces/${ns.name}/deployments/${name}`;
    const d = await admin.request<{ metadata: { annotations?: Record<string, string> } }>('GET', path);
    d.metadata.annotations = { ...d.metadata.annotations, churn: String(++churn) };
    await admin.request('PUT', path, { body: d });
  };
  const conflictLogLines = (): number => proxy.logs.filter((l) => String(l.msg).startsWith('409 Conflict')).length;
  const replicasUrl = (name: string): string => `/deployments/${ns.name}/${name}/replicas`;

  before(async () => {
    certs = await makeCertFixture();
    ns = await TestNamespace.create('faults');
    for (const name of ['ryw', 'conflict', 'exhausted', 'hang']) await ns.createDeployment(name, { replicas: 1 });
    const kc = new KubeConfig();
    kc.loadFromFile(ADMIN_KUBECONFIG);
    admin = await KubeClient.create(kc);
    front = await startFaultFront(PROXY_KUBECONFIG);
    proxy = await startProxy({ certs, kubeconfig: front.kubeconfig });
  });
  after(async () => {
    await proxy?.stop();
    await front?.close();
    await ns?.cleanup();
  });
  beforeEach(() => {
    front.intercept = () => 'pass';
    front.resumeWatches();
  });

  it('reads its own write while the watch is held back, and follows the watch again once it flows', async () => {
    front.pauseWatches();
    await ns.scale('ryw', 2); // straight to the API server: only the held watch could tell the proxy
    await sleep(300);
    assert.equal((await proxy.request(replicasUrl('ryw'))).json.replicas, 1, 'the watch is held: the cache still has 1');
    const put = await proxy.request(replicasUrl('ryw'), { method: 'PUT', body: { replicas: 7 } });
    assert.equal(put.status, 200, put.text);
    assert.equal(put.json.replicas, 7);
    for (let i = 0; i < 3; i++) assert.equal((await proxy.request(replicasUrl('ryw'))).json.replicas, 7, 'read your writes, with no watch event');
    front.resumeWatches();
    await ns.scale('ryw', 8);
    await waitFor('the watch delivers a later change', async () => (await proxy.request(replicasUrl('ryw'))).json.replicas === 8, 3_000);
  });

  /**
   * The proxy's write is one unconditional call; it reads first (and can meet a 409) only
   * when the API server requires a resourceVersion. The front plays such a server for the
   * first write of `name` (a 422 as kube-apiserver words it for resources that disallow
   * unconditional updates); everything after that is the real API server.
   */
  const requireResourceVersionOnce = (name: string): ((r: { method: string; path: string }) => boolean) => {
    let first = true;
    return (r) => {
      if (!isScaleWrite(r) || !r.path.includes(`/${name}/`) || !first) return false;
      first = false;
      return true;
    };
  };
  const RV_REQUIRED = kubeStatus(422, 'Invalid', 'Scale.autoscaling "x" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update');

  it('retries a real 409 Conflict from the API server (a competing write between its read and its write)', async () => {
    const before = conflictLogLines();
    let competed = 0;
    const requires = requireResourceVersionOnce('conflict');
    front.intercept = async (r): Promise<FrontAction> => {
      if (requires(r)) return RV_REQUIRED;
      if (isScaleWrite(r) && r.path.includes('/conflict/') && competed++ === 0) await competingWrite('conflict');
      return 'pass';
    };
    const put = await proxy.request(replicasUrl('conflict'), { method: 'PUT', body: { replicas: 5 } });
    assert.equal(put.status, 200, put.text);
    assert.equal(put.json.replicas, 5);
    const writes = front.exchanges.filter((e) => isScaleWrite(e) && e.path.includes('/conflict/'));
    assert.deepEqual(writes.map((e) => e.status), [422, 409, 200], 'unconditional write refused (front), then the API server refused the stale resourceVersion once, then accepted');
    assert.equal(conflictLogLines() - before, 1, 'one conflict retried, and logged');
    const d = await ns.getDeployment('conflict');
    assert.equal(d.spec.replicas, 5);
    assert.equal(d.metadata.annotations.churn, String(churn), "the competing writer's change is kept");
  });

  it('answers 409 Conflict when every one of the 10 attempts meets a real conflict, and changes nothing', async () => {
    const requires = requireResourceVersionOnce('exhausted');
    front.intercept = async (r): Promise<FrontAction> => {
      if (requires(r)) return RV_REQUIRED;
      if (isScaleWrite(r) && r.path.includes('/exhausted/')) await competingWrite('exhausted');
      return 'pass';
    };
    const put = await proxy.request(replicasUrl('exhausted'), { method: 'PUT', body: { replicas: 9 } });
    assert.equal(put.status, 409, put.text);
    assert.equal(put.json.reason, 'Conflict');
    assert.match(put.json.detail, /gave up after 10 conflicting attempts; retry the request/);
    const writes: FrontExchange[] = front.exchanges.filter((e) => isScaleWrite(e) && e.path.includes('/exhausted/'));
    assert.deepEqual(writes.map((e) => e.status), [422, ...Array(10).fill(409)]);
    assert.equal((await ns.getDeployment('exhausted')).spec.replicas, 1);
  });

  it('answers 504 GatewayTimeout after 5 s when the API server does not answer, and recovers', async () => {
    front.intercept = (r) => (isScaleWrite(r) && r.path.includes('/hang/') ? 'hang' : 'pass');
    const t0 = Date.now();
    const put = await proxy.request(replicasUrl('hang'), { method: 'PUT', body: { replicas: 3 }, timeoutMs: 15_000 });
    const ms = Date.now() - t0;
    assert.equal(put.status, 504, put.text);
    assert.equal(put.json.reason, 'GatewayTimeout');
    assert.match(put.json.detail, /did not answer in time/);
    assert.doesNotMatch(put.json.detail, /\/apis\//, 'no upstream path');
    assert.ok(ms >= 4_900 && ms < 8_000, `answered after ${ms} ms`);
    assert.equal((await ns.getDeployment('hang')).spec.replicas, 1, 'nothing was written');
    front.intercept = () => 'pass';
    const again = await proxy.request(replicasUrl('hang'), { method: 'PUT', body: { replicas: 3 } });
    assert.equal(again.status, 200, again.text);
  });
});
