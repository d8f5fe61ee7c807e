/**
 * `make bench`: the performance report. For each case of issue 10 it measures this
 * proxy against (a) the floor, a bare Node.js TLS server sending the same bytes, and
 * (b) the same read or write made directly to kube-apiserver, in interleaved rounds on
 * one control plane, and prints one table of p50/p99 and ratios.
 *
 * Environment: BENCH_SECONDS (length of a round, default 2), BENCH_ROUNDS (default 3),
 * CLUSTER_DIR (set by scripts/bench.sh). Expects bin/api built.
 */
import https from 'node:https';
import os from 'node:os';
import { makeCertFixture } from '../test/helpers/certs.js';
import { startProxy, type ProxyProcess } from '../test/helpers/proxy-process.js';
import { waitFor } from '../test/helpers/wait.js';
import { UNLIMITED, fetchBytes, formatTable, interleave, load, startFloor, startRelay, type ReportRow, type Variant } from './lib.js';
import { adminAccess, createDeployments, proxyAccess, type ApiAccess } from './cluster.js';
import { pidOf } from '../test/helpers/cluster.js';

const ROUND_MS = Number(process.env.BENCH_SECONDS ?? 2) * 1000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const NAMESPACES = 20;
/** Comma-separated subset of cases to run (list1k, replicas, put, list10k); all when unset. */
const ONLY = new Set((process.env.BENCH_ONLY ?? 'list1k,replicas,put,list10k').split(','));
/** JSON size of each Deployment created; kube-apiserver's direct list answers grow with it, the proxy's do not. */
const OBJECT_BYTES = Number(process.env.BENCH_OBJECT_BYTES ?? 1_000);

async function proxyCount(proxy: ProxyProcess): Promise<number> {
  const r = await proxy.request('/deployments?limit=1');
  return r.status === 200 ? r.json.items.length + (r.json.metadata.remainingItemCount ?? 0) : -1;
}

