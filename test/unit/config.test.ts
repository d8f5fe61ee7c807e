import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { parseArgs, parseAddress, FLAGS, helpText } from '../../src/config.js';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('parseAddress', () => {
  const good: Array<[string, string, number]> = [
    ['0.0.0.0:8443', '0.0.0.0', 8443], ['localhost:0', 'localhost', 0], ['[::]:8443', '::', 8443], ['[::1]:1', '::1', 1], ['example.com:65535', 'example.com', 65535],
  ];
  for (const [v, host, port] of good) it(`accepts ${v}`, () => assert.deepEqual(parseAddress('--listen', v, []), { host, port }));
  const bad = ['8443', ':8443', 'host:', 'host:65536', '[zz]:1', '::1:8443', 'a:b', 'host:8443x'];
  for (const v of bad) {
    it(`rejects ${JSON.stringify(v)} naming the flag`, () => {
      const errors: string[] = [];
      assert.equal(parseAddress('--listen', v, errors), undefined);
      assert.match(errors[0], /^--listen: /);
    });
  }
});

describe('parseArgs', () => {
  let c: CertFixture;
  let kubeconfig: string;
  before(async () => {
    c = await makeCertFixture();
    kubeconfig = join(c.dir, 'kubeconfig');
    writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://k:6443"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n');
  });
  const tls = (): string[] => ['--kubeconfig', kubeconfig, '--tls-cert', c.serverCertFile, '--tls-key', c.serverKeyFile, '--client-ca', c.caFile];

  it('applies defaults', () => {
    const r = parseArgs(tls(), {});
    assert.equal(r.kind, 'run');
    if (r.kind !== 'run') return;
    assert.deepEqual(r.config.listen, { host: '0.0.0.0', port: 8443 });
    assert.deepEqual(r.config.healthListen, { host: '0.0.0.0', port: 8081 });
    assert.equal(r.config.logLevel, 'info');
    assert.equal(r.config.kube.server, 'https://k:6443');
  });

  it('accepts --flag=value and lets a flag win over its environment twin', () => {
    const r = parseArgs([...tls(), '--listen=127.0.0.1:9443'], { K8S_API_PROXY_LISTEN: '127.0.0.1:1', K8S_API_PROXY_LOG_LEVEL: 'debug' });
    assert.equal(r.kind, 'run');
    if (r.kind !== 'run') return;
    assert.equal(r.config.listen.port, 9443);
    assert.equal(r.config.logLevel, 'debug');
  });

  const cases: Array<[string, string[], RegExp]> = [
    ['an unknown flag', ['--nope'], /--nope: unknown argument/],
    ['a flag without a value', ['--context'], /--context: needs a value/],
    ['a bad log level', ['--log-level', 'loud'], /--log-level: "loud"/],
    ['the same address twice', ['--listen', '127.0.0.1:9000', '--health-listen', '127.0.0.1:9000'], /--health-listen: .* same address/],
    ['negative shutdown timeout', ['--shutdown-timeout-seconds', '-1'], /--shutdown-timeout-seconds/],
    ['a missing kubeconfig file', ['--kubeconfig', '/no/such/file'], /--kubeconfig: cannot read \/no\/such\/file/],
    ['a missing context', ['--context', 'nope'], /--context: context "nope" not found/],
  ];
  for (const [name, args, re] of cases) {
    it(`reports ${name}`, () => {
      const r = parseArgs([...tls(), ...args], {});
      assert.equal(r.kind, 'invalid');
      if (r.kind === 'invalid') assert.ok(r.errors.some((e) => re.test(e)), r.errors.join('\n'));
    });
  }

  it('reports cluster-access problems together with flag problems', () => {
    const r = parseArgs(['--tls-cert', c.serverCertFile, '--tls-key', c.serverKeyFile, '--client-ca', c.caFile, '--listen', 'bad'], {}, mkdtempSync(join(tmpdir(), 'home-')));
    assert.equal(r.kind, 'invalid');
    if (r.kind === 'invalid') {
      assert.match(r.errors.join('\n'), /--listen: "bad"/);
      assert.match(r.errors.join('\n'), /no Kubernetes configuration found/);
    }
  });

  it('reports a client CA that is not a CA certificate', () => {
    const r = parseArgs(['--kubeconfig', kubeconfig, '--tls-cert', c.serverCertFile, '--tls-key', c.serverKeyFile, '--client-ca', c.serverCertFile], {});
    assert.equal(r.kind, 'invalid');
    if (r.kind === 'invalid') assert.match(r.errors.join('\n'), /--client-ca: certificate #1 .* is not a CA certificate/);
  });

  it('documents every flag in --help with its environment variable', () => {
    const help = helpText();
    for (const f of FLAGS) {
      assert.ok(help.includes(`--${f.flag} ${f.value}`), f.flag);
      assert.ok(help.includes(`$${f.env}`), f.env);
    }
  });
});
