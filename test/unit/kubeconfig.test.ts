import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, mkdirSync, symlinkSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadKubeConfig, KubeConfigError, RotatingTokenFile } from '../../src/kube/kubeconfig.js';
import { KubeClient } from '../../src/kube/kube-client.js';
import { KubeConfig } from '@kubernetes/client-node';

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

describe('loadKubeConfig: kubeconfig fields and merging, as kubectl reads them', () => {
  const write = (dir: string, name: string, doc: Record<string, unknown>): string => {
    const p = join(dir, name);
    writeFileSync(p, JSON.stringify({ apiVersion: 'v1', kind: 'Config', ...doc }));
    return p;
  };
  const one = (dir: string, cluster: Record<string, unknown>, user: Record<string, unknown>, context: Record<string, unknown> = {}): string => write(dir, 'kc', {
    clusters: [{ name: 'c', cluster: { server: 'https://k:6443', ...cluster } }], users: [{ name: 'u', user }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u', ...context } }], 'current-context': 'x',
  });

  it('merges files that name the same cluster, user and context: the first file wins each, in either order (no error)', () => {
    const d = tmp();
    const f = (n: string) => write(d, n, {
      clusters: [{ name: 'local', cluster: { server: `https://${n}:6443` } }], users: [{ name: 'me', user: { token: n } }],
      contexts: [{ name: 'here', context: { cluster: 'local', user: 'me' } }], 'current-context': 'here',
    });
    const [a, b] = [f('a'), f('b')];
    assert.equal(loadKubeConfig({ env: { KUBECONFIG: `${a}:${b}` }, home: d }).server, 'https://a:6443');
    const r = loadKubeConfig({ env: { KUBECONFIG: `${b}:${a}` }, home: d });
    assert.equal(r.server, 'https://b:6443');
    assert.equal(r.kc.getCurrentUser()?.token, 'b');
  });

  it('resolves relative file paths against the directory of the file that names them', () => {
    const d = tmp();
    mkdirSync(join(d, 'sub'));
    writeFileSync(join(d, 'sub', 'ca.crt'), 'x');
    writeFileSync(join(d, 'sub', 'tok'), 'from-file\n');
    const kc = write(join(d, 'sub'), 'kc', {
      clusters: [{ name: 'c', cluster: { server: 'https://k:6443', 'certificate-authority': 'ca.crt' } }], users: [{ name: 'u', user: { tokenFile: './tok', token: 'static' } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }], 'current-context': 'x',
    });
    const r = loadKubeConfig({ kubeconfig: kc });
    assert.equal(r.kc.getCurrentCluster()?.caFile, join(d, 'sub', 'ca.crt'));
    assert.deepEqual(r.kc.getCurrentUser()?.authProvider?.config, { path: join(d, 'sub', 'tok') }, 'tokenFile is read by the rotating provider and wins over token, as in client-go');
  });

  it('reads impersonation fields', () => {
    const r = loadKubeConfig({ kubeconfig: one(tmp(), {}, { token: 't', as: 'jane', 'as-uid': '42', 'as-groups': ['a', 'b'], 'as-user-extra': { scopes: ['x'] } }) });
    assert.deepEqual(r.impersonate, { user: 'jane', uid: '42', groups: ['a', 'b'], extra: { scopes: ['x'] } });
  });

  const refused: Array<[string, Record<string, unknown>, Record<string, unknown>, RegExp]> = [
    ['username/password', {}, { username: 'a', password: 'b' }, /users\[name="u"\]\.user\.username: not supported by the proxy: basic authentication/],
    ['auth-provider', {}, { 'auth-provider': { name: 'oidc', config: {} } }, /users\[name="u"\]\.user\.auth-provider: not supported/],
    ['exec provideClusterInfo', {}, { exec: { command: 'x', apiVersion: 'client.authentication.k8s.io/v1', provideClusterInfo: true } }, /exec\.provideClusterInfo: not supported/],
    ['exec interactiveMode Always', {}, { exec: { command: 'x', apiVersion: 'client.authentication.k8s.io/v1', interactiveMode: 'Always' } }, /exec\.interactiveMode: "Always" needs a terminal/],
    ['an unknown user key (token-file)', {}, { 'token-file': '/t' }, /users\[name="u"\]\.user\.token-file: not a kubeconfig user field/],
    ['an unknown cluster key', { 'proxy_url': 'http://p' }, { token: 't' }, /clusters\[name="c"\]\.cluster\.proxy_url: not a kubeconfig cluster field/],
    ['a proxy-url scheme kubectl does not know', { 'proxy-url': 'socks4://p:1080' }, { token: 't' }, /proxy-url: scheme socks4 is not supported/],
    ['insecure-skip-tls-verify with a CA', { 'insecure-skip-tls-verify': true, 'certificate-authority-data': 'eA==' }, { token: 't' }, /insecure-skip-tls-verify: cannot be combined/],
    ['as-groups without as', {}, { token: 't', 'as-groups': ['g'] }, /need "as"/],
    ['an unreadable tokenFile', {}, { tokenFile: '/nonexistent/token' }, /user\.tokenFile: cannot read \/nonexistent\/token \(ENOENT\)/],
    ['a server URL with a query', { server: 'https://k:6443/?x=1' }, { token: 't' }, /server: a query or fragment is not allowed/],
  ];
  for (const [name, cluster, user, want] of refused) {
    it(`refuses ${name}, naming the field and the file`, () => {
      const kc = one(tmp(), cluster, user);
      assert.throws(() => loadKubeConfig({ kubeconfig: kc }), (e: Error) => e instanceof KubeConfigError && want.test(e.message) && e.message.includes(kc));
    });
  }

  it('warns (does not silently ignore) that HTTPS_PROXY is not used when the cluster has no proxy-url', () => {
    const d = tmp();
    const plain = one(d, {}, { token: 't' });
    assert.deepEqual(loadKubeConfig({ kubeconfig: plain, env: {} }).warnings, []);
    assert.match(loadKubeConfig({ kubeconfig: plain, env: { HTTPS_PROXY: 'http://p:3128' } }).warnings.join(), /^HTTPS_PROXY set: kubectl would send .* set proxy-url in the kubeconfig/);
    assert.deepEqual(loadKubeConfig({ kubeconfig: one(tmp(), { 'proxy-url': 'http://p:3128' }, { token: 't' }), env: { HTTPS_PROXY: 'http://q:3128' } }).warnings, []);
  });

  it('checks only the selected context: an unsupported field in another user does not matter (kubectl never reads it)', () => {
    const d = tmp();
    const kc = write(d, 'kc', {
      clusters: [{ name: 'c', cluster: { server: 'https://k:6443' } }],
      users: [{ name: 'u', user: { token: 't' } }, { name: 'old', user: { username: 'a', password: 'b' } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }, { name: 'y', context: { cluster: 'c', user: 'old' } }], 'current-context': 'x',
    });
    assert.equal(loadKubeConfig({ kubeconfig: kc }).server, 'https://k:6443');
    assert.throws(() => loadKubeConfig({ kubeconfig: kc, context: 'y' }), /users\[name="old"\]\.user\.username/);
  });
});

describe('KubeClient.url: a server URL with a path is a prefix, as for kubectl', () => {
  for (const [server, path, want] of [
    ['https://gw:443/k8s/cluster-a', '/apis/apps/v1/deployments?limit=500', 'https://gw/k8s/cluster-a/apis/apps/v1/deployments?limit=500'],
    ['https://gw:8443/k8s/', '/readyz', 'https://gw:8443/k8s/readyz'],
    ['https://k:6443', '/api/v1/pods?watch=1', 'https://k:6443/api/v1/pods?watch=1'],
  ]) {
    it(`${server} + ${path}`, async () => {
      const kc = new KubeConfig();
      kc.loadFromOptions({ clusters: [{ name: 'c', server, skipTLSVerify: true }], users: [{ name: 'u', token: 't' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
      const client = await KubeClient.create(kc);
      assert.equal(client.url(path).href, want);
      client.close();
    });
  }
});
