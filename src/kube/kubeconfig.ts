import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { load as loadYaml } from 'js-yaml';
import { isIPv6 } from 'node:net';
import { KubeConfig, type User } from '@kubernetes/client-node';

/** Where in-cluster credentials live (https://kubernetes.io/docs/tasks/run-application/access-api-from-pod/). */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const TOKEN_FILE_PROVIDER = 'k8s-api-proxy-token-file';

/** Inputs of {@link loadKubeConfig}; `env` and `home` are injectable for tests. */
export interface KubeConfigSource {
  /** `--kubeconfig`: an explicit file, tried alone. */
  kubeconfig?: string;
  /** `--context`: a context name inside the kubeconfig. */
  context?: string;
  env?: NodeJS.ProcessEnv;
  home?: string;
  /** Directory holding `token`, `ca.crt`, `namespace` (default {@link SERVICE_ACCOUNT_DIR}). */
  serviceAccountDir?: string;
}

/**
 * Impersonation from the kubeconfig user (`as`, `as-uid`, `as-groups`, `as-user-extra`),
 * sent as kubectl sends it: `Impersonate-User`, `Impersonate-Uid`, one `Impersonate-Group`
 * per group, `Impersonate-Extra-<key>` per value
 * (https://kubernetes.io/docs/reference/access-authn-authz/authentication/#user-impersonation).
 */
export interface Impersonation {
  user: string;
  uid?: string;
  groups: string[];
  extra: Record<string, string[]>;
}

/** A loaded kubeconfig and a human description of where it came from (for logs). */
export interface LoadedKubeConfig {
  kc: KubeConfig;
  source: string;
  server: string;
  /** Set when the current user impersonates someone. */
  impersonate?: Impersonation;
  /** Things kubectl would do differently here, to log at start (e.g. proxy environment variables). */
  warnings: string[];
}

/** The variables kubectl (Go's net/http) reads for a proxy when `proxy-url` is unset. */
const PROXY_ENV = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'];

/**
 * kubectl honours `HTTPS_PROXY`/`HTTP_PROXY` (minus `NO_PROXY` and loopback) when the
 * cluster has no `proxy-url`; the proxy does not, and says so rather than ignore it silently.
 */
function proxyEnvWarnings(kc: KubeConfig, env: NodeJS.ProcessEnv): string[] {
  if (kc.getCurrentCluster()?.proxyUrl) return [];
  const set = PROXY_ENV.filter((k) => env[k]);
  return set.length === 0 ? [] : [`${set.join(', ')} set: kubectl would send API server traffic through it (unless NO_PROXY matches); the proxy does not read proxy environment variables: set proxy-url in the kubeconfig to use one`];
}

/** Raised when no source applies or the chosen one is broken; `message` lists what was tried. */
export class KubeConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KubeConfigError';
  }
}

type Raw = Record<string, unknown>;
interface RawFile { file: string; doc: Raw }

/**
 * The kubeconfig fields (client-go `clientcmd/api/v1` types `Cluster`, `AuthInfo`,
 * `Context`, `ExecConfig`) and what the proxy does with each; the README's conformance
 * table lists the same. A field listed in `REFUSED` stops the start with its reason; a
 * key that is not a kubeconfig field at all stops it too (kubectl ignores unknown keys,
 * so a typo such as `token-file` would silently leave the proxy anonymous).
 */
const CLUSTER_FIELDS = ['server', 'certificate-authority', 'certificate-authority-data', 'insecure-skip-tls-verify', 'tls-server-name', 'proxy-url', 'disable-compression', 'extensions'];
const USER_FIELDS = ['client-certificate', 'client-certificate-data', 'client-key', 'client-key-data', 'token', 'tokenFile', 'as', 'as-uid', 'as-groups', 'as-user-extra', 'exec', 'extensions', 'username', 'password', 'auth-provider'];
const CONTEXT_FIELDS = ['cluster', 'user', 'namespace', 'extensions'];
const EXEC_FIELDS = ['command', 'args', 'env', 'apiVersion', 'installHint', 'provideClusterInfo', 'interactiveMode'];
const TOP_FIELDS = ['apiVersion', 'kind', 'clusters', 'users', 'contexts', 'current-context', 'preferences', 'extensions'];
const BASIC_AUTH = 'basic authentication was removed from kube-apiserver in 1.19 (kubectl still sends it, and the API server treats the request as anonymous); use token, tokenFile, a client certificate or exec';
const REFUSED: Record<string, string> = {
  'user.username': BASIC_AUTH,
  'user.password': BASIC_AUTH,
  'user.auth-provider': 'auth-provider plugins are not supported (kubectl itself keeps only oidc since 1.26); use an exec plugin instead (for OIDC: kubelogin)',
  'exec.provideClusterInfo': 'provideClusterInfo (KUBERNETES_EXEC_INFO for the plugin) is not supported',
};
/** Fields naming files, resolved against the kubeconfig's directory like kubectl does. */
const CLUSTER_FILES = ['certificate-authority'];
const USER_FILES = ['client-certificate', 'client-key', 'tokenFile'];
const PROXY_SCHEMES = ['http:', 'https:', 'socks5:'];

