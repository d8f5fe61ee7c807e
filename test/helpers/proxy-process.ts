import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, PROXY_KUBECONFIG } from './cluster.js';
import type { CertFixture } from './certs.js';
import { call, type CallOptions, type CallResult } from './https.js';

const BIN = join(ROOT, 'bin/api');

/**
 * The Node.js flags of `bin`'s first line (`#!/usr/bin/env -S node FLAG…`, written by
 * scripts/build.mjs), so a test that runs it with the test's own Node.js binary starts
 * it as `./bin/api` and the container image do.
 * @throws Error when the first line is not of that form.
 */
export function shebangFlags(bin = BIN): string[] {
  const first = readFileSync(bin, 'utf8').slice(0, 300).split('\n', 1)[0];
  const m = /^#!\/usr\/bin\/env(?: -S)? node((?: --\S+)*)$/.exec(first);
  if (!m) throw new Error(`${bin}: unexpected first line ${JSON.stringify(first)}`);
  return m[1].trim().split(' ').filter(Boolean);
}

/** A running `bin/api` child process. */
export interface ProxyProcess {
  apiUrl: string;
  healthUrl: string;
  child: ChildProcess;
  /** Every JSON log line so far. */
  logs: Array<Record<string, unknown>>;
  /** Raw stderr so far. */
  stderr(): string;
  /** mTLS request with the fixture's valid client certificate (or `opts.tls`). */
  request(path: string, opts?: CallOptions): Promise<CallResult>;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
  /** Sends `signal` (unless already exited) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Options of {@link startProxy}. */
export interface StartOptions {
  certs: CertFixture;
  kubeconfig?: string;
  /** Extra flags. */
  args?: string[];
  /** Replaces the environment (default: a copy without KUBECONFIG). */
  env?: NodeJS.ProcessEnv;
  /** Resolve once listening, without waiting for /readyz (default: wait for ready). */
  waitReady?: boolean;
  /** How long to wait for /readyz, milliseconds (default 15000). */
  readyTimeoutMs?: number;
  /** Node.js flags before bin/api (default: those of its first line, {@link shebangFlags}); benchmarks compare others. */
  nodeFlags?: string[];
  /** Keep parsing and storing log lines after 'listening' (default true; benchmarks turn it off so the client's CPU goes to load). */
  keepLogs?: boolean;
}

/** Starts the built proxy on free loopback ports; it holds only `kubeconfig` (default: the proxy ServiceAccount's). */
export async function startProxy(opts: StartOptions): Promise<ProxyProcess> {
  if (!existsSync(BIN)) throw new Error(`${BIN} missing: run 'make build' first`);
  const args = [
    ...(opts.kubeconfig === '' ? [] : ['--kubeconfig', opts.kubeconfig ?? PROXY_KUBECONFIG]),
    '--listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0',
    '--tls-cert', opts.certs.serverCertFile, '--tls-key', opts.certs.serverKeyFile, '--client-ca', opts.certs.caFile,
    '--log-level', 'debug',
    ...(opts.args ?? []),
  ];
  const env = opts.env ?? Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'KUBECONFIG'));
  const child = spawn(process.execPath, [...(opts.nodeFlags ?? shebangFlags()), BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  let buf = '';
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const listening = new Promise<{ api: string; health: string }>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const rec = JSON.parse(line) as Record<string, unknown>;
          logs.push(rec);
          if (rec.msg === 'listening') {
            resolve({ api: String(rec.api), health: String(rec.health) });
            if (opts.keepLogs === false) {
              child.stdout!.removeAllListeners('data').resume();
              return;
            }
          }
        } catch {
          stderr += `${line}\n`;
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
    void exited.then((code) => reject(new Error(`proxy exited with ${code} before listening:\n${stderr}`)));
  });
  const { api, health } = await listening;
  const apiUrl = api.replace('127.0.0.1', 'localhost');
  const proxy: ProxyProcess = {
    apiUrl, healthUrl: health, child, logs, exited,
    stderr: () => stderr,
    request: (path, o = {}) => call(`${apiUrl}${path}`, { tls: { ca: opts.certs.ca, ...opts.certs.client }, ...o }),
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  if (opts.waitReady !== false) {
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
    for (;;) {
      const r = await call(`${health}/readyz`).catch(() => undefined);
      if (r?.status === 200) break;
      if (Date.now() > deadline) throw new Error(`proxy not ready after ${(opts.readyTimeoutMs ?? 15_000) / 1000} s: ${r?.text}\n${stderr}`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }
  return proxy;
}
