import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, symlinkSync, renameSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ROOT, HELM, KUBECTL, CLUSTER_DIR, GATEWAY_API_CRDS, runCommand, ADMIN_KUBECONFIG, ensureCluster, kubectl, kubectlOk, apiServerUrl, TestNamespace } from '../helpers/cluster.js';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.js';
import { runPodLikeKubelet } from '../helpers/pod-runner.js';
import { waitFor } from '../helpers/wait.js';

const CHART = join(ROOT, 'charts/k8s-api-proxy');
const suffix = (): string => randomBytes(3).toString('hex');

/** `kubectl auth can-i VERB RESOURCE... --as=<ServiceAccount ns/name>`: "yes" or "no". */
async function can(ns: string, sa: string, ...args: string[]): Promise<string> {
  return (await kubectl(['auth', 'can-i', ...args, `--as=system:serviceaccount:${ns}:${sa}`])).stdout.trim();
}

/** What the proxy needs: list Deployments everywhere and update their scale. */
async function hasProxyRights(ns: string, sa: string): Promise<boolean> {
  return await can(ns, sa, 'list', 'deployments.apps', '-A') === 'yes' && await can(ns, sa, 'update', 'deployments.apps', '--subresource=scale', '-n', 'default') === 'yes';
}

/**
 * Runs bin/api in in-cluster mode as ServiceAccount `ns/sa` (a TokenRequest token in a
 * kubelet-style ..data directory, and KUBERNETES_SERVICE_HOST/PORT pointing at the local
 * kube-apiserver). `token` issues the token (default: a plain 1 h TokenRequest).
 */
async function startInClusterProxy(certs: CertFixture, ns: string, sa: string): Promise<ProxyProcess> {
  const saDir = mkdtempSync(join(tmpdir(), 'sa-'));
  mkdirSync(join(saDir, 'v1'));
  writeFileSync(join(saDir, 'v1', 'token'), (await kubectlOk(['-n', ns, 'create', 'token', sa, '--duration=1h'])).trim());
  copyFileSync(join(CLUSTER_DIR, 'certs/apiserver.crt'), join(saDir, 'v1', 'ca.crt'));
  writeFileSync(join(saDir, 'v1', 'namespace'), ns);
  symlinkSync('v1', join(saDir, '..data'));
  for (const f of ['token', 'ca.crt', 'namespace']) symlinkSync(`..data/${f}`, join(saDir, f));
  return startProxy({
    certs, kubeconfig: '', args: ['--service-account-dir', saDir],
    env: { PATH: process.env.PATH, HOME: mkdtempSync(join(tmpdir(), 'home-')), KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: new URL(apiServerUrl()).port },
  });
}

