import https from 'node:https';
import http from 'node:http';
import { createInterface } from 'node:readline';
import type { KubeConfig } from '@kubernetes/client-node';
import { VERSION } from '../version.js';

/** Default bound on one non-watch request to the API server. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
const USER_AGENT = `k8s-api-proxy/${VERSION}`;
/** Upper bound on a response body we buffer (a list page of 500 Deployments fits well). */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** The API server answered with a non-2xx status; fields come from its `v1.Status` body. */
export class KubeStatusError extends Error {
  /** HTTP status (e.g. 404, 409, 410, 403). */
  readonly code: number;
  /** `Status.reason`, e.g. `NotFound`, `Conflict`, `Expired`; empty when the body was not a Status. */
  readonly reason: string;
  constructor(code: number, reason: string, message: string) {
    super(message);
    this.name = 'KubeStatusError';
    this.code = code;
    this.reason = reason;
  }
}

/** No HTTP answer: connection refused/reset, DNS, TLS failure. */
export class KubeUnreachableError extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, { cause });
    this.name = 'KubeUnreachableError';
  }
}

/** The request (or a watch's inactivity bound) ran out of time. */
export class KubeTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KubeTimeoutError';
  }
}

/** One line of a watch stream (https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes). */
export interface WatchEvent<T = unknown> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

/** Options of {@link KubeClient.request}. */
export interface RequestOptions {
  body?: unknown;
  /** Whole-request bound in milliseconds (default {@link DEFAULT_REQUEST_TIMEOUT_MS}). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Options of {@link KubeClient.watch}. */
export interface WatchOptions {
  /** Called for each decoded event, in order. A throw aborts the watch and rejects. */
  onEvent: (event: WatchEvent) => void;
  /** Abort when no byte arrived for this long (milliseconds). Bookmarks count as traffic. */
  inactivityMs: number;
  /** Bound on receiving the response headers (milliseconds). */
  connectTimeoutMs?: number;
  /** Called once the server accepted the watch (2xx headers received). */
  onOpen?: () => void;
  signal?: AbortSignal;
}

/**
 * A thin HTTPS transport to the API server that takes its endpoint, TLS material and
 * credentials from a client-node `KubeConfig`.
 *
 * Why not client-node's generated clients and `Watch`? In 2.0.1 as in 1.4 they open a
 * new connection for every request (a new dispatcher or agent each time; KCJ #2893:
 * sockets and file descriptors pile up) and have no default timeout; the informer's
 * watch sends no `timeoutSeconds`, so a half-open connection stalls it silently
 * (test/unit/client-node-gaps.test.ts pins these down). We keep
 * client-node for what it does well: kubeconfig parsing and every auth provider
 * (tokens, client certs, exec, OIDC, token files), applied per request so rotated
 * credentials are picked up.
 */
export class KubeClient {
  readonly server: URL;
  private readonly agent: https.Agent | http.Agent;
  private readonly kc: KubeConfig;

  private constructor(kc: KubeConfig, server: URL, agent: https.Agent | http.Agent) {
    this.kc = kc;
    this.server = server;
    this.agent = agent;
  }

  /**
   * Builds a client for the kubeconfig's current context; one keep-alive agent is shared.
   * @throws Error when the cluster has no server or its CA/cert files cannot be read.
   */
  static async create(kc: KubeConfig): Promise<KubeClient> {
    const cluster = kc.getCurrentCluster();
    if (!cluster?.server) throw new Error('kubeconfig: current context has no cluster server');
    const server = new URL(cluster.server);
    const tls: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(tls);
    const agent = server.protocol === 'http:'
      ? new http.Agent({ keepAlive: true })
      : new https.Agent({
        keepAlive: true,
        ca: tls.ca, cert: tls.cert, key: tls.key, pfx: tls.pfx, passphrase: tls.passphrase,
        servername: cluster.tlsServerName ?? tls.servername,
        rejectUnauthorized: cluster.skipTLSVerify ? false : (tls.rejectUnauthorized ?? true),
      });
    return new KubeClient(kc, server, agent);
  }

  /** Releases pooled sockets. */
  close(): void {
    this.agent.destroy();
  }

  private async headers(extra: Record<string, string>): Promise<Record<string, string>> {
    const opts: https.RequestOptions = { headers: {} };
    await this.kc.applyToHTTPSOptions(opts);
    const out: Record<string, string> = { accept: 'application/json', 'user-agent': USER_AGENT, ...extra };
    for (const [k, v] of Object.entries(opts.headers ?? {})) {
      if (v !== undefined) out[k] = String(v);
    }
    if (opts.auth) out.Authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
    return out;
  }

  private open(method: string, path: string, headers: Record<string, string>, signal?: AbortSignal): http.ClientRequest {
    const url = new URL(path, this.server);
    const mod = url.protocol === 'http:' ? http : https;
    return mod.request(url, { method, headers, agent: this.agent, signal });
  }

