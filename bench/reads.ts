/**
 * Benchmark: the proxy's cached reads against the same read made directly to
 * kube-apiserver (the baseline), measured in the same run and interleaved so machine
 * noise hits both alike. Prints ratios, not absolute claims.
 *
 * Usage (via `make bench`): tsx bench/reads.ts  — expects CLUSTER_DIR with a running
 * control plane and bin/api built.
 */
import https from 'node:https';
import { pathToFileURL } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { TestNamespace, PROXY_KUBECONFIG, kubectlOk } from '../test/helpers/cluster.js';
import { makeCertFixture } from '../test/helpers/certs.js';
import { startProxy } from '../test/helpers/proxy-process.js';

export const REQUESTS_PER_ROUND = Number(process.env.BENCH_REQUESTS ?? 1000);
export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
export const CONCURRENCY = 8;
export const DEPLOYMENTS = 200;

/** One load run: throughput and latency percentiles (ms). */
export interface Sample { rps: number; p50: number; p99: number }

/** `requests` GETs of `url` over `agent`, `CONCURRENCY` at a time; every answer must be 200. */
export async function load(agent: https.Agent, url: URL, headers: Record<string, string>, requests = REQUESTS_PER_ROUND): Promise<Sample> {
  const latencies: number[] = [];
  let next = 0;
  const one = (): Promise<void> => new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    https.get(url, { agent, headers }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`${url.pathname}: HTTP ${res.statusCode}`));
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
        resolve();
      });
    }).on('error', reject);
  });
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next++ < requests) await one();
  }));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  latencies.sort((a, b) => a - b);
  return { rps: requests / seconds, p50: latencies[Math.floor(latencies.length * 0.5)], p99: latencies[Math.floor(latencies.length * 0.99)] };
}

/** The median of `xs`. */
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** A namespace of {@link DEPLOYMENTS} Deployments `d0…`, created through kubectl. */
export async function benchNamespace(): Promise<TestNamespace> {
  const ns = await TestNamespace.create('bench');
  const items = Array.from({ length: DEPLOYMENTS }, (_, i) => ({
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: `d${i}`, namespace: ns.name },
    spec: { replicas: i % 5, selector: { matchLabels: { app: `d${i}` } }, template: { metadata: { labels: { app: `d${i}` } }, spec: { containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] } } },
  }));
  await kubectlOk(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
  return ns;
}

async function main(): Promise<void> {
  const ns = await benchNamespace();
  const certs = await makeCertFixture();
  // Rate limits on, as in production, but out of the benchmark's reach.
  const proxy = await startProxy({ certs, args: ['--rate-limit-read-rps', '1000000', '--rate-limit-read-burst', '1000000'] });
  try {
    const kc = new KubeConfig();
    kc.loadFromFile(PROXY_KUBECONFIG);
    const cluster = kc.getCurrentCluster()!;
    const apiAgent = new https.Agent({ keepAlive: true, ca: Buffer.from(cluster.caData!, 'base64') });
    const apiHeaders = { authorization: `Bearer ${kc.getCurrentUser()!.token}`, accept: 'application/json' };
    const proxyAgent = new https.Agent({ keepAlive: true, ca: certs.ca, cert: certs.client.cert, key: certs.client.key });
    const cases = [
      { name: 'get one Deployment\'s replicas', proxy: `/deployments/${ns.name}/d7/replicas`, api: `/apis/apps/v1/namespaces/${ns.name}/deployments/d7` },
      { name: `list a namespace of ${DEPLOYMENTS}`, proxy: `/deployments?namespace=${ns.name}`, api: `/apis/apps/v1/namespaces/${ns.name}/deployments` },
    ];
    console.log(`k8s-api-proxy read benchmark: ${ROUNDS} interleaved rounds x ${REQUESTS_PER_ROUND} requests, concurrency ${CONCURRENCY}, both over TLS with keep-alive`);
    for (const c of cases) {
      const p: Sample[] = [];
      const a: Sample[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        a.push(await load(apiAgent, new URL(c.api, cluster.server), apiHeaders));
        p.push(await load(proxyAgent, new URL(c.proxy, proxy.apiUrl), {}));
      }
      const rp = median(p.map((s) => s.rps));
      const ra = median(a.map((s) => s.rps));
      console.log(`\n${c.name}`);
      console.log(`  baseline kube-apiserver direct: ${ra.toFixed(0)} req/s, p50 ${median(a.map((s) => s.p50)).toFixed(2)} ms, p99 ${median(a.map((s) => s.p99)).toFixed(2)} ms`);
      console.log(`  proxy (cache):                  ${rp.toFixed(0)} req/s, p50 ${median(p.map((s) => s.p50)).toFixed(2)} ms, p99 ${median(p.map((s) => s.p99)).toFixed(2)} ms`);
      console.log(`  ratio proxy/baseline throughput: ${(rp / ra).toFixed(2)}x`);
    }
    apiAgent.destroy();
    proxyAgent.destroy();
  } finally {
    await proxy.stop();
    await ns.cleanup();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => { console.error(err); process.exit(1); });
}