describe('Helm chart and in-cluster mode', () => {
  let certs: CertFixture;
  let certsDir: string;
  let tlsValues: string[];
  before(async () => {
    await ensureCluster();
    certs = await makeCertFixture();
    // `make deploy` reads ca.crt, server.crt, server.key from CERTS_DIR.
    certsDir = mkdtempSync(join(tmpdir(), 'deploy-certs-'));
    copyFileSync(certs.caFile, join(certsDir, 'ca.crt'));
    copyFileSync(certs.serverCertFile, join(certsDir, 'server.crt'));
    copyFileSync(certs.serverKeyFile, join(certsDir, 'server.key'));
    // With a client pair too, make deploy turns on `helm test`.
    writeFileSync(join(certsDir, 'client.crt'), certs.client.cert);
    writeFileSync(join(certsDir, 'client.key'), certs.client.key, { mode: 0o600 });
    const b64 = (f: string): string => readFileSync(f).toString('base64');
    tlsValues = ['--set', `tls.caCrt=${b64(certs.caFile)}`, '--set', `tls.crt=${b64(certs.serverCertFile)}`, '--set', `tls.key=${b64(certs.serverKeyFile)}`];
  });

  const template = (extra: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    runCommand(HELM, ['template', 'rel', CHART, '--namespace', 'k8s-api-proxy', ...extra]);

  describe('rendering', () => {
    it('passes helm lint', async () => {
      const r = await runCommand(HELM, ['lint', '--strict', CHART, ...tlsValues]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /0 chart\(s\) failed/);
    });

    it('renders every object with defaults, the ClusterRole from the shared RBAC file', async () => {
      const r = await template(tlsValues);
      assert.equal(r.code, 0, r.stderr);
      for (const kind of ['ServiceAccount', 'Secret', 'ClusterRole', 'ClusterRoleBinding', 'Service', 'Deployment', 'PodDisruptionBudget']) {
        assert.match(r.stdout, new RegExp(`^kind: ${kind}$`, 'm'), kind);
      }
      for (const kind of ['Ingress', 'TLSRoute', 'Pod']) assert.doesNotMatch(r.stdout, new RegExp(`^kind: ${kind}$`, 'm'), kind);
      assert.match(r.stdout, /resources:\n\s+- deployments\/scale\n\s+verbs:\n\s+- get\n\s+- update/);
      assert.match(r.stdout, /checksum\/tls: [0-9a-f]{64}/);
      assert.match(r.stdout, /replicas: 2\n/);
      assert.match(r.stdout, /maxUnavailable: 0/);
      assert.match(r.stdout, /port: 443\n\s+targetPort: https/);
      assert.match(r.stdout, /path: \/livez\n\s+port: probes\n\s+failureThreshold: 3\n\s+periodSeconds: 10\n\s+timeoutSeconds: 5/);
      assert.match(r.stdout, /podAntiAffinity:/);
      assert.match(r.stdout, /topologySpreadConstraints:/);
      assert.doesNotMatch(r.stdout, /priorityClassName/);
    });

    it('names cluster-scoped objects <fullname>-<namespace>, and the binding names the release ServiceAccount', async () => {
      const r = await template([...tlsValues, '--namespace', 'team-a']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /kind: ClusterRole\nmetadata:\n {2}name: rel-k8s-api-proxy-team-a\n/);
      assert.match(r.stdout, /kind: ClusterRoleBinding\nmetadata:\n {2}name: rel-k8s-api-proxy-team-a\n/);
      assert.match(r.stdout, /roleRef:\n\s+apiGroup: rbac.authorization.k8s.io\n\s+kind: ClusterRole\n\s+name: rel-k8s-api-proxy-team-a\n/);
      assert.match(r.stdout, /subjects:\n\s+- kind: ServiceAccount\n\s+name: rel-k8s-api-proxy\n\s+namespace: team-a/);
    });

    it('renders a PodDisruptionBudget that allows a drain with replicaCount=1', async () => {
      const r = await template([...tlsValues, '--set', 'replicaCount=1']);
      assert.equal(r.code, 0, r.stderr);
      const pdb = r.stdout.split('\n---\n').find((d) => /^kind: PodDisruptionBudget$/m.test(d)) ?? '';
      assert.match(pdb, /^\s+maxUnavailable: 1$/m);
      assert.doesNotMatch(pdb, /minAvailable/);
      assert.match(pdb, /unhealthyPodEvictionPolicy: AlwaysAllow/);
      const off = await template([...tlsValues, '--set', 'replicaCount=1', '--set', 'podDisruptionBudget.enabled=false']);
      assert.doesNotMatch(off.stdout, /^kind: PodDisruptionBudget$/m);
    });

    it('keeps the selector when nameOverride changes (the Deployment selector is immutable)', async () => {
      const selector = (out: string): string => /selector:\n\s+matchLabels:\n((?:\s+\S+: \S+\n)+)/.exec(out)?.[1] ?? 'none';
      const before = await template(tlsValues);
      const after = await template([...tlsValues, '--set', 'nameOverride=proxy']);
      assert.equal(after.code, 0, after.stderr);
      assert.equal(selector(after.stdout), selector(before.stdout));
      assert.match(selector(before.stdout), /app.kubernetes.io\/name: k8s-api-proxy\n\s+app.kubernetes.io\/instance: rel\n/);
    });

    it("renders the operator's values: priority class, pod labels, extra args and env, probe timeouts, affinity and spread overrides", async () => {
      const r = await template([...tlsValues,
        '--set', 'priorityClassName=platform-critical', '--set', 'podLabels.team=platform', '--set', 'extraArgs={--request-timeout-seconds=15}',
        '--set', 'extraEnv[0].name=TZ', '--set', 'extraEnv[0].value=UTC', '--set', 'livenessProbe.timeoutSeconds=7',
        '--set', 'affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=pool',
        '--set', 'affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists',
        '--set-json', 'topologySpreadConstraints=[]']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /priorityClassName: "platform-critical"/);
      const dep = r.stdout.split('\n---\n').find((d) => /^kind: Deployment$/m.test(d)) ?? '';
      assert.match(dep, /template:\n\s+metadata:\n\s+labels:\n(\s+\S+: \S+\n)+?\s+team: platform\n/);
      assert.doesNotMatch(dep.split('template:')[0], /team: platform/, 'podLabels stay on the pods');
      assert.match(dep, /- --shutdown-timeout-seconds=15\n\s+- "--request-timeout-seconds=15"\n/);
      assert.match(dep, /env:\n\s+- name: TZ\n\s+value: UTC/);
      assert.match(dep, /timeoutSeconds: 7/);
      assert.match(dep, /nodeAffinity:/);
      assert.doesNotMatch(dep, /podAntiAffinity|topologySpreadConstraints/);
    });

    it('runs as an existing ServiceAccount with serviceAccount.create=false', async () => {
      const r = await template([...tlsValues, '--set', 'serviceAccount.create=false', '--set', 'serviceAccount.name=platform-proxy']);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout, /^kind: ServiceAccount$/m);
      assert.match(r.stdout, /serviceAccountName: platform-proxy/);
      assert.match(r.stdout, /- kind: ServiceAccount\n\s+name: platform-proxy\n/);
    });

    it('renders the LoadBalancer options', async () => {
      const r = await template([...tlsValues, '--set', 'service.type=LoadBalancer', '--set', 'service.loadBalancerSourceRanges={203.0.113.0/24,198.51.100.7/32}',
        '--set', 'service.externalTrafficPolicy=Local', '--set', 'service.nodePort=30443', '--set', 'service.loadBalancerClass=example.com/lb',
        '--set', 'service.annotations.service\\.beta\\.kubernetes\\.io/aws-load-balancer-scheme=internal']);
      assert.equal(r.code, 0, r.stderr);
      const svc = r.stdout.split('\n---\n').find((d) => /^kind: Service$/m.test(d)) ?? '';
      assert.match(svc, /annotations:\n\s+service.beta.kubernetes.io\/aws-load-balancer-scheme: internal/);
      assert.match(svc, /type: LoadBalancer/);
      assert.match(svc, /loadBalancerSourceRanges:\n\s+- 203.0.113.0\/24\n\s+- 198.51.100.7\/32/);
      assert.match(svc, /externalTrafficPolicy: Local/);
      assert.match(svc, /loadBalancerClass: "example.com\/lb"/);
      assert.match(svc, /nodePort: 30443/);
    });

    it('renders a passthrough TLSRoute for the Gateway API', async () => {
      const r = await template([...tlsValues, '--set', 'gatewayAPI.tlsRoute.enabled=true', '--set', 'gatewayAPI.tlsRoute.parentRefs[0].name=edge',
        '--set', 'gatewayAPI.tlsRoute.parentRefs[0].namespace=gateways', '--set', 'gatewayAPI.tlsRoute.parentRefs[0].sectionName=tls', '--set', 'gatewayAPI.tlsRoute.hostnames={proxy.example.com}']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /apiVersion: gateway.networking.k8s.io\/v1\nkind: TLSRoute/);
      assert.match(r.stdout, /parentRefs:\n\s+- name: edge\n\s+namespace: gateways\n\s+sectionName: tls\n\s+hostnames:\n\s+- proxy.example.com\n\s+rules:\n\s+- backendRefs:\n\s+- name: rel-k8s-api-proxy\n\s+port: 443/);
      const alpha = await template([...tlsValues, '--set', 'gatewayAPI.tlsRoute.enabled=true', '--set', 'gatewayAPI.tlsRoute.parentRefs[0].name=edge',
        '--set', 'gatewayAPI.tlsRoute.hostnames={proxy.example.com}', '--set', 'gatewayAPI.tlsRoute.apiVersion=gateway.networking.k8s.io/v1alpha2']);
      assert.match(alpha.stdout, /apiVersion: gateway.networking.k8s.io\/v1alpha2\nkind: TLSRoute/);
    });

    it('renders a TLS-passthrough Ingress for the allow-listed classes', async () => {
      const r = await template([...tlsValues, '--set', 'ingress.enabled=true', '--set', 'ingress.host=proxy.example.com']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^kind: Ingress$/m);
      assert.match(r.stdout, /nginx.ingress.kubernetes.io\/ssl-passthrough: "true"/);
      assert.match(r.stdout, /ingressClassName: nginx/);
      assert.match(r.stdout, /host: "proxy.example.com"/);
      const h = await template([...tlsValues, '--set', 'ingress.enabled=true', '--set', 'ingress.className=haproxy']);
      assert.equal(h.code, 0, h.stderr);
      assert.match(h.stdout, /^ {4}haproxy.org\/ssl-passthrough: "true"$/m);
      assert.match(h.stdout, /^ {4}haproxy-ingress.github.io\/ssl-passthrough: "true"$/m);
      assert.doesNotMatch(h.stdout, /nginx.ingress/);
    });

    it('refuses to render an Ingress that would terminate TLS, and says why', async () => {
      const r = await template([...tlsValues, '--set', 'ingress.enabled=true', '--set', 'ingress.tlsPassthrough=false']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /ingress.tlsPassthrough=false: .*strips the client certificate/);
    });

    it('refuses an Ingress class not known to pass TLS through, naming it and the known ones', async () => {
      const r = await template([...tlsValues, '--set', 'ingress.enabled=true', '--set', 'ingress.className=traefik']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /ingress.className="traefik" is not a controller known to pass TLS through \(haproxy, nginx\): an Ingress it terminates would strip the client certificate/);
    });

    it('uses an existing Secret (cert-manager) instead of rendering one', async () => {
      const r = await template(['--set', 'tls.existingSecret=my-certs']);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout, /^kind: Secret$/m);
      assert.match(r.stdout, /secretName: my-certs/);
      assert.doesNotMatch(r.stdout, /checksum\/tls/);
    });

    it('renders the helm test Pod and its client Secret as test hooks', async () => {
      const b64 = (s: string): string => Buffer.from(s).toString('base64');
      const r = await template([...tlsValues, '--set', 'helmTest.enabled=true', '--set', `helmTest.clientCrt=${b64(certs.client.cert)}`, '--set', `helmTest.clientKey=${b64(certs.client.key)}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /name: rel-k8s-api-proxy-test-client\n[\s\S]*?helm.sh\/hook: test\n\s+helm.sh\/hook-weight: "-1"/);
      assert.match(r.stdout, /kind: Pod\nmetadata:\n\s+name: rel-k8s-api-proxy-test-healthz[\s\S]*helm.sh\/hook: test/);
      assert.match(r.stdout, /value: "https:\/\/rel-k8s-api-proxy.k8s-api-proxy.svc:443\/healthz"/);
    });

    it('states the Kubernetes versions it supports (Chart.yaml kubeVersion)', async () => {
      const old = await template([...tlsValues, '--kube-version', '1.30.0']);
      assert.notEqual(old.code, 0);
      assert.match(old.stderr, /chart requires kubeVersion: >=1.31.0-0 which is incompatible with Kubernetes v1.30.0/);
      assert.equal((await template([...tlsValues, '--kube-version', '1.34.4'])).code, 0);
    });

    it('renders the viewer and scaler client ClusterRoles from rbac/client-*.yaml, and binds clientBindings cluster-wide or per namespace', async () => {
      const values = join(mkdtempSync(join(tmpdir(), 'values-')), 'v.yaml');
      writeFileSync(values, JSON.stringify({ clientBindings: [
        { name: 'dashboard', role: 'viewer', groups: ['dashboards'] },
        { name: 'ci-shop', role: 'scaler', users: ['ci-pipeline'], namespaces: ['shop', 'web'] },
      ] }));
      const r = await template([...tlsValues, '-f', values]);
      assert.equal(r.code, 0, r.stderr);
      const docs = r.stdout.split(/^---$/m);
      const doc = (kind: string, name: string, ns?: string): string | undefined =>
        docs.find((d) => new RegExp(`^kind: ${kind}$`, 'm').test(d) && new RegExp(`^  name: ${name}$`, 'm').test(d) && (!ns || new RegExp(`^  namespace: ${ns}$`, 'm').test(d)));
      assert.match(doc('ClusterRole', 'rel-k8s-api-proxy-k8s-api-proxy-viewer') ?? '', /- deployments\/scale\n\s+verbs:\n\s+- get\n(?!\s+- update)/);
      assert.match(doc('ClusterRole', 'rel-k8s-api-proxy-k8s-api-proxy-scaler') ?? '', /- deployments\/scale\n\s+verbs:\n\s+- get\n\s+- update/);
      assert.match(doc('ClusterRoleBinding', 'rel-k8s-api-proxy-k8s-api-proxy-dashboard') ?? '', /kind: ClusterRole\n\s+name: rel-k8s-api-proxy-k8s-api-proxy-viewer[\s\S]*kind: Group\n\s+name: dashboards/);
      for (const ns of ['shop', 'web']) {
        assert.match(doc('RoleBinding', 'rel-k8s-api-proxy-ci-shop', ns) ?? '', /name: rel-k8s-api-proxy-k8s-api-proxy-scaler[\s\S]*kind: User\n\s+name: ci-pipeline/, ns);
      }
    });

    const invalid: Array<[string, string[], RegExp]> = [
      ['a string replica count', ['--set-string', 'replicaCount=two'], /replicaCount.*want integer/],
      ['an unknown log level', ['--set', 'logLevel=loud'], /logLevel/],
      ['an unknown key', ['--set', 'replicas=3'], /additional properties 'replicas'|replicas/],
      ['a bad pull policy', ['--set', 'image.pullPolicy=Sometimes'], /pullPolicy/],
      ['a typo inside resources', ['--set', 'resources.limits.memroy=1Gi'], /resources\/limits.*additional properties 'memroy' not allowed/],
      ['a resource quantity that is not one', ['--set', 'resources.requests.cpu=lots'], /resources\/requests\/cpu/],
      ['a PDB percentage without %', ['--set-string', 'podDisruptionBudget.maxUnavailable=50'], /podDisruptionBudget\/maxUnavailable/],
      ['a label value Kubernetes refuses', ['--set', 'podLabels.team=a b'], /podLabels\/team/],
      ['a client binding to an unknown role', ['--set', 'clientBindings[0].name=x', '--set', 'clientBindings[0].role=admin', '--set', 'clientBindings[0].users[0]=a'], /clientBindings\/0\/role/],
      ['a client binding without users or groups', ['--set', 'clientBindings[0].name=x', '--set', 'clientBindings[0].role=viewer'], /clientBindings\/0.*anyOf/],
      ['a client binding to an invalid namespace', ['--set', 'clientBindings[0].name=x', '--set', 'clientBindings[0].role=viewer', '--set', 'clientBindings[0].groups[0]=g', '--set', 'clientBindings[0].namespaces[0]=Bad_NS'], /namespaces\/0/],
    ];
    for (const [label, args, re] of invalid) {
      it(`fails with a clear message on ${label}`, async () => {
        const r = await template([...tlsValues, ...args]);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, re);
      });
    }

    // Combinations each value allows alone but that break a release: refused at render time.
    const conflicting: Array<[string, string[], RegExp]> = [
      ['a PDB that leaves one replica no room to drain', ['--set', 'replicaCount=1', '--set', 'podDisruptionBudget.minAvailable=1'],
        /podDisruptionBudget.minAvailable=1 with replicaCount=1 allows no voluntary disruption, so node drains would hang/],
      ['a PDB percentage that leaves no room', ['--set', 'replicaCount=3', '--set', 'podDisruptionBudget.minAvailable=90%'],
        /podDisruptionBudget.minAvailable=90% with replicaCount=3 allows no voluntary disruption/],
      ['a PDB with maxUnavailable 0', ['--set', 'podDisruptionBudget.maxUnavailable=0'], /podDisruptionBudget.maxUnavailable=0 allows no voluntary disruption/],
      ['a grace period shorter than the shutdown', ['--set', 'terminationGracePeriodSeconds=20'],
        /terminationGracePeriodSeconds=20 must exceed shutdownDelaySeconds=5 \+ shutdownTimeoutSeconds=15 = 20/],
      ['a commonLabels entry repeating a selector label', ['--set', 'commonLabels.app\\.kubernetes\\.io/instance=other'],
        /commonLabels.app.kubernetes.io\/instance: the chart sets this label itself \(app.kubernetes.io\/instance: rel\)/],
      ['a podLabels entry repeating a chart label', ['--set', 'podLabels.app\\.kubernetes\\.io/name=mine'], /podLabels.app.kubernetes.io\/name: the chart sets this label itself/],
      ['serviceAccount.create=false without a name', ['--set', 'serviceAccount.create=false'], /serviceAccount.create=false needs serviceAccount.name/],
      ['loadBalancerSourceRanges on a ClusterIP Service', ['--set', 'service.loadBalancerSourceRanges={10.0.0.0/8}'], /service.loadBalancerSourceRanges needs service.type=LoadBalancer \(it is ClusterIP\)/],
      ['externalTrafficPolicy on a ClusterIP Service', ['--set', 'service.externalTrafficPolicy=Local'], /service.externalTrafficPolicy=Local needs service.type=LoadBalancer or NodePort/],
      ['a TLSRoute without a Gateway or host names', ['--set', 'gatewayAPI.tlsRoute.enabled=true'], /gatewayAPI.tlsRoute.enabled=true needs gatewayAPI.tlsRoute.parentRefs[\s\S]*gatewayAPI.tlsRoute.enabled=true needs gatewayAPI.tlsRoute.hostnames/],
      ['helm test without a client certificate', ['--set', 'helmTest.enabled=true'], /helmTest.enabled=true needs helmTest.existingSecret .* or helmTest.clientCrt and helmTest.clientKey/],
    ];
    for (const [label, args, re] of conflicting) {
      it(`refuses ${label}, naming the values`, async () => {
        const r = await template([...tlsValues, ...args]);
        assert.notEqual(r.code, 0, 'rendered');
        assert.match(r.stderr, re);
      });
    }

    it('reports every conflicting value at once', async () => {
      const r = await template([...tlsValues, '--set', 'terminationGracePeriodSeconds=10', '--set', 'serviceAccount.create=false', '--set', 'podDisruptionBudget.maxUnavailable=0']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /- podDisruptionBudget.maxUnavailable=0[^\n]*\n- terminationGracePeriodSeconds=10[^\n]*\n- serviceAccount.create=false/);
    });

    it('fails with a clear message when no certificates are given', async () => {
      const r = await template([]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /tls.caCrt, tls.crt and tls.key .* are required unless tls.existingSecret/);
    });
  });

  describe('on the real API server', () => {
    const ns = `chart-${randomBytes(3).toString('hex')}`;
    const release = ns;
    const name = `${release}-k8s-api-proxy`; // the chart's full name for a release not named after it
    const deployEnv = { KUBECONFIG: ADMIN_KUBECONFIG, NAMESPACE: ns, RELEASE: release, CERTS_DIR: '' };
    const sa = `system:serviceaccount:${ns}:${name}`;
    before(() => { deployEnv.CERTS_DIR = certsDir; });
    after(async () => { await runCommand('make', ['-s', 'undeploy'], { env: deployEnv }); });

    it('accepts the rendered manifests in a server-side dry run', async () => {
      await kubectlOk(['create', 'namespace', `${ns}-dry`]);
      const r = await template([...tlsValues, '--namespace', `${ns}-dry`]);
      const dry = await kubectl(['apply', '--dry-run=server', '-f', '-'], { input: r.stdout });
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, /deployment.apps\/rel-k8s-api-proxy created \(server dry run\)/);
      const lb = await template([...tlsValues, '--namespace', `${ns}-dry`, '--set', 'service.type=LoadBalancer', '--set', 'service.loadBalancerSourceRanges={203.0.113.0/24}',
        '--set', 'service.externalTrafficPolicy=Local', '--set', 'service.annotations.example\\.com/lb=internal', '--show-only', 'templates/service.yaml']);
      const lbDry = await kubectl(['apply', '--dry-run=server', '-f', '-'], { input: lb.stdout });
      assert.equal(lbDry.code, 0, lbDry.stderr);
      await kubectl(['delete', 'namespace', `${ns}-dry`, '--wait=false']);
    });

    it('installs with make deploy, twice (idempotent)', async () => {
      for (let i = 0; i < 2; i++) {
        const r = await runCommand('make', ['-s', 'deploy'], { env: deployEnv });
        assert.equal(r.code, 0, r.stdout + r.stderr);
      }
      const objs = await kubectlOk(['-n', ns, 'get', 'deployment,service,secret,serviceaccount,poddisruptionbudget', '-o', 'name']);
      for (const o of [`deployment.apps/${name}`, `service/${name}`, `secret/${name}-tls`, `serviceaccount/${name}`, `poddisruptionbudget.policy/${name}`]) assert.ok(objs.includes(o), o);
      const history = await runCommand(HELM, ['history', release, '-n', ns, '-o', 'json'], { env: { KUBECONFIG: ADMIN_KUBECONFIG } });
      assert.equal(JSON.parse(history.stdout).length, 2);
    });

    it("gives the chart's ServiceAccount exactly the intended permissions", async () => {
      const can = async (...args: string[]): Promise<string> => (await kubectl(['auth', 'can-i', ...args, `--as=${sa}`])).stdout.trim();
      assert.equal(await can('list', 'deployments.apps', '-A'), 'yes');
      assert.equal(await can('watch', 'deployments.apps', '-A'), 'yes');
      assert.equal(await can('update', 'deployments.apps', '--subresource=scale', '-n', 'default'), 'yes');
      assert.equal(await can('create', 'subjectaccessreviews.authorization.k8s.io'), 'yes');
      assert.equal(await can('list', 'horizontalpodautoscalers.autoscaling', '-A'), 'yes');
      assert.equal(await can('watch', 'horizontalpodautoscalers.autoscaling', '-A'), 'yes');
      assert.equal(await can('get', '/readyz'), 'yes');
      for (const denied of [['update', 'horizontalpodautoscalers.autoscaling', '-n', 'default'], ['update', 'deployments.apps'], ['patch', 'deployments.apps'], ['delete', 'deployments.apps'], ['get', 'secrets'], ['get', 'secrets', '-n', ns], ['create', 'pods'],
        ['list', 'pods', '-A'], ['get', 'pods', '-n', ns], ['impersonate', 'users']]) {
        assert.equal(await can(...denied), 'no', denied.join(' '));
      }
    });

    it('runs in-cluster mode with the chart ServiceAccount and survives token rotation and revocation', async () => {
      const work = await TestNamespace.create('incluster');
      await work.createDeployment('app', { replicas: 2 });
      // Bound tokens are revoked by deleting the object they are bound to.
      const token = async (secret: string): Promise<string> => {
        await kubectlOk(['-n', ns, 'create', 'secret', 'generic', secret]);
        return (await kubectlOk(['-n', ns, 'create', 'token', name, '--bound-object-kind=Secret', `--bound-object-name=${secret}`, '--duration=1h'])).trim();
      };
      const saDir = mkdtempSync(join(tmpdir(), 'sa-'));
      const writeVersion = (v: string, tok: string): void => {
        mkdirSync(join(saDir, v));
        writeFileSync(join(saDir, v, 'token'), tok);
        copyFileSync(join(CLUSTER_DIR, 'certs/apiserver.crt'), join(saDir, v, 'ca.crt'));
        writeFileSync(join(saDir, v, 'namespace'), ns);
      };
      writeVersion('v1', await token('tok-1'));
      symlinkSync('v1', join(saDir, '..data'));
      for (const f of ['token', 'ca.crt', 'namespace']) symlinkSync(`..data/${f}`, join(saDir, f));
      const port = new URL(apiServerUrl()).port;
      const proxy = await startProxy({
        certs, kubeconfig: '', args: ['--service-account-dir', saDir],
        env: { PATH: process.env.PATH, HOME: mkdtempSync(join(tmpdir(), 'home-')), KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port },
      });
      try {
        assert.ok(proxy.logs.some((l) => l.msg === 'cluster access configured' && /in-cluster/.test(String(l.source))));
        assert.equal((await proxy.request('/healthz')).status, 200);
        const list = await proxy.request(`/deployments?namespace=${work.name}`);
        assert.deepEqual(list.json, [{ name: 'app', namespace: work.name }]);
        assert.equal((await proxy.request(`/deployments/${work.name}/app/replicas`, { method: 'PUT', body: { replicas: 3 } })).status, 200);

        // kubelet's atomic swap: new version dir, new ..data symlink renamed over the old one.
        writeVersion('v2', await token('tok-2'));
        symlinkSync('v2', join(saDir, '..data_tmp'));
        renameSync(join(saDir, '..data_tmp'), join(saDir, '..data'));
        const old = readFileSync(join(saDir, 'v1', 'token'), 'utf8');
        await kubectlOk(['-n', ns, 'delete', 'secret', 'tok-1']);
        const oldWorks = async (): Promise<boolean> => (await runCommand(KUBECTL, ['--kubeconfig=/dev/null', `--server=${apiServerUrl()}`, `--certificate-authority=${join(CLUSTER_DIR, 'certs/apiserver.crt')}`, `--token=${old}`, 'get', '--raw', '/readyz'])).code === 0;
        await waitFor('old token revoked', async () => !(await oldWorks()), 10_000, 500);

        const put = await proxy.request(`/deployments/${work.name}/app/replicas`, { method: 'PUT', body: { replicas: 7 } });
        assert.equal(put.status, 200, put.text);
        assert.equal((await work.getDeployment('app')).spec.replicas, 7);
        assert.equal((await proxy.request('/healthz')).status, 200);
        await work.scale('app', 9);
        await waitFor('cache follows', async () => (await proxy.request(`/deployments/${work.name}/app/replicas`)).json.replicas === 9, 5_000);
      } finally {
        await proxy.stop();
        await work.cleanup();
      }
    });

    it('passes helm test: its Pod GETs /healthz over mTLS with the client certificate from the test Secret', async () => {
      // No kubelet runs here: runPodLikeKubelet runs the test Pod's command (see its doc for
      // what stands in), against a real bin/api holding the release ServiceAccount's token.
      const proxy = await startInClusterProxy(certs, ns, name);
      const podName = `${name}-test-healthz`;
      const serviceHost = `${name}.${ns}.svc:443`;
      try {
        const helmTest = runCommand(HELM, ['test', release, '-n', ns, '--timeout', '60s'], { env: { KUBECONFIG: ADMIN_KUBECONFIG } });
        await waitFor('the test Pod', async () => (await kubectl(['-n', ns, 'get', 'pod', podName, '-o', 'name'])).code === 0, 30_000, 200);
        const run = await runPodLikeKubelet(ns, podName, { [serviceHost]: new URL(proxy.apiUrl).host });
        assert.deepEqual(run.argv.slice(0, 2), ['node', '-e']);
        assert.equal(run.exitCode, 0, run.stdout + run.stderr);
        assert.match(run.stdout, /\/healthz: 200 \{"status":"ok"\}/);
        assert.ok(proxy.logs.some((l) => l.path === '/healthz' && l.client === 'ci-pipeline'), 'the proxy saw the client certificate');
        const r = await helmTest;
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(r.stdout, new RegExp(`TEST SUITE:\\s+${podName}[\\s\\S]*Phase:\\s+Succeeded`));
        await waitFor('the client Secret removed after the test', async () => (await kubectl(['-n', ns, 'get', 'secret', `${name}-test-client`])).code !== 0, 10_000, 200);
      } finally {
        await proxy.stop();
      }

      // Control: with the proxy gone the same Pod fails, and so does helm test.
      const failing = runCommand(HELM, ['test', release, '-n', ns, '--timeout', '60s'], { env: { KUBECONFIG: ADMIN_KUBECONFIG } });
      await waitFor('a new test Pod', async () => {
        const phase = await kubectl(['-n', ns, 'get', 'pod', podName, '-o', 'jsonpath={.status.phase}']);
        return phase.code === 0 && phase.stdout === 'Pending';
      }, 30_000, 200);
      const run = await runPodLikeKubelet(ns, podName, { [serviceHost]: new URL(proxy.apiUrl).host });
      assert.notEqual(run.exitCode, 0);
      assert.match(run.stderr, /\/healthz failed: connect ECONNREFUSED/);
      const r = await failing;
      assert.notEqual(r.code, 0);
      assert.match(r.stdout + r.stderr, /Phase:\s+Failed|failed/);
    });

    it('removes every release object and the namespace it created with make undeploy, and succeeds when nothing is installed', async () => {
      await kubectl(['-n', ns, 'delete', 'secret', 'tok-1', 'tok-2', '--ignore-not-found']); // the token test's own Secrets
      // The failed helm test Pod stays (helm keeps failed test Pods): a leftover of this release, it does not keep the namespace.
      assert.equal(await kubectlOk(['-n', ns, 'get', 'pod', `${name}-test-healthz`, '-o', 'jsonpath={.status.phase}']), 'Failed');
      const created = await kubectlOk(['get', 'namespace', ns, '-o', 'jsonpath={.metadata.annotations.k8s-api-proxy/created-by}']);
      assert.equal(created, 'make-deploy');
      const r = await runCommand('make', ['-s', 'undeploy'], { env: deployEnv });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const left = await kubectl(['-n', ns, 'get', 'deployment,service,secret,serviceaccount,poddisruptionbudget', '-o', 'name', '--ignore-not-found']);
      assert.equal(left.stdout.trim(), '');
      assert.notEqual((await kubectl(['get', 'clusterrole', `${name}-${ns}`])).code, 0);
      assert.notEqual((await kubectl(['get', 'clusterrolebinding', `${name}-${ns}`])).code, 0);
      const phase = await kubectl(['get', 'namespace', ns, '-o', 'jsonpath={.status.phase}']);
      assert.ok(phase.code !== 0 || phase.stdout === 'Terminating', `namespace ${ns}: ${phase.stdout}`);
      const again = await runCommand('make', ['-s', 'undeploy'], { env: deployEnv });
      assert.equal(again.code, 0, again.stderr);
    });
  });

  describe('two releases named k8s-api-proxy in two namespaces', () => {
    const a = `a-${suffix()}`;
    const b = `b-${suffix()}`;
    const env = (ns: string): NodeJS.ProcessEnv => ({ KUBECONFIG: ADMIN_KUBECONFIG, NAMESPACE: ns, RELEASE: 'k8s-api-proxy', CERTS_DIR: certsDir });
    after(async () => {
      for (const ns of [a, b]) await runCommand('make', ['-s', 'undeploy'], { env: env(ns) });
    });

    it('install side by side with make deploy (helm), each bound to its own ServiceAccount', async () => {
      for (const ns of [a, b]) {
        const r = await runCommand('make', ['-s', 'deploy'], { env: env(ns) });
        assert.equal(r.code, 0, `${ns}: ${r.stderr}`);
      }
      for (const ns of [a, b]) {
        const crb = JSON.parse(await kubectlOk(['get', 'clusterrolebinding', `k8s-api-proxy-${ns}`, '-o', 'json']));
        assert.deepEqual(crb.subjects, [{ kind: 'ServiceAccount', name: 'k8s-api-proxy', namespace: ns }]);
        assert.equal(crb.roleRef.name, `k8s-api-proxy-${ns}`);
        assert.ok(await hasProxyRights(ns, 'k8s-api-proxy'), `${ns}'s proxy has its rights`);
      }
    });

    it('upgrade with a changed nameOverride and roll back (the selector stays)', async () => {
      const helm = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => runCommand(HELM, [...args, '-n', a], { env: { KUBECONFIG: ADMIN_KUBECONFIG } });
      const up = await helm('upgrade', 'k8s-api-proxy', CHART, '--reuse-values', '--set', 'nameOverride=proxy');
      assert.equal(up.code, 0, up.stderr);
      const back = await helm('rollback', 'k8s-api-proxy', '1');
      assert.equal(back.code, 0, back.stderr);
      assert.ok(await hasProxyRights(a, 'k8s-api-proxy'));
    });

    it('uninstalling one leaves the other working', async () => {
      const r = await runCommand('make', ['-s', 'undeploy'], { env: env(a) });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await can(a, 'k8s-api-proxy', 'list', 'deployments.apps', '-A'), 'no');
      assert.ok(await hasProxyRights(b, 'k8s-api-proxy'), `${b}'s proxy kept its rights`);
      assert.equal((await kubectl(['get', 'clusterrolebinding', `k8s-api-proxy-${b}`])).code, 0);
      // b's proxy really works with its token, not just on paper.
      const work = await TestNamespace.create('two-rel');
      await work.createDeployment('app', { replicas: 1 });
      const proxy = await startInClusterProxy(certs, b, 'k8s-api-proxy');
      try {
        assert.equal((await proxy.request(`/deployments/${work.name}/app/replicas`, { method: 'PUT', body: { replicas: 4 } })).status, 200);
        assert.equal((await work.getDeployment('app')).spec.replicas, 4);
      } finally {
        await proxy.stop();
        await work.cleanup();
      }
    });

    it('install side by side with helm template | kubectl apply, and deleting one leaves the other working', async () => {
      const [ta, tb] = [`ta-${suffix()}`, `tb-${suffix()}`];
      const rendered: Record<string, string> = {};
      for (const ns of [ta, tb]) {
        await kubectlOk(['create', 'namespace', ns]);
        const r = await runCommand(HELM, ['template', 'k8s-api-proxy', CHART, '--namespace', ns, ...tlsValues]);
        assert.equal(r.code, 0, r.stderr);
        rendered[ns] = r.stdout;
        const apply = await kubectl(['apply', '-f', '-'], { input: r.stdout });
        assert.equal(apply.code, 0, apply.stderr);
        assert.match(apply.stdout, new RegExp(`clusterrolebinding.rbac.authorization.k8s.io/k8s-api-proxy-${ns} created`));
      }
      for (const ns of [ta, tb]) assert.ok(await hasProxyRights(ns, 'k8s-api-proxy'), `${ns}'s proxy has its rights`);
      const del = await kubectl(['delete', '-f', '-'], { input: rendered[ta] });
      assert.equal(del.code, 0, del.stderr);
      assert.equal(await can(ta, 'k8s-api-proxy', 'list', 'deployments.apps', '-A'), 'no');
      assert.ok(await hasProxyRights(tb, 'k8s-api-proxy'), `${tb}'s proxy kept its rights`);
      await kubectl(['delete', '-f', '-'], { input: rendered[tb] });
      for (const ns of [ta, tb]) await kubectl(['delete', 'namespace', ns, '--wait=false']);
    });
  });

  describe('make undeploy and namespaces it did not create', () => {
    it('leaves a pre-existing namespace and its other objects untouched', async () => {
      const ns = `shared-${suffix()}`;
      const env = { KUBECONFIG: ADMIN_KUBECONFIG, NAMESPACE: ns, RELEASE: 'k8s-api-proxy', CERTS_DIR: certsDir };
      await kubectlOk(['create', 'namespace', ns]);
      await kubectlOk(['-n', ns, 'create', 'configmap', 'other-team', '--from-literal=owner=payments']);
      await kubectlOk(['-n', ns, 'create', 'serviceaccount', 'other-team']);
      try {
        assert.equal((await runCommand('make', ['-s', 'deploy'], { env })).code, 0);
        const r = await runCommand('make', ['-s', 'undeploy'], { env });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(await kubectlOk(['get', 'namespace', ns, '-o', 'jsonpath={.status.phase}']), 'Active');
        const objs = await kubectlOk(['-n', ns, 'get', 'configmap,serviceaccount,deployment,secret', '-o', 'name']);
        assert.deepEqual(objs.trim().split('\n').sort(), ['configmap/other-team', 'serviceaccount/other-team']);
      } finally {
        await kubectl(['delete', 'namespace', ns, '--wait=false']);
      }
    });

    it('keeps a namespace it created once someone else put something in it, and names what', async () => {
      const ns = `grown-${suffix()}`;
      const env = { KUBECONFIG: ADMIN_KUBECONFIG, NAMESPACE: ns, RELEASE: 'k8s-api-proxy', CERTS_DIR: certsDir };
      try {
        const d = await runCommand('make', ['-s', 'deploy'], { env });
        assert.equal(d.code, 0, d.stderr);
        assert.match(d.stderr, new RegExp(`created namespace ${ns}`));
        await kubectlOk(['-n', ns, 'create', 'configmap', 'moved-in']);
        const r = await runCommand('make', ['-s', 'undeploy'], { env });
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, new RegExp(`keeping namespace ${ns} \\(created by make deploy\\) because it still holds: ConfigMap/moved-in`));
        assert.equal(await kubectlOk(['get', 'namespace', ns, '-o', 'jsonpath={.status.phase}']), 'Active');
        assert.equal((await kubectl(['-n', ns, 'get', 'deployment', 'k8s-api-proxy'])).code, 1, 'the release is gone');
      } finally {
        await kubectl(['delete', 'namespace', ns, '--wait=false']);
      }
    });
  });

  describe('an existing ServiceAccount (serviceAccount.create=false)', () => {
    it('installs, binds it and leaves it in place on uninstall', async () => {
      const ns = `sa-${suffix()}`;
      await kubectlOk(['create', 'namespace', ns]);
      await kubectlOk(['-n', ns, 'create', 'serviceaccount', 'platform-proxy']);
      const helm = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => runCommand(HELM, [...args, '-n', ns], { env: { KUBECONFIG: ADMIN_KUBECONFIG } });
      try {
        const r = await helm('install', 'k8s-api-proxy', CHART, ...tlsValues, '--set', 'serviceAccount.create=false', '--set', 'serviceAccount.name=platform-proxy');
        assert.equal(r.code, 0, r.stderr);
        assert.ok(await hasProxyRights(ns, 'platform-proxy'));
        assert.equal((await helm('uninstall', 'k8s-api-proxy')).code, 0);
        assert.equal((await kubectl(['-n', ns, 'get', 'serviceaccount', 'platform-proxy'])).code, 0);
        assert.equal(await can(ns, 'platform-proxy', 'list', 'deployments.apps', '-A'), 'no');
      } finally {
        await kubectl(['delete', 'namespace', ns, '--wait=false']);
      }
    });
  });

  describe('Gateway API TLSRoute', () => {
    it('passes a server-side dry run with the Gateway API CRDs installed, attached to a passthrough Gateway', async () => {
      // Standard channel CRDs from the sigs.k8s.io/gateway-api module (hack/control-plane/gateway-api/go.mod).
      for (const kind of ['gatewayclasses', 'gateways', 'tlsroutes']) {
        const r = await kubectl(['apply', '--server-side', '-f', join(GATEWAY_API_CRDS, `gateway.networking.k8s.io_${kind}.yaml`)]);
        assert.equal(r.code, 0, r.stderr);
      }
      // `kubectl wait --for=condition=Established` fails when a just-created CRD has no
      // conditions yet; poll until both are Established and their resources are served.
      for (const crd of ['tlsroutes.gateway.networking.k8s.io', 'gateways.gateway.networking.k8s.io']) {
        await waitFor(`${crd} established and served`, async () => {
          const established = await kubectl(['get', `crd/${crd}`, '-o', 'jsonpath={.status.conditions[?(@.type=="Established")].status}']);
          if (established.stdout.trim() !== 'True') return false;
          return (await kubectl(['get', crd, '-A'])).code === 0;
        }, 30_000, 250);
      }
      const ns = `gw-${suffix()}`;
      await kubectlOk(['create', 'namespace', ns]);
      try {
        const gateway = {
          apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'edge', namespace: ns },
          spec: { gatewayClassName: 'example', listeners: [{ name: 'tls', protocol: 'TLS', port: 443, hostname: 'proxy.example.com', tls: { mode: 'Passthrough' }, allowedRoutes: { kinds: [{ kind: 'TLSRoute' }] } }] },
        };
        await kubectlOk(['create', '-f', '-'], JSON.stringify(gateway));
        const r = await runCommand(HELM, ['template', 'rel', CHART, '--namespace', ns, ...tlsValues,
          '--set', 'gatewayAPI.tlsRoute.enabled=true', '--set', 'gatewayAPI.tlsRoute.parentRefs[0].name=edge', '--set', 'gatewayAPI.tlsRoute.parentRefs[0].sectionName=tls',
          '--set', 'gatewayAPI.tlsRoute.hostnames={proxy.example.com}']);
        assert.equal(r.code, 0, r.stderr);
        const dry = await kubectl(['apply', '--dry-run=server', '-f', '-'], { input: r.stdout });
        assert.equal(dry.code, 0, dry.stderr);
        assert.match(dry.stdout, /tlsroute.gateway.networking.k8s.io\/rel-k8s-api-proxy created \(server dry run\)/);
        // Control: the CRD's own validation runs in that dry run (a route without backends is refused).
        const broken = r.stdout.replace(/ {2}rules:\n {4}- backendRefs:\n(?: {8}.*\n)+/, '  rules: []\n');
        assert.notEqual(broken, r.stdout);
        const refused = await kubectl(['apply', '--dry-run=server', '-f', '-'], { input: broken });
        assert.notEqual(refused.code, 0);
        assert.match(refused.stderr, /TLSRoute.*(rules|Invalid)/);
      } finally {
        await kubectl(['delete', 'namespace', ns, '--wait=false']);
      }
    });
  });

  describe('the default release on the local control plane', () => {
    it('adopts the ServiceAccount and RBAC that cluster-up created, and cluster-up restores them after undeploy', async () => {
      const env = { KUBECONFIG: ADMIN_KUBECONFIG, CERTS_DIR: certsDir };
      try {
        const r = await runCommand('make', ['-s', 'deploy'], { env: env });
        assert.equal(r.code, 0, r.stderr);
        const owner = await kubectlOk(['-n', 'k8s-api-proxy', 'get', 'serviceaccount', 'k8s-api-proxy', '-o', 'jsonpath={.metadata.annotations.meta\\.helm\\.sh/release-name}']);
        assert.equal(owner, 'k8s-api-proxy');
        assert.equal((await runCommand('make', ['-s', 'undeploy'], { env: env })).code, 0);
      } finally {
        const up = await runCommand(join(ROOT, 'hack/control-plane/cluster.sh'), ['up'], { env: { CLUSTER_DIR } });
        assert.equal(up.code, 0, up.stderr);
      }
      const can = await kubectl(['auth', 'can-i', 'list', 'deployments.apps'], { kubeconfig: join(CLUSTER_DIR, 'proxy.kubeconfig') });
      assert.equal(can.stdout.trim(), 'yes', 'the proxy identity works again');
    });
  });

  describe('Pod Security Standard "restricted"', () => {
    const ns = `pss-${randomBytes(3).toString('hex')}`;
    const env = { KUBECONFIG: ADMIN_KUBECONFIG, NAMESPACE: ns, RELEASE: ns, CERTS_DIR: '' };
    before(() => { env.CERTS_DIR = certsDir; });
    after(async () => { await runCommand('make', ['-s', 'undeploy'], { env: env }); });

    it('installs without a PodSecurity warning and its pod template is admitted as a Pod', async () => {
      await kubectlOk(['create', 'namespace', ns]);
      await kubectlOk(['label', 'namespace', ns, 'pod-security.kubernetes.io/enforce=restricted', 'pod-security.kubernetes.io/warn=restricted', 'pod-security.kubernetes.io/audit=restricted']);
      const r = await runCommand('make', ['-s', 'deploy'], { env: env });
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout + r.stderr, /PodSecurity|would violate/i);
      const dep = JSON.parse(await kubectlOk(['-n', ns, 'get', 'deployment', `${ns}-k8s-api-proxy`, '-o', 'json']));
      const pod = {
        apiVersion: 'v1', kind: 'Pod',
        metadata: { name: 'from-template', namespace: ns, labels: dep.spec.template.metadata.labels },
        spec: { ...dep.spec.template.spec, nodeName: 'fake-node' },
      };
      const created = await kubectl(['create', '-f', '-'], { input: JSON.stringify(pod) });
      assert.equal(created.code, 0, created.stderr);
      assert.doesNotMatch(created.stderr, /violate/);
      // Control: the same namespace refuses a Pod that breaks the standard.
      const bad = { ...pod, metadata: { ...pod.metadata, name: 'privileged' }, spec: { nodeName: 'fake-node', containers: [{ name: 'c', image: 'x', securityContext: { privileged: true } }] } };
      const refused = await kubectl(['create', '-f', '-'], { input: JSON.stringify(bad) });
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /violates PodSecurity "restricted/);
    });

    it('admits the helm test Pod there too', async () => {
      const b64 = (s: string): string => Buffer.from(s).toString('base64');
      const r = await runCommand(HELM, ['template', ns, CHART, '--namespace', ns, ...tlsValues, '--show-only', 'templates/tests/healthz.yaml',
        '--set', 'helmTest.enabled=true', '--set', `helmTest.clientCrt=${b64(certs.client.cert)}`, '--set', `helmTest.clientKey=${b64(certs.client.key)}`]);
      assert.equal(r.code, 0, r.stderr);
      const pod = r.stdout.split('\n---\n').find((d) => /^kind: Pod$/m.test(d));
      assert.ok(pod, r.stdout);
      const created = await kubectl(['create', '-f', '-'], { input: pod });
      assert.equal(created.code, 0, created.stderr);
      assert.doesNotMatch(created.stderr, /violate/);
    });
  });
});
