import https from 'node:https';
import http from 'node:http';
import type { ClientTls } from './https.js';

/** One Server-Sent Event as a client sees it (`id` is the frame's own, '' when it has none). */
export interface SseEvent {
  event: string;
  id: string;
  data: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** performance.now() when the frame was parsed. */
  at: number;
}

/** An open event stream: every event so far, comments counted, and a way to wait or close. */
export interface SseStream {
  status: number;
  headers: http.IncomingHttpHeaders;
  events: SseEvent[];
  comments: number;
  /** Resolves with the first event at index ≥ `from` matching `pred`. */
  next(pred: (e: SseEvent) => boolean, timeoutMs?: number, from?: number): Promise<SseEvent>;
  /** Resolves when the server ends or cuts the stream. */
  ended: Promise<void>;
  close(): void;
}

/** Opens `url` as an event stream (one fresh connection), resolving once the response headers arrive. */
export function openSse(url: string, opts: { tls?: ClientTls; headers?: Record<string, string>; agent?: https.Agent } = {}): Promise<SseStream> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = https.request(u, {
      headers: { accept: 'text/event-stream', ...opts.headers }, agent: opts.agent ?? false,
      ca: opts.tls?.ca, cert: opts.tls?.cert, key: opts.tls?.key,
    }, (res) => {
      const events: SseEvent[] = [];
      const waiters = new Set<() => void>();
      let buf = '';
      let endedResolve!: () => void;
      const ended = new Promise<void>((r) => { endedResolve = r; });
      const stream: SseStream = {
        status: res.statusCode ?? 0, headers: res.headers, events, comments: 0, ended,
        close: () => { req.destroy(); },
        next: (pred, timeoutMs = 5_000, from = 0) => new Promise((ok, fail) => {
          const check = (): boolean => {
            const hit = events.slice(from).find(pred);
            if (hit) { waiters.delete(check); clearTimeout(t); ok(hit); }
            return Boolean(hit);
          };
          const t = setTimeout(() => { waiters.delete(check); fail(new Error(`no matching event within ${timeoutMs} ms; got ${JSON.stringify(events.slice(from).map((e) => [e.event, e.id]))}`)); }, timeoutMs);
          if (!check()) waiters.add(check);
        }),
      };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (block.startsWith(':')) { stream.comments++; continue; }
          const ev: SseEvent = { event: 'message', id: '', data: undefined, at: performance.now() };
          for (const line of block.split('\n')) {
            const [k, ...rest] = line.split(': ');
            const v = rest.join(': ');
            if (k === 'event') ev.event = v;
            else if (k === 'id') ev.id = v;
            else if (k === 'data') ev.data = JSON.parse(v);
          }
          events.push(ev);
          for (const w of [...waiters]) w();
        }
      });
      res.on('end', endedResolve);
      res.on('close', endedResolve);
      res.on('error', endedResolve);
      resolve(stream);
    });
    req.on('error', reject);
    req.end();
  });
}