  /**
   * One request/response exchange: sends `payload`, collects the body as text.
   * A body over `maxBytes` fails the call (`overflow: 'fail'`) or is cut (`'truncate'`).
   * @throws KubeTimeoutError (after `timeoutMs`), KubeUnreachableError (no answer).
   */
  private async exchange(method: string, path: string, o: {
    headers: Record<string, string>; payload?: string; timeoutMs: number; signal?: AbortSignal; maxBytes: number; overflow: 'fail' | 'truncate';
  }): Promise<{ status: number; text: string }> {
    const timeout = AbortSignal.timeout(o.timeoutMs);
    const signal = o.signal ? AbortSignal.any([o.signal, timeout]) : timeout;
    const what = `${method} ${path}`;
    return new Promise((resolve, reject) => {
      const req = this.open(method, path, o.headers, signal);
      req.on('error', (err) => reject(translateError(err, timeout, what, o.timeoutMs)));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          if (size + c.length > o.maxBytes) {
            if (o.overflow === 'fail') return void req.destroy(new Error(`response to ${what} exceeds ${o.maxBytes} bytes`));
            c = c.subarray(0, Math.max(0, o.maxBytes - size));
          }
          size += c.length;
          chunks.push(c);
        });
        res.on('error', (err) => reject(translateError(err, timeout, what, o.timeoutMs)));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      });
      req.end(o.payload);
    });
  }

  /**
   * Sends one request and parses the JSON answer.
   * @returns the decoded 2xx body.
   * @throws KubeStatusError (non-2xx), KubeTimeoutError (after `timeoutMs`), KubeUnreachableError (no answer).
   */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers = await this.headers(payload === undefined ? {} : { 'content-type': 'application/json' });
    const { status, text } = await this.exchange(method, path, {
      headers, payload, timeoutMs: options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, signal: options.signal,
      maxBytes: MAX_RESPONSE_BYTES, overflow: 'fail',
    });
    if (status < 200 || status >= 300) throw statusError(status, text, `${method} ${path}`);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new KubeStatusError(502, '', `${method} ${path}: API server sent invalid JSON`);
    }
  }

  /**
   * Fetches a non-resource path as text (e.g. `/readyz?verbose`), keeping at most 64 KiB.
   * @returns `{status, body}` for any HTTP status.
   * @throws KubeTimeoutError, KubeUnreachableError.
   */
  async getText(path: string, timeoutMs: number): Promise<{ status: number; body: string }> {
    const headers = await this.headers({ accept: 'text/plain' });
    const { status, text } = await this.exchange('GET', path, { headers, timeoutMs, maxBytes: 65_536, overflow: 'truncate' });
    return { status, body: text };
  }

  /**
   * Streams a watch. Resolves when the server ends the stream normally (its
   * `timeoutSeconds` ran out); rejects on a non-2xx answer, a transport error, an
   * `onEvent` throw, or `inactivityMs` without traffic (KubeTimeoutError). An ERROR
   * event is passed to `onEvent` like any other.
   */
  async watch(path: string, options: WatchOptions): Promise<void> {
    const headers = await this.headers({});
    const local = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, local.signal]) : local.signal;
    let stalled = false;
    let eventError: unknown;
    let timer: NodeJS.Timeout | undefined;
    const arm = (ms: number): void => {
      clearTimeout(timer);
      timer = setTimeout(() => { stalled = true; local.abort(); }, ms);
    };
    arm(options.connectTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS);
    try {
      await new Promise<void>((resolve, reject) => {
        const req = this.open('GET', path, headers, signal);
        const fail = (err: unknown): void => {
          if (eventError !== undefined) reject(eventError);
          else if (stalled) reject(new KubeTimeoutError(`watch ${path}: no data for ${options.inactivityMs} ms`));
          else reject(translateError(err as Error, undefined, `watch ${path}`, 0));
        };
        req.on('error', fail);
        req.on('response', (res) => {
          const status = res.statusCode ?? 0;
          if (status < 200 || status >= 300) {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => { text += c; });
            res.on('end', () => reject(statusError(status, text, `watch ${path}`)));
            res.on('error', fail);
            return;
          }
          arm(options.inactivityMs);
          options.onOpen?.();
          res.on('data', () => arm(options.inactivityMs));
          res.on('error', fail);
          const lines = createInterface({ input: res, crlfDelay: Infinity });
          // readline re-emits a stream error on the interface; unhandled, it would kill the process.
          lines.on('error', fail);
          lines.on('line', (line) => {
            if (line.trim() === '') return;
            if (eventError !== undefined) return;
            try {
              options.onEvent(JSON.parse(line) as WatchEvent);
            } catch (err) {
              eventError = err;
              fail(err);
              lines.close();
              req.destroy();
            }
          });
          lines.on('close', () => { if (res.complete && eventError === undefined) resolve(); });
          res.on('close', () => { if (!res.complete) fail(new Error('watch stream closed early')); });
        });
        req.end();
      });
    } finally {
      clearTimeout(timer);
    }
  }
}

function statusError(code: number, text: string, what: string): KubeStatusError {
  try {
    const s = JSON.parse(text) as { kind?: string; reason?: string; message?: string };
    if (s.kind === 'Status') return new KubeStatusError(code, s.reason ?? '', `${what}: ${s.message ?? `HTTP ${code}`}`);
  } catch {
    // not a Status body: fall through
  }
  return new KubeStatusError(code, '', `${what}: HTTP ${code}${text ? `: ${text.slice(0, 200)}` : ''}`);
}

function translateError(err: Error, timeout: AbortSignal | undefined, what: string, timeoutMs: number): Error {
  if (err instanceof KubeStatusError) return err;
  if (timeout?.aborted) return new KubeTimeoutError(`${what}: no answer within ${timeoutMs} ms`);
  if (err.name === 'AbortError') return err;
  const code = (err as NodeJS.ErrnoException).code;
  return new KubeUnreachableError(`${what}: ${code ?? err.message}`, err);
}
