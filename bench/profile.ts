/**
 * A CPU profile of the proxy under one bench case (not part of `make bench`): starts
 * bin/api with `--cpu-prof` on the bench control plane (CLUSTER_DIR), drives
 * BENCH_PROFILE=put|replicas|list for BENCH_SECONDS, stops it and prints the file.
 * Summarize with `npx tsx bench/profile-summary.ts FILE`.
 */
import https from 'node:https';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync, readdirSync } from 'node:fs';
import { makeCertFixture } from '../test/helpers/certs.js';
import { startProxy } from '../test/helpers/proxy-process.js';
import { waitFor } from '../test/helpers/wait.js';
import { UNLIMITED, cpuMs, load } from './lib.js';
import { adminAccess, createDeployments } from './cluster.js';

const CASE = process.env.BENCH_PROFILE ?? 'put';
const MS = Number(process.env.BENCH_SECONDS ?? 10) * 1000;

async function main(): Promise<void> {
  const admin = await adminAccess();
  await createDeployments(admin, { prefix: 'bench', namespaces: 20, from: 0, to: 1_000, sizeBytes: 1_000 });
  const certs = await makeCertFixture();
  const dir = mkdtempSync(join(tmpdir(), 'proxy-prof-'));
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'KUBECONFIG')), NODE_OPTIONS: `${process.env.PROFILE_CPU === '0' ? '' : `--cpu-prof --cpu-prof-dir=${dir}`} ${process.env.PROFILE_NODE_OPTIONS ?? ''}` };
  const proxy = await startProxy({ certs, env, args: [...UNLIMITED, '--log-level', 'info', ...(process.env.PROFILE_ARGS ?? '').split(' ').filter(Boolean)], keepLogs: false });
  await waitFor('1,000 cached', async () => {
    const r = await proxy.request('/deployments?limit=1');
    return r.status === 200 && r.json.items.length + (r.json.metadata.remainingItemCount ?? 0) === 1_000;
  }, 60_000, 200);
  const agent = new https.Agent({ keepAlive: true, maxSockets: 256, ca: certs.ca, cert: certs.client.cert, key: certs.client.key });
  const pid = proxy.child.pid!;
  const t = CASE === 'put'
    ? { url: `${proxy.apiUrl}/deployments/bench-2/d2/replicas`, agent, method: 'PUT', body: (i: number) => JSON.stringify({ replicas: process.env.PUT_SAME ? 3 : 1 + (i % 2) }), serverPids: [pid] }
    : CASE === 'replicas' ? { url: `${proxy.apiUrl}/deployments/bench-7/d7/replicas`, agent, serverPids: [pid] }
      : { url: `${proxy.apiUrl}/deployments`, agent, serverPids: [pid] };
  const times = (): number[] => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8'); const x = f.slice(f.lastIndexOf(')') + 2).split(' '); return [Number(x[11]) * 10, Number(x[12]) * 10]; };
  const i0 = cpuMs([pid]);
  await new Promise((r) => setTimeout(r, 3_000));
  console.error(`idle CPU: ${((cpuMs([pid]) - i0) / 3).toFixed(1)} ms/s`);
  const [u0, s0] = times();
  const c0 = cpuMs([pid]);
  const s = await load(t, { connections: Number(process.env.BENCH_CONNECTIONS ?? (CASE === 'put' ? 1 : CASE === 'replicas' ? 64 : 32)), durationMs: MS, warmup: 20 });
  const [u1, s1] = times();
  console.log(JSON.stringify({ case: CASE, args: process.env.PROFILE_ARGS ?? '', rps: Math.round(s.rps), p50: +s.p50.toFixed(2), p99: +s.p99.toFixed(2), cpuUsPerReq: Math.round(s.cpuUsPerRequest), userUsPerReq: Math.round((u1 - u0) * 1000 / s.requests), sysUsPerReq: Math.round((s1 - s0) * 1000 / s.requests), proxyCpuMs: cpuMs([pid]) - c0 }));
  agent.destroy();
  await proxy.stop();
  if (process.env.PROFILE_CPU !== '0') console.log(join(dir, readdirSync(dir)[0]));
}

main().catch((err) => { console.error(err); process.exit(1); });
