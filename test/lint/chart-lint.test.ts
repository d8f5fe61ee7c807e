/**
 * The chart's lint tier (`make test-lint`, part of `make test`): `helm lint --strict` and
 * kube-score on every rendering an operator can choose, with the deliberate exceptions
 * listed below. Any other finding fails, so a new template or value cannot add one
 * silently. Needs helm and kube-score (hack/control-plane/build.sh), no cluster.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ROOT, HELM, KUBE_SCORE, runCommand } from '../helpers/cluster.js';

const CHART = join(ROOT, 'charts/k8s-api-proxy');
/** The Kubernetes version kube-score judges against: the local control plane's minor. */
const KUBERNETES_VERSION = 'v1.34';
/** Not real PEM: schema and templates only see base64. */
const FAKE_B64 = Buffer.from('not a certificate').toString('base64');
const TLS = ['--set', `tls.caCrt=${FAKE_B64}`, '--set', `tls.crt=${FAKE_B64}`, '--set', `tls.key=${FAKE_B64}`];

/**
 * kube-score checks the chart fails on purpose, each with the reason. A check id here is
 * skipped for every rendering; keep the list short and the reasons true.
 */
const IGNORED_CHECKS: Record<string, string> = {
  // Pinned tags or digests make IfNotPresent safe, and Always would make every pod start
  // depend on the registry being up.
  'container-image-pull-policy': 'IfNotPresent is the default on purpose (image.pullPolicy)',
  // The proxy's clients and the API server's address differ per cluster; a policy the chart
  // guessed would either allow everything or cut the proxy off. Operators add their own.
  'pod-networkpolicy': 'NetworkPolicies are left to the cluster operator (networkPolicy.enabled renders one, off by default)',
};
/** kube-score flags for deliberate choices that have a flag rather than a check id. */
const KUBE_SCORE_FLAGS = [
  // No CPU limit: CPU throttling would add latency to every request, the CPU request
  // reserves what the proxy needs, and memory stays limited.
  '--ignore-container-cpu-limit',
];
/** Checks a single rendering is expected to fail, because the operator chose it. */
const PER_RENDERING: Record<string, Record<string, string>> = {
  nodePort: { 'service-type': 'the operator chose service.type=NodePort' },
  oneReplica: { 'deployment-replicas': 'the operator chose replicaCount=1' },
};

/** Every rendering the lint tier checks: a name and the values that produce it. */
const RENDERINGS: Record<string, string[]> = {
  defaults: [],
  existingSecret: ['--set', 'tls.existingSecret=my-certs'],
  oneReplica: ['--set', 'replicaCount=1'],
  percentPdb: ['--set', 'replicaCount=3', '--set', 'podDisruptionBudget.minAvailable=50%'],
  existingServiceAccount: ['--set', 'serviceAccount.create=false', '--set', 'serviceAccount.name=platform-proxy'],
  loadBalancer: ['--set', 'service.type=LoadBalancer', '--set', 'service.loadBalancerSourceRanges={203.0.113.0/24}', '--set', 'service.externalTrafficPolicy=Local', '--set', 'service.annotations.service\\.beta\\.kubernetes\\.io/aws-load-balancer-type=nlb'],
  nodePort: ['--set', 'service.type=NodePort', '--set', 'service.nodePort=30443'],
  tlsRoute: ['--set', 'gatewayAPI.tlsRoute.enabled=true', '--set', 'gatewayAPI.tlsRoute.parentRefs[0].name=edge', '--set', 'gatewayAPI.tlsRoute.hostnames={proxy.example.com}'],
  ingressNginx: ['--set', 'ingress.enabled=true', '--set', 'ingress.className=nginx'],
  ingressHaproxy: ['--set', 'ingress.enabled=true', '--set', 'ingress.className=haproxy'],
  serviceMonitor: ['--set', 'serviceMonitor.enabled=true', '--set', 'serviceMonitor.labels.release=kube-prometheus-stack'],
  helmTest: ['--set', 'helmTest.enabled=true', '--set', `helmTest.clientCrt=${FAKE_B64}`, '--set', `helmTest.clientKey=${FAKE_B64}`],
  networkPolicyAndClientCA: ['--set', 'networkPolicy.enabled=true', '--set', 'networkPolicy.from[0].podSelector.matchLabels.role=ci', '--set', 'tls.existingClientCASecret=client-roots'],
  everything: [
    '--set', 'priorityClassName=platform-critical', '--set', 'podLabels.team=platform', '--set-string', 'commonLabels.cost-center=42',
    '--set', 'extraArgs={--request-timeout-seconds=15}', '--set', 'extraEnv[0].name=TZ', '--set', 'extraEnv[0].value=UTC',
    '--set', 'image.digest=sha256:' + 'a'.repeat(64), '--set', 'tolerations[0].key=dedicated', '--set', 'tolerations[0].operator=Exists',
  ],
};

