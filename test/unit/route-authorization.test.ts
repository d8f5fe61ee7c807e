import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { pino } from 'pino';
import { buildServer } from '../../src/server.js';
import { serverTlsOptions } from '../../src/tls/server-tls.js';
import type { CachedDeployment } from '../../src/kube/deployments.js';
import type { ReplicaService } from '../../src/kube/replicas.js';
import { AuthorizerUnavailableError, type Authorizer, type ResourceAttributes, type UserInfo } from '../../src/authz/authorizer.js';
import type { AuditEvent } from '../../src/audit/audit-event.js';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';
import { createCa, issueCert } from '../../hack/certs.js';
import { readFileSync } from 'node:fs';
import type { RateLimits } from '../../src/http/rate-limit.js';
import { X509Certificate } from 'node:crypto';
import { listsOf, replicasAnswer } from '../helpers/stand-ins.js';

const d = (namespace: string, name: string): CachedDeployment => ({ metadata: { name, namespace }, spec: { replicas: 1 } } as CachedDeployment);
const ITEMS = [d('a', 'web'), d('a', 'api'), d('b', 'db'), d('c', 'x')];

/** A test double: allows what `rule` says, records every question. */
function double(rule: (a: ResourceAttributes, u: UserInfo) => boolean | 'down'): Authorizer & { asked: Array<{ u: UserInfo; a: ResourceAttributes }> } {
  const asked: Array<{ u: UserInfo; a: ResourceAttributes }> = [];
  return {
    asked,
    authorize: async (u, a) => {
      asked.push({ u, a });
      const r = rule(a, u);
      if (r === 'down') throw new AuthorizerUnavailableError('the API server is unreachable', 503);
      return r ? { allowed: true, reason: 'test allows' } : { allowed: false, reason: 'test denies' };
    },
  };
}

function app(authorizer: Authorizer, opts: { tls?: CertFixture; rateLimits?: RateLimits; previousUnknown?: boolean } = {}) {
  const events: AuditEvent[] = [];
  const writes: number[] = [];
  const replicas: ReplicaService = {
    get: (namespace, deployment) => replicasAnswer(namespace, deployment, 1),
    read: async (namespace, deployment) => replicasAnswer(namespace, deployment, 1),
    set: async (namespace, deployment, n) => {
      writes.push(n);
      const answer = replicasAnswer(namespace, deployment, n, 1);
      if (opts.previousUnknown) delete answer.previousReplicas;
      return answer;
    },
  };
  const server = buildServer({
    lists: listsOf(ITEMS), replicas, logger: pino({ level: 'silent' }), authorizer,
    apiHealth: async () => ({ ok: true }), readiness: { check: () => ({ ready: true }) },
    audit: { write: (e) => { events.push(e); }, close: async () => undefined },
  }, {
    ...(opts.tls ? { tls: serverTlsOptions(readFileSync(opts.tls.serverCertFile), readFileSync(opts.tls.serverKeyFile), Buffer.from(opts.tls.ca)) } : {}),
    ...(opts.rateLimits ? { rateLimits: opts.rateLimits } : {}),
  });
  return { server, events, writes };
}

const put = (url: string, payload: unknown = { replicas: 3 }) => ({ method: 'PUT' as const, url, payload: payload as object });

