/**
 * The kubeconfig conformance table (README "Kubeconfig fields"): for every field, kubectl
 * and the proxy get the same kubeconfig and face the same real kube-apiserver. kubectl is
 * the oracle: `kubectl auth whoami` says who the API server takes it for, the proxy logs
 * the same SelfSubjectReview answer at start. A field the proxy does not support must
 * stop its start with exit 2 naming the field and the file.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { load as loadYaml } from 'js-yaml';
import {
  ADMIN_KUBECONFIG, CLUSTER_DIR, KUBECTL, PROXY_KUBECONFIG, PROXY_RBAC_NAME, ROOT, apiServerUrl, ensureCluster, kubectl, kubectlOk, runCommand,
} from '../helpers/cluster.js';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.js';
import { startConnectProxy, startPrefixFront, startSocksProxy } from '../helpers/upstream-fronts.js';
import { waitFor } from '../helpers/wait.js';

type Raw = Record<string, unknown>;
interface UserInfo { username: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> }

const SA_USER = 'system:serviceaccount:k8s-api-proxy:k8s-api-proxy';
const BIN = join(ROOT, 'bin/api');

describe('kubeconfig conformance: kubectl and the proxy on the same kubeconfig', () => {
  let certs: CertFixture;
  let dir: string;
  let server: string;
  let apiCa: string;
  let saToken: string;
  let adminToken: string;
  const cleanups: Array<() => unknown> = [];

  before(async () => {
    await ensureCluster();
    certs = await makeCertFixture();
    dir = mkdtempSync(join(tmpdir(), 'kc-conformance-'));
    server = apiServerUrl();
    const proxyKc = loadYaml(readFileSync(PROXY_KUBECONFIG, 'utf8')) as { clusters: Array<{ cluster: Raw }>; users: Array<{ user: Raw }> };
    apiCa = Buffer.from(String(proxyKc.clusters[0].cluster['certificate-authority-data']), 'base64').toString();
    saToken = String(proxyKc.users[0].user.token);
    const adminKc = loadYaml(readFileSync(ADMIN_KUBECONFIG, 'utf8')) as { users: Array<{ user: Raw }> };
    adminToken = String(adminKc.users[0].user.token);
  });
  after(async () => { for (const c of cleanups.reverse()) await c(); });

  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  let n = 0;
  /** Writes a one-context kubeconfig (`c`/`u`/`x`) and returns its path. */
  const kubeconfig = (cluster: Raw, user: Raw, context: Raw = {}, name = `kc-${++n}.yaml`): string => {
    const p = join(dir, name);
    writeFileSync(p, JSON.stringify({
      apiVersion: 'v1', kind: 'Config',
      clusters: [{ name: 'c', cluster }], users: [{ name: 'u', user }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u', ...context } }], 'current-context': 'x',
    }), { mode: 0o600 });
    return p;
  };
  const withCa = (extra: Raw = {}): Raw => ({ server, 'certificate-authority-data': b64(apiCa), ...extra });

  /** kubectl's answer: who the API server takes it for, or its error. */
  const kubectlWho = async (kc: string): Promise<{ user?: UserInfo; stderr: string }> => {
    const r = await kubectl(['auth', 'whoami', '-o', 'json', '--request-timeout=5s'], { kubeconfig: kc });
    return r.code === 0 ? { user: (JSON.parse(r.stdout) as { status: { userInfo: UserInfo } }).status.userInfo, stderr: r.stderr } : { stderr: r.stderr };
  };

  /** Starts the proxy on `kc` (not waiting for ready); stopped by the suite's cleanup. */
  const proxyOn = async (kc: string, env?: NodeJS.ProcessEnv): Promise<ProxyProcess> => {
    const p = await startProxy({ certs, kubeconfig: kc, waitReady: false, env });
    cleanups.push(() => p.stop());
    return p;
  };
  /** The identity the proxy logged from its SelfSubjectReview. */
  const proxyWho = async (p: ProxyProcess, username?: string): Promise<UserInfo> => {
    const rec = await waitFor('the proxy logs its identity', async () =>
      [...p.logs].reverse().find((l) => l.msg === 'authenticated to the API server' && (!username || (l.user as UserInfo).username === username)), 10_000);
    return (rec as { user: UserInfo }).user;
  };
  const healthz = async (p: ProxyProcess): Promise<{ status: number; message?: string }> => {
    const r = await p.request('/healthz');
    return { status: r.status, message: (r.json as { message?: string }).message };
  };
  const healthzBecomes = async (p: ProxyProcess, status: number, message?: RegExp): Promise<void> => {
    let last: { status: number; message?: string } | undefined;
    try {
      await waitFor(`/healthz ${status}`, async () => {
        last = await healthz(p);
        return last.status === status && (!message || message.test(last.message ?? ''));
      }, 12_000);
    } catch {
      assert.fail(`/healthz never became ${status} ${message ?? ''}; last: ${JSON.stringify(last)}\n${p.stderr()}`);
    }
  };
  /** Same identity for kubectl and the proxy, and the proxy serves (when it has the rights). */
  const sameIdentity = async (kc: string, opts: { serves?: boolean } = {}): Promise<{ user: UserInfo; proxy: ProxyProcess }> => {
    const k = await kubectlWho(kc);
    assert.ok(k.user, `kubectl refused this kubeconfig: ${k.stderr}`);
    const p = await proxyOn(kc);
    assert.deepEqual(await proxyWho(p, k.user.username), k.user);
    if (opts.serves !== false) {
      await healthzBecomes(p, 200);
      assert.equal((await p.request('/deployments')).status, 200);
    }
    return { user: k.user, proxy: p };
  };
  /** The proxy refuses to start: exit 2, stderr naming `field` and the file. */
  const refusedAtStart = async (kc: string, field: RegExp): Promise<string> => {
    const r = await runCommand(process.execPath, [BIN, '--kubeconfig', kc, '--listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0',
      '--tls-cert', certs.serverCertFile, '--tls-key', certs.serverKeyFile, '--client-ca', certs.caFile]);
    assert.equal(r.code, 2, `${r.stderr}${r.stdout}`);
    assert.match(r.stderr, field);
    assert.ok(r.stderr.includes(kc), `names the kubeconfig: ${r.stderr}`);
    return r.stderr;
  };

  /** A client certificate for `cn` from the test cluster's client CA, as files. */
  const clientCert = async (cn: string): Promise<{ cert: string; key: string }> => {
    const key = join(dir, `${cn}.key`);
    const csr = join(dir, `${cn}.csr`);
    const cert = join(dir, `${cn}.crt`);
    const ca = join(CLUSTER_DIR, 'certs');
    for (const args of [
      ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${cn}/O=cert-users`, '-keyout', key, '-out', csr],
      ['x509', '-req', '-in', csr, '-CA', join(ca, 'client-ca.crt'), '-CAkey', join(ca, 'client-ca.key'), '-CAcreateserial', '-CAserial', join(dir, 'serial'), '-days', '1', '-out', cert],
    ]) {
      const r = await runCommand('openssl', args);
      assert.equal(r.code, 0, r.stderr);
    }
    return { cert, key };
  };

  describe('clusters[].cluster', () => {
    it('server, certificate-authority-data and token: the same ServiceAccount identity', async () => {
      const { user } = await sameIdentity(kubeconfig(withCa(), { token: saToken }));
      assert.equal(user.username, SA_USER);
    });

    it('server with a path prefix: both send every call under the prefix (a gateway front serving only /gateway/k8s)', async () => {
      const front = await startPrefixFront(server, apiCa, { cert: readFileSync(certs.serverCertFile, 'utf8'), key: readFileSync(certs.serverKeyFile, 'utf8') });
      cleanups.push(() => front.close());
      const kc = kubeconfig({ server: front.url, 'certificate-authority-data': b64(certs.ca) }, { token: saToken });
      const { proxy } = await sameIdentity(kc);
      const ours = front.seen.filter((r) => String(r.headers['user-agent']).startsWith('k8s-api-proxy/'));
      const theirs = front.seen.filter((r) => String(r.headers['user-agent']).startsWith('kubectl'));
      assert.ok(theirs.length > 0 && ours.length > 0);
      assert.ok([...ours, ...theirs].every((r) => r.url.startsWith('/gateway/k8s/')), JSON.stringify(front.seen.map((r) => r.url)));
      assert.ok(ours.some((r) => r.url.startsWith('/gateway/k8s/apis/apps/v1/deployments?')), 'the cache lists through the prefix');
      assert.ok(ours.some((r) => r.url === '/gateway/k8s/readyz'), '/healthz asks /readyz through the prefix');
      await proxy.stop();
    });

    it('disable-compression: kubectl stops asking for gzip; the proxy never asks, with or without it', async () => {
      const front = await startPrefixFront(server, apiCa, { cert: readFileSync(certs.serverCertFile, 'utf8'), key: readFileSync(certs.serverKeyFile, 'utf8') });
      cleanups.push(() => front.close());
      const cluster = { server: front.url, 'certificate-authority-data': b64(certs.ca) };
      const kubectlGzip = async (kc: string): Promise<boolean> => {
        front.seen.length = 0;
        await kubectl(['get', 'deployments', '-A'], { kubeconfig: kc });
        return front.seen.some((r) => /gzip/.test(String(r.headers['accept-encoding'] ?? '')));
      };
      const plain = kubeconfig(cluster, { token: saToken });
      const off = kubeconfig({ ...cluster, 'disable-compression': true }, { token: saToken });
      assert.equal(await kubectlGzip(plain), true, 'kubectl asks for gzip by default');
      assert.equal(await kubectlGzip(off), false, 'kubectl honours disable-compression');
      for (const kc of [plain, off]) {
        front.seen.length = 0;
        const { proxy } = await sameIdentity(kc);
        const ours = front.seen.filter((r) => String(r.headers['user-agent']).startsWith('k8s-api-proxy/'));
        assert.ok(ours.length > 0);
        assert.ok(ours.every((r) => r.headers['accept-encoding'] === undefined), 'the proxy never asks for compression');
        await proxy.stop();
      }
    });

    it('certificate-authority (a file): re-read when it changes, no restart', async () => {
      const caFile = join(dir, 'rotating-ca.crt');
      writeFileSync(caFile, certs.ca); // not the API server's CA
      const kc = kubeconfig({ server, 'certificate-authority': caFile }, { token: saToken });
      assert.match((await kubectlWho(kc)).stderr, /certificate signed by unknown authority|x509/);
      const p = await proxyOn(kc);
      await healthzBecomes(p, 503, /unreachable/);
      writeFileSync(caFile, apiCa);
      assert.equal((await kubectlWho(kc)).user?.username, SA_USER);
      await healthzBecomes(p, 200);
      assert.equal((await proxyWho(p)).username, SA_USER);
    });

    it('tls-server-name: used to verify the API server certificate, as kubectl does', async () => {
      const port = new URL(server).port;
      // localhost is not among the API server certificate's names; kubernetes is.
      const ok = kubeconfig(withCa({ server: `https://localhost:${port}`, 'tls-server-name': 'kubernetes' }), { token: saToken });
      await sameIdentity(ok);
      const wrong = kubeconfig(withCa({ 'tls-server-name': 'wrong.example' }), { token: saToken });
      assert.match((await kubectlWho(wrong)).stderr, /wrong\.example/);
      await healthzBecomes(await proxyOn(wrong), 503, /unreachable \(ERR_TLS_CERT_ALTNAME_INVALID\)/);
    });

    it('insecure-skip-tls-verify: honoured alone; with a CA, kubectl refuses and so does the proxy (exit 2)', async () => {
      await sameIdentity(kubeconfig({ server, 'insecure-skip-tls-verify': true }, { token: saToken }));
      const both = kubeconfig(withCa({ 'insecure-skip-tls-verify': true }), { token: saToken });
      assert.match((await kubectlWho(both)).stderr, /insecure flag is not allowed/);
      await refusedAtStart(both, /clusters\[name="c"\]\.cluster\.insecure-skip-tls-verify: cannot be combined with certificate-authority/);
    });

    for (const kind of ['http', 'https'] as const) {
      it(`proxy-url ${kind}://: every connection of both goes through the CONNECT proxy`, async () => {
        const proxy = await startConnectProxy(kind === 'https' ? { cert: readFileSync(certs.serverCertFile, 'utf8'), key: readFileSync(certs.serverKeyFile, 'utf8') } : undefined);
        cleanups.push(() => proxy.close());
        // kubectl verifies an https proxy with the cluster's CA bundle; so does the proxy.
        const kc = kubeconfig({ server, 'certificate-authority-data': b64(apiCa + certs.ca), 'proxy-url': proxy.url }, { token: saToken });
        const k = await kubectlWho(kc);
        assert.equal(k.user?.username, SA_USER, k.stderr);
        const target = new URL(server).host;
        assert.deepEqual([...new Set(proxy.targets)], [target], 'kubectl tunnelled');
        proxy.targets.length = 0;
        const { proxy: p } = await sameIdentity(kc);
        assert.deepEqual([...new Set(proxy.targets)], [target], 'the proxy tunnelled');
        await p.stop();
      });
    }

    it('proxy-url socks5://: every connection of both goes through the SOCKS5 proxy', async () => {
      const socks = await startSocksProxy();
      cleanups.push(() => socks.close());
      const kc = kubeconfig(withCa({ 'proxy-url': socks.url }), { token: saToken });
      const k = await kubectlWho(kc);
      assert.equal(k.user?.username, SA_USER, k.stderr);
      assert.ok(socks.targets.length > 0, 'kubectl went through SOCKS5');
      socks.targets.length = 0;
      const { proxy: p } = await sameIdentity(kc);
      assert.ok(socks.targets.length > 0, 'the proxy went through SOCKS5');
      assert.deepEqual([...new Set(socks.targets)], [new URL(server).host]);
      await p.stop();
    });

    it('extensions (cluster, user, context) and context namespace: accepted, no effect on either', async () => {
      const ext = [{ name: 'example.com/x', extension: { a: 1 } }];
      await sameIdentity(kubeconfig(withCa({ extensions: ext }), { token: saToken, extensions: ext }, { namespace: 'elsewhere', extensions: ext }));
    });
  });

  describe('users[].user', () => {
    it('client-certificate / client-key files: same identity; re-read when they change, no restart', async () => {
      const a = await clientCert('cert-user-a');
      const b = await clientCert('cert-user-b');
      const binding = `cert-user-b-${randomBytes(3).toString('hex')}`;
      await kubectlOk(['create', 'clusterrolebinding', binding, `--clusterrole=${PROXY_RBAC_NAME}`, '--user=cert-user-b']);
      cleanups.push(() => kubectl(['delete', 'clusterrolebinding', binding]));
      const cert = join(dir, 'live.crt');
      const key = join(dir, 'live.key');
      copyFileSync(a.cert, cert);
      copyFileSync(a.key, key);
      const kc = kubeconfig(withCa(), { 'client-certificate': cert, 'client-key': key });
      const { proxy: p, user } = await sameIdentity(kc, { serves: false });
      assert.equal(user.username, 'cert-user-a');
      await healthzBecomes(p, 503, /lacks access its role should give/);
      copyFileSync(b.cert, cert);
      copyFileSync(b.key, key);
      assert.equal((await kubectlWho(kc)).user?.username, 'cert-user-b');
      await healthzBecomes(p, 200);
      assert.equal((await proxyWho(p, 'cert-user-b')).username, 'cert-user-b');
    });

    it('client-certificate-data / client-key-data: same identity', async () => {
      const a = await clientCert('cert-user-c');
      const { user } = await sameIdentity(kubeconfig(withCa(), {
        'client-certificate-data': b64(readFileSync(a.cert, 'utf8')), 'client-key-data': b64(readFileSync(a.key, 'utf8')),
      }), { serves: false });
      assert.equal(user.username, 'cert-user-c');
      assert.ok(user.groups?.includes('cert-users'));
    });

    it('tokenFile (kubectl\'s key): rejected credentials make /healthz 503 saying so; a rotated token is used without restart', async () => {
      const tokenFile = join(dir, 'token');
      writeFileSync(tokenFile, 'not-a-valid-token\n');
      const kc = kubeconfig(withCa(), { tokenFile });
      assert.match((await kubectlWho(kc)).stderr, /Unauthorized|provide credentials/);
      const p = await proxyOn(kc);
      await healthzBecomes(p, 503, /rejects the proxy's credentials \(HTTP 401 Unauthorized\)/);
      const ready = await fetch(`${p.healthUrl}/readyz`);
      assert.equal(ready.status, 503, '/readyz fails too');
      writeFileSync(tokenFile, `${saToken}\n`);
      assert.equal((await kubectlWho(kc)).user?.username, SA_USER);
      await healthzBecomes(p, 200);
      assert.equal((await proxyWho(p, SA_USER)).username, SA_USER);
      await waitFor('/readyz 200', async () => (await fetch(`${p.healthUrl}/readyz`)).status === 200, 15_000);
    });

    it('exec (with args, env, a command relative to the kubeconfig): same identity', async () => {
      const plugin = join(dir, 'token-plugin.sh');
      writeFileSync(plugin, '#!/bin/sh\n[ "$1" = "--print" ] || exit 3\nprintf \'{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"}}\' "$PLUGIN_TOKEN"\n');
      chmodSync(plugin, 0o755);
      const { user } = await sameIdentity(kubeconfig(withCa(), {
        exec: { apiVersion: 'client.authentication.k8s.io/v1', command: './token-plugin.sh', args: ['--print'], env: [{ name: 'PLUGIN_TOKEN', value: saToken }], interactiveMode: 'Never', installHint: 'none' },
      }));
      assert.equal(user.username, SA_USER);
    });

    it('as, as-uid, as-groups, as-user-extra: the same impersonated identity', async () => {
      const { user } = await sameIdentity(kubeconfig(withCa(), {
        token: adminToken, as: 'imp-user', 'as-uid': 'imp-uid-1', 'as-groups': ['imp-group-1', 'imp-group-2'], 'as-user-extra': { team: ['blue', 'green'] },
      }), { serves: false });
      assert.equal(user.username, 'imp-user');
      assert.equal(user.uid, 'imp-uid-1');
      assert.deepEqual(user.extra, { team: ['blue', 'green'] });
    });

    it('as-groups without as: kubectl refuses, and so does the proxy (exit 2)', async () => {
      const kc = kubeconfig(withCa(), { token: adminToken, 'as-groups': ['g'] });
      assert.match((await kubectlWho(kc)).stderr, /without impersonating a user/);
      await refusedAtStart(kc, /users\[name="u"\]\.user: as-groups, as-uid and as-user-extra need "as"/);
    });

    it('username / password: kubectl is anonymous to kube-apiserver; the proxy refuses it (exit 2)', async () => {
      const kc = kubeconfig(withCa(), { username: 'admin', password: 'secret' });
      assert.match((await kubectl(['get', 'deployments', '-A'], { kubeconfig: kc })).stderr, /system:anonymous/);
      await refusedAtStart(kc, /users\[name="u"\]\.user\.username: not supported by the proxy: basic authentication was removed/);
    });

    it('auth-provider: kubectl has removed gcp (and azure); the proxy refuses every auth-provider (exit 2)', async () => {
      const kc = kubeconfig(withCa(), { 'auth-provider': { name: 'gcp', config: {} } });
      assert.match((await kubectlWho(kc)).stderr, /gcp auth plugin has been removed/);
      await refusedAtStart(kc, /users\[name="u"\]\.user\.auth-provider: not supported by the proxy/);
    });

    it('exec provideClusterInfo: kubectl passes KUBERNETES_EXEC_INFO; the proxy cannot, and refuses it (exit 2)', async () => {
      const plugin = join(dir, 'info-plugin.sh');
      writeFileSync(plugin, `#!/bin/sh\n[ -n "$KUBERNETES_EXEC_INFO" ] || exit 3\nprintf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"${saToken}"}}'\n`);
      chmodSync(plugin, 0o755);
      const kc = kubeconfig(withCa(), { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: plugin, provideClusterInfo: true, interactiveMode: 'Never' } });
      assert.equal((await kubectlWho(kc)).user?.username, SA_USER);
      await refusedAtStart(kc, /users\[name="u"\]\.user\.exec\.provideClusterInfo: not supported/);
    });

    it('a key that is no kubeconfig field (token-file): kubectl ignores it (no credentials: it asks for a username); the proxy refuses it (exit 2)', async () => {
      const tokenFile = join(dir, 'token-typo');
      writeFileSync(tokenFile, saToken);
      const kc = kubeconfig(withCa(), { 'token-file': tokenFile });
      const k = await kubectl(['get', 'deployments', '-A'], { kubeconfig: kc, input: '' });
      assert.match(k.stdout + k.stderr, /Please enter Username/);
      await refusedAtStart(kc, /users\[name="u"\]\.user\.token-file: not a kubeconfig user field/);
    });
  });

  describe('$KUBECONFIG merging (issue 16)', () => {
    it('two files that both name their cluster "local": the first file wins every map, in both orders, as with kubectl', async () => {
      const file = (name: string, srv: string): string => {
        const p = join(dir, `merge-${name}.yaml`);
        writeFileSync(p, JSON.stringify({
          apiVersion: 'v1', kind: 'Config',
          clusters: [{ name: 'local', cluster: { server: srv, 'certificate-authority-data': b64(apiCa) } }],
          users: [{ name: 'me', user: { token: saToken } }],
          contexts: [{ name: 'here', context: { cluster: 'local', user: 'me' } }], 'current-context': 'here',
        }));
        return p;
      };
      const good = file('good', server);
      const dead = file('dead', 'https://127.0.0.1:1');
      const env = (list: string): NodeJS.ProcessEnv => ({ ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'KUBECONFIG')), KUBECONFIG: list });
      const kubectlIn = (list: string) => runCommand(KUBECTL, ['auth', 'whoami', '-o', 'json', '--request-timeout=3s'], { env: { KUBECONFIG: list } });
      const first = await kubectlIn(`${good}:${dead}`);
      assert.equal(first.code, 0, first.stderr);
      const p1 = await startProxy({ certs, kubeconfig: '', env: env(`${good}:${dead}`), waitReady: false });
      cleanups.push(() => p1.stop());
      await healthzBecomes(p1, 200);
      const second = await kubectlIn(`${dead}:${good}`);
      assert.match(second.stderr, /127\.0\.0\.1:1 was refused/);
      const p2 = await startProxy({ certs, kubeconfig: '', env: env(`${dead}:${good}`), waitReady: false });
      cleanups.push(() => p2.stop());
      await healthzBecomes(p2, 503, /unreachable \(ECONNREFUSED\)/);
    });
  });
});
