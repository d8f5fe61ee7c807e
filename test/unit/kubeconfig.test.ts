import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, mkdirSync, symlinkSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadKubeConfig, KubeConfigError, RotatingTokenFile } from '../../src/kube/kubeconfig.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'kc-'));
function kubeconfigFile(dir: string, name: string, server: string, context = name): string {
  const p = join(dir, `${name}.yaml`);
  writeFileSync(p, `apiVersion: v1
kind: Config
clusters: [{name: ${name}, cluster: {server: "${server}"}}]
users: [{name: ${name}, user: {token: t-${name}}}]
contexts: [{name: ${context}, context: {cluster: ${name}, user: ${name}}}]
current-context: ${context}
`);
  return p;
}

describe('loadKubeConfig', () => {
  it('prefers --kubeconfig over everything', () => {
    const d = tmp();
    const flag = kubeconfigFile(d, 'flag', 'https://flag:6443');
    const env = kubeconfigFile(d, 'env', 'https://env:6443');
    const r = loadKubeConfig({ kubeconfig: flag, env: { KUBECONFIG: env, KUBERNETES_SERVICE_HOST: 'x' }, home: d });
    assert.equal(r.server, 'https://flag:6443');
  });

  it('uses $KUBECONFIG as a :-separated list, ignoring empty entries, first file wins the current context', () => {
    const d = tmp();
    const a = kubeconfigFile(d, 'a', 'https://a:6443');
    const b = kubeconfigFile(d, 'b', 'https://b:6443');
    const r = loadKubeConfig({ env: { KUBECONFIG: `:${a}::${b}:` }, home: d });
    assert.equal(r.server, 'https://a:6443');
    assert.deepEqual(r.kc.getContexts().map((c) => c.name).sort(), ['a', 'b']);
    assert.equal(loadKubeConfig({ env: { KUBECONFIG: `${a}:${b}` }, home: d, context: 'b' }).server, 'https://b:6443');
  });

  it('skips $KUBECONFIG files that do not exist, as kubectl does', () => {
    const d = tmp();
    const b = kubeconfigFile(d, 'b', 'https://b:6443');
    assert.equal(loadKubeConfig({ env: { KUBECONFIG: `${join(d, 'missing')}:${b}` }, home: d }).server, 'https://b:6443');
    assert.throws(() => loadKubeConfig({ env: { KUBECONFIG: join(d, 'missing') }, home: d }), /\$KUBECONFIG: none of its files exists/);
  });

  it('explains a file that is not a kubeconfig (no current-context)', () => {
    const d = tmp();
    writeFileSync(join(d, 'plain'), 'hello: world\n');
    assert.throws(() => loadKubeConfig({ kubeconfig: join(d, 'plain') }), /no current-context is set .* is this a kubeconfig file\?/);
  });

  it('falls back to ~/.kube/config', () => {
    const home = tmp();
    mkdirSync(join(home, '.kube'));
    const p = kubeconfigFile(home, 'home', 'https://home:6443');
    renameSync(p, join(home, '.kube', 'config'));
    assert.equal(loadKubeConfig({ env: {}, home }).server, 'https://home:6443');
  });

  it('uses in-cluster config when KUBERNETES_SERVICE_HOST is set (IPv6 bracketed)', () => {
    const sa = tmp();
    writeFileSync(join(sa, 'token'), 'tok');
    writeFileSync(join(sa, 'ca.crt'), 'ca');
    const r = loadKubeConfig({ env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, home: tmp(), serviceAccountDir: sa });
    assert.equal(r.server, 'https://[fd00::1]:443');
    assert.match(r.source, /in-cluster/);
  });

  it('throws naming everything it tried instead of falling back to localhost:8080', () => {
    assert.throws(() => loadKubeConfig({ env: {}, home: tmp() }), (e: Error) => e instanceof KubeConfigError && /tried: --kubeconfig \(not set\), \$KUBECONFIG \(not set\), .*config \(missing\), in-cluster config/.test(e.message));
  });

  it('names a missing --context and the contexts it has', () => {
    const d = tmp();
    assert.throws(() => loadKubeConfig({ kubeconfig: kubeconfigFile(d, 'a', 'https://a:1'), context: 'zzz' }), /--context: context "zzz" not found .* have: a/);
  });

  it('names a file that does not parse', () => {
    const d = tmp();
    writeFileSync(join(d, 'bad'), 'clusters: [unclosed');
    assert.throws(() => loadKubeConfig({ kubeconfig: join(d, 'bad') }), /--kubeconfig: cannot parse/);
  });
});

describe('RotatingTokenFile', () => {
  it('re-reads the token as soon as kubelet swaps the ..data symlink', async () => {
    const dir = tmp();
    mkdirSync(join(dir, 'v1'));
    writeFileSync(join(dir, 'v1', 'token'), 'first\n');
    symlinkSync('v1', join(dir, '..data'));
    symlinkSync('..data/token', join(dir, 'token'));
    const auth = new RotatingTokenFile();
    const user = { name: 'u', authProvider: { name: 'k8s-api-proxy-token-file', config: { path: join(dir, 'token') } } };
    const o: { headers?: Record<string, unknown> } = {};
    await auth.applyAuthentication(user, o);
    assert.equal(o.headers?.Authorization, 'Bearer first');
    mkdirSync(join(dir, 'v2'));
    writeFileSync(join(dir, 'v2', 'token'), 'second\n');
    symlinkSync('v2', join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    await auth.applyAuthentication(user, o);
    assert.equal(o.headers?.Authorization, 'Bearer second');
  });
});
