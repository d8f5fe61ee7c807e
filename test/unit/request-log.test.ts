/**
 * The README's promise: every request leaves exactly one log line when it ends (served,
 * refused, failed, aborted), with its status or "aborted", at the level the README's log
 * table gives. Over a real socket (not inject), because aborts are socket events.
 */
import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildServer, buildHealthServer } from '../../src/server.js';
import { createLogger } from '../../src/proxy.js';
import type { DeploymentLists } from '../../src/views/deployment-lists.js';
import type { ReplicaService } from '../../src/kube/replicas.js';
import { ProblemError } from '../../src/errors.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { OPEN_ACCESS } from '../helpers/open-access.js';
import { listsOf, replicasAnswer as answer } from '../helpers/stand-ins.js';

type Line = Record<string, unknown> & { level: number; msg: string };
const LEVEL = { debug: 20, info: 30, warn: 40, error: 50 } as const;

function capture(make: (stream: Writable) => pino.Logger = (stream) => pino({ level: 'debug' }, stream)): { logger: pino.Logger; lines: Line[] } {
  const lines: Line[] = [];
  const stream = new Writable({ write(chunk: Buffer, _enc, cb) { for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Line); cb(); } });
  return { logger: make(stream), lines };
}

const lists: DeploymentLists = listsOf();

/** Sends raw bytes, returns what came back (until the server closes or `waitMs`). */
function raw(port: number, bytes: string, waitMs = 2_000): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    s.on('data', (c) => { out += c.toString(); });
    const done = (): void => { s.destroy(); resolve(out); };
    s.on('close', done);
    setTimeout(done, waitMs).unref();
  });
}

/** Sends a request and closes the connection after `afterMs`, before any answer. */
function abandon(port: number, bytes: string, afterMs: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => { s.write(bytes); setTimeout(() => { s.destroy(); resolve(); }, afterMs); });
  });
}

