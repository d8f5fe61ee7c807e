/**
 * Benchmark (issue 11): WATCHERS concurrent SSE watchers of `GET /deployments?watch=true`,
 * each over its own mTLS connection, and CHANGES replica changes made straight on
 * kube-apiserver. For every (change, watcher) pair it records the time from just before
 * the change was sent to the API server until that watcher's client parsed the event, so
 * the figure includes the API server's write, the watch delivery to the proxy, the fan-out
 * and this client process's own reading of 1,000 sockets (all on the same machine).
 *
 * Usage (via `make bench`): tsx bench/watch.ts — expects CLUSTER_DIR with a running
 * control plane and bin/api built. WATCHERS (default 1000), CHANGES (default 20).
 */
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestNamespace, CLUSTER_DIR, apiServerUrl } from '../test/helpers/cluster.js';
import { makeCertFixture } from '../test/helpers/certs.js';
import { startProxy } from '../test/helpers/proxy-process.js';
import { call } from '../test/helpers/https.js';

const WATCHERS = Number(process.env.WATCHERS ?? 1000);
const CHANGES = Number(process.env.CHANGES ?? 20);
const OPEN_CONCURRENCY = 50;

const pct = (xs: number[], p: number): number => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))];

async function main(): Promise<void> {
  const ns = await TestNamespace.create('bench-watch');
  await ns.createDeployment('target', { replicas: 1 });
  const certs = await makeCertFixture();
  // The connection caps and read rate limits are per client address/identity: one bench
  // client holding 1,000 streams needs them off.
  const proxy = await startProxy({ certs, args: ['--max-connections', '0', '--max-connections-per-ip', '0', '--rate-limit-read-rps', '0'] });
  const url = new URL(`${proxy.apiUrl}/deployments?watch=true`);
  const seen: Array<Map<number, number>> = [];
  const streams: Array<() => void> = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: OPEN_CONCURRENCY }, async () => {
    while (next < WATCHERS) {
      const i = next++;
      const got = new Map<number, number>();
      seen[i] = got;
      await new Promise<void>((resolve, reject) => {
        const req = https.get(url, { agent: false, ca: certs.ca, ...certs.client, timeout: 60_000 }, (res) => {
          if (res.statusCode !== 200) return reject(new Error(`watcher ${i}: HTTP ${res.statusCode}`));
          let tail = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            const now = performance.now();
            const text = tail + chunk;
            for (const m of text.matchAll(/"replicas":(\d+)\}/g)) {
              const n = Number(m[1]);
              if (n >= 100 && !got.has(n)) got.set(n, now);
            }
            tail = text.slice(-32);
            if (text.includes('event: SYNCED')) { req.setTimeout(0); resolve(); }
          });
          res.on('error', () => undefined);
          res.on('end', () => reject(new Error(`watcher ${i}: stream ended`)));
        });
        req.on('error', reject);
        req.on('timeout', () => req.destroy(new Error(`watcher ${i}: no SYNCED within 60 s`)));
        streams.push(() => req.destroy());
      });
    }
  }));
  console.log(`opened ${WATCHERS} watchers`);
  const openSeconds = (performance.now() - t0) / 1000;
  const token = readFileSync(join(CLUSTER_DIR, 'tokens.csv'), 'utf8').split(',')[0];
  const ca = readFileSync(join(CLUSTER_DIR, 'certs/apiserver.crt'));
  const sentAt = new Map<number, number>();
  for (let c = 0; c < CHANGES; c++) {
    const replicas = 100 + c;
    sentAt.set(replicas, performance.now());
    const r = await call(`${apiServerUrl()}/apis/apps/v1/namespaces/${ns.name}/deployments/target/scale`, {
      method: 'PATCH', rawBody: JSON.stringify({ spec: { replicas } }),
      headers: { 'content-type': 'application/merge-patch+json', authorization: `Bearer ${token}` }, tls: { ca },
    });
    if (r.status !== 200) throw new Error(`scale PATCH: HTTP ${r.status} ${r.text}`);
    await new Promise((res) => setTimeout(res, 300));
  }
  await new Promise((res) => setTimeout(res, 1_000));
  const latencies: number[] = [];
  let missing = 0;
  for (const got of seen) {
    for (const [replicas, at] of sentAt) {
      const t = got.get(replicas);
      if (t === undefined) missing++;
      else latencies.push(t - at);
    }
  }
  latencies.sort((x, y) => x - y);
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proxy.child.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  console.log(`SSE watch: ${WATCHERS} watchers opened in ${openSeconds.toFixed(1)} s; ${CHANGES} changes; ${latencies.length} deliveries, ${missing} missing`);
  console.log(`  change sent -> event parsed by the watcher: p50 ${pct(latencies, 0.5).toFixed(1)} ms, p99 ${pct(latencies, 0.99).toFixed(1)} ms, max ${latencies[latencies.length - 1].toFixed(1)} ms`);
  console.log(`  proxy RSS with ${WATCHERS} open streams: ${rss.toFixed(0)} MiB`);
  const fanLogs = proxy.logs.filter((l) => l.msg === 'change sent to watchers' && l.watchers === WATCHERS);
  const fanout = fanLogs.map((l) => Number(l.fanoutMs)).sort((x, y) => x - y);
  const fanCpu = fanLogs.map((l) => Number(l.fanoutCpuMs)).sort((x, y) => x - y);
  if (fanout.length > 0) {
    console.log(`  inside the proxy, one change to all ${WATCHERS} watchers (writes + TLS encryption): wall p50 ${pct(fanout, 0.5).toFixed(1)} ms, max ${fanout[fanout.length - 1].toFixed(1)} ms; CPU p50 ${pct(fanCpu, 0.5).toFixed(1)} ms`);
  }
  console.log(`  machine load average during the run: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')} (${(await import('node:os')).availableParallelism()} CPUs)`);
  for (const close of streams) close();
  await proxy.stop();
  await ns.cleanup();
  if (missing > 0) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
