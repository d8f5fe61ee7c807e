import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
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

/** A loaded kubeconfig and a human description of where it came from (for logs). */
export interface LoadedKubeConfig {
  kc: KubeConfig;
  source: string;
  server: string;
}

/** Raised when no source applies or the chosen one is broken; `message` lists what was tried. */
export class KubeConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KubeConfigError';
  }
}

/**
 * Loads cluster access in a fixed order: `--kubeconfig`, then `$KUBECONFIG`
 * (`:`-separated, empty entries ignored, merged like kubectl), then `~/.kube/config`,
 * then in-cluster config when `KUBERNETES_SERVICE_HOST` is set.
 *
 * We do not call client-node's `loadFromDefault`: when nothing is found it silently
 * points at `http://localhost:8080`. Here that case throws.
 *
 * @throws KubeConfigError naming every source tried, or the bad file/context.
 */
export function loadKubeConfig(source: KubeConfigSource = {}): LoadedKubeConfig {
  const env = source.env ?? process.env;
  const tried: string[] = [];
  const kc = new KubeConfig();
  let from: string | undefined;

  const loadFiles = (files: string[], label: string): void => {
    for (const [i, file] of files.entries()) {
      if (!existsSync(file)) throw new KubeConfigError(`${label}: file ${file} does not exist`);
      try {
        if (i === 0) kc.loadFromFile(file);
        else {
          const extra = new KubeConfig();
          extra.loadFromFile(file);
          // kubectl's rule: the first file that sets current-context wins
          // (https://kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig/#merging-kubeconfig-files).
          kc.mergeConfig(extra, true);
        }
      } catch (err) {
        throw new KubeConfigError(`${label}: cannot parse ${file}: ${(err as Error).message}`);
      }
    }
    from = `${label} (${files.join(delimiter)})`;
  };

  if (source.kubeconfig) {
    loadFiles([source.kubeconfig], '--kubeconfig');
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
      loadFiles(envFiles, '$KUBECONFIG');
    } else if ((tried.push('$KUBECONFIG (not set)'), existsSync(homeConfig))) {
      loadFiles([homeConfig], '~/.kube/config');
    } else if ((tried.push(`${homeConfig} (missing)`), env.KUBERNETES_SERVICE_HOST)) {
      loadInCluster(kc, env, source.serviceAccountDir ?? SERVICE_ACCOUNT_DIR);
      from = `in-cluster config (${source.serviceAccountDir ?? SERVICE_ACCOUNT_DIR})`;
    } else {
      tried.push('in-cluster config (KUBERNETES_SERVICE_HOST not set)');
      throw new KubeConfigError(`no Kubernetes configuration found; tried: ${tried.join(', ')}`);
    }
  }

  if (source.context) {
    if (!kc.getContextObject(source.context)) {
      throw new KubeConfigError(`--context: context "${source.context}" not found in ${from}; have: ${kc.getContexts().map((c) => c.name).join(', ') || 'none'}`);
    }
    kc.setCurrentContext(source.context);
  }
  if (!kc.getCurrentContext()) throw new KubeConfigError(`${from}: no current-context is set (and no --context given); is this a kubeconfig file?`);
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) throw new KubeConfigError(`${from}: current context "${kc.getCurrentContext()}" has no cluster with a server URL`);
  return { kc, source: from ?? 'unknown', server: cluster.server };
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