describe('request log: exactly one line per request', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => { await app?.close(); app = undefined; });

  async function start(set: ReplicaService['set'], health: () => Promise<{ ok: true } | { ok: false; message: string; cause?: string }> = async () => ({ ok: true }), make?: (stream: Writable) => pino.Logger) {
    const { logger, lines } = capture(make);
    const replicas: ReplicaService = { get: (namespace, deployment) => answer(namespace, deployment, 2), read: async (namespace, deployment) => answer(namespace, deployment, 2), set };
    app = buildServer({ lists, replicas, logger, apiHealth: health, readiness: { check: () => ({ ready: true }) }, ...OPEN_ACCESS });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as net.AddressInfo).port;
    const requests = (path: string) => lines.filter((l) => l.msg === 'request' && l.path === path);
    /** Waits for the first line of `path`, then returns all of them. */
    const linesOf = async (path: string): Promise<Line[]> => { await waitFor(`a line for ${path}`, () => requests(path).length > 0); return requests(path); };
    return { port, lines, requests, linesOf };
  }

  const put = (path: string, body: string) => `PUT ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

  it('logs a served request once, at info, with status and duration', async () => {
    const { port, linesOf } = await start(async (namespace, deployment, n) => answer(namespace, deployment, n));
    await raw(port, 'GET /deployments/ns/web/replicas HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const [line, ...more] = await linesOf('/deployments/ns/web/replicas');
    assert.equal(more.length, 0);
    assert.equal(line!.level, LEVEL.info);
    assert.equal(line!.status, 200);
    assert.equal(line!.method, 'GET');
    assert.equal(typeof line!.durationMs, 'number');
    assert.ok(line!.reqId);
  });

  it('still redacts credentials inside the line of a failed request (the process logger\'s redaction)', async () => {
    const leak = Object.assign(new Error('boom'), { config: { headers: { authorization: 'Bearer s3cret' } } });
    const { port, linesOf } = await start(async () => { throw leak; }, undefined, (stream) => createLogger('debug', stream));
    await raw(port, put('/deployments/ns/web/replicas', '{"replicas":1}').replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'));
    const [line] = await linesOf('/deployments/ns/web/replicas');
    assert.equal(line!.status, 500);
    assert.doesNotMatch(JSON.stringify(line), /s3cret/);
    assert.match(JSON.stringify(line), /\[redacted\]/);
  });

  it('logs a PUT the client abandons while the write is still running once, as aborted, and nothing when the write ends', async () => {
    let finish!: () => void;
    const { port, requests, linesOf } = await start((namespace, deployment, n) => new Promise((resolve) => { finish = () => resolve(answer(namespace, deployment, n)); }));
    await abandon(port, put('/deployments/ns/web/replicas', '{"replicas":3}'), 200);
    const lines = await linesOf('/deployments/ns/web/replicas');
    assert.equal(lines[0]!.status, 'aborted');
    assert.equal(lines[0]!.level, LEVEL.warn);
    finish();
    await sleep(200);
    assert.equal(requests('/deployments/ns/web/replicas').length, 1, 'one line, not a second when the handler returns');
  });

  it('logs an aborted /healthz check once, as aborted', async () => {
    const { port, requests, linesOf } = await start(async (namespace, deployment, n) => answer(namespace, deployment, n), () => sleep(1_000).then(() => ({ ok: true as const })));
    await abandon(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 100);
    const lines = await linesOf('/healthz');
    await sleep(1_200);
    assert.deepEqual(requests('/healthz').map((l) => l.status), ['aborted']);
    assert.equal(lines[0]!.level, LEVEL.warn);
  });

  it('logs an upstream failure at warn with the reason and the cause the response withholds', async () => {
    const { port, linesOf } = await start(async () => { throw new ProblemError(502, 'BadGateway', 'the API server failed', { cause: new Error('PUT /apis/apps/v1/…/scale: HTTP 500: etcdserver: leader changed') }); });
    const answer = await raw(port, put('/deployments/ns/web/replicas', '{"replicas":3}'));
    assert.doesNotMatch(answer, /etcdserver/, 'the response withholds the cause');
    const [line, ...more] = await linesOf('/deployments/ns/web/replicas');
    assert.equal(more.length, 0);
    assert.equal(line!.level, LEVEL.warn);
    assert.equal(line!.status, 502);
    assert.equal(line!.reason, 'BadGateway');
    assert.match(String(line!.cause), /etcdserver: leader changed/);
  });

  it('logs an unhealthy /healthz at warn with its cause', async () => {
    const { port, linesOf } = await start(async (namespace, deployment, n) => answer(namespace, deployment, n), async () => ({ ok: false, message: 'API server not ready (HTTP 500): etcd', cause: 'GET /readyz: HTTP 500' }));
    await raw(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const [line] = await linesOf('/healthz');
    assert.equal(line!.level, LEVEL.warn);
    assert.equal(line!.status, 503);
    assert.match(String(line!.cause), /HTTP 500/);
  });

  it('logs malformed HTTP at warn: HTTP/1.1 without Host, a malformed URL, an over-long segment', async () => {
    const { port, lines } = await start(async (namespace, deployment, n) => answer(namespace, deployment, n));
    const noHost = await raw(port, 'GET /deployments HTTP/1.1\r\nConnection: close\r\n\r\n');
    assert.match(noHost, /^HTTP\/1\.1 400/);
    const badUrl = await raw(port, 'GET /deployments/%zz/replicas HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(badUrl, /^HTTP\/1\.1 400/);
    const long = await raw(port, `GET /deployments/ns/${'a'.repeat(300)}/replicas HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.match(long, /^HTTP\/1\.1 400/);
    await waitFor('three lines', () => (lines.filter((l) => l.status === 400).length >= 3 ? true : undefined));
    await sleep(100);
    const four00 = lines.filter((l) => l.status === 400);
    assert.equal(four00.length, 3, JSON.stringify(four00));
    for (const l of four00) assert.equal(l.level, LEVEL.warn, JSON.stringify(l));
  });

  it('leaves a bounded number of lines plus a count for a flood of 1,000 malformed requests', async () => {
    const { port, lines } = await start(async (namespace, deployment, n) => answer(namespace, deployment, n));
    for (let batch = 0; batch < 10; batch++) {
      await Promise.all(Array.from({ length: 100 }, (_, i) => raw(port, `GET /deployments/%zz${batch}-${i}/replicas HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)));
    }
    await app!.close(); // the summary of this window is written at the latest when the window ends; close does not wait for it
    const individual = lines.filter((l) => l.msg === 'request' && l.status === 400);
    assert.equal(individual.length, 20, 'at most 20 lines per 10 s window');
    await waitFor('the summary line', () => lines.some((l) => /not logged individually/.test(l.msg)), 12_000);
    const summary = lines.find((l) => /not logged individually/.test(l.msg))!;
    assert.equal(summary.suppressed, 980);
    assert.deepEqual(summary.byCode, { FST_ERR_BAD_URL: 980 });
    app = undefined;
  });

  it('logs probe-listener requests at debug (kubelet probes every few seconds)', async () => {
    const { logger, lines } = capture();
    app = buildHealthServer({ readiness: { check: () => ({ ready: true }) }, logger });
    await app.listen({ port: 0, host: '127.0.0.1' });
    await raw((app.server.address() as net.AddressInfo).port, 'GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await waitFor('line', () => lines.some((l) => l.path === '/livez'));
    const [line] = lines.filter((l) => l.path === '/livez');
    assert.equal(line!.level, LEVEL.debug);
    assert.equal(line!.status, 200);
  });
});
