/**
 * The benchmark toolkit every bench file shares (bench/report.ts, bench/scale.ts, and
 * the authorization and hardening benches): a keep-alive HTTPS load generator, a bare
 * Node TLS "floor" server that sends given bytes, interleaved rounds, and a table
 * printer that reports each variant as a ratio to the baseline measured in the same run.
 *
 * Why ratios: the machine is shared and noisy, so an absolute req/s means little; the
 * same noise hits every variant of a case alike because their rounds are interleaved.
 */
import http from 'node:http';
import https from 'node:https';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Proxy flags that keep the per-client rate limits running (as in production) but out of a benchmark's reach. */
export const UNLIMITED = ['--rate-limit-read-rps', '1000000', '--rate-limit-read-burst', '1000000', '--rate-limit-write-rps', '1000000', '--rate-limit-write-burst', '1000000'];

/** One measured round. */
export interface Sample {
  /** Completed requests per second. */
  rps: number;
  /** Latency percentiles, milliseconds. */
  p50: number;
  p99: number;
  /** Requests completed in the round. */
  requests: number;
  /** Requests that failed (transport error or unexpected status); not in the latencies. */
  errors: number;
  /** CPU time the server processes spent per completed request, microseconds (NaN without `serverPids`). */
  cpuUsPerRequest: number;
}

/** What to send; the answer's body is read and discarded. */
export interface LoadTarget {
  /** `https://…` or `http://…` (e.g. the plain-HTTP probe listener). */
  url: string;
  agent: http.Agent;
  method?: string;
  headers?: Record<string, string>;
  /** A fresh body per request (e.g. alternating replicas so every PUT changes something). */
  body?: (i: number) => string;
  /** Statuses that count as success (default 200). */
  okStatus?: number[];
  /** Server processes whose CPU time is charged to these requests (e.g. kube-apiserver and etcd). */
  serverPids?: number[];
}

/** Options of {@link load}. */
export interface LoadOptions {
  /** Requests in flight at once (each on its own keep-alive connection). */
  connections: number;
  /** Length of the round, milliseconds. */
  durationMs: number;
  /** Requests before measuring, to open connections and warm caches. */
  warmup?: number;
}

/** The value at quantile `q` (0–1) of ascending `sorted`. */
export function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];
}

/** The median of `xs`. */
export const median = (xs: number[]): number => percentile([...xs].sort((a, b) => a - b), 0.5);

/** Sends one request and resolves with its latency in milliseconds. @throws on a transport error or an unexpected status. */
export function once(t: LoadTarget, i = 0): Promise<number> {
  const t0 = process.hrtime.bigint();
  const payload = t.body?.(i);
  return new Promise((resolve, reject) => {
    const req = (t.url.startsWith('https:') ? https : http).request(t.url, {
      agent: t.agent, method: t.method ?? 'GET',
      headers: { ...t.headers, ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } : {}) },
    }, (res) => {
      res.resume();
      res.on('end', () => {
        if (!(t.okStatus ?? [200]).includes(res.statusCode ?? 0)) return reject(new Error(`${t.method ?? 'GET'} ${t.url}: HTTP ${res.statusCode}`));
        resolve(Number(process.hrtime.bigint() - t0) / 1e6);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** Closed-loop load: `connections` workers each send the next request as soon as the previous answered, for `durationMs`. */
export async function load(t: LoadTarget, o: LoadOptions): Promise<Sample> {
  let i = 0;
  for (let w = 0; w < (o.warmup ?? o.connections); w++) await once(t, i++);
  const latencies: number[] = [];
  let errors = 0;
  const cpu0 = cpuMs(t.serverPids);
  const start = performance.now();
  const end = start + o.durationMs;
  await Promise.all(Array.from({ length: o.connections }, async () => {
    while (performance.now() < end) {
      try {
        latencies.push(await once(t, i++));
      } catch {
        errors++;
      }
    }
  }));
  const seconds = (performance.now() - start) / 1000;
  const cpuUsPerRequest = ((cpuMs(t.serverPids) - cpu0) * 1000) / latencies.length;
  latencies.sort((a, b) => a - b);
  return { rps: latencies.length / seconds, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), requests: latencies.length, errors, cpuUsPerRequest };
}

const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** User + system CPU time of `pids` so far, milliseconds (NaN when none are given); from /proc/PID/stat. */
export function cpuMs(pids?: number[]): number {
  if (!pids || pids.length === 0) return NaN;
  let ticks = 0;
  for (const pid of pids) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
  }
  return (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
}

/**
 * CPU time all threads of process `pid` have run so far, nanoseconds (the first field of
 * Linux's /proc/PID/task/TID/schedstat; /proc/PID/stat counts 10 ms ticks, too coarse for
 * short rounds). Threads that have exited are not counted: Node's (main, GC and libuv)
 * threads live as long as the process.
 */
export function threadCpuNs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread exited between the listing and the read
    }
  }
  return ns;
}

/**
 * GETs plain-HTTP `url` every `intervalMs` (never two at once) for `durationMs`, from a
 * process of its own (bench/probe.mjs) so that this process's load generation cannot
 * delay the probes; resolves with the sorted latencies, milliseconds.
 */
export function probe(url: string, intervalMs: number, durationMs: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(import.meta.dirname, 'probe.mjs'), url, String(intervalMs), String(durationMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => { out += c; });
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as number[]) : reject(new Error(`probe exited with ${code}`))));
  });
}

