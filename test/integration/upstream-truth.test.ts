/**
 * The API server's answer reaches the client: an admission refusal of the client's change
 * is 403/422 with the policy's own message (kubectl shows the same one), never a 502
 * that blames the proxy; and a write never lands on a Deployment that was deleted and
 * recreated under the same name after the request was resolved.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load as loadYaml } from 'js-yaml';
import { ADMIN_KUBECONFIG, PROXY_KUBECONFIG, TestNamespace, apiServerUrl, kubectl, kubectlOk } from '../helpers/cluster.js';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.js';
import { startPrefixFront, type PrefixFront } from '../helpers/upstream-fronts.js';
import { waitFor } from '../helpers/wait.js';

type Raw = Record<string, unknown>;
/** These scenarios send many writes from one client; the per-client limits are tested in hardening.test.ts. */
const NO_RATE_LIMITS = ['--rate-limit-write-rps', '0', '--rate-limit-read-rps', '0'];

describe('the API server\'s truth reaches the client', () => {
  let certs: CertFixture;
  let ns: TestNamespace;
  let proxy: ProxyProcess;
  const cleanups: Array<() => unknown> = [];

  before(async () => {
    certs = await makeCertFixture();
    ns = await TestNamespace.create('truth');
    proxy = await startProxy({ certs, args: NO_RATE_LIMITS });
    cleanups.push(() => proxy.stop(), () => ns.cleanup());
  });
  after(async () => { for (const c of cleanups.reverse()) await c(); });

  describe('admission refusals (ValidatingAdmissionPolicy on deployments/scale)', () => {
    const policy = (name: string, deployment: string, reason: 'Forbidden' | 'Invalid'): Raw => ({
      apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicy', metadata: { name },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: { resourceRules: [{ apiGroups: ['apps'], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['deployments/scale'] }] },
        matchConditions: [{ name: 'this-deployment', expression: `request.namespace == '${ns.name}' && request.name == '${deployment}'` }],
        validations: [{ expression: 'object.spec.replicas <= 5', message: `replicas of ${deployment} must be at most 5 (policy ${name})`, reason }],
      },
    });
    const binding = (name: string): Raw => ({
      apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicyBinding', metadata: { name },
      spec: { policyName: name, validationActions: ['Deny'] },
    });

    before(async () => {
      for (const [deployment, reason] of [['capped', 'Forbidden'], ['capped-invalid', 'Invalid']] as const) {
        const name = `${ns.name}-${deployment}`;
        await ns.createDeployment(deployment, { replicas: 2 });
        await kubectlOk(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [policy(name, deployment, reason), binding(name)] }));
        cleanups.push(() => kubectl(['delete', 'validatingadmissionpolicybinding,validatingadmissionpolicy', name]));
        // The policy takes effect once kube-apiserver's policy informer has it.
        await waitFor(`policy ${name} in force`, async () => (await kubectl(['-n', ns.name, 'scale', 'deployment', deployment, '--replicas=9'])).code !== 0, 15_000);
        await ns.scale(deployment, 2); // a probe may have passed before the policy was in force
      }
    });

    for (const [deployment, status, reason] of [['capped', 403, 'Forbidden'], ['capped-invalid', 422, 'Invalid']] as const) {
      it(`a policy with reason ${reason}: ${status} ${reason} with the policy's message (as kubectl shows it), nothing changes`, async () => {
        const k = await kubectl(['-n', ns.name, 'scale', 'deployment', deployment, '--replicas=7']);
        assert.notEqual(k.code, 0);
        const message = `replicas of ${deployment} must be at most 5 (policy ${ns.name}-${deployment})`;
        assert.ok(k.stderr.includes(message), k.stderr);
        const r = await proxy.request(`/deployments/${ns.name}/${deployment}/replicas`, { method: 'PUT', body: { replicas: 7 } });
        assert.equal(r.status, status, r.text);
        const body = r.json as { reason: string; detail: string };
        assert.equal(body.reason, reason);
        assert.ok(body.detail.includes(message), body.detail);
        assert.match(body.detail, new RegExp(`ValidatingAdmissionPolicy '${ns.name}-${deployment}'`));
        assert.doesNotMatch(r.text, /system:serviceaccount|k8s-api-proxy:k8s-api-proxy/);
        assert.equal((await ns.getDeployment(deployment)).spec.replicas, 2);
        const ok = await proxy.request(`/deployments/${ns.name}/${deployment}/replicas`, { method: 'PUT', body: { replicas: 5 } });
        assert.equal(ok.status, 200, 'within the policy the write goes through');
        const h = await proxy.request('/healthz');
        assert.equal(h.status, 200, 'an admission refusal says nothing against the proxy');
      });
    }
  });

  describe('the scale write names the object, not just the name (uid precondition)', () => {
    let front: PrefixFront;
    let viaFront: ProxyProcess;
    let server: string;
    let ca: string;
    let adminToken: string;
    const name = 'phoenix';

    /** A raw call as admin, straight to the API server (faster than a kubectl process). */
    const admin = (method: string, path: string, body?: unknown): Promise<{ status: number; json: Raw }> => new Promise((resolve, reject) => {
      const req = https.request(new URL(path, server), { method, ca, headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => { text += c; }).on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) as Raw : {} }));
      });
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
    const deploymentPath = (): string => `/apis/apps/v1/namespaces/${ns.name}/deployments`;
    const manifest = (replicas: number): Raw => ({
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: ns.name },
      spec: { replicas, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'main', image: 'registry.k8s.io/pause:3.10' }] } } },
    });

    before(async () => {
      server = apiServerUrl();
      const adminKc = loadYaml(readFileSync(ADMIN_KUBECONFIG, 'utf8')) as { clusters: Array<{ cluster: Raw }>; users: Array<{ user: Raw }> };
      ca = Buffer.from(String(adminKc.clusters[0].cluster['certificate-authority-data']), 'base64').toString();
      adminToken = String(adminKc.users[0].user.token);
      const saToken = String((loadYaml(readFileSync(PROXY_KUBECONFIG, 'utf8')) as { users: Array<{ user: Raw }> }).users[0].user.token);
      // The proxy reaches the API server through a front that can hold one chosen request,
      // so the delete-and-recreate lands exactly between resolving and writing.
      front = await startPrefixFront(server, ca, { cert: readFileSync(certs.serverCertFile, 'utf8'), key: readFileSync(certs.serverKeyFile, 'utf8') });
      const kc = join(mkdtempSync(join(tmpdir(), 'uid-race-')), 'kubeconfig');
      writeFileSync(kc, JSON.stringify({
        apiVersion: 'v1', kind: 'Config', 'current-context': 'x',
        clusters: [{ name: 'c', cluster: { server: front.url, 'certificate-authority-data': Buffer.from(certs.ca).toString('base64') } }],
        users: [{ name: 'u', user: { token: saToken } }], contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      }));
      viaFront = await startProxy({ certs, kubeconfig: kc, args: NO_RATE_LIMITS });
      cleanups.push(() => viaFront.stop(), () => front.close());
      assert.equal((await admin('POST', deploymentPath(), manifest(100))).status, 201);
    });

    it('a PUT raced by a delete-and-recreate never changes the new object: 409, 50 times (held at its one write call)', async () => {
      const answers: number[] = [];
      for (let i = 0; i < 50; i++) {
        const generation = 100 + i;
        await waitFor(`the proxy's cache holds generation ${generation}`, async () => {
          const r = await viaFront.request(`/deployments/${ns.name}/${name}/replicas`);
          return r.status === 200 && (r.json as { replicas: number }).replicas === generation;
        }, 5_000, 10);
        // The write is one call (no read first): hold it, then replace the object under it.
        const verb = 'PUT';
        const hold = front.hold((r) => r.method === verb && r.url.includes(`/deployments/${name}/scale`));
        const put = viaFront.request(`/deployments/${ns.name}/${name}/replicas`, { method: 'PUT', body: { replicas: 7 } });
        const first = await Promise.race([hold.arrived.then(() => 'held' as const), put]);
        if (first !== 'held') assert.fail(`round ${i}: the PUT was answered before its ${verb} reached the API server: ${first.status} ${first.text}`);
        assert.equal((await admin('DELETE', `${deploymentPath()}/${name}`)).status, 200);
        const created = await admin('POST', deploymentPath(), manifest(generation + 1));
        assert.equal(created.status, 201);
        hold.release();
        const r = await put;
        answers.push(r.status);
        assert.equal(r.status, 409, `round ${i} (held ${verb}): ${r.text}`);
        assert.match(String((r.json as { detail: string }).detail), /deleted and recreated|another object/);
        const now = await admin('GET', `${deploymentPath()}/${name}`);
        assert.equal((now.json.metadata as Raw).uid, (created.json.metadata as Raw).uid);
        assert.equal((now.json.spec as Raw).replicas, generation + 1, `round ${i}: the new object is untouched`);
      }
      assert.deepEqual([...new Set(answers)], [409]);
      // Without a race, the same proxy writes through the same front.
      const ok = await viaFront.request(`/deployments/${ns.name}/${name}/replicas`, { method: 'PUT', body: { replicas: 3 } });
      assert.equal(ok.status, 200, ok.text);
    });
  });
});
