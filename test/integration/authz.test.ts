/**
 * Per-client authorization and the audit trail, on a real kube-apiserver with real RBAC:
 * the proxy holds only its least-privilege ServiceAccount token and asks
 * SubjectAccessReviews; clients are granted access with ordinary Roles and RoleBindings.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestNamespace, kubectl, kubectlOk, runCommand, startApiServer, stopApiServer } from '../helpers/cluster.js';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.js';
import { call, type CallOptions, type CallResult } from '../helpers/https.js';
import { waitFor } from '../helpers/wait.js';
import type { AuditEvent } from '../../src/audit/audit-event.js';

const ALLOWED_TTL_MS = 10_000;
const DENIED_TTL_MS = 5_000;
const run = randomBytes(3).toString('hex');

interface Client {
  name: string;
  request(proxy: ProxyProcess, path: string, opts?: CallOptions): Promise<CallResult>;
}

describe('per-client authorization by Kubernetes RBAC, and the audit trail', () => {
  let certs: CertFixture;
  let proxy: ProxyProcess;
  let auditDir: string;
  let a: TestNamespace;
  let b: TestNamespace;

  /** A client certificate from the proxy's client CA: CN `name`, one O per group. */
  const client = async (name: string, groups: string[] = []): Promise<Client> => {
    const issued = await certs.issueClient(name, groups);
    return {
      name,
      request: (p, path, opts = {}) => call(`${p.apiUrl}${path}`, { tls: { ca: certs.ca, ...issued }, ...opts }),
    };
  };
  const put = (c: Client, ns: string, name: string, replicas: number): Promise<CallResult> =>
    c.request(proxy, `/deployments/${ns}/${name}/replicas`, { method: 'PUT', body: { replicas } });
  const names = (r: CallResult): string[] => (r.json as Array<{ namespace: string; name: string }>).map((d) => `${d.namespace}/${d.name}`);

  before(async () => {
    certs = await makeCertFixture();
    a = await TestNamespace.create('authz-a');
    b = await TestNamespace.create('authz-b');
    await a.createDeployment('web', { replicas: 1 });
    await a.createDeployment('api', { replicas: 1 });
    await b.createDeployment('db', { replicas: 1 });
    auditDir = mkdtempSync(join(tmpdir(), 'audit-'));
    // No write rate limit: the burst below is about the audit log, not about 429s.
    proxy = await startProxy({ certs, args: ['--audit-log-path', join(auditDir, 'audit.log'), '--audit-log-maxsize', '0.05', '--audit-log-maxbackup', '100', '--rate-limit-write-rps', '0'] });
    await waitFor('cache has db', async () => (await proxy.request(`/deployments/${b.name}/db/replicas`)).status === 200);
  });
  after(async () => {
    await proxy?.stop();
    await a?.cleanup();
    await b?.cleanup();
  });

  describe('a viewer bound in namespace A', () => {
    let viewer: Client;
    before(async () => {
      viewer = await client(`viewer-${run}`);
      await kubectlOk(['-n', a.name, 'create', 'rolebinding', 'viewer', '--clusterrole=k8s-api-proxy-k8s-api-proxy-viewer', `--user=${viewer.name}`]);
    });

    it('lists A and reads replicas in A', async () => {
      const list = await viewer.request(proxy, `/deployments?namespace=${a.name}`);
      assert.equal(list.status, 200, list.text);
      assert.deepEqual(names(list), [`${a.name}/api`, `${a.name}/web`]);
      const read = await viewer.request(proxy, `/deployments/${a.name}/web/replicas`);
      assert.deepEqual(read.json, { deployment: 'web', namespace: a.name, replicas: 1 });
    });

    it('gets 403 on PUT in A, with kube-apiserver\'s wording naming the user and never the proxy, and nothing is written', async () => {
      const r = await put(viewer, a.name, 'web', 5);
      assert.equal(r.status, 403);
      assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
      assert.equal(r.json.reason, 'Forbidden');
      assert.equal(r.json.detail, `deployments.apps "web" is forbidden: User "${viewer.name}" cannot update resource "deployments/scale" in API group "apps" in the namespace "${a.name}"`);
      assert.doesNotMatch(r.json.detail, /serviceaccount|k8s-api-proxy/i);
      assert.equal((await a.getDeployment('web')).spec.replicas, 1);
    });

    it('gets 403 on everything in B', async () => {
      assert.equal((await viewer.request(proxy, `/deployments?namespace=${b.name}`)).status, 403);
      assert.equal((await viewer.request(proxy, `/deployments/${b.name}/db/replicas`)).status, 403);
      assert.equal((await put(viewer, b.name, 'db', 2)).status, 403);
    });

    it('sees exactly A\'s Deployments in the all-namespaces list (200, not 403)', async () => {
      const r = await viewer.request(proxy, '/deployments');
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(names(r), [`${a.name}/api`, `${a.name}/web`]);
    });

    it('agrees with kubectl auth can-i --as', async () => {
      const can = async (...args: string[]) => (await kubectl(['auth', 'can-i', ...args, `--as=${viewer.name}`])).stdout.trim();
      assert.equal(await can('list', 'deployments.apps', '-n', a.name), 'yes');
      assert.equal(await can('update', 'deployments.apps/web', '--subresource=scale', '-n', a.name), 'no');
    });
  });

  describe('a scaler pinned by resourceNames to web in A', () => {
    it('scales web and gets 403 for api', async () => {
      const ci = await client(`ci-${run}`);
      await kubectlOk(['-n', a.name, 'create', 'role', 'scale-web', '--verb=get,update', '--resource=deployments.apps/scale', '--resource-name=web']);
      await kubectlOk(['-n', a.name, 'create', 'rolebinding', 'ci-scale-web', '--role=scale-web', `--user=${ci.name}`]);
      const ok = await put(ci, a.name, 'web', 3);
      assert.equal(ok.status, 200, ok.text);
      assert.equal((await a.getDeployment('web')).spec.replicas, 3);
      const denied = await put(ci, a.name, 'api', 3);
      assert.equal(denied.status, 403);
      assert.match(denied.json.detail, /deployments.apps "api" is forbidden/);
      assert.equal((await a.getDeployment('api')).spec.replicas, 1);
    });
  });

  describe('identity the Kubernetes way', () => {
    it('a client with no binding gets 403 everywhere except /healthz, and an empty all-namespaces list', async () => {
      const nobody = await client(`nobody-${run}`);
      assert.equal((await nobody.request(proxy, '/healthz')).status, 200);
      const all = await nobody.request(proxy, '/deployments');
      assert.equal(all.status, 200);
      assert.deepEqual(all.json, []);
      for (const path of [`/deployments?namespace=${a.name}`, `/deployments/${a.name}/web/replicas`]) assert.equal((await nobody.request(proxy, path)).status, 403, path);
      assert.equal((await put(nobody, a.name, 'web', 1)).status, 403);
    });

    it('a client whose group (certificate O) is bound is allowed', async () => {
      const group = `team-${run}`;
      const member = await client(`member-${run}`, [group]);
      await kubectlOk(['-n', b.name, 'create', 'rolebinding', 'team', '--clusterrole=k8s-api-proxy-k8s-api-proxy-scaler', `--group=${group}`]);
      assert.equal((await put(member, b.name, 'db', 2)).status, 200);
      assert.deepEqual(names(await member.request(proxy, '/deployments')), [`${b.name}/db`]);
    });

    it('logs user and groups with every request', async () => {
      const member = await client(`logged-${run}`, ['ops', 'sre']);
      await member.request(proxy, '/healthz');
      await waitFor('request line', () => proxy.logs.some((l) => l.msg === 'request' && l.client === member.name));
      const line = proxy.logs.find((l) => l.msg === 'request' && l.client === member.name)!;
      assert.deepEqual(line.groups, ['ops', 'sre', 'system:authenticated']);
    });
  });

  describe('decision cache', () => {
    it('denies after a RoleBinding is removed within the allowed TTL, and allows after one is added within the denied TTL', async () => {
      const rev = await client(`revoked-${run}`);
      const list = () => rev.request(proxy, `/deployments?namespace=${a.name}`);
      await kubectlOk(['-n', a.name, 'create', 'rolebinding', 'rev', '--clusterrole=k8s-api-proxy-k8s-api-proxy-viewer', `--user=${rev.name}`]);
      await waitFor('allowed', async () => (await list()).status === 200, 10_000, 100);
      const cachedAt = Date.now();
      await kubectlOk(['-n', a.name, 'delete', 'rolebinding', 'rev']);
      const removedAt = Date.now();
      await waitFor('denied after removal', async () => (await list()).status === 403, ALLOWED_TTL_MS + 3_000, 100);
      const deniedAfterMs = Date.now() - removedAt;
      assert.ok(Date.now() - cachedAt <= ALLOWED_TTL_MS + 1_500, `denied ${Date.now() - cachedAt} ms after the allow was cached`);

      await kubectlOk(['-n', a.name, 'create', 'rolebinding', 'rev', '--clusterrole=k8s-api-proxy-k8s-api-proxy-viewer', `--user=${rev.name}`]);
      const addedAt = Date.now();
      await waitFor('allowed after adding', async () => (await list()).status === 200, DENIED_TTL_MS + 3_000, 100);
      const allowedAfterMs = Date.now() - addedAt;
      assert.ok(allowedAfterMs <= DENIED_TTL_MS + 1_500, `allowed ${allowedAfterMs} ms after the binding was added`);
      console.log(`# measured: revoked RoleBinding denied after ${deniedAfterMs} ms (allowed TTL ${ALLOWED_TTL_MS} ms); added RoleBinding allowed after ${allowedAfterMs} ms (denied TTL ${DENIED_TTL_MS} ms)`);
    });
  });

  describe('audit log', () => {
    it('holds one event per PUT and per denial with the Kubernetes Event fields, selectable with jq; a burst of 500 PUTs across rotations loses none', async () => {
      const burster = await client(`burst-${run}`);
      await kubectlOk(['-n', a.name, 'create', 'rolebinding', 'burst', '--clusterrole=k8s-api-proxy-k8s-api-proxy-scaler', `--user=${burster.name}`]);
      await waitFor('burster allowed', async () => (await burster.request(proxy, `/deployments/${a.name}/api/replicas`)).status === 200, 10_000, 100);
      const denied = await burster.request(proxy, `/deployments/${b.name}/db/replicas`);
      assert.equal(denied.status, 403);
      const BURST = 500;
      let next = 0;
      const statuses: number[] = [];
      let firstFailure = '';
      // 8 at a time: under the proxy's bound on writes queued per Deployment (10).
      await Promise.all(Array.from({ length: 8 }, async () => {
        while (next < BURST) {
          const i = next++;
          const r = await put(burster, a.name, 'api', i % 7);
          statuses.push(r.status);
          if (r.status !== 200) firstFailure ||= r.text;
        }
      }));
      const histogram = JSON.stringify(statuses.reduce<Record<number, number>>((h, s) => ({ ...h, [s]: (h[s] ?? 0) + 1 }), {}));
      assert.equal(statuses.filter((s) => s === 200).length, BURST, `${histogram} ${firstFailure}`);
      assert.equal(await proxy.stop(), 0, 'clean shutdown flushes the audit log');

      const files = readdirSync(auditDir);
      assert.ok(files.length >= 3, `rotated: ${files.join(', ')}`);
      const events = files.flatMap((f) => readFileSync(join(auditDir, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEvent));
      const mine = events.filter((e) => e.user.username === burster.name);
      const puts = mine.filter((e) => e.verb === 'update');
      assert.equal(puts.length, BURST, 'one event per PUT, none lost');
      assert.equal(new Set(puts.map((e) => e.auditID)).size, BURST);
      const e = puts[0];
      assert.equal(e.kind, 'Event');
      assert.equal(e.apiVersion, 'audit.k8s.io/v1');
      assert.equal(e.level, 'Metadata');
      assert.equal(e.stage, 'ResponseComplete');
      assert.deepEqual(e.user, { username: burster.name, groups: ['system:authenticated'] });
      assert.deepEqual(e.objectRef, { apiGroup: 'apps', apiVersion: 'v1', resource: 'deployments', subresource: 'scale', namespace: a.name, name: 'api' });
      assert.equal(e.responseStatus.code, 200);
      assert.match(e.sourceIPs[0], /127\.0\.0\.1/);
      assert.match(e.requestReceivedTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(e.annotations['authorization.k8s.io/decision'], 'allow');
      assert.match(e.annotations['k8s-api-proxy/replicas-before'], /^\d+$/);
      assert.match(e.annotations['k8s-api-proxy/replicas-after'], /^\d+$/);
      assert.match(e.annotations['k8s-api-proxy/client-certificate-sha256'], /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
      const denial = mine.filter((x) => x.responseStatus.code === 403);
      assert.equal(denial.length, 1);
      assert.deepEqual([denial[0].verb, denial[0].objectRef.namespace, denial[0].objectRef.name, denial[0].annotations['authorization.k8s.io/decision']], ['get', b.name, 'db', 'forbid']);
      // Earlier scenarios in this file: the viewer's denied PUT in A, and its denials in B.
      assert.ok(events.some((x) => x.user.username === `viewer-${run}` && x.verb === 'update' && x.objectRef.namespace === a.name && x.responseStatus.code === 403));
      assert.ok(!events.some((x) => x.verb !== 'update' && x.responseStatus.code === 200), 'allowed reads are not audited');

      const jq = await runCommand('sh', ['-c', `cat ${auditDir}/audit.log* | jq -c 'select(.user.username == "${burster.name}" and .objectRef.namespace == "${b.name}")'`]);
      assert.equal(jq.code, 0, jq.stderr);
      assert.equal(jq.stdout.trim().split('\n').length, 1, jq.stdout);
      console.log(`# measured: ${BURST} PUTs in a burst → ${puts.length} audit events across ${files.length} files`);
    });
  });
});

describe('fail closed, and --authorization=none', () => {
  let certs: CertFixture;
  let ns: TestNamespace;
  before(async () => {
    certs = await makeCertFixture();
    ns = await TestNamespace.create('authz-off');
    await ns.createDeployment('web', { replicas: 1 });
  });
  after(async () => { await ns?.cleanup(); });

  it('--authorization=none lets a client with no binding do everything, and warns at start', async () => {
    const proxy = await startProxy({ certs, args: ['--authorization=none'] });
    try {
      const warn = proxy.logs.find((l) => l.level === 40 && /--authorization=none/.test(String(l.msg)));
      assert.ok(warn, 'a warning names the mode');
      const nobody = await certs.issueClient(`nobody-${run}`);
      const r = await call(`${proxy.apiUrl}/deployments/${ns.name}/web/replicas`, { method: 'PUT', body: { replicas: 2 }, tls: { ca: certs.ca, ...nobody } });
      assert.equal(r.status, 200, r.text);
    } finally {
      await proxy.stop();
    }
  });

  it('with kube-apiserver stopped, an uncached decision is 503, never 200', async () => {
    const proxy = await startProxy({ certs });
    try {
      await waitFor('synced', async () => (await proxy.request(`/deployments/${ns.name}/web/replicas`)).status === 200);
      await stopApiServer();
      try {
        for (const path of [`/deployments?namespace=${ns.name}`, '/deployments']) {
          const r = await proxy.request(path);
          assert.equal(r.status, 503, `${path}: ${r.text}`);
          assert.equal(r.json.reason, 'ServiceUnavailable');
          assert.match(r.json.detail, /authorization is unavailable/);
        }
        const put = await proxy.request(`/deployments/${ns.name}/web/replicas`, { method: 'PUT', body: { replicas: 4 } });
        assert.equal(put.status, 503);
        assert.equal((await ns.getDeployment('web').catch(() => undefined)), undefined, 'the API server is really down');
      } finally {
        await startApiServer();
      }
    } finally {
      await proxy.stop();
    }
  });
});
