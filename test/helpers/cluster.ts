/**
 * The integration tier's handle on the real local control plane (etcd + kube-apiserver
 * from hack/control-plane), started once per run and shared by every test file.
 *
 * What does NOT happen here, because no kube-controller-manager, scheduler or kubelet
 * runs:
 * - Deployments get no ReplicaSets or Pods, and their `status` never changes by itself:
 *   set it with {@link TestNamespace.setDeploymentStatus} (the status subresource).
 * - Pods are never scheduled or started: create them with `spec.nodeName` already set
 *   ({@link TestNamespace.createPod}); they stay Pending unless you write their status.
 * - No `default` ServiceAccount or `kube-root-ca.crt` ConfigMap appears in new
 *   namespaces (the ServiceAccount admission plugin is disabled for that reason).
 * - Nothing garbage-collects: deleting a namespace leaves it `Terminating` forever, so
 *   every suite uses its own uniquely named namespace and never waits on deletion.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';

/** The repository root. */
export const ROOT = resolve(import.meta.dirname, '../..');
/** Tests use their own cluster directory so they never stop a `make demo` cluster. */
export const CLUSTER_DIR = process.env.CLUSTER_DIR ?? join(ROOT, '.cluster-test');
/** cluster-admin kubeconfig of the test cluster. */
export const ADMIN_KUBECONFIG = join(CLUSTER_DIR, 'admin.kubeconfig');
/** The proxy ServiceAccount's kubeconfig (least privilege). */
export const PROXY_KUBECONFIG = join(CLUSTER_DIR, 'proxy.kubeconfig');
const CLUSTER_SH = join(ROOT, 'hack/control-plane/cluster.sh');
/**
 * The proxy's ClusterRole and ClusterRoleBinding made by cluster.sh: the names the chart
 * gives them for the default release (`<fullname>-<namespace>`), so `make deploy` adopts them.
 */
export const PROXY_RBAC_NAME = 'k8s-api-proxy-k8s-api-proxy';

const binaries = Object.fromEntries(
  execFileSync(join(ROOT, 'hack/control-plane/build.sh'), ['--print'], { encoding: 'utf8' })
    .trim().split('\n').map((l) => l.split('=') as [string, string]),
);
/** The kubectl built at the control plane's version. */
export const KUBECTL: string = binaries.KUBECTL;
/** helm built from the Go module proxy. */
export const HELM: string = binaries.HELM;
/** kube-score built from the Go module proxy (the chart's lint tier). */
export const KUBE_SCORE: string = binaries.KUBE_SCORE;
/** The Gateway API standard channel's CRD directory in Go's module cache (version pinned by hack/control-plane/gateway-api/go.mod). */
export const GATEWAY_API_CRDS: string = binaries.GATEWAY_API_CRDS;

/**
 * Runs a command from the repository root with this cluster's CLUSTER_DIR and the test's
 * environment plus `env`. Resolves with the exit code and output; never throws.
 */
