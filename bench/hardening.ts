/**
 * Benchmark for issue 8: cached-read throughput of the proxy with its per-request
 * hardening switched on (per-client rate limits counting every request, connection-age
 * bookkeeping) against the same build with them switched off by flags, in the same run,
 * interleaved. Besides throughput, each proxy's CPU time per request (from
 * /proc/PID/task/N/schedstat) is reported: on a machine shared with other work it varies
 * far less than throughput does. The per-request certificate check (expiry, CA still
 * trusted) cannot be switched off, so it is timed on its own, in-process, as is the
 * rate-limit hook.
 *
 * Usage (via `make bench`): tsx bench/hardening.ts  — expects CLUSTER_DIR with a running
 * control plane and bin/api built.
 */
import https from 'node:https';
import { X509Certificate } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import type { TLSSocket } from 'node:tls';
import { pino } from 'pino';
import { makeCertFixture } from '../test/helpers/certs.js';
import { startProxy } from '../test/helpers/proxy-process.js';
import { CONCURRENCY, benchNamespace, load, median, type Sample } from './reads.js';
import { TlsGuard, DEFAULT_CONNECTION_LIMITS } from '../src/tls/guard.js';
import { RefusalLog } from '../src/tls/refusal-log.js';
import { TrustedCas } from '../src/tls/trust.js';
import { registerRateLimits } from '../src/http/rate-limit.js';
import { threadCpuNs } from './lib.js';

/**
 * Many short rounds, interleaved: each round runs every proxy back to back (rotating which
 * goes first) and yields one ratio to the proxy with the checks off; the median ratio is
 * robust to the load of other processes drifting during the run, which longer rounds
 * would pick up unevenly.
 */
const ROUNDS = Number(process.env.HARDENING_BENCH_ROUNDS ?? 15);
const REQUESTS = Number(process.env.HARDENING_BENCH_REQUESTS ?? 2000);

/** Limits so high they never refuse: the limiter runs on every request, as in production. */
const ON = ['--rate-limit-read-rps', '1000000', '--rate-limit-read-burst', '1000000', '--max-connection-age-seconds', '600'];
const OFF = ['--rate-limit-read-rps', '0', '--rate-limit-write-rps', '0', '--max-connection-age-seconds', '0'];