/**
 * Loads cluster access in a fixed order: `--kubeconfig`, then `$KUBECONFIG`
 * (`:`-separated, empty entries ignored, merged like kubectl), then `~/.kube/config`,
 * then in-cluster config when `KUBERNETES_SERVICE_HOST` is set.
 *
 * Merging follows kubectl (https://kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig/#merging-kubeconfig-files):
 * for clusters, users and contexts the first file that names an entry wins it (a later
 * file's entry of the same name is dropped, not an error), and the first file that sets
 * `current-context` wins. Relative file paths are resolved against the directory of the
 * file that holds them. Only the selected context, its cluster and its user are checked
 * field by field (as kubectl only uses those): an unsupported or unknown field there is
 * a {@link KubeConfigError} naming the field and the file.
 *
 * We do not call client-node's `loadFromDefault`: when nothing is found it silently
 * points at `http://localhost:8080`. Here that case throws.
 *
 * @throws KubeConfigError naming every source tried, or the bad file, context or field.
 */
export function loadKubeConfig(source: KubeConfigSource = {}): LoadedKubeConfig {
  const env = source.env ?? process.env;
  const tried: string[] = [];
  let files: string[] | undefined;
  let label = '';

  if (source.kubeconfig) {
    files = [source.kubeconfig];
    label = '--kubeconfig';
    if (!existsSync(source.kubeconfig)) throw new KubeConfigError(`--kubeconfig: file ${source.kubeconfig} does not exist`);
  } else {
    tried.push('--kubeconfig (not set)');
    const listed = (env.KUBECONFIG ?? '').split(delimiter).filter((f) => f !== '');
    // kubectl skips files of $KUBECONFIG that do not exist; so do we, unless none does.
    const envFiles = listed.filter((f) => existsSync(f));
    const home = source.home ?? homedir();
    const homeConfig = join(home, '.kube', 'config');
    if (listed.length > 0 && envFiles.length === 0) {
      throw new KubeConfigError(`$KUBECONFIG: none of its files exists (${listed.join(delimiter)})`);
    }
    if (envFiles.length > 0) {
      files = envFiles;
      label = '$KUBECONFIG';
    } else if ((tried.push('$KUBECONFIG (not set)'), existsSync(homeConfig))) {
      files = [homeConfig];
      label = '~/.kube/config';
    } else if ((tried.push(`${homeConfig} (missing)`), env.KUBERNETES_SERVICE_HOST)) {
      const kc = new KubeConfig();
      const dir = source.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
      loadInCluster(kc, env, dir);
      if (source.context && !kc.getContextObject(source.context)) {
        throw new KubeConfigError(`--context: context "${source.context}" not found in in-cluster config (${dir}); have: ${kc.getContexts().map((c) => c.name).join(', ')}`);
      }
      return { kc, source: `in-cluster config (${dir})`, server: kc.getCurrentCluster()!.server, warnings: proxyEnvWarnings(kc, env) };
    } else {
      tried.push('in-cluster config (KUBERNETES_SERVICE_HOST not set)');
      throw new KubeConfigError(`no Kubernetes configuration found; tried: ${tried.join(', ')}`);
    }
  }
  const from = `${label} (${files.join(delimiter)})`;
  const raws = files.map((file) => readRaw(file, label));
  const loaded = fromRaw(raws, from, source.context);
  loaded.warnings.push(...proxyEnvWarnings(loaded.kc, env));
  return loaded;
}

