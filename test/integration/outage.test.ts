import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestNamespace, stopApiServer, startApiServer, ensureCluster } from '../helpers/cluster.js';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.js';
import { call } from '../helpers/https.js';
import { waitFor, sleep } from '../helpers/wait.js';

/** Reflector backoff is 0.8 s doubling to 30 s (jittered ±25%); an outage of a few seconds needs at most ~15 s to be noticed as over. */
const RECOVERY_BOUND_MS = 35_000;

describe('API server outages', () => {
  let certs: CertFixture;
  before(async () => {
    await ensureCluster();
    certs = await makeCertFixture();
  });
  after(startApiServer);

  describe('while the proxy runs', () => {
    let proxy: ProxyProcess;
    let ns: TestNamespace;
    before(async () => {
      ns = await TestNamespace.create('outage');
      await ns.createDeployment('web', { replicas: 2 });
      await ns.createDeployment('doomed', { replicas: 1 });
      // Decisions cached long enough to outlast the outage: cached reads are served only
      // while their authorization decisions are cached (authz.test.ts shows the 503 after).
      proxy = await startProxy({ certs, args: ['--authorization-cache-allowed-ttl=5m'] });
      await waitFor('cache has web', async () => (await proxy.request(`/deployments/${ns.name}/web/replicas`)).status === 200);
      assert.equal((await proxy.request(`/deployments?namespace=${ns.name}`)).status, 200);
    });
    after(async () => {
      await proxy?.stop();
      await startApiServer();
      await ns?.cleanup();
    });

    it('serves cached reads, fails /healthz and writes, stays up; then catches up after the restart', async () => {
      await stopApiServer();
      try {
        const health = await proxy.request('/healthz');
        assert.equal(health.status, 503);
        assert.equal(health.json.status, 'error');
        assert.ok(health.json.message.length > 0);

        const read = await proxy.request(`/deployments/${ns.name}/web/replicas`);
        assert.equal(read.status, 200);
        assert.equal(read.json.replicas, 2);
        const list = await proxy.request(`/deployments?namespace=${ns.name}`);
        assert.deepEqual(list.json.map((d: { name: string }) => d.name), ['doomed', 'web']);

        const put = await proxy.request(`/deployments/${ns.name}/web/replicas`, { method: 'PUT', body: { replicas: 9 } });
        assert.ok([503, 504].includes(put.status), `PUT during outage: ${put.status} ${put.text}`);
        assert.match(String(put.headers['content-type']), /problem\+json/);
        assert.notEqual(put.json.reason, 'NotFound');

        const livez = await call(`${proxy.healthUrl}/livez`);
        assert.equal(livez.status, 200, 'liveness does not depend on the API server');
        await sleep(2_000); // let the reflector fail and back off a few times
        assert.equal(proxy.child.exitCode, null, 'process still running');
      } finally {
        await startApiServer();
      }

      await ns.scale('web', 6);
      await ns.deleteDeployment('doomed');
      await waitFor('scale after restart', async () => (await proxy.request(`/deployments/${ns.name}/web/replicas`)).json.replicas === 6, RECOVERY_BOUND_MS, 200);
      await waitFor('delete after restart', async () => (await proxy.request(`/deployments/${ns.name}/doomed/replicas`)).status === 404, RECOVERY_BOUND_MS, 200);
      // /healthz may still carry a check from the outage: its access result is reused 5 s and its answer 1 s (README, GET /healthz).
      await waitFor('/healthz 200 after restart', async () => (await proxy.request('/healthz')).status === 200, 6_000 + 2_000, 200);
      const backoffLines = proxy.logs.filter((l) => l.msg === 'list/watch failed; backing off');
      assert.ok(backoffLines.length >= 1, 'the outage was seen and backed off');
      assert.ok(backoffLines.length < 20, `no tight retry loop (${backoffLines.length} failures logged)`);
    });
  });

  describe('at startup', () => {
    it('is not ready while no API server answers, retries with backoff, and becomes ready once it appears', async () => {
      await stopApiServer();
      let proxy: ProxyProcess | undefined;
      try {
        proxy = await startProxy({ certs, waitReady: false });
        const ready = await call(`${proxy.healthUrl}/readyz`);
        assert.equal(ready.status, 503);
        assert.match(ready.json.message, /not synced/);
        const one = await proxy.request('/deployments/default/anything/replicas');
        assert.equal(one.status, 503);
        assert.equal(one.json.reason, 'ServiceUnavailable');
        // Authorization is decided first and fails closed: no API server, no decision.
        const read = await proxy.request('/deployments');
        assert.equal(read.status, 503);
        assert.equal(read.headers['retry-after'], '2');
        assert.equal(read.json.reason, 'ServiceUnavailable');
        assert.match(read.json.detail, /authorization is unavailable/);
        await sleep(3_000);
        // Counted for the Deployment cache alone: the HPA cache backs off the same way, on its own.
        const failures = proxy.logs.filter((l) => l.msg === 'list/watch failed; backing off' && l.resource === 'deployments').length;
        assert.ok(failures >= 2 && failures <= 5, `backed off, not a tight loop: ${failures} attempts in 3 s`);
        await startApiServer();
        await waitFor('ready', async () => (await call(`${proxy!.healthUrl}/readyz`)).status === 200, RECOVERY_BOUND_MS, 200);
        assert.equal((await proxy.request('/deployments')).status, 200);
      } finally {
        await startApiServer();
        await proxy?.stop();
      }
    });
  });
});
