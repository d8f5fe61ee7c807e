/** The optional ServiceMonitor's Service on the real API server (rendering is checked in test/lint/chart-servicemonitor.test.ts). */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseAllDocuments } from 'yaml';
import { ROOT, HELM, runCommand, ensureCluster, kubectl, kubectlOk } from '../helpers/cluster.js';

const CHART = join(ROOT, 'charts/k8s-api-proxy');
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

describe('chart: optional ServiceMonitor for /metrics', () => {
  describe('on the real API server', () => {
    before(() => ensureCluster());
    it('accepts the metrics Service in a server-side dry run (the ServiceMonitor needs the Prometheus Operator CRDs, absent here)', async () => {
      const ns = `mon-${randomBytes(3).toString('hex')}`;
      await kubectlOk(['create', 'namespace', ns]);
      try {
        const r = await runCommand(HELM, ['template', 'rel', CHART, '--namespace', ns, '--set', 'tls.existingSecret=certs', '--set', 'serviceMonitor.enabled=true', '--show-only', 'templates/servicemonitor.yaml']);
        const service = parseAllDocuments(r.stdout).map((d) => d.toJSON() as Obj).find((o) => o?.kind === 'Service');
        const dry = await kubectl(['apply', '--dry-run=server', '-f', '-'], { input: JSON.stringify(service) });
        assert.equal(dry.code, 0, dry.stderr);
        assert.match(dry.stdout, /service\/rel-k8s-api-proxy-metrics created \(server dry run\)/);
      } finally {
        await kubectl(['delete', 'namespace', ns, '--wait=false']);
      }
    });
  });
});
