import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from '../../src/config.js';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';

describe('--metrics', () => {
  let c: CertFixture;
  let base: string[];
  before(async () => {
    c = await makeCertFixture();
    const kubeconfig = join(c.dir, 'kubeconfig');
    writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://k:6443"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n');
    base = ['--kubeconfig', kubeconfig, '--tls-cert', c.serverCertFile, '--tls-key', c.serverKeyFile, '--client-ca', c.caFile];
  });

  const ok: Array<[string, string[], NodeJS.ProcessEnv, boolean]> = [
    ['is on by default', [], {}, true],
    ['is turned off by --metrics=false', ['--metrics=false'], {}, false],
    ['is turned off by K8S_API_PROXY_METRICS=false', [], { K8S_API_PROXY_METRICS: 'false' }, false],
    ['lets the flag win over its environment twin', ['--metrics', 'true'], { K8S_API_PROXY_METRICS: 'false' }, true],
  ];
  for (const [what, args, env, want] of ok) {
    it(what, () => {
      const r = parseArgs([...base, ...args], env);
      assert.equal(r.kind, 'run', JSON.stringify(r));
      if (r.kind === 'run') assert.equal(r.config.metrics, want);
    });
  }

  it('reports a value other than true or false, naming the flag', () => {
    const r = parseArgs([...base, '--metrics=yes'], {});
    assert.equal(r.kind, 'invalid');
    if (r.kind === 'invalid') assert.deepEqual(r.errors, ['--metrics: "yes" is not true or false']);
  });
});
