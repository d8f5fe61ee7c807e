/** Chart lint tier (no cluster): the optional ServiceMonitor renders as documented, or not at all. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ROOT, HELM, runCommand } from '../helpers/cluster.js';

const CHART = join(ROOT, 'charts/k8s-api-proxy');
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

/** `helm template` of the chart (with an existing TLS Secret, so no certificates are needed), parsed. */
async function render(extra: string[] = []): Promise<{ code: number; stderr: string; objects: Obj[]; text: string }> {
  const r = await runCommand(HELM, ['template', 'rel', CHART, '--namespace', 'mon', '--set', 'tls.existingSecret=certs', ...extra]);
  const objects = r.code === 0 ? parseAllDocuments(r.stdout).map((d) => d.toJSON() as Obj).filter(Boolean) : [];
  return { code: r.code, stderr: r.stderr, objects, text: r.stdout };
}

describe('chart: optional ServiceMonitor for /metrics', () => {
  it('renders no ServiceMonitor and no metrics Service by default', async () => {
    const r = await render();
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.objects.some((o) => o.kind === 'ServiceMonitor'));
    assert.deepEqual(r.objects.filter((o) => o.kind === 'Service').map((o) => o.metadata.name), ['rel-k8s-api-proxy']);
  });

  it('when enabled, scrapes /metrics over plain HTTP on the pods\' probe port through a Service of its own', async () => {
    const r = await render(['--set', 'serviceMonitor.enabled=true', '--set', 'serviceMonitor.interval=15s', '--set', 'serviceMonitor.scrapeTimeout=5s', '--set', 'serviceMonitor.labels.release=kps']);
    assert.equal(r.code, 0, r.stderr);
    const sm = r.objects.find((o) => o.kind === 'ServiceMonitor')!;
    assert.equal(sm.apiVersion, 'monitoring.coreos.com/v1');
    assert.equal(sm.metadata.labels.release, 'kps');
    assert.deepEqual(sm.spec.namespaceSelector, { matchNames: ['mon'] });
    assert.deepEqual(sm.spec.endpoints, [{ port: 'metrics', path: '/metrics', scheme: 'http', interval: '15s', scrapeTimeout: '5s' }]);
    const services = r.objects.filter((o) => o.kind === 'Service');
    const selects = (svc: Obj): boolean => Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => svc.metadata.labels[k] === v);
    const selected = services.filter(selects);
    assert.deepEqual(selected.map((s) => s.metadata.name), ['rel-k8s-api-proxy-metrics'], 'only the metrics Service, not the mTLS API one');
    const port = selected[0].spec.ports.find((p: Obj) => p.name === 'metrics');
    assert.equal(port.targetPort, 'probes');
    const container = r.objects.find((o) => o.kind === 'Deployment')!.spec.template.spec.containers[0];
    assert.deepEqual(container.ports.find((p: Obj) => p.name === 'probes'), { name: 'probes', containerPort: 8081, protocol: 'TCP' });
    assert.ok(container.args.includes('--health-listen=0.0.0.0:8081'), 'the probe port is where /metrics is served');
    const pods = r.objects.find((o) => o.kind === 'Deployment')!.spec.template.metadata.labels;
    assert.ok(Object.entries(selected[0].spec.selector).every(([k, v]) => pods[k] === v), 'the metrics Service selects the pods');
  });

  it('passes helm lint --strict when enabled', async () => {
    const r = await runCommand(HELM, ['lint', '--strict', CHART, '--set', 'tls.existingSecret=certs', '--set', 'serviceMonitor.enabled=true']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  const invalid: Array<[string, string[], RegExp]> = [
    ['an interval that is not a duration', ['--set', 'serviceMonitor.interval=soon'], /serviceMonitor\/interval/],
    ['a non-boolean enabled', ['--set-string', 'serviceMonitor.enabled=yes'], /serviceMonitor\/enabled/],
    ['an unknown key', ['--set', 'serviceMonitor.port=9090'], /serviceMonitor.*port|additional properties 'port'/],
  ];
  for (const [what, args, re] of invalid) {
    it(`refuses ${what}`, async () => {
      const r = await render(args);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, re);
    });
  }
});
