/**
 * Bench fixtures on the bench's own control plane (CLUSTER_DIR, see scripts/bench.sh):
 * direct API access with the admin and the proxy's tokens, and fast bulk creation of
 * Deployments (keep-alive POSTs in parallel; kubectl would take minutes for 50,000).
 */
import https from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import { ADMIN_KUBECONFIG, PROXY_KUBECONFIG, ensureCluster } from '../test/helpers/cluster.js';
import { pool } from './lib.js';

/** A direct client of kube-apiserver: base URL, keep-alive agent, bearer headers. */
export interface ApiAccess {
  server: string;
  agent: https.Agent;
  headers: Record<string, string>;
  /** The cluster's CA and the bearer token behind `agent` and `headers`. */
  ca: Buffer;
  token: string;
}

function access(file: string): ApiAccess {
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  const cluster = kc.getCurrentCluster()!;
  const ca = Buffer.from(cluster.caData!, 'base64');
  const token = kc.getCurrentUser()!.token!;
  return {
    server: cluster.server, ca, token,
    agent: new https.Agent({ keepAlive: true, ca }),
    headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
  };
}

/** cluster-admin access (for creating fixtures). */
export async function adminAccess(): Promise<ApiAccess> {
  await ensureCluster();
  return access(ADMIN_KUBECONFIG);
}

/** The proxy ServiceAccount's access: what "a direct kube-apiserver call" uses. */
export function proxyAccess(): ApiAccess {
  return access(PROXY_KUBECONFIG);
}

function send(api: ApiAccess, method: string, path: string, body: unknown): Promise<number> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(`${api.server}${path}`, {
      method, agent: api.agent, headers: { ...api.headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) },
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * A Deployment of about `sizeBytes` of JSON (labels, an annotation and an env var carry
 * the padding), like the objects of a real cluster rather than minimal ones.
 */
export function deploymentManifest(namespace: string, name: string, replicas: number, sizeBytes = 2_000): Record<string, unknown> {
  const labels = { app: name, 'app.kubernetes.io/part-of': 'bench', tier: 'web' };
  const pad = 'x'.repeat(Math.max(0, sizeBytes - 900));
  return {
    apiVersion: 'apps/v1', kind: 'Deployment',
    metadata: { name, namespace, labels, annotations: { 'bench/padding': pad } },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels },
        spec: { containers: [{ name: 'main', image: 'registry.k8s.io/pause:3.10', env: [{ name: 'MODE', value: 'bench' }], resources: { requests: { cpu: '10m', memory: '16Mi' } } }] },
      },
    },
  };
}

/**
 * Creates namespaces `${prefix}-0…` and Deployments `d<i>` spread round-robin over
 * them, for i in [from, to). Already existing objects are fine (409 counts as done).
 * @throws when the API server refuses a create for another reason.
 */
export async function createDeployments(api: ApiAccess, o: { prefix: string; namespaces: number; from: number; to: number; sizeBytes?: number; concurrency?: number }): Promise<void> {
  const namespaces = Array.from({ length: o.namespaces }, (_, i) => `${o.prefix}-${i}`);
  await pool(namespaces, 8, async (ns) => {
    const s = await send(api, 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    if (s !== 201 && s !== 409) throw new Error(`create namespace ${ns}: HTTP ${s}`);
  });
  const indexes = Array.from({ length: o.to - o.from }, (_, k) => o.from + k);
  await pool(indexes, o.concurrency ?? 16, async (i) => {
    const ns = namespaces[i % namespaces.length];
    const s = await send(api, 'POST', `/apis/apps/v1/namespaces/${ns}/deployments`, deploymentManifest(ns, `d${i}`, i % 5, o.sizeBytes));
    if (s !== 201 && s !== 409) throw new Error(`create deployment ${ns}/d${i}: HTTP ${s}`);
  });
}
