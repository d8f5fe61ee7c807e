/**
 * Benchmark for issue 7: cached-read throughput with per-client authorization on
 * (`--authorization=rbac`, default decision-cache TTLs, decisions warmed first) against
 * off (`--authorization=none`), two proxies in the same run. Like bench/hardening.ts:
 * many short paired rounds (alternating which goes first), one on/off ratio per round,
 * the median ratio reported, so load from other processes drifting during the run hits
 * both alike. The cost of a cached decision is also timed in-process, per request.
 * The client is in the demo group, bound to the scaler role by cluster.sh.
 *
 * Usage (via `make bench`): tsx bench/authz.ts  — expects CLUSTER_DIR with a running
 * control plane and bin/api built.
 */
import https from 'node:https';
import { makeCertFixture } from '../test/helpers/certs.js';
import { startProxy } from '../test/helpers/proxy-process.js';
import { CONCURRENCY, benchNamespace, load, median, type Sample } from './reads.js';
import { CachingAuthorizer } from '../src/authz/decision-cache.js';
import type { ResourceAttributes } from '../src/authz/authorizer.js';

const ROUNDS = Number(process.env.AUTHZ_BENCH_ROUNDS ?? 15);
const REQUESTS = Number(process.env.AUTHZ_BENCH_REQUESTS ?? 500);
/** What issue 7 asks of authorization's cost on warm cached reads. */
const TARGET_RATIO = 0.9;

async function main(): Promise<void> {
  const ns = await benchNamespace();
  const certs = await makeCertFixture();
  // Rate limits off on both: this measures authorization alone (bench/hardening.ts measures those).
  const NO_LIMITS = ['--rate-limit-read-rps', '0', '--rate-limit-write-rps', '0'];
  const on = await startProxy({ certs, args: NO_LIMITS });
  const off = await startProxy({ certs, args: [...NO_LIMITS, '--authorization=none'] });
  const proxies = [on, off];
  const agents = proxies.map(() => new https.Agent({ keepAlive: true, ca: certs.ca, cert: certs.client.cert, key: certs.client.key }));
  try {
    const cases = [
      { name: 'get one Deployment\'s replicas', path: `/deployments/${ns.name}/d7/replicas` },
      { name: 'list a namespace', path: `/deployments?namespace=${ns.name}` },
    ];
    console.log(`\nk8s-api-proxy authorization benchmark: ${ROUNDS} paired rounds x ${REQUESTS} cached reads per proxy, concurrency ${CONCURRENCY}, TLS keep-alive; decisions warm (default TTLs: at most one SubjectAccessReview per question per 10 s)`);
    for (const c of cases) {
      const s: [Sample[], Sample[]] = [[], []];
      const ratios: number[] = [];
      for (let i = 0; i < 2; i++) await load(agents[i], new URL(c.path, proxies[i].apiUrl), {}, REQUESTS); // warm-up: JIT and the decision
      for (let r = 0; r < ROUNDS; r++) {
        const order = r % 2 ? [1, 0] : [0, 1];
        for (const i of order) s[i].push(await load(agents[i], new URL(c.path, proxies[i].apiUrl), {}, REQUESTS));
        ratios.push(s[0][r].rps / s[1][r].rps);
      }
      const [rOn, rOff] = s.map((xs) => median(xs.map((x) => x.rps)));
      console.log(`\n${c.name}`);
      console.log(`  --authorization=none: ${rOff.toFixed(0)} req/s, p50 ${median(s[1].map((x) => x.p50)).toFixed(2)} ms, p99 ${median(s[1].map((x) => x.p99)).toFixed(2)} ms`);
      console.log(`  --authorization=rbac: ${rOn.toFixed(0)} req/s, p50 ${median(s[0].map((x) => x.p50)).toFixed(2)} ms, p99 ${median(s[0].map((x) => x.p99)).toFixed(2)} ms`);
      console.log(`  ratio rbac/none throughput, median of ${ROUNDS} paired rounds: ${median(ratios).toFixed(2)}x (target >= ${TARGET_RATIO}x; rounds range ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`);
    }
  } finally {
    for (const a of agents) a.destroy();
    await Promise.all([on.stop(), off.stop()]);
    await ns.cleanup();
  }
  console.log(`\ncached authorization decision, in-process: ${(await cachedDecisionNs()).toFixed(0)} ns per request`);
}

/** Times a decision-cache hit (awaited, as a request awaits it): the authorization work of a request with a warm decision. */
async function cachedDecisionNs(): Promise<number> {
  const cache = new CachingAuthorizer({ authorize: async () => ({ allowed: true, reason: '' }) }, { allowedTtlMs: 3_600_000, deniedTtlMs: 3_600_000 });
  const user = { username: 'ci-pipeline', groups: ['k8s-api-proxy-demo', 'system:authenticated'] };
  const attrs: ResourceAttributes = { verb: 'get', group: 'apps', resource: 'deployments', subresource: 'scale', namespace: 'shop', name: 'frontend' };
  const N = 200_000;
  for (let i = 0; i < 10_000; i++) await cache.authorize(user, attrs);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await cache.authorize(user, attrs);
  return Number(process.hrtime.bigint() - t0) / N;
}

main().catch((err) => { console.error(err); process.exit(1); });
