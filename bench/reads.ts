/**
 * Small shared pieces of the read benches (bench/hardening.ts uses them): a namespace of
 * Deployments created through kubectl, and a fixed-count load on top of bench/lib.ts's
 * request sender. The read cases themselves moved into bench/report.ts.
 */
import type https from 'node:https';
import { TestNamespace, kubectlOk } from '../test/helpers/cluster.js';
import { median, once, percentile } from './lib.js';

export { median };
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
  const start = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next++ < requests) latencies.push(await once({ url: url.href, agent, headers }));
  }));
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return { rps: requests / seconds, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) };
}

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
