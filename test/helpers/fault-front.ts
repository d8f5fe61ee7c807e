/**
 * A fault-injecting HTTPS front for the real kube-apiserver, for integration tests.
 *
 * The proxy under test is given a kubeconfig that points at this front instead of the
 * API server (same credentials, the front's own CA). The front terminates TLS, forwards
 * each request to the real API server, and lets a test, per request:
 * - await something first (say, a competing write, so the real API server answers 409),
 * - answer it itself (an injected status), or never answer (an upstream that hangs),
 * - hold back the bytes of every watch stream (a slow watch) and release them later.
 * Everything else is the real API server's answer, byte for byte.
 */
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { createCa, issueCert } from '../../hack/certs.js';

/** One request as the front saw it. */
export interface FrontRequest {
  method: string;
  /** Path and query, as sent by the client. */
  path: string;
}

/** What to do with a request: forward it (the default), answer it here, or never answer. */
export type FrontAction = 'pass' | 'hang' | { status: number; body: unknown };

/** A request and what became of it: `status` is the answer the client got (undefined while hanging). */
export interface FrontExchange extends FrontRequest {
  action: 'pass' | 'hang' | 'answer';
  status?: number;
}

/** A running front; see {@link startFaultFront}. */
export interface FaultFront {
  /** `https://127.0.0.1:<port>` */
  url: string;
  /** A kubeconfig file with the source kubeconfig's user and context, its server this front. */
  kubeconfig: string;
  /** Every request so far, in arrival order. */
  exchanges: FrontExchange[];
  /** Decides each request (may await first); replace it at any time. Default: always 'pass'. */
  intercept: (req: FrontRequest) => FrontAction | Promise<FrontAction>;
  /** From now on, hold back every byte of open and new watch responses (headers still go out). */
  pauseWatches(): void;
  /** Sends what was held back and lets watch bytes flow again. */
  resumeWatches(): void;
  /** Stops listening and drops every connection, hanging ones included. */
  close(): Promise<void>;
}

const isWatch = (path: string): boolean => ['true', '1'].includes(new URL(path, 'http://x').searchParams.get('watch') ?? '');

/**
 * Starts a front on a free loopback port for the cluster and user of `sourceKubeconfig`
 * (a kubeconfig with a token user, as the test cluster writes them).
 */
export async function startFaultFront(sourceKubeconfig: string): Promise<FaultFront> {
  const source = new KubeConfig();
  source.loadFromFile(sourceKubeconfig);
  const cluster = source.getCurrentCluster();
  if (!cluster) throw new Error(`${sourceKubeconfig}: no current cluster`);
  const upstream = new URL(cluster.server);
  const upstreamCa = cluster.caData ? Buffer.from(cluster.caData, 'base64') : undefined;
  const agent = new https.Agent({ keepAlive: true, ca: upstreamCa });

  const ca = await createCa('fault front CA');
  const leaf = await issueCert(ca, { commonName: 'fault-front', usages: ['server'], sans: ['127.0.0.1', 'localhost'] });

  const exchanges: FrontExchange[] = [];
  const sockets = new Set<Socket>();
  let paused = false;
  const held = new Map<ServerResponse, Buffer[]>();

  const forward = (req: IncomingMessage, res: ServerResponse, ex: FrontExchange): void => {
    const up = https.request({
      protocol: 'https:', hostname: upstream.hostname, port: upstream.port, path: ex.path, method: ex.method,
      headers: { ...req.headers, host: upstream.host }, agent,
    }, (upRes) => {
      ex.status = upRes.statusCode;
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      res.flushHeaders();
      const watch = isWatch(ex.path);
      if (watch) held.set(res, []);
      upRes.on('data', (chunk: Buffer) => {
        if (watch && paused) held.get(res)!.push(chunk);
        else res.write(chunk);
      });
      upRes.on('end', () => {
        if (watch && paused) { res.once('resume-watch', () => res.end()); return; }
        held.delete(res);
        res.end();
      });
      upRes.on('error', () => res.destroy());
    });
    up.on('error', (err) => {
      ex.status = 502;
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`fault front: upstream failed: ${err.message}`);
    });
    req.pipe(up);
    res.on('close', () => { held.delete(res); up.destroy(); });
  };

  const front: FaultFront = {
    url: '', kubeconfig: '', exchanges,
    intercept: () => 'pass',
    pauseWatches: () => { paused = true; },
    resumeWatches: () => {
      paused = false;
      for (const [res, chunks] of held) {
        for (const c of chunks) res.write(c);
        chunks.length = 0;
        res.emit('resume-watch');
        if (res.writableEnded) held.delete(res);
      }
    },
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      agent.destroy();
      server.close(() => resolve());
    }),
  };

  const server = https.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    const ex: FrontExchange = { method: req.method ?? 'GET', path: req.url ?? '/', action: 'pass' };
    exchanges.push(ex);
    Promise.resolve(front.intercept({ method: ex.method, path: ex.path })).then((action) => {
      if (action === 'pass') return forward(req, res, ex);
      if (action === 'hang') { ex.action = 'hang'; return; }
      ex.action = 'answer';
      ex.status = action.status;
      res.writeHead(action.status, { 'content-type': 'application/json' }).end(JSON.stringify(action.body));
    }, (err: Error) => {
      ex.action = 'answer';
      ex.status = 500;
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`fault front: intercept failed: ${err.message}`);
    });
  });
  server.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  front.url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;

  // Written by hand: client-node's exportConfig adds keys (context.name) that kubectl
  // ignores but the proxy's strict loader refuses.
  const user = source.getCurrentUser();
  if (!user?.token) throw new Error(`${sourceKubeconfig}: the front supports token users only`);
  const through = {
    apiVersion: 'v1', kind: 'Config', 'current-context': 'fault-front',
    clusters: [{ name: 'fault-front', cluster: { server: front.url, 'certificate-authority-data': Buffer.from(ca.certPem).toString('base64') } }],
    users: [{ name: user.name, user: { token: user.token } }],
    contexts: [{ name: 'fault-front', context: { cluster: 'fault-front', user: user.name } }],
  };
  front.kubeconfig = join(mkdtempSync(join(tmpdir(), 'k8s-api-proxy-front-')), 'kubeconfig');
  writeFileSync(front.kubeconfig, JSON.stringify(through), { mode: 0o600 });
  return front;
}

/** A `v1.Status` body as kube-apiserver sends it, for {@link FrontAction} answers. */
export function kubeStatus(code: number, reason: string, message: string): { status: number; body: unknown } {
  return { status: code, body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code } };
}