async function main(): Promise<void> {
  const admin = await adminAccess();
  const api = proxyAccess();
  const certs = await makeCertFixture();
  const proxy = await startProxy({ certs, args: [...UNLIMITED, '--log-level', 'info'], keepLogs: false });
  const floor = await startFloor(certs);
  const clientTls = { ca: certs.ca, cert: certs.client.cert, key: certs.client.key };
  const proxyAgent = new https.Agent({ keepAlive: true, maxSockets: 256, ...clientTls });
  const floorAgent = new https.Agent({ keepAlive: true, maxSockets: 256, ...clientTls });
  const rows: ReportRow[] = [];
  const proxyPids = [proxy.child.pid!];
  const floorPids = [floor.pid];
  const apiPids = [pidOf('kube-apiserver')!, pidOf('etcd')!];
  const onProxy = (path: string) => `${proxy.apiUrl}${path}`;
  const onApi = (a: ApiAccess, path: string) => `${a.server}${path}`;

  /** A GET case: floor (serving the proxy's own answer), proxy, kube-apiserver. */
  async function getCase(name: string, proxyPath: string, apiPath: string, connections: number, targets: { proxy: string }): Promise<void> {
    const answer = await fetchBytes(onProxy(proxyPath), proxyAgent);
    if (answer.status !== 200) throw new Error(`${proxyPath}: HTTP ${answer.status}`);
    await floor.serve(answer.body, { 'content-type': answer.headers['content-type'], etag: answer.headers.etag, 'resource-version': answer.headers['resource-version'] });
    const o = { connections, durationMs: ROUND_MS };
    const variants: Variant[] = [
      { name: 'floor: bare Node TLS, same bytes', round: () => load({ url: `${floor.url}/`, agent: floorAgent, serverPids: floorPids }, o) },
      { name: 'k8s-api-proxy', round: () => load({ url: onProxy(proxyPath), agent: proxyAgent, serverPids: proxyPids }, o) },
      { name: 'kube-apiserver direct', round: () => load({ url: onApi(api, apiPath), agent: api.agent, headers: api.headers, serverPids: apiPids }, o) },
    ];
    const [fl, px, ka] = await interleave(variants, ROUNDS);
    const label = `${name} (${(answer.body.length / 1024).toFixed(1)} KB), ${connections} conns`;
    rows.push({ case: label, variant: fl.name, result: fl, baseline: fl });
    rows.push({ case: label, variant: px.name, result: px, baseline: fl, target: targets.proxy });
    rows.push({ case: label, variant: ka.name, result: ka, baseline: fl });
    console.error(`done: ${label}`);
  }

  try {
    console.error('creating 1,000 Deployments…');
    await createDeployments(admin, { prefix: 'bench', namespaces: NAMESPACES, from: 0, to: 1_000, sizeBytes: OBJECT_BYTES });
    await waitFor('the proxy caching 1,000 Deployments', async () => (await proxyCount(proxy)) === 1_000, 60_000, 200);
    if (ONLY.has('list1k')) await getCase('`GET /deployments`, 1,000 Deployments', '/deployments', '/apis/apps/v1/deployments', 32, { proxy: '≥ 0.8× floor req/s' });
    if (ONLY.has('replicas')) await getCase('`GET …/replicas`', '/deployments/bench-7/d7/replicas', '/apis/apps/v1/namespaces/bench-7/deployments/d7', 64, { proxy: 'p99 ≤ 1.5× floor' });

    // Sequential absolute sets, each changing the value: the proxy vs one direct scale update
    // with the proxy's own ServiceAccount token (same authentication and RBAC work upstream),
    // and vs the write floor: a bare Node TLS relay making that same call (one extra hop).
    if (ONLY.has('put')) {
      const scaleBody = (ns: string, name: string) => (i: number) => JSON.stringify({ apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name, namespace: ns }, spec: { replicas: 1 + (i % 2) } });
      const seq = { connections: 1, durationMs: ROUND_MS, warmup: 2 };
      const relay = await startRelay(certs, api);
      const relayAgent = new https.Agent({ keepAlive: true, maxSockets: 256, ...clientTls });
      try {
        const [direct, relayed, viaProxy] = await interleave([
          { name: 'kube-apiserver direct: update deployments/scale (same token)', round: () => load({ url: onApi(api, '/apis/apps/v1/namespaces/bench-1/deployments/d1/scale'), agent: api.agent, headers: api.headers, method: 'PUT', body: scaleBody('bench-1', 'd1'), serverPids: apiPids }, seq) },
          { name: 'write floor: bare Node TLS relay of that call', round: () => load({ url: `${relay.url}/apis/apps/v1/namespaces/bench-3/deployments/d3/scale`, agent: relayAgent, method: 'PUT', body: scaleBody('bench-3', 'd3'), serverPids: [relay.pid, ...apiPids] }, seq) },
          { name: 'k8s-api-proxy', round: () => load({ url: onProxy('/deployments/bench-2/d2/replicas'), agent: proxyAgent, method: 'PUT', body: (i) => JSON.stringify({ replicas: 1 + (i % 2) }), serverPids: [...proxyPids, ...apiPids] }, seq) },
        ], ROUNDS);
        rows.push({ case: '`PUT …/replicas`, sequential', variant: direct.name, result: direct, baseline: direct });
        rows.push({ case: '`PUT …/replicas`, sequential', variant: relayed.name, result: relayed, baseline: direct });
        rows.push({ case: '`PUT …/replicas`, sequential', variant: viaProxy.name, result: viaProxy, baseline: direct, target: 'p50 ≤ 1.3× direct' });
        rows.push({ case: '`PUT …/replicas`, sequential', variant: 'k8s-api-proxy ÷ write floor', result: viaProxy, baseline: relayed });
      } finally {
        relayAgent.destroy();
        await relay.stop();
      }
      console.error('done: PUT');
    }

    if (ONLY.has('list10k')) {
      console.error('creating 9,000 more Deployments…');
      await createDeployments(admin, { prefix: 'bench', namespaces: NAMESPACES, from: 1_000, to: 10_000, sizeBytes: OBJECT_BYTES });
      await waitFor('the proxy caching 10,000 Deployments', async () => (await proxyCount(proxy)) === 10_000, 120_000, 500);
      await getCase('`GET /deployments`, 10,000 Deployments', '/deployments', '/apis/apps/v1/deployments', 32, { proxy: '≥ 0.6× floor req/s, p99 ≤ 2× floor' });
    }

    console.log(`k8s-api-proxy performance report: ${ROUNDS} interleaved rounds of ${ROUND_MS / 1000} s per variant; mTLS keep-alive; ${os.cpus().length} CPUs; Node ${process.version}; ${new Date().toISOString().slice(0, 10)}`);
    console.log('ratios are against the first row of each case (the floor, or the direct write for PUT; the last PUT row is against the write floor); medians of the rounds;');
    console.log('server CPU µs/req is the CPU the serving processes spent per answer (kube-apiserver + etcd for direct calls; the proxy or relay + both for PUT): the measure least moved by other load on the machine\n');
    console.log(formatTable(rows));
  } finally {
    proxyAgent.destroy();
    floorAgent.destroy();
    await floor.stop();
    await proxy.stop();
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