/** A variant of a case: a name and how to run one round of it. */
export interface Variant {
  name: string;
  round: () => Promise<Sample>;
}

/** The medians of a variant's rounds: a {@link Sample} of medians, named. */
export type VariantResult = Sample & { name: string };

/** Runs `rounds` rounds of every variant, interleaved (A B C A B C…), and returns each variant's medians. */
export async function interleave(variants: Variant[], rounds: number): Promise<VariantResult[]> {
  const samples = variants.map(() => [] as Sample[]);
  for (let r = 0; r < rounds; r++) {
    for (const [i, v] of variants.entries()) samples[i].push(await v.round());
  }
  return variants.map((v, i) => ({
    name: v.name,
    rps: median(samples[i].map((s) => s.rps)),
    p50: median(samples[i].map((s) => s.p50)),
    p99: median(samples[i].map((s) => s.p99)),
    requests: samples[i].reduce((n, s) => n + s.requests, 0),
    errors: samples[i].reduce((n, s) => n + s.errors, 0),
    cpuUsPerRequest: median(samples[i].map((s) => s.cpuUsPerRequest)),
  }));
}

/** One row of the report: a measured variant and how it compares to the case's baseline. */
export interface ReportRow {
  case: string;
  variant: string;
  result: VariantResult;
  /** The variant the ratios are taken against (e.g. the bare-TLS floor). */
  baseline?: VariantResult;
  /** What the issue asks for, printed as is (e.g. `≥ 0.8× floor req/s`). */
  target?: string;
}

const fmt = (n: number, digits = 1): string => (Number.isFinite(n) ? n.toFixed(digits) : '–');

/** Renders rows as a Markdown table: req/s, p50, p99, and their ratios to the baseline. */
export function formatTable(rows: ReportRow[]): string {
  const lines = [
    '| case | variant | req/s | p50 ms | p99 ms | server CPU µs/req | req/s ÷ baseline | p50 ÷ baseline | p99 ÷ baseline | CPU/req ÷ baseline | target |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    const b = r.baseline ?? r.result;
    const same = b === r.result;
    const variant = r.result.errors > 0 ? `${r.variant} (${r.result.errors} failed of ${r.result.requests + r.result.errors})` : r.variant;
    const ratio = (x: number, y: number): string => (same ? '' : `${fmt(x / y, 2)}×`);
    lines.push(`| ${r.case} | ${variant} | ${fmt(r.result.rps, 0)} | ${fmt(r.result.p50, 2)} | ${fmt(r.result.p99, 2)} | ${fmt(r.result.cpuUsPerRequest, 0)} | ${same ? '(baseline)' : ratio(r.result.rps, b.rps)} | ${ratio(r.result.p50, b.p50)} | ${ratio(r.result.p99, b.p99)} | ${ratio(r.result.cpuUsPerRequest, b.cpuUsPerRequest)} | ${r.target ?? ''} |`);
  }
  return lines.join('\n');
}

/** Client TLS material for the floor server and the proxy. */
export interface TlsFiles {
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
}

