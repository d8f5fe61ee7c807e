/**
 * `make bench BENCH_SCALE=50000`: the scale run. Creates BENCH_SCALE Deployments of
 * about BENCH_OBJECT_BYTES (default 2000) of JSON each, then reports, in interleaved
 * rounds: the proxy's time from start to ready against `kubectl get deploy -A -o json`
 * of the same objects; its RSS once synced and while serving; `/livez` latency idle and
 * while 8 clients fetch the whole list; and the list's throughput against the floor.
 */
import https from 'node:https';
import os from 'node:os';
import { spawn } from 'node:child_process';
import { makeCertFixture } from '../test/helpers/certs.js';
import { startProxy, type ProxyProcess } from '../test/helpers/proxy-process.js';
import { KUBECTL, PROXY_KUBECONFIG } from '../test/helpers/cluster.js';
import { UNLIMITED, fetchBytes, formatBreakdown, formatTable, memoryBreakdown, interleave, load, median, percentile, probe, rssMiB, startFloor, type ReportRow } from './lib.js';
import { adminAccess, createDeployments } from './cluster.js';

const N = Number(process.env.BENCH_SCALE ?? 50_000);
const OBJECT_BYTES = Number(process.env.BENCH_OBJECT_BYTES ?? 2_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const LOAD_MS = Number(process.env.BENCH_SECONDS ?? 10) * 1000;

function timeKubectl(): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(KUBECTL, [`--kubeconfig=${PROXY_KUBECONFIG}`, 'get', 'deploy', '-A', '-o', 'json'], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`kubectl exited ${code}`))));
  });
}

async function main(): Promise<void> {
  const admin = await adminAccess();
  const certs = await makeCertFixture();
  const t0 = performance.now();
  console.error(`creating ${N} Deployments of ~${OBJECT_BYTES} bytes…`);
  await createDeployments(admin, { prefix: 'scale', namespaces: Math.max(1, Math.round(N / 1000)), from: 0, to: N, sizeBytes: OBJECT_BYTES, concurrency: 24 });
  console.error(`created in ${((performance.now() - t0) / 1000).toFixed(0)} s`);

  const ready: number[] = [];
  const kubectl: number[] = [];
  let proxy: ProxyProcess | undefined;
  for (let r = 0; r < ROUNDS; r++) {
    kubectl.push(await timeKubectl());
    await proxy?.stop();
    const start = performance.now();
    proxy = await startProxy({ certs, args: [...UNLIMITED, '--log-level', 'info'], keepLogs: false, readyTimeoutMs: 600_000 });
    ready.push(performance.now() - start);
  }
  const p = proxy!;
  const pid = p.child.pid!;
  const rssSynced = rssMiB(pid);
  const memSynced = await memoryBreakdown(p.healthUrl);

  const clientTls = { ca: certs.ca, cert: certs.client.cert, key: certs.client.key };
  const proxyAgent = new https.Agent({ keepAlive: true, maxSockets: 64, ...clientTls });
  const floorAgent = new https.Agent({ keepAlive: true, maxSockets: 64, ...clientTls });
  const livez = `${p.healthUrl}/livez`;
  const floor = await startFloor(certs);
  const rows: ReportRow[] = [];
  try {
    // The first list after sync builds the serialized views; time it as a client sees it.
    const tFirst = performance.now();
    const answer = await fetchBytes(`${p.apiUrl}/deployments`, proxyAgent);
    const firstListMs = performance.now() - tFirst;
    if (answer.status !== 200) throw new Error(`GET /deployments: HTTP ${answer.status}`);
    const count = (JSON.parse(answer.body.toString()) as unknown[]).length;

    const idle = await probe(livez, 10, 3_000);
    const busyProbe = probe(livez, 10, LOAD_MS);
    const underLoad = await load({ url: `${p.apiUrl}/deployments`, agent: proxyAgent }, { connections: 8, durationMs: LOAD_MS });
    const busy = await busyProbe;
    const rssServing = rssMiB(pid);
    const memServing = await memoryBreakdown(p.healthUrl);
    await new Promise((r) => setTimeout(r, 10_000));
    const rssIdle = rssMiB(pid);
    const memIdle = await memoryBreakdown(p.healthUrl);

    await floor.serve(answer.body, { 'content-type': 'application/json; charset=utf-8' });
    const o = { connections: 8, durationMs: 3_000 };
    const [fl, px] = await interleave([
      { name: 'floor: bare Node TLS, same bytes', round: () => load({ url: `${floor.url}/`, agent: floorAgent, serverPids: [floor.pid] }, o) },
      { name: 'k8s-api-proxy', round: () => load({ url: `${p.apiUrl}/deployments`, agent: proxyAgent, serverPids: [pid] }, o) },
    ], ROUNDS);
    const label = `\`GET /deployments\`, ${count.toLocaleString('en')} Deployments (${(answer.body.length / 1024 / 1024).toFixed(1)} MiB), 8 conns`;
    rows.push({ case: label, variant: fl.name, result: fl, baseline: fl });
    rows.push({ case: label, variant: px.name, result: px, baseline: fl });

    const readyMs = median(ready);
    const kubectlMs = median(kubectl);
    console.log(`k8s-api-proxy scale run: ${N.toLocaleString('en')} Deployments of ~${OBJECT_BYTES} bytes in ${Math.round(N / 1000)} namespaces; ${os.cpus().length} CPUs; Node ${process.version}; ${new Date().toISOString().slice(0, 10)}\n`);
    console.log('| measure | value | baseline | ratio | target |');
    console.log('|---|---:|---:|---:|---|');
    console.log(`| start to ready (median of ${ROUNDS}) vs \`kubectl get deploy -A -o json\` | ${(readyMs / 1000).toFixed(1)} s | ${(kubectlMs / 1000).toFixed(1)} s | ${(readyMs / kubectlMs).toFixed(2)}× | ≤ 2× |`);
    console.log(`| RSS once synced | ${rssSynced.toFixed(0)} MiB | | | ≤ 200 MiB |`);
    console.log(`| RSS after ${LOAD_MS / 1000} s of full-list load | ${rssServing.toFixed(0)} MiB | | | ≤ 200 MiB |`);
    console.log(`| RSS 10 s later, idle | ${rssIdle.toFixed(0)} MiB | | | ≤ 200 MiB |`);
    console.log(`| of which (MiB): synced | ${formatBreakdown(memSynced)} | | | |`);
    console.log(`| of which (MiB): under load | ${formatBreakdown(memServing)} | | | |`);
    console.log(`| of which (MiB): idle after | ${formatBreakdown(memIdle)} | | | |`);
    console.log(`| first \`GET /deployments\` after sync (builds the views) | ${firstListMs.toFixed(0)} ms | | | |`);
    console.log(`| \`/livez\` p50 / p99 / max, idle (${idle.length} probes) | ${percentile(idle, 0.5).toFixed(1)} / ${percentile(idle, 0.99).toFixed(1)} / ${idle.at(-1)!.toFixed(1)} ms | | | |`);
    console.log(`| \`/livez\` p50 / p99 / max while 8 clients fetch the full list (${busy.length} probes; ${underLoad.rps.toFixed(1)} lists/s) | ${percentile(busy, 0.5).toFixed(1)} / ${percentile(busy, 0.99).toFixed(1)} / ${busy.at(-1)!.toFixed(1)} ms | ${percentile(idle, 0.99).toFixed(1)} ms (idle p99) | | p99 ≤ 50 ms |`);
    console.log('');
    console.log(formatTable(rows));
  } finally {
    proxyAgent.destroy();
    floorAgent.destroy();
    await floor.stop();
    await p.stop();
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
