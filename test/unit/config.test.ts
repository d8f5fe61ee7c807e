import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { parseArgs, parseAddress, parseDuration, FLAGS, helpText } from '../../src/config.js';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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

describe('parseDuration', () => {
  const good: Array<[string, number]> = [['10s', 10_000], ['500ms', 500], ['1m', 60_000], ['0', 0], ['0s', 0], ['1.5s', 1_500], ['1h', 3_600_000]];
  for (const [v, ms] of good) it(`reads ${v} as ${ms} ms`, () => assert.equal(parseDuration('--x', v, []), ms));
  for (const v of ['10', '-1s', '2h', 's', '10 s', '1d']) {
    it(`rejects ${JSON.stringify(v)} naming the flag`, () => {
      const errors: string[] = [];
      parseDuration('--authorization-cache-allowed-ttl', v, errors);
      assert.match(errors[0] ?? '', /^--authorization-cache-allowed-ttl: /);
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
    assert.equal(r.config.tlsHandshakeTimeoutSeconds, 10);
    assert.equal(r.config.maxConnections, 1000);
    assert.equal(r.config.maxConnectionsPerIp, 200);
    assert.equal(r.config.maxConnectionAgeSeconds, 600);
    assert.deepEqual(r.config.rateLimits, { read: { rps: 100, burst: 200 }, write: { rps: 5, burst: 20 } });
  });

  it('reads the connection and rate-limit flags from their environment twins; 0 switches a cap off', () => {
    const r = parseArgs(tls(), {
      K8S_API_PROXY_MAX_CONNECTIONS: '0', K8S_API_PROXY_MAX_CONNECTIONS_PER_IP: '7', K8S_API_PROXY_TLS_HANDSHAKE_TIMEOUT_SECONDS: '2.5',
      K8S_API_PROXY_MAX_CONNECTION_AGE_SECONDS: '0', K8S_API_PROXY_RATE_LIMIT_WRITE_RPS: '0.5', K8S_API_PROXY_RATE_LIMIT_WRITE_BURST: '3',
      K8S_API_PROXY_RATE_LIMIT_READ_RPS: '0',
    });
    assert.equal(r.kind, 'run');
    if (r.kind !== 'run') return;
    assert.equal(r.config.maxConnections, 0);
    assert.equal(r.config.maxConnectionsPerIp, 7);
    assert.equal(r.config.tlsHandshakeTimeoutSeconds, 2.5);
    assert.equal(r.config.maxConnectionAgeSeconds, 0);
    assert.deepEqual(r.config.rateLimits, { read: { rps: 0, burst: 200 }, write: { rps: 0.5, burst: 3 } });
  });

  it('authorizes by RBAC with 10 s / 5 s decision caches and audits to stdout by default', () => {
    const r = parseArgs(tls(), {});
    assert.equal(r.kind, 'run');
    if (r.kind !== 'run') return;
    assert.equal(r.config.authorization, 'rbac');
    assert.equal(r.config.authorizationCacheAllowedTtlMs, 10_000);
    assert.equal(r.config.authorizationCacheDeniedTtlMs, 5_000);
    assert.equal(r.config.auditLogPath, '-');
    assert.equal(r.config.auditLogMaxSizeMb, 100);
    assert.equal(r.config.auditLogMaxBackups, 10);
  });

  it('reports a bad --authorization, TTL, audit path, size and backup count together with other errors', () => {
    const r = parseArgs([...tls(), '--authorization', 'allow-all', '--authorization-cache-denied-ttl', 'soon', '--audit-log-path', '/no/such/dir/audit.log',
      '--audit-log-maxsize', '0', '--audit-log-maxbackup', '-1', '--log-level', 'loud'], {});
    assert.equal(r.kind, 'invalid');
    if (r.kind !== 'invalid') return;
    for (const flag of ['--authorization:', '--authorization-cache-denied-ttl:', '--audit-log-path:', '--audit-log-maxsize:', '--audit-log-maxbackup:', '--log-level:']) {
      assert.ok(r.errors.some((e) => e.startsWith(flag)), `${flag} in ${r.errors.join('; ')}`);
    }
  });

  it('accepts --authorization=none', () => {
    const r = parseArgs([...tls(), '--authorization=none'], {});
    assert.equal(r.kind === 'run' && r.config.authorization, 'none');
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
    ['a zero handshake timeout', ['--tls-handshake-timeout-seconds', '0'], /--tls-handshake-timeout-seconds: must be above 0/],
    ['a fractional connection cap', ['--max-connections', '1.5'], /--max-connections: "1.5" is not a whole number/],
    ['a negative per-address cap', ['--max-connections-per-ip', '-1'], /--max-connections-per-ip: "-1"/],
    ['a rate that is not a number', ['--rate-limit-read-rps', 'fast'], /--rate-limit-read-rps: "fast"/],
    ['a burst of 0', ['--rate-limit-write-burst', '0'], /--rate-limit-write-burst: "0" is not a whole number between 1/],
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

  it('refuses at start a client CA holding only an intermediate, saying to add its root', () => {
    const r = parseArgs(['--kubeconfig', kubeconfig, '--tls-cert', c.serverCertFile, '--tls-key', c.serverKeyFile, '--client-ca', c.intermediate.onlyFile], {});
    assert.equal(r.kind, 'invalid');
    if (r.kind === 'invalid') {
      assert.match(r.errors.join('\n'), /--client-ca: certificate #1 \(CN=issuing intermediate\) is an intermediate CA whose issuer \(CN=offline root\) is not in the file, so every client would be refused/);
      assert.match(r.errors.join('\n'), /add the root CA certificate .*\(its public certificate only; the root key can stay offline\)/);
    }
  });

  it('accepts a bundle of two PEM blocks run together on one line, and still checks each (an intermediate alone is refused)', () => {
    const runTogether = (from: string, name: string) => {
      const file = join(c.dir, name);
      writeFileSync(file, readFileSync(from, 'utf8').replace(/-----END CERTIFICATE-----\s+-----BEGIN/, '-----END CERTIFICATE----------BEGIN'));
      return parseArgs(['--kubeconfig', kubeconfig, '--tls-cert', c.serverCertFile, '--tls-key', c.serverKeyFile, '--client-ca', file], {});
    };
    const ok = runTogether(c.intermediate.withRootFile, 'run-together.crt');
    assert.equal(ok.kind, 'run', ok.kind === 'invalid' ? ok.errors.join('\n') : '');
    writeFileSync(join(c.dir, 'inter-twice.crt'), `${readFileSync(c.intermediate.onlyFile, 'utf8')}\n${readFileSync(c.intermediate.onlyFile, 'utf8')}`);
    const bad = runTogether(join(c.dir, 'inter-twice.crt'), 'inter-twice-run-together.crt');
    assert.equal(bad.kind, 'invalid');
    if (bad.kind === 'invalid') assert.match(bad.errors.join('\n'), /certificate #2 \(CN=issuing intermediate\) is an intermediate CA/);
  });

  it('accepts a client CA bundle of intermediate and root', () => {
    const r = parseArgs(['--kubeconfig', kubeconfig, '--tls-cert', c.serverCertFile, '--tls-key', c.serverKeyFile, '--client-ca', c.intermediate.withRootFile], {});
    assert.equal(r.kind, 'run', r.kind === 'invalid' ? r.errors.join('\n') : '');
  });

  it('documents every flag in --help with its environment variable', () => {
    const help = helpText();
    for (const f of FLAGS) {
      assert.ok(help.includes(`--${f.flag} ${f.value}`), f.flag);
      assert.ok(help.includes(`$${f.env}`), f.env);
    }
  });
});