function readRaw(file: string, label: string): RawFile {
  let doc: unknown;
  try {
    doc = loadYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new KubeConfigError(`${label}: cannot parse ${file}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) doc = {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new KubeConfigError(`${label}: cannot parse ${file}: not a YAML mapping`);
  const raw = doc as Raw;
  for (const key of ['clusters', 'users', 'contexts']) {
    const list = raw[key];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) throw new KubeConfigError(`${label}: cannot parse ${file}: ${key} is not a list`);
    for (const [i, e] of list.entries()) {
      if (typeof e !== 'object' || e === null || typeof (e as Raw).name !== 'string' || (e as Raw).name === '') {
        throw new KubeConfigError(`${label}: cannot parse ${file}: ${key}[${i}].name is missing`);
      }
    }
  }
  resolvePaths(raw, dirname(file));
  return { file, doc: raw };
}

/** Makes relative file references absolute against `dir`, as kubectl does (clientcmd ResolveLocalPaths). */
function resolvePaths(raw: Raw, dir: string): void {
  const abs = (obj: Raw | undefined, key: string): void => {
    const v = obj?.[key];
    if (typeof v === 'string' && v !== '' && !isAbsolute(v)) obj![key] = resolve(dir, v);
  };
  for (const c of (raw.clusters as Raw[] | undefined) ?? []) for (const k of CLUSTER_FILES) abs(c.cluster as Raw | undefined, k);
  for (const u of (raw.users as Raw[] | undefined) ?? []) {
    const user = u.user as Raw | undefined;
    for (const k of USER_FILES) abs(user, k);
    // An exec command is a path only when it holds a separator; otherwise it is looked up on PATH.
    const exec = user?.exec as Raw | undefined;
    if (typeof exec?.command === 'string' && exec.command.includes(sep)) abs(exec, 'command');
  }
}

/** kubectl's merge: the first file to name a cluster, user or context wins it; the first current-context wins. */
function merge(raws: RawFile[]): { doc: Raw; origin: Map<string, string> } {
  const origin = new Map<string, string>();
  const out: Raw = { apiVersion: 'v1', kind: 'Config', clusters: [], users: [], contexts: [] };
  for (const { file, doc } of raws) {
    for (const key of ['clusters', 'users', 'contexts'] as const) {
      for (const e of (doc[key] as Raw[] | undefined) ?? []) {
        const id = `${key}/${String(e.name)}`;
        if (origin.has(id)) continue;
        origin.set(id, file);
        (out[key] as Raw[]).push(e);
      }
    }
    if (out['current-context'] === undefined && typeof doc['current-context'] === 'string' && doc['current-context'] !== '') {
      out['current-context'] = doc['current-context'];
    }
    for (const k of Object.keys(doc)) if (!TOP_FIELDS.includes(k)) origin.set(`top/${k}`, file);
  }
  return { doc: out, origin };
}

function fromRaw(raws: RawFile[], from: string, context: string | undefined): LoadedKubeConfig {
  const { doc, origin } = merge(raws);
  const find = (key: 'clusters' | 'users' | 'contexts', name: string): Raw | undefined => (doc[key] as Raw[]).find((e) => e.name === name);
  const names = (doc.contexts as Raw[]).map((c) => String(c.name));
  const ctxName = context ?? (doc['current-context'] as string | undefined);
  if (context && !find('contexts', context)) {
    throw new KubeConfigError(`--context: context "${context}" not found in ${from}; have: ${names.join(', ') || 'none'}`);
  }
  if (!ctxName) throw new KubeConfigError(`${from}: no current-context is set (and no --context given); is this a kubeconfig file?`);
  const unknownTop = [...origin.keys()].filter((k) => k.startsWith('top/'));
  if (unknownTop.length > 0) {
    const k = unknownTop[0].slice(4);
    throw new KubeConfigError(`${origin.get(unknownTop[0])}: "${k}" is not a kubeconfig field (kubectl ignores it; the proxy refuses it so that a typo is not silently dropped)`);
  }
  const ctxEntry = find('contexts', ctxName);
  if (!ctxEntry) throw new KubeConfigError(`${from}: current-context "${ctxName}" is not one of its contexts (have: ${names.join(', ') || 'none'})`);
  const where = (key: string, name: string): string => `${origin.get(`${key}/${name}`)}: ${key}[name="${name}"]`;
  const ctx = section(ctxEntry, 'context', where('contexts', ctxName));
  checkFields(ctx, CONTEXT_FIELDS, `${where('contexts', ctxName)}.context`, 'context');
  const clusterName = String(ctx.cluster ?? '');
  const clusterEntry = find('clusters', clusterName);
  if (!clusterEntry) throw new KubeConfigError(`${from}: context "${ctxName}" names cluster "${clusterName}", which is not defined`);
  const clusterAt = `${where('clusters', clusterName)}.cluster`;
  const cluster = section(clusterEntry, 'cluster', where('clusters', clusterName));
  checkFields(cluster, CLUSTER_FIELDS, clusterAt, 'cluster');
  checkCluster(cluster, clusterAt);
  let user: Raw = {};
  if (ctx.user !== undefined && ctx.user !== '') {
    const userName = String(ctx.user);
    const userEntry = find('users', userName);
    if (!userEntry) throw new KubeConfigError(`${from}: context "${ctxName}" names user "${userName}", which is not defined`);
    const userAt = `${where('users', userName)}.user`;
    user = (userEntry.user as Raw | undefined) ?? {};
    checkFields(user, USER_FIELDS, userAt, 'user');
    checkUser(user, userAt);
  }

  const kc = new KubeConfig();
  try {
    kc.loadFromString(JSON.stringify(doc));
    kc.setCurrentContext(ctxName);
  } catch (err) {
    throw new KubeConfigError(`${from}: ${(err as Error).message}`);
  }
  const current = kc.getCurrentUser();
  if (current && typeof user.tokenFile === 'string' && user.tokenFile !== '') {
    // kubectl's key (client-node reads only `token-file`): re-read on change, and it wins
    // over a static `token` as in client-go's bearer round tripper.
    (current as { authProvider?: unknown; token?: string }).authProvider = { name: TOKEN_FILE_PROVIDER, config: { path: user.tokenFile } };
    (current as { token?: string }).token = undefined;
    kc.addAuthenticator(new RotatingTokenFile());
  }
  const server = kc.getCurrentCluster()!.server;
  return { kc, source: from, server, impersonate: impersonation(user), warnings: [] };
}

function section(entry: Raw, key: string, at: string): Raw {
  const v = entry[key];
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new KubeConfigError(`${at}.${key} is missing or not a mapping`);
  return v as Raw;
}

function checkFields(obj: Raw, known: string[], at: string, kind: string): void {
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined || v === null) continue;
    if (!known.includes(k)) {
      throw new KubeConfigError(`${at}.${k}: not a kubeconfig ${kind} field (kubectl ignores unknown keys; the proxy refuses them so that a typo is not silently dropped)`);
    }
    const why = REFUSED[`${kind}.${k}`];
    if (why && v !== '' && v !== false) throw new KubeConfigError(`${at}.${k}: not supported by the proxy: ${why}`);
  }
}

function checkCluster(c: Raw, at: string): void {
  let server: URL;
  try {
    server = new URL(String(c.server ?? ''));
  } catch {
    throw new KubeConfigError(`${at}.server: "${String(c.server ?? '')}" is not a URL`);
  }
  if (server.protocol !== 'https:' && server.protocol !== 'http:') throw new KubeConfigError(`${at}.server: scheme must be https or http, not ${server.protocol}`);
  if (server.search || server.hash) throw new KubeConfigError(`${at}.server: a query or fragment is not allowed`);
  if (c['insecure-skip-tls-verify'] === true && (c['certificate-authority'] || c['certificate-authority-data'])) {
    // kubectl: "specifying a root certificates file with the insecure flag is not allowed".
    throw new KubeConfigError(`${at}.insecure-skip-tls-verify: cannot be combined with certificate-authority(-data) (kubectl refuses it too)`);
  }
  if (c['proxy-url'] !== undefined && c['proxy-url'] !== '') {
    let proxy: URL;
    try {
      proxy = new URL(String(c['proxy-url']));
    } catch {
      throw new KubeConfigError(`${at}.proxy-url: "${String(c['proxy-url'])}" is not a URL`);
    }
    if (!PROXY_SCHEMES.includes(proxy.protocol)) {
      throw new KubeConfigError(`${at}.proxy-url: scheme ${proxy.protocol.slice(0, -1)} is not supported (kubectl and the proxy accept http, https and socks5)`);
    }
  }
  for (const f of CLUSTER_FILES) fileReadable(c, f, at);
}

function checkUser(u: Raw, at: string): void {
  for (const f of USER_FILES) fileReadable(u, f, at);
  if ((u['as-groups'] || u['as-uid'] || u['as-user-extra']) && !u.as) {
    // client-go: "requesting uid, groups or user-extra for impersonation without impersonating a user".
    throw new KubeConfigError(`${at}: as-groups, as-uid and as-user-extra need "as" (kubectl refuses them alone too)`);
  }
  if (u['as-groups'] !== undefined && !(Array.isArray(u['as-groups']) && u['as-groups'].every((g) => typeof g === 'string'))) {
    throw new KubeConfigError(`${at}.as-groups: must be a list of strings`);
  }
  const extra = u['as-user-extra'];
  if (extra !== undefined && (typeof extra !== 'object' || extra === null || Object.values(extra).some((v) => !Array.isArray(v)))) {
    throw new KubeConfigError(`${at}.as-user-extra: must map each key to a list of strings`);
  }
  const exec = u.exec as Raw | undefined;
  if (exec !== undefined && exec !== null) {
    if (typeof exec !== 'object') throw new KubeConfigError(`${at}.exec: must be a mapping`);
    checkFields(exec, EXEC_FIELDS, `${at}.exec`, 'exec');
    if (exec.interactiveMode === 'Always') {
      throw new KubeConfigError(`${at}.exec.interactiveMode: "Always" needs a terminal, which the proxy never has (kubectl fails without one too)`);
    }
  }
}

function fileReadable(obj: Raw, key: string, at: string): void {
  const f = obj[key];
  if (typeof f !== 'string' || f === '') return;
  try {
    readFileSync(f);
  } catch (err) {
    throw new KubeConfigError(`${at}.${key}: cannot read ${f} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

function impersonation(u: Raw): Impersonation | undefined {
  if (typeof u.as !== 'string' || u.as === '') return undefined;
  return {
    user: u.as,
    uid: typeof u['as-uid'] === 'string' && u['as-uid'] !== '' ? u['as-uid'] : undefined,
    groups: (u['as-groups'] as string[] | undefined) ?? [],
    extra: (u['as-user-extra'] as Record<string, string[]> | undefined) ?? {},
  };
}

function loadInCluster(kc: KubeConfig, env: NodeJS.ProcessEnv, dir: string): void {
  const host = env.KUBERNETES_SERVICE_HOST ?? '';
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!port) throw new KubeConfigError('in-cluster config: KUBERNETES_SERVICE_HOST is set but KUBERNETES_SERVICE_PORT is not');
  const tokenFile = join(dir, 'token');
  const caFile = join(dir, 'ca.crt');
  for (const f of [tokenFile, caFile]) {
    if (!existsSync(f)) throw new KubeConfigError(`in-cluster config: ${f} does not exist`);
  }
  const server = `https://${isIPv6(host) ? `[${host}]` : host}:${port}`;
  const user: User = { name: 'in-cluster', authProvider: { name: TOKEN_FILE_PROVIDER, config: { path: tokenFile } } };
  kc.loadFromClusterAndUser({ name: 'in-cluster', server, caFile, skipTLSVerify: false }, user);
  kc.addAuthenticator(new RotatingTokenFile());
}

/**
 * Bearer token from a file, re-read whenever the file changes.
 *
 * client-node's own `FileAuth` re-reads only every 60 s, so for up to a minute after
 * kubelet rotates a bound token (about hourly, by swapping the `..data` symlink) it
 * may still send the old one; if that one was revoked, requests fail with 401.
 * We compare the file's identity (inode, mtime, size, following symlinks) on every
 * request instead: one `stat`, cheap next to a network call.
 */
export class RotatingTokenFile {
  private stamp = '';
  private token = '';

  isAuthProvider(user: User): boolean {
    return user.authProvider?.name === TOKEN_FILE_PROVIDER;
  }

  async applyAuthentication(user: User, opts: { headers?: Record<string, unknown> }): Promise<void> {
    const path = String(user.authProvider?.config?.path);
    const st = statSync(path);
    const stamp = `${st.ino}:${st.mtimeMs}:${st.size}`;
    if (stamp !== this.stamp) {
      this.token = readFileSync(path, 'utf8').trim();
      this.stamp = stamp;
    }
    opts.headers ??= {};
    opts.headers.Authorization = `Bearer ${this.token}`;
  }
}
