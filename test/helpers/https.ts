import https from 'node:https';
import http from 'node:http';

/** Client TLS material; omit `cert`/`key` to connect without a client certificate. */
export interface ClientTls {
  ca: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
}

/** Options of {@link call}. */
export interface CallOptions {
  method?: string;
  /** JSON-encoded unless `rawBody` is given. */
  body?: unknown;
  rawBody?: string | Buffer;
  headers?: Record<string, string>;
  tls?: ClientTls;
  timeoutMs?: number;
}

/** Status, headers, raw text and parsed JSON (undefined when not JSON). */
export interface CallResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** One HTTP(S) request on a fresh connection (no pooling, no session reuse). */
export function call(url: string, opts: CallOptions = {}): Promise<CallResult> {
  const payload = opts.rawBody ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
  const headers: Record<string, string> = { ...(opts.body !== undefined && !opts.rawBody ? { 'content-type': 'application/json' } : {}), ...opts.headers };
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(u, {
      method: opts.method ?? 'GET', headers, agent: false, timeout: opts.timeoutMs ?? 10_000,
      ...(u.protocol === 'https:' ? { ca: opts.tls?.ca, cert: opts.tls?.cert, key: opts.tls?.key } : {}),
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { text += c; });
      res.on('end', () => {
        let json: unknown;
        try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${opts.timeoutMs ?? 10_000} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}