interface ScoredObject {
  object_name: string;
  type_meta: { kind: string };
  checks: Array<{ check: { id: string }; grade: number; skipped: boolean; comments: Array<{ path: string; summary: string }> | null }>;
}
/** kube-score's grade for a passed check (CRITICAL 1, WARNING 5, ALMOST_OK 7, ALL_OK 10). */
const ALL_OK = 10;

describe('chart lint tier', () => {
  for (const [name, values] of Object.entries(RENDERINGS)) {
    describe(`rendering "${name}"`, () => {
      it('passes helm lint --strict', async () => {
        const r = await runCommand(HELM, ['lint', '--strict', CHART, ...TLS, ...values]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
      });

      it('has no kube-score finding outside the ignore list', async () => {
        const rendered = await runCommand(HELM, ['template', 'rel', CHART, '--namespace', 'proxy', ...TLS, ...values]);
        assert.equal(rendered.code, 0, rendered.stderr);
        const ignored = { ...IGNORED_CHECKS, ...PER_RENDERING[name] };
        const score = await runCommand(KUBE_SCORE, [
          'score', '-', '--output-format', 'json', '--kubernetes-version', KUBERNETES_VERSION, ...KUBE_SCORE_FLAGS,
          ...Object.keys(ignored).flatMap((id) => ['--ignore-test', id]),
        ], { input: rendered.stdout });
        // kube-score exits 1 when any check fails; the findings below say which.
        const objects = JSON.parse(score.stdout) as ScoredObject[];
        assert.ok(objects.some((o) => o.type_meta.kind === 'Deployment'), `kube-score scored the Deployment: ${score.stderr}`);
        const findings = objects.flatMap((o) => o.checks
          .filter((c) => !c.skipped && c.grade < ALL_OK)
          .map((c) => `${o.type_meta.kind}/${o.object_name} ${c.check.id}: ${(c.comments ?? []).map((m) => `${m.path} ${m.summary}`).join('; ')}`));
        assert.deepEqual(findings, []);
        assert.equal(score.code, 0, score.stderr);
      });
    });
  }

  it('the ignore list only holds checks kube-score still reports on the default rendering', async () => {
    // An ignore entry for a check the chart now passes would hide a future regression.
    const rendered = await runCommand(HELM, ['template', 'rel', CHART, '--namespace', 'proxy', ...TLS]);
    const score = await runCommand(KUBE_SCORE, ['score', '-', '--output-format', 'json', '--kubernetes-version', KUBERNETES_VERSION, ...KUBE_SCORE_FLAGS], { input: rendered.stdout });
    const failing = new Set((JSON.parse(score.stdout) as ScoredObject[]).flatMap((o) => o.checks.filter((c) => !c.skipped && c.grade < ALL_OK).map((c) => c.check.id)));
    for (const id of Object.keys(IGNORED_CHECKS)) assert.ok(failing.has(id), `${id} is ignored but no longer reported: remove it from IGNORED_CHECKS`);
  });
});
