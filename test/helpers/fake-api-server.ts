import http from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../../src/kube/kube-client.js';

/** A scripted HTTP stand-in for kube-apiserver, for the unit tier only. */
export interface FakeApiServer {
  url: string;
  /** Every request path+query received, in order. */
  requests: string[];
  /** How many TCP connections were accepted so far. */
  connections(): number;
  close(): Promise<void>;
  /** A KubeClient pointed at this server with a static token. */
  client(): Promise<KubeClient>;
}

/** Answers request number `n` (1-based). */
export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void;

/** Starts a {@link FakeApiServer} on a free loopback port. */
export async function fakeApiServer(handler: Handler): Promise<FakeApiServer> {
  const requests: string[] = [];
  const sockets = new Set<import('node:net').Socket>();
  let connections = 0;
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    handler(req, res, requests.length);
  });
  server.on('connection', (s) => { connections++; sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  const url = `http://127.0.0.1:${port}`;
  return {
    url, requests, connections: () => connections,
    close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
    client: () => {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'fake', server: url, skipTLSVerify: true }], // client-node allows http:// only with skipTLSVerify
        users: [{ name: 'u', token: 'test-token' }],
        contexts: [{ name: 'fake', cluster: 'fake', user: 'u' }],
        currentContext: 'fake',
      });
      return KubeClient.create(kc);
    },
  };
}

/** Writes a JSON response. */
export function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** A minimal raw Deployment, with managedFields to check they get stripped. */
export const deployment = (ns: string, name: string, rv: string, replicas = 1): Record<string, unknown> => ({
  metadata: { name, namespace: ns, resourceVersion: rv, managedFields: [{ manager: 'kubectl' }] },
  spec: { replicas },
});
