import { StringDecoder } from 'node:string_decoder';
import https from 'node:https';
import http from 'node:http';
import { checkServerIdentity as checkTlsIdentity, type PeerCertificate } from 'node:tls';
import { createInterface } from 'node:readline';
import type { Cluster, KubeConfig } from '@kubernetes/client-node';
import { HttpProxyAgent, HttpsProxyAgent } from 'hpagent';
import { SocksProxyAgent, type SocksProxyAgentOptions } from 'socks-proxy-agent';
import { VERSION } from '../version.js';
import { NOOP_UPSTREAM_RECORDER, timedCall, type UpstreamRecorder } from './kube-metrics.js';
import type { Impersonation } from './kubeconfig.js';

/** Default bound on one non-watch request to the API server. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
const USER_AGENT = `k8s-api-proxy/${VERSION}`;
/** Upper bound on a response body we buffer (a list page of 500 Deployments fits well). */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** One `Status.details.causes` entry: which field was wrong and why (e.g. `spec.replicas`). */
export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

/** The API server answered with a non-2xx status; fields come from its `v1.Status` body. */
export class KubeStatusError extends Error {
  /** HTTP status (e.g. 404, 409, 410, 403). */
  readonly code: number;
  /** `Status.reason`, e.g. `NotFound`, `Conflict`, `Expired`; empty when the body was not a Status. */
  readonly reason: string;
  /** `Status.message` as the API server wrote it (for users; may name the caller); empty when none. */
  readonly statusMessage: string;
  /** `Status.details.causes`, empty when none. */
  readonly causes: StatusCause[];
  constructor(code: number, reason: string, message: string, status: { message?: string; causes?: StatusCause[] } = {}) {
    super(message);
    this.name = 'KubeStatusError';
    this.code = code;
    this.reason = reason;
    this.statusMessage = status.message ?? '';
    this.causes = status.causes ?? [];
  }
}

/** No HTTP answer: connection refused/reset, DNS, TLS failure. */
export class KubeUnreachableError extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, { cause });
    this.name = 'KubeUnreachableError';
  }
}