describe('authorization in the routes (test double authorizer)', () => {
  it('asks list deployments.apps in the namespace for ?namespace=, and answers 403 problem+json when denied', async () => {
    const authz = double(() => false);
    const { server } = app(authz);
    const r = await server.inject('/deployments?namespace=b');
    assert.equal(r.statusCode, 403);
    assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
    assert.deepEqual(r.json(), {
      type: 'urn:k8s-api-proxy:problem:Forbidden', title: 'Forbidden', status: 403, reason: 'Forbidden',
      detail: 'deployments.apps is forbidden: User "" cannot list resource "deployments" in API group "apps" in the namespace "b"',
    });
    assert.deepEqual(authz.asked.map((q) => q.a), [{ verb: 'list', group: 'apps', resource: 'deployments', namespace: 'b' }]);
  });

  it('asks get deployments/scale with name and namespace for GET …/replicas', async () => {
    const authz = double((a) => a.verb === 'get');
    const r = await app(authz).server.inject('/deployments/a/web/replicas');
    assert.equal(r.statusCode, 200);
    assert.deepEqual(authz.asked[0].a, { verb: 'get', group: 'apps', resource: 'deployments', subresource: 'scale', namespace: 'a', name: 'web' });
  });

  it('answers 403 before a missing Deployment\'s 404, so a denied client learns nothing', async () => {
    const r = await app(double(() => false)).server.inject('/deployments/a/missing/replicas');
    assert.equal(r.statusCode, 403);
  });

  it('lists everything for a cluster-wide lister', async () => {
    const authz = double((a) => a.verb === 'list');
    const r = await app(authz).server.inject('/deployments');
    assert.equal(r.json().length, 4);
    assert.equal(authz.asked.length, 1);
    assert.equal(authz.asked[0].a.namespace, undefined);
  });

  it('lists only the namespaces where listing is allowed when not cluster-wide, with 200 (never 403)', async () => {
    const authz = double((a) => a.namespace === 'a' || a.namespace === 'c');
    const r = await app(authz).server.inject('/deployments');
    assert.equal(r.statusCode, 200);
    assert.deepEqual(r.json(), [{ name: 'api', namespace: 'a' }, { name: 'web', namespace: 'a' }, { name: 'x', namespace: 'c' }]);
    assert.deepEqual(authz.asked.map((q) => q.a.namespace ?? '*').sort(), ['*', 'a', 'b', 'c']);
  });

  it('answers an empty list to a client allowed nowhere', async () => {
    const r = await app(double(() => false)).server.inject('/deployments');
    assert.equal(r.statusCode, 200);
    assert.deepEqual(r.json(), []);
  });

  it('fails closed: 503 with Retry-After when no decision can be had, for reads, lists and writes', async () => {
    const { server, writes } = app(double(() => 'down'));
    for (const req of ['/deployments', '/deployments?namespace=a', '/deployments/a/web/replicas', put('/deployments/a/web/replicas')]) {
      const r = await server.inject(req);
      assert.equal(r.statusCode, 503, JSON.stringify(req));
      assert.equal(r.json().reason, 'ServiceUnavailable');
      assert.equal(r.headers['retry-after'], '2');
    }
    assert.deepEqual(writes, []);
  });

  it('decides a PUT before reading its body: a denied client with a malformed body gets 403, and nothing is written', async () => {
    const { server, writes } = app(double((a) => a.verb !== 'update'));
    const r = await server.inject({ method: 'PUT', url: '/deployments/a/web/replicas', headers: { 'content-type': 'application/json' }, payload: '{not json' });
    assert.equal(r.statusCode, 403);
    assert.equal(r.json().detail, 'deployments.apps "web" is forbidden: User "" cannot update resource "deployments/scale" in API group "apps" in the namespace "a"');
    assert.deepEqual(writes, []);
  });

  it('authorizes HEAD like GET (no existence probe through HEAD)', async () => {
    const { server } = app(double(() => false));
    for (const url of ['/deployments/a/web/replicas', '/deployments/a/missing/replicas', '/deployments?namespace=a']) {
      assert.equal((await server.inject({ method: 'HEAD', url })).statusCode, 403, url);
    }
  });

  it('answers syntactically invalid names 400 without asking the authorizer', async () => {
    const authz = double(() => true);
    const r = await app(authz).server.inject('/deployments/UPPER/web/replicas');
    assert.equal(r.statusCode, 400);
    assert.equal(authz.asked.length, 0);
  });

  it('keeps /healthz, /livez and /readyz open when every decision would be a denial', async () => {
    const authz = double(() => false);
    const { server } = app(authz);
    for (const path of ['/healthz', '/livez', '/readyz']) assert.equal((await server.inject(path)).statusCode, 200, path);
    assert.equal(authz.asked.length, 0);
  });
});

