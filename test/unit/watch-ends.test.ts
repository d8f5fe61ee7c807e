import { describe, it, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/server.js';
import { ChangeStream } from '../../src/kube/change-stream.js';
import type { CacheChange } from '../../src/kube/reflector.js';
import type { CachedDeployment } from '../../src/kube/deployments.js';
import { AuthorizerUnavailableError, type Authorizer, type ResourceAttributes } from '../../src/authz/authorizer.js';
import { connectionEnd, termOf, type ConnectionTerm, type PinnedConnection } from '../../src/tls/guard.js';
import type { TrustedCas } from '../../src/tls/trust.js';
import { reauthorizeEveryMs } from '../../src/routes/watch.js';
import { NO_AUDIT } from '../helpers/open-access.js';
import { listsOf } from '../helpers/stand-ins.js';

const UNUSED_REPLICAS = { get: () => { throw new Error('unused'); }, read: async () => { throw new Error('unused'); }, set: async () => { throw new Error('unused'); } };
const T0 = Date.UTC(2030, 0, 1);

/** A trust bundle whose verdict the test sets; every change is a new generation, like a reload. */
function fakeTrust(): TrustedCas & { set(trusted: boolean): void } {
  let trusted = true;
  let generation = 1;
  return {
    get generation() { return generation; },
    trusts: () => trusted,
    set(t: boolean) { trusted = t; generation++; },
  } as unknown as TrustedCas & { set(trusted: boolean): void };
}

const pinned = (notAfterMs: number, openedAtMs = T0): PinnedConnection => ({
  identity: { commonName: 'alice', groups: [], fingerprint256: 'AA:BB' } as unknown as PinnedConnection['identity'],
  openedAtMs, notAfterMs, chain: ['AA:BB', 'CA:CA'], trustedInGeneration: -1,
});

describe('connectionEnd (what a stream re-checks about its connection)', () => {
  it('is undefined while the chain is valid, trusted and the connection young; then names expiry, CA removal, age', () => {
    const trust = fakeTrust();
    const conn = pinned(T0 + 60_000);
    assert.equal(connectionEnd(conn, trust, 600_000, T0 + 60_000), undefined, 'valid through notAfter itself');
    assert.equal(connectionEnd(conn, trust, 600_000, T0 + 60_001)?.reason, 'CertificateExpired');
    trust.set(false);
    assert.equal(connectionEnd(conn, trust, 600_000, T0 + 1)?.reason, 'CertificateNoLongerTrusted');
    trust.set(true);
    const young = pinned(T0 + 3_600_000);
    assert.equal(connectionEnd(young, trust, 600_000, T0 + 599_999), undefined);
    assert.equal(connectionEnd(young, trust, 600_000, T0 + 600_000)?.reason, 'MaxConnectionAge');
    assert.equal(connectionEnd(young, trust, 0, T0 + 3_000_000), undefined, '0: no age bound');
  });

  it('sets the deadline at the earlier of just past notAfter and the maximum age', () => {
    const trust = fakeTrust();
    assert.equal(termOf(pinned(T0 + 60_000), trust, 600_000, () => T0).deadlineMs, T0 + 60_001);
    assert.equal(termOf(pinned(T0 + 3_600_000), trust, 600_000, () => T0).deadlineMs, T0 + 600_000);
    assert.equal(termOf(pinned(T0 + 3_600_000), trust, 0, () => T0).deadlineMs, T0 + 3_600_001);
  });

  it('re-authorizes every half allowed TTL, at least every 500 ms, every second without a cache', () => {
    assert.equal(reauthorizeEveryMs(10_000), 5_000);
    assert.equal(reauthorizeEveryMs(600), 500);
    assert.equal(reauthorizeEveryMs(0), 1_000);
  });
});

describe('a ?watch=true stream is checked again while it is open (fake timers)', () => {
  type L = (c: CacheChange<CachedDeployment>) => void;
  const dep = (namespace: string, name: string) => ({ metadata: { name, namespace, resourceVersion: '90' }, spec: { replicas: 1 } }) as CachedDeployment;
  const items = [dep('a', 'x'), dep('b', 'y')];
  const src = {
    get: () => undefined, list: () => items, hasSynced: () => true,
    subscribe: (_l: L) => () => undefined, resourceVersion: () => '100',
  };
  let logged: Array<Record<string, unknown>>;
  let app: FastifyInstance | undefined;
  /** Allowed namespaces ('*' = cluster-wide); `unavailable` makes every decision fail. */
  let grants: Set<string>;
  let unavailable: boolean;
  const asked: ResourceAttributes[] = [];
  const authorizer: Authorizer = {
    authorize: async (_u, a) => {
      asked.push(a);
      if (unavailable) throw new AuthorizerUnavailableError('SubjectAccessReview timed out', 503);
      return { allowed: grants.has(a.namespace ?? '*'), reason: 'test' };
    },
  };

  beforeEach(() => {
    logged = [];
    grants = new Set(['a']);
    unavailable = false;
    asked.length = 0;
    mock.timers.enable({ apis: ['setInterval', 'setTimeout', 'Date'], now: T0 });
  });
  afterEach(async () => {
    mock.timers.reset();
    await app?.close();
    app = undefined;
  });

  function serve(term?: ConnectionTerm): FastifyInstance {
    const logger = pino({ level: 'info' }, { write: (l: string) => { logged.push(JSON.parse(l) as Record<string, unknown>); } });
    app = buildServer({
      authorizer, audit: NO_AUDIT, lists: listsOf(items), logger, replicas: UNUSED_REPLICAS,
      apiHealth: async () => ({ ok: true }), readiness: { check: () => ({ ready: true }) },
      watch: { stream: new ChangeStream(src), deployments: src, keepAliveMs: 3_600_000, reauthorizeEveryMs: 5_000, connectionCheckMs: 1_000 },
    });
    // What the TLS guard's hook sets on a real connection.
    app.addHook('onRequest', async (req) => { req.clientCN = 'alice'; req.connectionTerm = term; });
    return app;
  }

  /** Lets the request's promises (authorization, hooks) run; timers only move with tick(). */
  const settle = async (): Promise<void> => { for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r)); };

  async function open(a: FastifyInstance, url: string) {
    let done = false;
    const response = a.inject(url).then((r) => { done = true; return r; });
    await settle();
    return { response, ended: () => done };
  }

  async function advance(ms: number): Promise<void> {
    for (let t = 0; t < ms; t += 500) {
      mock.timers.tick(Math.min(500, ms - t));
      await settle();
    }
  }

  const closedEvent = (payload: string) => {
    const m = /event: CLOSED\ndata: (.*)\n\n$/.exec(payload);
    assert.ok(m, `ends with a CLOSED event: ${JSON.stringify(payload.slice(-300))}`);
    return JSON.parse(m[1]) as { reason: string; message: string };
  };
  const ends = () => logged.filter((l) => l.msg === 'watch stream ended by the proxy');

  const termFor = (conn: PinnedConnection, trust: TrustedCas, maxAgeMs: number) => termOf(conn, trust, maxAgeMs, Date.now);

  it('ends when the connection\'s certificate expires: a timer at notAfter, not the next request', async () => {
    const s = await open(serve(termFor(pinned(T0 + 30_000), fakeTrust(), 600_000)), '/deployments?watch=true&namespace=a');
    grants.add('*');
    await advance(29_500);
    assert.equal(s.ended(), false);
    await advance(1_000);
    assert.equal(s.ended(), true);
    const r = await s.response;
    assert.equal(r.statusCode, 200);
    assert.equal(r.headers.connection, 'close');
    assert.match(r.payload, /SYNCED/);
    const closed = closedEvent(r.payload);
    assert.equal(closed.reason, 'CertificateExpired');
    assert.match(closed.message, /expired at 2030-01-01T00:00:30.000Z/);
    assert.equal(ends().length, 1, 'logged once');
    assert.equal(ends()[0].level, 40);
    assert.equal(ends()[0].client, 'alice');
    assert.equal(ends()[0].reason, 'CertificateExpired');
  });

  it('ends within one connection check (1 s) after a reload removes the CA of its certificate', async () => {
    const trust = fakeTrust();
    const s = await open(serve(termFor(pinned(T0 + 3_600_000), trust, 600_000)), '/deployments?watch=true&namespace=a');
    await advance(3_000);
    assert.equal(s.ended(), false);
    trust.set(false);
    await advance(1_000);
    assert.equal(s.ended(), true);
    assert.equal(closedEvent((await s.response).payload).reason, 'CertificateNoLongerTrusted');
    assert.equal(ends().length, 1);
    assert.equal(ends()[0].reason, 'CertificateNoLongerTrusted');
  });

  it('ends when the connection reaches --max-connection-age-seconds, logged at info', async () => {
    const s = await open(serve(termFor(pinned(T0 + 3_600_000, T0 - 50_000), fakeTrust(), 120_000)), '/deployments?watch=true&namespace=a');
    await advance(69_500);
    assert.equal(s.ended(), false);
    await advance(500);
    assert.equal(s.ended(), true);
    const closed = closedEvent((await s.response).payload);
    assert.equal(closed.reason, 'MaxConnectionAge');
    assert.match(closed.message, /120 s/);
    assert.equal(ends().length, 1);
    assert.equal(ends()[0].level, 30);
  });

  it('asks the same decision again every period and ends with Forbidden once the grant is revoked', async () => {
    const s = await open(serve(), '/deployments?watch=true&namespace=a');
    assert.deepEqual(asked.map((a) => a.namespace), ['a'], 'the decision at connect');
    await advance(15_000);
    assert.equal(s.ended(), false);
    assert.deepEqual(asked.map((a) => [a.verb, a.resource, a.namespace]), Array(4).fill(['list', 'deployments', 'a']));
    grants.delete('a');
    await advance(5_000);
    assert.equal(s.ended(), true);
    const closed = closedEvent((await s.response).payload);
    assert.equal(closed.reason, 'Forbidden');
    assert.equal(closed.message, 'deployments.apps is forbidden: User "alice" cannot list resource "deployments" in API group "apps" in the namespace "a"');
    assert.equal(ends().length, 1);
    assert.equal(ends()[0].reason, 'Forbidden');
    assert.equal(ends()[0].client, 'alice');
  });

  it('all namespaces: asks each namespace it was granted again; losing one ends the stream, a cluster-wide lister is asked cluster-wide', async () => {
    grants = new Set(['a', 'b']);
    const s = await open(serve(), '/deployments?watch=true');
    asked.length = 0;
    await advance(5_000);
    assert.deepEqual(asked.map((a) => a.namespace).sort(), ['a', 'b']);
    grants.delete('b');
    await advance(5_000);
    assert.equal(s.ended(), true);
    assert.match(closedEvent((await s.response).payload).message, /in the namespace "b"/);

    grants = new Set(['*']);
    asked.length = 0;
    const all = await open(app!, '/deployments?watch=true');
    await advance(5_000);
    assert.deepEqual(asked.map((a) => a.namespace), [undefined, undefined], 'connect and one re-check, cluster-wide only');
    grants = new Set(['a', 'b']);
    await advance(5_000);
    assert.equal(all.ended(), true);
    assert.match(closedEvent((await all.response).payload).message, /at the cluster scope/);
  });

  it('fails closed: an authorizer that cannot decide ends the stream (AuthorizationUnavailable, warn)', async () => {
    const s = await open(serve(), '/deployments?watch=true&namespace=a');
    unavailable = true;
    await advance(5_000);
    assert.equal(s.ended(), true);
    const closed = closedEvent((await s.response).payload);
    assert.equal(closed.reason, 'AuthorizationUnavailable');
    assert.doesNotMatch(closed.message, /timed out/, 'the cause is logged, not sent');
    assert.equal(ends().length, 1);
    assert.equal(ends()[0].level, 40);
    assert.equal(ends()[0].cause, 'SubjectAccessReview timed out');
  });

  it('refuses the list-only parameters with watch=true with 400 naming each, before any stream starts', async () => {
    const a = serve();
    for (const [query, detail] of [
      ['limit=5', /^querystring\.limit: not with watch=true; a change stream has no pages$/],
      ['continue=abc', /^querystring\.continue: not with watch=true; a change stream has no pages$/],
      ['minResourceVersion=1', /^querystring\.minResourceVersion: not with watch=true; a change stream starts from the cache as it is \(resume one with Last-Event-ID\)$/],
    ] as const) {
      const r = await a.inject(`/deployments?watch=true&namespace=a&${query}`);
      assert.equal(r.statusCode, 400, query);
      assert.match(r.json().detail, detail, query);
    }
  });
});