async function main(): Promise<void> {
  const ns = await benchNamespace();
  const certs = await makeCertFixture();
  // A second proxy with the checks off is the control: how far two identical proxies differ
  // in this run (the bench's noise floor) is printed beside the on/off ratio.
  const proxies = [
    { label: 'checks on (defaults, limits never reached)', proxy: await startProxy({ certs, args: ON }) },
    { label: 'checks off (--rate-limit-*-rps 0, --max-connection-age-seconds 0)', proxy: await startProxy({ certs, args: OFF }) },
    { label: 'control: checks off again, a second process', proxy: await startProxy({ certs, args: OFF }) },
    // bin/api's first line bounds V8's young generation (scripts/build.mjs); this one has V8's default.
    { label: 'checks on, V8\'s default young generation (no --max-semi-space-size)', proxy: await startProxy({ certs, args: ON, nodeFlags: [] }) },
  ];
  const [ON_, OFF_, CONTROL, DEFAULT_HEAP] = [0, 1, 2, 3];
  try {
    const agents = proxies.map(() => new https.Agent({ keepAlive: true, ca: certs.ca, cert: certs.client.cert, key: certs.client.key }));
    const cases = [
      { name: 'get one Deployment\'s replicas', path: `/deployments/${ns.name}/d7/replicas` },
      { name: `list a namespace`, path: `/deployments?namespace=${ns.name}` },
    ];
    console.log(`\nk8s-api-proxy hardening benchmark: ${ROUNDS} interleaved rounds x ${REQUESTS} cached reads per proxy, concurrency ${CONCURRENCY}, TLS keep-alive`);
    for (const c of cases) {
      const samples: Sample[][] = proxies.map(() => []);
      const cpuUs: number[][] = proxies.map(() => []);
      const run = async (i: number): Promise<void> => {
        const pid = proxies[i].proxy.child.pid!;
        const cpu0 = threadCpuNs(pid);
        samples[i].push(await load(agents[i], new URL(c.path, proxies[i].proxy.apiUrl), {}, REQUESTS));
        cpuUs[i].push((threadCpuNs(pid) - cpu0) / 1000 / REQUESTS);
      };
      for (let i = 0; i < proxies.length; i++) await run(i); // warm-up
      for (const xs of [...samples, ...cpuUs]) xs.length = 0;
      for (let r = 0; r < ROUNDS; r++) {
        // Rotate which goes first, so warm-up and machine noise hit all alike.
        for (let k = 0; k < proxies.length; k++) await run((r + k) % proxies.length);
      }
      const ratio = (i: number) => median(samples[i].map((s, r) => s.rps / samples[OFF_][r].rps));
      const cpuRatio = (i: number) => median(cpuUs[OFF_]) / median(cpuUs[i]);
      console.log(`\n${c.name}`);
      for (const [i, p] of proxies.entries()) {
        console.log(`  ${p.label.padEnd(68)} ${median(samples[i].map((x) => x.rps)).toFixed(0).padStart(6)} req/s, p50 ${median(samples[i].map((x) => x.p50)).toFixed(2)} ms, p99 ${median(samples[i].map((x) => x.p99)).toFixed(2)} ms, CPU ${median(cpuUs[i]).toFixed(1)} us/request`);
      }
      console.log(`  ${`ratio to checks off (median of ${ROUNDS} rounds)`.padEnd(46)} throughput  CPU per request (off/x)`);
      console.log(`  ${'checks on (goal >= 0.95x)'.padEnd(46)} ${ratio(ON_).toFixed(2)}x       ${cpuRatio(ON_).toFixed(2)}x`);
      console.log(`  ${'control, identical to off (the noise floor)'.padEnd(46)} ${ratio(CONTROL).toFixed(2)}x       ${cpuRatio(CONTROL).toFixed(2)}x`);
      const heapRatio = median(samples[ON_].map((s, r) => s.rps / samples[DEFAULT_HEAP][r].rps));
      console.log(`  ${'young generation 2 x 8 MiB / V8 default (goal >= 0.95x)'.padEnd(46)} ${heapRatio.toFixed(2)}x       ${(median(cpuUs[DEFAULT_HEAP]) / median(cpuUs[ON_])).toFixed(2)}x`);
    }
    for (const a of agents) a.destroy();
  } finally {
    await Promise.all(proxies.map((p) => p.proxy.stop()));
    await ns.cleanup();
  }
  console.log(`\nper-request certificate check (expiry, CA still trusted), in-process: ${checkCostNs(certs.ca).toFixed(0)} ns per request`);
  console.log(`per-request rate-limit hook (@fastify/rate-limit + token bucket), in-process: ${await rateLimitCostNs()} ns per request`);
}

/** Times the rate-limit onRequest hook as the proxy registers it (a read under its limit), median of 7 rounds. */
async function rateLimitCostNs(): Promise<string> {
  const app: FastifyInstance = Fastify();
  app.decorateRequest('clientCN', '');
  registerRateLimits(app, { read: { rps: 1_000_000, burst: 1_000_000 }, write: { rps: 5, burst: 20 } });
  await app.ready();
  // Fastify keeps hooks under a private symbol: this is a bench, not an API.
  const kHooks = Object.getOwnPropertySymbols(app).find((sym) => sym.description === 'fastify.hooks')!;
  const hooks = (app as unknown as Record<symbol, { onRequest: Array<(req: unknown, reply: unknown) => Promise<void>> }>)[kHooks].onRequest;
  const hook = hooks[hooks.length - 1];
  const req = { method: 'GET', clientCN: 'bench', routeOptions: { config: {} } };
  const N = 100_000;
  const rounds: number[] = [];
  for (let r = 0; r < 7; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) await hook(req, {});
    rounds.push(Number(process.hrtime.bigint() - t0) / N);
  }
  await app.close();
  return median(rounds).toFixed(0);
}

/** Times TlsGuard.check on a pinned connection, the work every request does. */
function checkCostNs(caPem: string): number {
  const guard = new TlsGuard({ refusals: new RefusalLog(pino({ level: 'silent' })), trust: new TrustedCas(caPem), limits: DEFAULT_CONNECTION_LIMITS });
  const socket = {} as TLSSocket;
  // Pin a connection the way the handshake does (the method is private: this is a bench).
  (guard as unknown as { pinned: WeakMap<TLSSocket, unknown> }).pinned.set(socket, {
    identity: { commonName: 'bench', fingerprint256: 'AA' }, openedAtMs: Date.now(), notAfterMs: Date.now() + 3_600_000, trustedInGeneration: -1, chain: ['AA', new X509Certificate(caPem).fingerprint256],
  });
  const N = 1_000_000;
  for (let i = 0; i < 10_000; i++) guard.check(socket);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) guard.check(socket);
  return Number(process.hrtime.bigint() - t0) / N;
}

main().catch((err) => { console.error(err); process.exit(1); });
