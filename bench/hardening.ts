/**
 * Benchmark for issue 8: cached-read throughput of the proxy with its per-request
 * hardening switched on (per-client rate limits counting every request, connection-age
 * bookkeeping) against the same build with them switched off by flags, in the same run,
 * interleaved. The per-request certificate check (expiry, CA still trusted) cannot be
 * switched off, so it is timed on its own, in-process, and reported per request.
 *
 * Usage (via `make bench`): tsx bench/hardening.ts  — expects CLUSTER_DIR with a running
 * control plane and bin/api built.
 */
import https from 'node:https';
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { pino } from 'pino';
import { makeCertFixture } from '../test/helpers/certs.js';
import { startProxy } from '../test/helpers/proxy-process.js';
import { CONCURRENCY, benchNamespace, load, median, type Sample } from './reads.js';
import { TlsGuard, DEFAULT_CONNECTION_LIMITS } from '../src/tls/guard.js';
import { RefusalLog } from '../src/tls/refusal-log.js';
import { TrustedCas } from '../src/tls/trust.js';

/**
 * Many short rounds, paired: each round runs both proxies back to back (alternating which
 * goes first) and yields one on/off ratio; the median ratio is robust to the load of
 * other processes drifting during the run, which longer rounds would pick up unevenly.
 */
const ROUNDS = Number(process.env.HARDENING_BENCH_ROUNDS ?? 15);
const REQUESTS = Number(process.env.HARDENING_BENCH_REQUESTS ?? 500);

/** Limits so high they never refuse: the limiter runs on every request, as in production. */
const ON = ['--rate-limit-read-rps', '1000000', '--rate-limit-read-burst', '1000000', '--max-connection-age-seconds', '600'];
const OFF = ['--rate-limit-read-rps', '0', '--rate-limit-write-rps', '0', '--max-connection-age-seconds', '0'];

async function main(): Promise<void> {
  const ns = await benchNamespace();
  const certs = await makeCertFixture();
  const on = await startProxy({ certs, args: ON });
  const off = await startProxy({ certs, args: OFF });
  try {
    const agents = [on, off].map(() => new https.Agent({ keepAlive: true, ca: certs.ca, cert: certs.client.cert, key: certs.client.key }));
    const cases = [
      { name: 'get one Deployment\'s replicas', path: `/deployments/${ns.name}/d7/replicas` },
      { name: `list a namespace`, path: `/deployments?namespace=${ns.name}` },
    ];
    console.log(`\nk8s-api-proxy hardening benchmark: ${ROUNDS} paired rounds x ${REQUESTS} cached reads per proxy, concurrency ${CONCURRENCY}, TLS keep-alive`);
    for (const c of cases) {
      const s: [Sample[], Sample[]] = [[], []];
      const ratios: number[] = [];
      for (let i = 0; i < 2; i++) await load(agents[i], new URL(c.path, [on, off][i].apiUrl), {}, REQUESTS); // warm-up
      for (let r = 0; r < ROUNDS; r++) {
        // Alternate which goes first, so warm-up and machine noise hit both alike.
        const order = r % 2 ? [1, 0] : [0, 1];
        for (const i of order) s[i].push(await load(agents[i], new URL(c.path, [on, off][i].apiUrl), {}, REQUESTS));
        ratios.push(s[0][r].rps / s[1][r].rps);
      }
      const [rOn, rOff] = s.map((xs) => median(xs.map((x) => x.rps)));
      console.log(`\n${c.name}`);
      console.log(`  checks off (--rate-limit-*-rps 0, --max-connection-age-seconds 0): ${rOff.toFixed(0)} req/s, p50 ${median(s[1].map((x) => x.p50)).toFixed(2)} ms, p99 ${median(s[1].map((x) => x.p99)).toFixed(2)} ms`);
      console.log(`  checks on (defaults, limits never reached):                         ${rOn.toFixed(0)} req/s, p50 ${median(s[0].map((x) => x.p50)).toFixed(2)} ms, p99 ${median(s[0].map((x) => x.p99)).toFixed(2)} ms`);
      console.log(`  ratio on/off throughput, median of ${ROUNDS} paired rounds: ${median(ratios).toFixed(2)}x (goal >= 0.95x; rounds range ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`);
    }
    for (const a of agents) a.destroy();
  } finally {
    await Promise.all([on.stop(), off.stop()]);
    await ns.cleanup();
  }
  console.log(`\nper-request certificate check (expiry, CA still trusted), in-process: ${checkCostNs(certs.ca).toFixed(0)} ns per request`);
}

/** Times TlsGuard.check on a pinned connection, the work every request does. */
function checkCostNs(caPem: string): number {
  const guard = new TlsGuard({ refusals: new RefusalLog(pino({ level: 'silent' })), trust: new TrustedCas(caPem), limits: DEFAULT_CONNECTION_LIMITS });
  const socket = {} as TLSSocket;
  // Pin a connection the way the handshake does (the method is private: this is a bench).
  (guard as unknown as { pinned: WeakMap<TLSSocket, unknown> }).pinned.set(socket, {
    identity: { commonName: 'bench', fingerprint256: 'AA' }, openedAtMs: Date.now(), notAfterMs: Date.now() + 3_600_000, chain: ['AA', new X509Certificate(caPem).fingerprint256],
  });
  const N = 1_000_000;
  for (let i = 0; i < 10_000; i++) guard.check(socket);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) guard.check(socket);
  return Number(process.hrtime.bigint() - t0) / N;
}

main().catch((err) => { console.error(err); process.exit(1); });