/** The answer was larger than the transport buffers ({@link MAX_RESPONSE_BYTES}); a list caller can ask for smaller pages. */
export class KubeResponseTooLargeError extends Error {
  /** The bound that was exceeded, bytes. */
  readonly maxBytes: number;
  constructor(message: string, maxBytes: number) {
    super(message);
    this.name = 'KubeResponseTooLargeError';
    this.maxBytes = maxBytes;
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
  private agent: http.Agent;
  private material: TlsMaterial;
  private readonly kc: KubeConfig;
  private readonly cluster: Cluster;
  private readonly impersonate?: Impersonation;
  private upstream: UpstreamRecorder = NOOP_UPSTREAM_RECORDER;

  private constructor(kc: KubeConfig, cluster: Cluster, material: TlsMaterial, impersonate?: Impersonation) {
    this.kc = kc;
    this.cluster = cluster;
    this.server = new URL(cluster.server);
    this.material = material;
    this.agent = makeAgent(this.server, cluster, material);
    this.impersonate = impersonate;
  }

  /**
   * Builds a client for the kubeconfig's current context: one keep-alive agent, through
   * `proxy-url` when set (HTTP CONNECT over http or https via hpagent, SOCKS5 via
   * socks-proxy-agent, as kubectl), with the cluster's CA, `tls-server-name` and
   * `insecure-skip-tls-verify`, the user's client certificate, and `impersonate`.
   * `upstream` records every call (verb, status, duration).
   * @throws Error when the cluster has no server or its CA/cert files cannot be read.
   */
  static async create(kc: KubeConfig, options: { impersonate?: Impersonation; upstream?: UpstreamRecorder } = {}): Promise<KubeClient> {
    const cluster = kc.getCurrentCluster();
    if (!cluster?.server) throw new Error('kubeconfig: current context has no cluster server');
    const opts: https.RequestOptions = { headers: {} };
    await kc.applyToHTTPSOptions(opts);
    const client = new KubeClient(kc, cluster, tlsMaterial(opts), options.impersonate);
    if (options.upstream) client.upstream = options.upstream;
    return client;
  }

  /** Releases pooled sockets. */
  close(): void {
    this.agent.destroy();
  }

  /**
   * Credentials and TLS material for one request, applied by client-node from the
   * kubeconfig each time, so a rotated token file, client certificate, key or CA file
   * (or an exec plugin's new certificate) is used from the next request on: when the
   * TLS material changed, a new agent replaces the pooled one.
   */
  private async prepare(extra: Record<string, string>): Promise<{ headers: Record<string, string | string[]>; agent: http.Agent }> {
    const opts: https.RequestOptions = { headers: {} };
    await this.kc.applyToHTTPSOptions(opts);
    const out: Record<string, string | string[]> = { accept: 'application/json', 'user-agent': USER_AGENT, ...extra };
    for (const [k, v] of Object.entries(opts.headers ?? {})) {
      if (v !== undefined) out[k] = String(v);
    }
    if (opts.auth) out.Authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
    const imp = this.impersonate;
    if (imp) {
      out['Impersonate-User'] = imp.user;
      if (imp.uid) out['Impersonate-Uid'] = imp.uid;
      if (imp.groups.length > 0) out['Impersonate-Group'] = imp.groups;
      for (const [key, values] of Object.entries(imp.extra)) out[`Impersonate-Extra-${encodeURIComponent(key)}`] = values;
    }
    const material = tlsMaterial(opts);
    if (!sameMaterial(material, this.material)) {
      retire(this.agent);
      this.material = material;
      this.agent = makeAgent(this.server, this.cluster, material);
    }
    return { headers: out, agent: this.agent };
  }

  /** The URL of `path` (with its query) under the server URL, keeping the server's path prefix as kubectl does. */
  url(path: string): URL {
    const u = new URL(this.server);
    const q = path.indexOf('?');
    u.pathname = u.pathname.replace(/\/+$/, '') + (q < 0 ? path : path.slice(0, q));
    u.search = q < 0 ? '' : path.slice(q);
    return u;
  }

  private open(method: string, path: string, prepared: { headers: Record<string, string | string[]>; agent: http.Agent }, signal?: AbortSignal): http.ClientRequest {
    const url = this.url(path);
    const mod = url.protocol === 'http:' ? http : https;
    return mod.request(url, { method, headers: prepared.headers, agent: prepared.agent, signal });
  }

  /**
   * One request/response exchange: sends `payload`, collects the body as text.
   * A body over `maxBytes` fails the call (`overflow: 'fail'`) or is cut (`'truncate'`).
   * @throws KubeTimeoutError (after `timeoutMs`), KubeUnreachableError (no answer).
   */
  private async exchange(method: string, path: string, o: {
    prepared: { headers: Record<string, string | string[]>; agent: http.Agent }; payload?: string; timeoutMs: number; signal?: AbortSignal; maxBytes: number; overflow: 'fail' | 'truncate';
  }): Promise<{ status: number; text: string }> {
    const timeout = AbortSignal.timeout(o.timeoutMs);
    const signal = o.signal ? AbortSignal.any([o.signal, timeout]) : timeout;
    const what = `${method} ${path}`;
    return timedCall(this.upstream, method, new Promise((resolve, reject) => {
      const req = this.open(method, path, o.prepared, signal);
      req.on('error', (err) => reject(translateError(err, timeout, what, o.timeoutMs)));
      req.on('response', (res) => {
        // Decoded chunk by chunk into one string: a list page of several MiB never also
        // exists as one concatenated Buffer. Those Buffers of a 50,000-Deployment first
        // list stayed resident in malloc's heap (README, Performance).
        const decoder = new StringDecoder('utf8');
        let text = '';
        let size = 0;
        res.on('data', (c: Buffer) => {
          if (size + c.length > o.maxBytes) {
            if (o.overflow === 'fail') return void req.destroy(new KubeResponseTooLargeError(`response to ${what} exceeds ${o.maxBytes} bytes`, o.maxBytes));
            c = c.subarray(0, Math.max(0, o.maxBytes - size));
          }
          size += c.length;
          text += decoder.write(c);
        });
        res.on('error', (err) => reject(translateError(err, timeout, what, o.timeoutMs)));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: text + decoder.end() }));
      });
      req.end(o.payload);
    }));
  }

  /**
   * Sends one request and parses the JSON answer.
   * @returns the decoded 2xx body.
   * @throws KubeStatusError (non-2xx), KubeTimeoutError (after `timeoutMs`), KubeUnreachableError (no answer).
   */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    const prepared = await this.prepare(payload === undefined ? {} : { 'content-type': 'application/json' });
    const { status, text } = await this.exchange(method, path, {
      prepared, payload, timeoutMs: options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, signal: options.signal,
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
    const prepared = await this.prepare({ accept: 'text/plain' });
    const { status, text } = await this.exchange('GET', path, { prepared, timeoutMs, maxBytes: 65_536, overflow: 'truncate' });
    return { status, body: text };
  }

  /**
   * Streams a watch. Resolves when the server ends the stream normally (its
   * `timeoutSeconds` ran out); rejects on a non-2xx answer, a transport error, an
   * `onEvent` throw, or `inactivityMs` without traffic (KubeTimeoutError). An ERROR
   * event is passed to `onEvent` like any other.
   */
  async watch(path: string, options: WatchOptions): Promise<void> {
    const prepared = await this.prepare({});
    const local = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, local.signal]) : local.signal;
    // Which bound fired, for the message: no answer at all, or an answered watch gone quiet.
    let stalled: string | undefined;
    let eventError: unknown;
    let timer: NodeJS.Timeout | undefined;
    const arm = (ms: number, message: string): void => {
      clearTimeout(timer);
      timer = setTimeout(() => { stalled = message; local.abort(); }, ms);
    };
    const connectMs = options.connectTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const quiet = `no data for ${options.inactivityMs} ms`;
    arm(connectMs, `no response headers within ${connectMs} ms`);
    try {
      await new Promise<void>((resolve, reject) => {
        const req = this.open('GET', path, prepared, signal);
        let answered = false;
        const fail = (err: unknown): void => {
          if (!answered) this.upstream.request('WATCH', 'error');
          answered = true;
          if (eventError !== undefined) reject(eventError);
          else if (stalled) reject(new KubeTimeoutError(`watch ${path}: ${stalled}`));
          else reject(translateError(err as Error, undefined, `watch ${path}`, 0));
        };
        req.on('error', fail);
        req.on('response', (res) => {
          const status = res.statusCode ?? 0;
          answered = true;
          this.upstream.request('WATCH', String(status));
          if (status < 200 || status >= 300) {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => { text += c; });
            res.on('end', () => reject(statusError(status, text, `watch ${path}`)));
            res.on('error', fail);
            return;
          }
          arm(options.inactivityMs, quiet);
          options.onOpen?.();
          res.on('data', () => arm(options.inactivityMs, quiet));
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
    const s = JSON.parse(text) as { kind?: string; reason?: string; message?: string; details?: { causes?: StatusCause[] } };
    if (s.kind === 'Status') {
      return new KubeStatusError(code, s.reason ?? '', `${what}: ${s.message ?? `HTTP ${code}`}`, { message: s.message, causes: Array.isArray(s.details?.causes) ? s.details.causes : [] });
    }
  } catch {
    // not a Status body: fall through
  }
  return new KubeStatusError(code, '', `${what}: HTTP ${code}${text ? `: ${text.slice(0, 200)}` : ''}`);
}

function translateError(err: Error, timeout: AbortSignal | undefined, what: string, timeoutMs: number): Error {
  if (err instanceof KubeStatusError || err instanceof KubeResponseTooLargeError) return err;
  if (timeout?.aborted) return new KubeTimeoutError(`${what}: no answer within ${timeoutMs} ms`);
  if (err.name === 'AbortError') return err;
  const code = (err as NodeJS.ErrnoException).code;
  return new KubeUnreachableError(`${what}: ${code ?? err.message}`, err);
}

/** The TLS material client-node read from the kubeconfig for one request. */
interface TlsMaterial {
  ca?: unknown;
  cert?: unknown;
  key?: unknown;
  pfx?: unknown;
  passphrase?: string;
}

function tlsMaterial(o: https.RequestOptions): TlsMaterial {
  return { ca: o.ca, cert: o.cert, key: o.key, pfx: o.pfx, passphrase: o.passphrase };
}

function sameValue(a: unknown, b: unknown): boolean {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => sameValue(x, b[i]));
  return a === b;
}

function sameMaterial(a: TlsMaterial, b: TlsMaterial): boolean {
  return sameValue(a.ca, b.ca) && sameValue(a.cert, b.cert) && sameValue(a.key, b.key) && sameValue(a.pfx, b.pfx) && a.passphrase === b.passphrase;
}

/**
 * The keep-alive agent for a cluster. With `proxy-url`, kubectl (Go's net/http) tunnels
 * through an HTTP CONNECT proxy (`http://` or `https://`, the latter verified with the
 * cluster's CA, as Go reuses the cluster's TLS config for it) or a SOCKS5 proxy; the
 * TLS session to the API server runs inside the tunnel with the cluster's CA,
 * `tls-server-name` and client certificate. client-node 2.0.1 builds the same agents
 * but without keep-alive, so we build them here (same packages: hpagent, socks-proxy-agent).
 */
function makeAgent(server: URL, cluster: Cluster, m: TlsMaterial): http.Agent {
  const tls = {
    ca: m.ca, cert: m.cert, key: m.key, pfx: m.pfx, passphrase: m.passphrase,
    servername: cluster.tlsServerName || undefined,
    rejectUnauthorized: !cluster.skipTLSVerify,
  } as https.AgentOptions;
  const keepAlive = { keepAlive: true };
  if (cluster.proxyUrl) {
    const proxy = new URL(cluster.proxyUrl);
    if (proxy.protocol === 'socks5:') {
      // socks-proxy-agent 10 drops `host` before its TLS upgrade, so for an IP-address
      // server Node would check the certificate against "localhost": name the host ourselves.
      const name = cluster.tlsServerName || server.hostname.replace(/^\[|\]$/g, '');
      const checkServerIdentity = (_host: string, cert: PeerCertificate): Error | undefined => checkTlsIdentity(name, cert);
      return new SocksProxyAgent(proxy, { ...keepAlive, ...tls, checkServerIdentity } as SocksProxyAgentOptions) as unknown as http.Agent;
    }
    const proxyRequestOptions = proxy.protocol === 'https:' ? { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: tls.rejectUnauthorized } as never : undefined; // hpagent types `ca` too narrowly (string[])
    return server.protocol === 'http:'
      ? new HttpProxyAgent({ ...keepAlive, proxy, proxyRequestOptions })
      : new HttpsProxyAgent({ ...keepAlive, ...tls, proxy, proxyRequestOptions });
  }
  return server.protocol === 'http:' ? new http.Agent(keepAlive) : new https.Agent({ ...keepAlive, ...tls });
}

/** Stops pooling on a replaced agent: idle sockets close now, busy ones when their response ends. */
function retire(agent: http.Agent): void {
  for (const list of Object.values(agent.freeSockets)) for (const socket of list ?? []) socket.destroy();
  agent.on('free', (socket: import('node:net').Socket) => socket.destroy());
}
