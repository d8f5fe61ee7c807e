/**
 * Things that sit between a client (kubectl or the proxy) and the test kube-apiserver,
 * so a test can see what each client sends: an HTTP CONNECT proxy (`proxy`, the
 * maintained server by the author of the agents client-node uses), a SOCKS5 proxy
 * (`@pondwader/socks5-server`), and a path-prefix front that serves the API server
 * under `/prefix` (as an API gateway does) and can hold chosen requests.
 */
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { createProxy } from 'proxy';
import { createServer as createSocks5Server } from '@pondwader/socks5-server';

/** A proxy a kubeconfig's `proxy-url` can name, and the `host:port` targets it was asked for. */
export interface TunnelProxy {
  url: string;
  /** One entry per tunnel opened (CONNECT request or SOCKS5 connect), e.g. `127.0.0.1:6443`. */
  targets: string[];
  close(): void;
}

const listen = async (server: http.Server | https.Server): Promise<number> => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
};

/** An HTTP CONNECT proxy on loopback; over TLS (`https://` proxy-url) when `tls` is given. */
export async function startConnectProxy(tls?: { cert: string; key: string }): Promise<TunnelProxy> {
  const server = createProxy(tls ? https.createServer(tls) : http.createServer());
  const targets: string[] = [];
  server.prependListener('connect', (req: http.IncomingMessage) => { targets.push(String(req.url)); });
  const port = await listen(server);
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    targets,
    close: () => { server.close(); server.closeAllConnections(); },
  };
}

/** A SOCKS5 proxy (no authentication) on loopback. */
export async function startSocksProxy(): Promise<TunnelProxy> {
  const server = createSocks5Server();
  const targets: string[] = [];
  server.setRulesetValidator((conn) => { targets.push(`${conn.destAddress}:${conn.destPort}`); return true; });
  // The library's server does not expose its address: take a free port first.
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { url: `socks5://127.0.0.1:${port}`, targets, close: () => { server.close(); } };
}

/** What the front saw of one request. */
export interface SeenRequest {
  method: string;
  /** Path and query as received, prefix included. */
  url: string;
  headers: http.IncomingHttpHeaders;
}

/** A reverse proxy serving the API server under a path prefix. */
export interface PrefixFront {
  /** The server URL to put in a kubeconfig, e.g. `https://127.0.0.1:PORT/prefix`. */
  url: string;
  seen: SeenRequest[];
  /**
   * Holds the next request for which `match` is true until the returned `release` is
   * called; `arrived` resolves when it got there.
   */
  hold(match: (r: SeenRequest) => boolean): { arrived: Promise<void>; release: () => void };
  close(): void;
}

/**
 * An HTTPS front with certificate `tls` that forwards `prefix/...` to `upstream/...` with
 * the client's headers (its bearer token or impersonation headers pass through; a
 * client certificate does not). Anything outside the prefix is 404, so a client that
 * drops the prefix fails.
 */
export async function startPrefixFront(upstream: string, upstreamCa: string, tls: { cert: string; key: string }, prefix = '/gateway/k8s'): Promise<PrefixFront> {
  const seen: SeenRequest[] = [];
  const holds: Array<{ match: (r: SeenRequest) => boolean; arrived: () => void; gate: Promise<void> }> = [];
  const target = new URL(upstream);
  const agent = new https.Agent({ ca: upstreamCa, keepAlive: true });
  const server = https.createServer(tls, (req, res) => {
    const r: SeenRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers };
    seen.push(r);
    if (!r.url.startsWith(`${prefix}/`)) return void res.writeHead(404, { 'content-type': 'text/plain' }).end(`outside ${prefix}\n`);
    const i = holds.findIndex((h) => h.match(r));
    const gate = i < 0 ? Promise.resolve() : holds.splice(i, 1)[0].gate;
    void gate.then(() => {
      const headers = { ...req.headers, host: target.host };
      const up = https.request({ host: target.hostname, port: target.port, method: req.method, path: r.url.slice(prefix.length), headers, agent }, (ures) => {
        res.writeHead(ures.statusCode ?? 502, ures.headers);
        ures.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
  });
  const port = await listen(server);
  return {
    url: `https://127.0.0.1:${port}${prefix}`,
    seen,
    hold(match) {
      let arrived!: () => void;
      let release!: () => void;
      const arrivedP = new Promise<void>((r) => { arrived = r; });
      const gate = new Promise<void>((r) => { release = r; });
      const entry = { match: (x: SeenRequest) => { const m = match(x); if (m) arrived(); return m; }, arrived, gate };
      holds.push(entry);
      return { arrived: arrivedP, release };
    },
    close: () => { server.close(); server.closeAllConnections(); agent.destroy(); },
  };
}