/** A running floor server. */
export interface FloorServer {
  url: string;
  pid: number;
  /** Replaces the bytes (and headers) it answers with. */
  serve(body: Buffer, headers?: Record<string, string>): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts the floor: a bare Node.js HTTPS server in its own process, requiring a client
 * certificate from the same CA as the proxy, answering every request with the given
 * bytes. It does what the proxy must do at the least (TLS, HTTP parsing, one write), so
 * "proxy ÷ floor" is the cost of everything else.
 */
export async function startFloor(tls: TlsFiles): Promise<FloorServer> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-floor-'));
  const child = spawn(process.execPath, [join(import.meta.dirname, 'floor-server.mjs'), tls.serverCertFile, tls.serverKeyFile, tls.caFile, dir], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = lineReader(child);
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`floor server exited with ${code}`))));
  exited.catch(() => undefined);
  const port = Number(await Promise.race([lines(), exited]));
  let n = 0;
  return {
    url: `https://localhost:${port}`,
    pid: child.pid!,
    serve: async (body, headers = {}) => {
      const file = join(dir, `body-${n++}`);
      writeFileSync(file, body);
      writeFileSync(`${file}.headers`, JSON.stringify(headers));
      child.stdin!.write(`${file}\n`);
      await lines();
    },
    stop: async () => {
      child.kill();
      await new Promise((r) => child.once('exit', r));
    },
  };
}

/** A running write floor (bench/relay-server.mjs). */
export interface RelayServer {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * Starts the write floor: a bare Node.js HTTPS server in its own process, requiring a
 * client certificate from the same CA as the proxy, relaying each request unchanged to
 * `upstream` (kube-apiserver) over one keep-alive connection with `token`. "proxy ÷
 * relay" is the cost of everything the proxy does beyond one extra TLS hop.
 */
export async function startRelay(tls: TlsFiles, upstream: { server: string; ca: Buffer; token: string }): Promise<RelayServer> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-relay-'));
  const caFile = join(dir, 'upstream-ca.crt');
  writeFileSync(caFile, upstream.ca);
  const child = spawn(process.execPath, [join(import.meta.dirname, 'relay-server.mjs'), tls.serverCertFile, tls.serverKeyFile, tls.caFile, upstream.server, caFile], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = lineReader(child);
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`relay server exited with ${code}`))));
  exited.catch(() => undefined);
  child.stdin!.write(`${upstream.token}\n`);
  const port = Number(await Promise.race([lines(), exited]));
  return {
    url: `https://localhost:${port}`,
    pid: child.pid!,
    stop: async () => {
      child.kill();
      await new Promise((r) => child.once('exit', r));
    },
  };
}

function lineReader(child: ChildProcess): () => Promise<string> {
  let buf = '';
  const waiting: Array<(l: string) => void> = [];
  const ready: string[] = [];
  child.stdout!.setEncoding('utf8').on('data', (c: string) => {
    buf += c;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiting.shift();
      if (w) w(line);
      else ready.push(line);
    }
  });
  return () => new Promise((resolve) => {
    const l = ready.shift();
    if (l !== undefined) resolve(l);
    else waiting.push(resolve);
  });
}

/** Resident set size of process `pid` in MiB (Linux `/proc/PID/status` VmRSS). */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/**
 * Where a proxy's memory is, in MiB, from its own `/metrics` (prom-client's default
 * Node.js metrics): V8 heap used and reserved, the heap spaces' reserved sizes, and
 * memory outside the heap (`external`: Buffers, TLS). Empty when metrics are off.
 */
export async function memoryBreakdown(healthUrl: string): Promise<Record<string, number>> {
  const res = await fetch(`${healthUrl}/metrics`);
  if (!res.ok) return {};
  const text = await res.text();
  const out: Record<string, number> = {};
  const mib = (v: string): number => Math.round(Number(v) / 1024 / 102.4) / 10;
  for (const line of text.split('\n')) {
    let m = /^nodejs_(heap_size_used|heap_size_total|external_memory)_bytes (\S+)/.exec(line);
    if (m) out[m[1]] = mib(m[2]);
    m = /^nodejs_heap_space_size_total_bytes\{space="(\w+)"\} (\S+)/.exec(line);
    if (m && Number(m[2]) > 1024 * 1024) out[m[1]] = mib(m[2]);
  }
  return out;
}

/** `k=v` pairs of {@link memoryBreakdown}, for a table cell. */
export function formatBreakdown(b: Record<string, number>): string {
  return Object.entries(b).map(([k, v]) => `${k} ${v}`).join(', ');
}

/** Fetches `url` once and returns status, headers and body bytes. */
export function fetchBytes(url: string, agent: https.Agent, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    https.get(url, { agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers as Record<string, string>, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** Runs `fn` over `items` with at most `concurrency` in flight. */
export async function pool<T>(items: T[], concurrency: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  }));
}
