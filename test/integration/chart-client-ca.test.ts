/**
 * The chart's issue-8 keys, rendered with the real helm: a client CA separate from the
 * server certificate's issuer (clientCA / existingClientCASecret) and the optional
 * NetworkPolicy. Rendering only: no cluster is needed.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, HELM, runCommand } from '../helpers/cluster.js';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';

const CHART = join(ROOT, 'charts/k8s-api-proxy');

describe('chart: separate client CA and NetworkPolicy', () => {
  let certs: CertFixture;
  let tlsValues: string[];
  before(async () => {
    certs = await makeCertFixture();
    const b64 = (f: string): string => readFileSync(f).toString('base64');
    tlsValues = ['--set', `tls.caCrt=${b64(certs.caFile)}`, '--set', `tls.crt=${b64(certs.serverCertFile)}`, '--set', `tls.key=${b64(certs.serverKeyFile)}`];
  });
  const template = async (extra: string[]): Promise<string> => {
    const r = await runCommand(HELM, ['template', 'rel', CHART, '--namespace', 'k8s-api-proxy', ...extra]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };

  it('by default reads --client-ca from the server Secret and renders no NetworkPolicy', async () => {
    const out = await template(tlsValues);
    assert.match(out, /--client-ca=\/etc\/k8s-api-proxy\/tls\/ca.crt/);
    assert.doesNotMatch(out, /client-ca\/ca.crt|kind: NetworkPolicy/);
  });

  it('renders clientCA as a Secret of its own, mounted as --client-ca, rolling the pods when it changes', async () => {
    const bundle = readFileSync(certs.intermediate.withRootFile).toString('base64');
    const out = await template([...tlsValues, '--set', `tls.clientCA=${bundle}`]);
    assert.match(out, /kind: Secret\nmetadata:\n {2}name: rel-k8s-api-proxy-client-ca/);
    assert.ok(out.includes(`ca.crt: "${bundle}"`));
    assert.match(out, /--client-ca=\/etc\/k8s-api-proxy\/client-ca\/ca.crt/);
    assert.match(out, /- name: client-ca\n\s+secret:\n\s+secretName: rel-k8s-api-proxy-client-ca/);
    assert.match(out, /checksum\/client-ca: [0-9a-f]{64}/);
  });

  it('mounts existingClientCASecret (cert-manager/trust-manager) beside an existing server Secret, rendering no Secret', async () => {
    const out = await template(['--set', 'tls.existingSecret=server-tls', '--set', 'tls.existingClientCASecret=client-roots']);
    assert.doesNotMatch(out, /^kind: Secret$/m);
    assert.match(out, /secretName: server-tls/);
    assert.match(out, /secretName: client-roots/);
    assert.match(out, /--client-ca=\/etc\/k8s-api-proxy\/client-ca\/ca.crt/);
  });

  it('renders a NetworkPolicy admitting only the mTLS port, from the given peers', async () => {
    const out = await template([...tlsValues, '--set', 'networkPolicy.enabled=true', '--set', 'networkPolicy.from[0].namespaceSelector.matchLabels.team=ci']);
    const policy = out.split('---').find((d) => d.includes('kind: NetworkPolicy'))!;
    assert.match(policy, /policyTypes:\n\s+- Ingress/);
    assert.match(policy, /- port: https\n\s+protocol: TCP/);
    assert.match(policy, /from:\n\s+- namespaceSelector:\n\s+matchLabels:\n\s+team: ci/);
    assert.doesNotMatch(policy.split('spec:')[1], /8081|probes/, 'no rule for the probe port: only the node (kubelet) reaches it');
    // What the policy confines (README, Chart): a probe listener on every address (kubelet probes the Pod IP), outside the main Service.
    assert.match(out, /- --health-listen=0\.0\.0\.0:8081\n/);
    const service = out.split('---').find((d) => /\nkind: Service\n/.test(d))!;
    assert.match(service, /targetPort: https/);
    assert.doesNotMatch(service, /8081|probes/);
  });

  it('rejects a clientCA that is not base64', async () => {
    const r = await runCommand(HELM, ['template', 'rel', CHART, ...tlsValues, '--set', 'tls.clientCA=-----BEGIN CERTIFICATE-----']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /clientCA/);
  });
});