describe('audit events from the routes', () => {
  it('writes one Metadata event per allowed PUT, with the decision, replicas before and after', async () => {
    const { server, events } = app(double(() => true));
    const r = await server.inject({ ...put('/deployments/a/web/replicas', { replicas: 4 }), headers: { 'user-agent': 'ci-bot/1' } });
    assert.equal(r.statusCode, 200);
    assert.deepEqual(r.json(), { deployment: 'web', namespace: 'a', replicas: 4 }, 'previousReplicas is not part of the answer');
    assert.equal(events.length, 1);
    const e = events[0];
    assert.equal(e.kind, 'Event');
    assert.equal(e.apiVersion, 'audit.k8s.io/v1');
    assert.equal(e.level, 'Metadata');
    assert.equal(e.stage, 'ResponseComplete');
    assert.equal(e.verb, 'update');
    assert.equal(e.userAgent, 'ci-bot/1');
    assert.equal(e.requestURI, '/deployments/a/web/replicas');
    assert.deepEqual(e.objectRef, { apiGroup: 'apps', apiVersion: 'v1', resource: 'deployments', subresource: 'scale', namespace: 'a', name: 'web' });
    assert.deepEqual(e.responseStatus, { metadata: {}, code: 200 });
    assert.deepEqual(e.annotations, {
      'authorization.k8s.io/decision': 'allow', 'authorization.k8s.io/reason': 'test allows',
      'k8s-api-proxy/replicas-requested': '4', 'k8s-api-proxy/replicas-before': '1', 'k8s-api-proxy/replicas-after': '4',
    });
    assert.ok(Date.parse(e.requestReceivedTimestamp) <= Date.parse(e.stageTimestamp));
    assert.equal(e.auditID, String(e.auditID));
    assert.ok(e.auditID.length > 0);
  });

  it('leaves replicas-before out of the event when the value before the write was not known', async () => {
    const { server, events } = app(double(() => true), { previousUnknown: true });
    assert.equal((await server.inject(put('/deployments/a/web/replicas', { replicas: 4 }))).statusCode, 200);
    assert.equal(events.length, 1);
    assert.equal(events[0].annotations['k8s-api-proxy/replicas-after'], '4');
    assert.ok(!('k8s-api-proxy/replicas-before' in events[0].annotations), JSON.stringify(events[0].annotations));
  });

  it('writes an event for a denied PUT, a denied read and a denied namespaced list, and none for allowed reads', async () => {
    const { server, events } = app(double((a) => a.namespace === 'a'));
    await server.inject('/deployments/a/web/replicas');
    await server.inject('/deployments?namespace=a');
    await server.inject('/deployments');
    assert.equal(events.length, 0);
    await server.inject(put('/deployments/b/db/replicas'));
    await server.inject('/deployments/b/db/replicas');
    await server.inject('/deployments?namespace=b');
    assert.deepEqual(events.map((e) => [e.verb, e.objectRef.namespace, e.objectRef.name, e.responseStatus.code, e.responseStatus.reason, e.annotations['authorization.k8s.io/decision']]), [
      ['update', 'b', 'db', 403, 'Forbidden', 'forbid'],
      ['get', 'b', 'db', 403, 'Forbidden', 'forbid'],
      ['list', 'b', undefined, 403, 'Forbidden', 'forbid'],
    ]);
  });

  it('writes an event for a PUT that failed after being allowed (invalid body), and for one refused for bad names', async () => {
    const { server, events } = app(double(() => true));
    await server.inject(put('/deployments/a/web/replicas', { replicas: -1 }));
    await server.inject(put('/deployments/a/Bad_Name/replicas'));
    assert.deepEqual(events.map((e) => [e.responseStatus.code, e.annotations['authorization.k8s.io/decision']]), [[422, 'allow'], [400, undefined]]);
  });

  it('writes an event for a PUT refused by the rate limiter before authorization ran (429)', async () => {
    const authz = double(() => true);
    const { server, events, writes } = app(authz, { rateLimits: { read: { rps: 100, burst: 100 }, write: { rps: 1, burst: 1 } } });
    assert.equal((await server.inject(put('/deployments/a/web/replicas'))).statusCode, 200);
    assert.equal((await server.inject(put('/deployments/a/web/replicas', { replicas: 9 }))).statusCode, 429);
    assert.deepEqual(events.map((e) => [e.verb, e.objectRef.namespace, e.objectRef.name, e.responseStatus.code]), [['update', 'a', 'web', 200], ['update', 'a', 'web', 429]]);
    assert.equal(events[1].annotations['authorization.k8s.io/decision'], undefined, 'no decision was asked');
    assert.equal(authz.asked.length, 1);
    assert.deepEqual(writes, [3]);
  });

  it('writes an event for a PUT that could not be authorized (503)', async () => {
    const { server, events } = app(double(() => 'down'));
    await server.inject(put('/deployments/a/web/replicas'));
    assert.equal(events.length, 1);
    assert.equal(events[0].responseStatus.code, 503);
    assert.match(events[0].annotations['authorization.k8s.io/reason'], /no decision/);
  });
});

describe('the user the authorizer sees, over real mTLS', () => {
  let certs: CertFixture;
  before(async () => { certs = await makeCertFixture(); });

  it('is the certificate CN with each O as a group, plus system:authenticated; the audit event names them and the fingerprint', async () => {
    const ca = await createCa('groups CA');
    const client = await issueCert(ca, { commonName: '', subject: [{ CN: ['ci-pipeline'] }, { O: ['team-a'] }, { O: ['deployers'] }], usages: ['client'] });
    const fixture = { ...certs, ca: ca.certPem };
    const authz = double((a) => a.verb === 'get');
    const { server, events } = app(authz, { tls: fixture });
    await server.listen({ host: '127.0.0.1', port: 0 });
    try {
      const port = (server.server.address() as { port: number }).port;
      const call = (method: string, path: string) => new Promise<number>((resolve, reject) => {
        const req = https.request({ host: '127.0.0.1', port, path, method, servername: 'localhost', ca: certs.ca, cert: client.certPem, key: client.keyPem, agent: false, headers: { 'content-type': 'application/json' } }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); });
        req.on('error', reject);
        req.end(method === 'PUT' ? '{"replicas":2}' : undefined);
      });
      assert.equal(await call('GET', '/deployments/a/web/replicas'), 200);
      assert.deepEqual(authz.asked[0].u, { username: 'ci-pipeline', groups: ['team-a', 'deployers', 'system:authenticated'] });
      assert.equal(await call('PUT', '/deployments/a/web/replicas'), 403);
      assert.deepEqual(events[0].user, { username: 'ci-pipeline', groups: ['team-a', 'deployers', 'system:authenticated'] });
      assert.equal(events[0].sourceIPs[0], '127.0.0.1');
      assert.equal(events[0].annotations['k8s-api-proxy/client-certificate-sha256'], new X509Certificate(client.certPem).fingerprint256);
    } finally {
      await server.close();
    }
  });
});