export function runCommand(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolvePromise) => {
    const child = execFile(cmd, args, { cwd: ROOT, env: { ...process.env, CLUSTER_DIR, ...opts.env }, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolvePromise({ stdout, stderr, code: err ? Number((err as { code?: number }).code ?? 1) : 0 });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

async function cluster(verb: string): Promise<void> {
  const r = await runCommand(CLUSTER_SH, [verb]);
  if (r.code !== 0) throw new Error(`cluster.sh ${verb} failed (${r.code}): ${r.stderr}${r.stdout}`);
}

let upOnce: Promise<void> | undefined;
/** Starts the cluster if it is not running (idempotent; cheap when it runs). */
export function ensureCluster(): Promise<void> {
  upOnce ??= cluster('up');
  return upOnce;
}

/** Stops kube-apiserver only; etcd and its data stay (an outage). */
export const stopApiServer = (): Promise<void> => cluster('stop-apiserver');
/** Starts kube-apiserver again on the same data, ports and keys. */
export const startApiServer = (): Promise<void> => cluster('start-apiserver');

/** The API server's URL, from the cluster's port file. */
export function apiServerUrl(): string {
  const ports = readFileSync(join(CLUSTER_DIR, 'ports.env'), 'utf8');
  return `https://127.0.0.1:${/APISERVER_PORT=(\d+)/.exec(ports)![1]}`;
}

/** The pid recorded for a control-plane process, or undefined when stopped. */
export function pidOf(name: 'etcd' | 'kube-apiserver'): number | undefined {
  const f = join(CLUSTER_DIR, `${name}.pid`);
  return existsSync(f) ? Number(readFileSync(f, 'utf8')) : undefined;
}

/** Runs kubectl (admin unless `kubeconfig` says otherwise). Resolves with the exit code; never throws. */
export function kubectl(args: string[], opts: { kubeconfig?: string; input?: string } = {}): Promise<{ stdout: string; stderr: string; code: number }> {
  return runCommand(KUBECTL, [`--kubeconfig=${opts.kubeconfig ?? ADMIN_KUBECONFIG}`, ...args], { input: opts.input });
}

/** Runs kubectl as admin and throws on a non-zero exit. */
export async function kubectlOk(args: string[], input?: string): Promise<string> {
  const r = await kubectl(args, { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** Deployment fixture options. */
export interface DeploymentSpec {
  replicas?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** A uniquely named namespace for one suite, deleted (without waiting) by `cleanup`. */
export class TestNamespace {
  private constructor(readonly name: string) {}

  /** Creates `<prefix>-<random>`; register `ns.cleanup` with the test's `after`. */
  static async create(prefix: string): Promise<TestNamespace> {
    await ensureCluster();
    const ns = new TestNamespace(`${prefix}-${randomBytes(3).toString('hex')}`);
    await kubectlOk(['create', 'namespace', ns.name]);
    return ns;
  }

  async cleanup(): Promise<void> {
    await kubectl(['delete', 'namespace', this.name, '--wait=false']);
  }

  /** Creates a Deployment whose pod template runs `registry.k8s.io/pause` (never started here). */
  async createDeployment(name: string, spec: DeploymentSpec = {}): Promise<Record<string, any>> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const labels = { app: name, ...spec.labels };
    const manifest = {
      apiVersion: 'apps/v1', kind: 'Deployment',
      metadata: { name, namespace: this.name, labels, annotations: spec.annotations ?? {} },
      spec: {
        replicas: spec.replicas ?? 1,
        selector: { matchLabels: { app: name } },
        template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'main', image: 'registry.k8s.io/pause:3.10' }] } },
      },
    };
    return JSON.parse(await kubectlOk(['create', '-o', 'json', '-f', '-'], JSON.stringify(manifest)));
  }

  /** Reads a Deployment as admin (straight from the API server). */
  async getDeployment(name: string): Promise<Record<string, any>> { // eslint-disable-line @typescript-eslint/no-explicit-any
    return JSON.parse(await kubectlOk(['-n', this.name, 'get', 'deployment', name, '-o', 'json']));
  }

  async scale(name: string, replicas: number): Promise<void> {
    await kubectlOk(['-n', this.name, 'scale', 'deployment', name, `--replicas=${replicas}`]);
  }

  async deleteDeployment(name: string): Promise<void> {
    await kubectlOk(['-n', this.name, 'delete', 'deployment', name, '--wait=false']);
  }

  /** Writes `status` through the status subresource: nothing else will without a controller-manager. */
  async setDeploymentStatus(name: string, status: Record<string, unknown>): Promise<void> {
    await kubectlOk(['-n', this.name, 'patch', 'deployment', name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
  }

  /** Creates a Pod already bound to a (non-existent) node, since no scheduler runs. */
  async createPod(name: string, labels: Record<string, string> = {}, nodeName = 'fake-node'): Promise<void> {
    const manifest = {
      apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: this.name, labels },
      spec: { nodeName, containers: [{ name: 'main', image: 'registry.k8s.io/pause:3.10' }] },
    };
    await kubectlOk(['create', '-f', '-'], JSON.stringify(manifest));
  }
}
