import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { Validator } from '@seriousme/openapi-schema-validator';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { OPENAPI_FILE, generateOpenApi } from '../../scripts/openapi.js';
import { buildServer } from '../../src/server.js';
import { ProblemError, notFound, unavailable } from '../../src/errors.js';
import type { CachedDeployment } from '../../src/kube/deployments.js';
import { serverTlsOptions } from '../../src/tls/server-tls.js';
import { TrustedCas } from '../../src/tls/trust.js';
import { makeCertFixture } from '../helpers/certs.js';
import { OPEN_ACCESS } from '../helpers/open-access.js';
import { listsOf, replicasAnswer as answer } from '../helpers/stand-ins.js';
import { AuthorizerUnavailableError, type Authorizer } from '../../src/authz/authorizer.js';
import { GuardrailPolicy } from '../../src/kube/guardrails.js';
import { ChangeStream } from '../../src/kube/change-stream.js';

interface Operation { responses: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }> }
type Doc = { openapi: string; paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, unknown> } };

/** An API app whose cache and service answer as told, to drive every status a route can give. */
function app(o: { synced?: boolean; listThrows?: boolean | Error; missing?: boolean; cacheGetThrows?: boolean; get?: () => never; set?: () => Promise<never>; authorizer?: Authorizer } = {}, options: Parameters<typeof buildServer>[1] = {}): FastifyInstance {
  const item = { metadata: { name: 'web', namespace: 'ns' }, spec: { replicas: 1 } } as CachedDeployment;
  const deployments = {
    get: () => { if (o.cacheGetThrows) throw new TypeError('bug'); return o.missing ? undefined : item; },
    hasSynced: () => o.synced ?? true,
    list: () => { if (o.listThrows) throw new TypeError('bug'); return [item]; },
    subscribe: () => () => undefined,
    resourceVersion: () => '1',
  };
  return buildServer({
    ...OPEN_ACCESS,
    authorizer: o.authorizer ?? OPEN_ACCESS.authorizer,
    lists: {
      hasSynced: () => o.synced ?? true,
      namespaces: () => ['ns'],
      list: async () => {
        if (!(o.synced ?? true)) throw unavailable('the Deployment cache has not finished its first list from the API server yet', 1);
        if (o.listThrows) throw o.listThrows instanceof Error ? o.listThrows : new TypeError('bug');
        return { body: Buffer.from(JSON.stringify([{ name: item.metadata.name, namespace: item.metadata.namespace }])), etag: '"e"', resourceVersion: '1', items: 1 };
      },
    },
    // The extensions (issue 11), as the proxy wires them.
    scale: { deployments, autoscalers: { get: () => undefined, list: () => [], hasSynced: () => true }, guardrails: new GuardrailPolicy(0) },
    watch: { stream: new ChangeStream(deployments), deployments },
    replicas: {
      get: o.get ?? ((namespace, deployment) => answer(namespace, deployment, 1)),
      read: async (namespace, deployment) => (o.get ?? ((ns: string, d: string) => answer(ns, d, 1)))(namespace, deployment),
      set: o.set ?? (async (namespace, deployment, replicas) => answer(namespace, deployment, replicas)),
    },
    apiHealth: async () => ({ ok: false, message: 'down' }),
    readiness: { check: () => ({ ready: false, message: 'not yet' }) },
    logger: pino({ level: 'silent' }),
  }, options);
}

/** Authorizers that deny, and that cannot decide because the API server refused the proxy's review. */
const DENY: Authorizer = { authorize: async () => ({ allowed: false, reason: 'no RBAC rule' }) };
const REFUSED: Authorizer = { authorize: async () => { throw new AuthorizerUnavailableError('refused', 502); } };

const fail = (status: number) => async (): Promise<never> => { throw new ProblemError(status, 'X' as never, 'x'); };
const put = (payload: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }): InjectOptions =>
  ({ method: 'PUT', url: '/deployments/ns/web/replicas', payload: typeof payload === 'string' ? payload : JSON.stringify(payload), headers });

/** [OpenAPI path, method, app, request] for every status each route answers. */
const SCENARIOS: Array<[string, string, () => FastifyInstance, InjectOptions]> = [
  ['/deployments', 'get', () => app(), { url: '/deployments' }],
  ['/deployments', 'get', () => app(), { url: '/deployments?namespace=NOPE' }],
  ['/deployments', 'get', () => app({ listThrows: true }), { url: '/deployments' }],
  ['/deployments', 'get', () => app({ synced: false }), { url: '/deployments' }],
  ['/deployments', 'get', () => app(), { url: '/deployments', headers: { 'if-none-match': '"e"' } }],
  ...[410, 502, 504].map((s) => ['/deployments', 'get', () => app({ listThrows: new ProblemError(s, 'X' as never, 'x') }), { url: '/deployments' }] as [string, string, () => FastifyInstance, InjectOptions]),
  ['/deployments/{namespace}/{deployment}/replicas', 'get', () => app(), { url: '/deployments/ns/web/replicas', headers: { 'if-none-match': '"1"' } }],
  ...[502, 504].map((s) => ['/deployments/{namespace}/{deployment}/replicas', 'get', () => app({ get: () => { throw new ProblemError(s, 'X' as never, 'x'); } }), { url: '/deployments/ns/web/replicas' }] as [string, string, () => FastifyInstance, InjectOptions]),
  ['/deployments/{namespace}/{deployment}/replicas', 'get', () => app(), { url: '/deployments/ns/web/replicas' }],
  ['/deployments/{namespace}/{deployment}/replicas', 'get', () => app(), { url: '/deployments/NS/web/replicas' }],
  ['/deployments/{namespace}/{deployment}/replicas', 'get', () => app({ get: () => { throw notFound('x'); } }), { url: '/deployments/ns/web/replicas' }],
  ['/deployments/{namespace}/{deployment}/replicas', 'get', () => app({ get: () => { throw new TypeError('bug'); } }), { url: '/deployments/ns/web/replicas' }],
  ['/deployments/{namespace}/{deployment}/replicas', 'get', () => app({ get: () => { throw unavailable('x', 1); } }), { url: '/deployments/ns/web/replicas' }],
  ['/deployments/{namespace}/{deployment}/replicas', 'put', () => app(), put({ replicas: 2 })],
  ['/deployments/{namespace}/{deployment}/replicas', 'put', () => app(), put('{not json')],
  ['/deployments/{namespace}/{deployment}/replicas', 'put', () => app(), put({ replicas: 2 }, { 'content-type': 'text/plain' })],
  ['/deployments/{namespace}/{deployment}/replicas', 'put', () => app(), put('x'.repeat(2000))],
  ['/deployments/{namespace}/{deployment}/replicas', 'put', () => app(), put({ replicas: -1 })],
  ...([[DENY, 403], [REFUSED, 502]] as const).flatMap(([authorizer]) => [
    ['/deployments', 'get', () => app({ authorizer }), { url: '/deployments?namespace=ns' }],
    ['/deployments/{namespace}/{deployment}/replicas', 'get', () => app({ authorizer }), { url: '/deployments/ns/web/replicas' }],
    ['/deployments/{namespace}/{deployment}/replicas', 'put', () => app({ authorizer }), put({ replicas: 2 })],
    ['/deployments/{namespace}/{deployment}', 'get', () => app({ authorizer }), { url: '/deployments/ns/web' }],
  ] as Array<[string, string, () => FastifyInstance, InjectOptions]>),
  ...[403, 404, 408, 409, 500, 502, 503, 504].map((s) => ['/deployments/{namespace}/{deployment}/replicas', 'put', () => app({ set: fail(s) }), put({ replicas: 2 })] as [string, string, () => FastifyInstance, InjectOptions]),
  ['/deployments/{namespace}/{deployment}/replicas', 'put', () => app({ set: async () => { throw new TypeError('bug'); } }), put({ replicas: 2 })],
  // Extensions (issue 11): a wait that times out, and the status endpoint.
  ['/deployments/{namespace}/{deployment}/replicas', 'put', () => app(), { ...put({ replicas: 2 }), url: '/deployments/ns/web/replicas?wait=ready&timeout=1ms' }],
  ['/deployments/{namespace}/{deployment}', 'get', () => app(), { url: '/deployments/ns/web' }],
  ['/deployments/{namespace}/{deployment}', 'get', () => app(), { url: '/deployments/NS/web' }],
  ['/deployments/{namespace}/{deployment}', 'get', () => app({ missing: true }), { url: '/deployments/ns/web' }],
  ['/deployments/{namespace}/{deployment}', 'get', () => app({ cacheGetThrows: true }), { url: '/deployments/ns/web' }],
  ['/deployments/{namespace}/{deployment}', 'get', () => app({ synced: false }), { url: '/deployments/ns/web' }],
  ['/livez', 'get', () => app(), { url: '/livez' }],
  ['/readyz', 'get', () => app(), { url: '/readyz' }],
  ['/readyz', 'get', () => buildServer({ ...depsReady() }), { url: '/readyz' }],
  ['/healthz', 'get', () => app(), { url: '/healthz' }],
  ['/healthz', 'get', () => buildServer({ ...depsReady() }), { url: '/healthz' }],
  ['/openapi.json', 'get', () => app(), { url: '/openapi.json' }],
];

function depsReady(): Parameters<typeof buildServer>[0] {
  return {
    ...OPEN_ACCESS,
    lists: listsOf(),
    replicas: { get: () => { throw new Error('unused'); }, read: () => { throw new Error('unused'); }, set: () => { throw new Error('unused'); } },
    apiHealth: async () => ({ ok: true }), readiness: { check: () => ({ ready: true }) }, logger: pino({ level: 'silent' }),
  };
}

describe('openapi.json', () => {
  let committed: Doc;
  before(() => { committed = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as Doc; });

  it('is what the routes generate (run `make openapi` after changing a route schema)', async () => {
    assert.equal(readFileSync(OPENAPI_FILE, 'utf8'), await generateOpenApi());
  });

  it('is a valid OpenAPI 3.1 document', async () => {
    assert.equal(committed.openapi, '3.1.0');
    const result = await new Validator().validate(structuredClone(committed) as never);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
  });

  it('documents every status each route answers, errors as application/problem+json Problem, and no status it never answers', async () => {
    const seen = new Map<string, Set<string>>();
    const answers: Array<[string, string, { statusCode: number; headers: Record<string, unknown> }]> = [];
    for (const [path, method, make, req] of SCENARIOS) answers.push([path, method, await make().inject(req)]);
    // Every route, once per operation: over its rate limit (429), and on a connection whose CA was removed since (401).
    const ops = [...new Map(SCENARIOS.map(([path, method, , req]) => [`${method} ${path}`, [path, method, req] as const])).values()];
    for (const [path, method, req] of ops) {
      const limited = app({}, { rateLimits: { read: { rps: 0.001, burst: 1 }, write: { rps: 0.001, burst: 1 } } });
      await limited.inject(req);
      answers.push([path, method, await limited.inject(req)]);
    }
    const certs = await makeCertFixture();
    const trust = new TrustedCas(certs.ca);
    const tlsApp = app({}, { tls: serverTlsOptions(readFileSync(certs.serverCertFile), readFileSync(certs.serverKeyFile), Buffer.from(certs.ca)), trust });
    await tlsApp.listen({ host: '127.0.0.1', port: 0 });
    try {
      const port = (tlsApp.server.address() as AddressInfo).port;
      for (const [path, method, req] of ops) {
        const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: certs.ca, ...certs.client });
        const send = (o: InjectOptions): Promise<{ statusCode: number; headers: Record<string, unknown> }> => new Promise((resolve, reject) => {
          const r = https.request({ host: '127.0.0.1', port, servername: 'localhost', agent, method: o.method ?? 'GET', path: String(o.url), headers: o.headers as Record<string, string> }, (res) => {
            res.resume();
            res.on('end', () => resolve({ statusCode: res.statusCode!, headers: res.headers }));
          });
          r.on('error', reject);
          r.end(o.payload as string | undefined);
        });
        assert.equal((await send({ url: '/livez' })).statusCode, 200);
        trust.update(certs.otherCaClient.cert);
        answers.push([path, method, await send(req)]);
        trust.update(certs.ca);
        agent.destroy();
      }
    } finally {
      await tlsApp.close();
    }
    for (const [path, method, r] of answers) {
      const key = `${method.toUpperCase()} ${path}`;
      const op = committed.paths[path]?.[method];
      assert.ok(op, `${key} is not documented`);
      const doc = op.responses[String(r.statusCode)];
      assert.ok(doc, `${key} answered ${r.statusCode}, which the document does not list`);
      if (r.headers['content-type']?.toString().startsWith('application/problem+json')) {
        assert.equal(doc.content?.['application/problem+json']?.schema?.$ref, '#/components/schemas/Problem', `${key} ${r.statusCode}`);
      }
      seen.set(key, (seen.get(key) ?? new Set()).add(String(r.statusCode)));
    }
    for (const [path, ops] of Object.entries(committed.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const key = `${method.toUpperCase()} ${path}`;
        assert.deepEqual(Object.keys(op.responses).sort(), [...(seen.get(key) ?? [])].sort(), `${key}: documented vs. driven statuses`);
      }
    }
    assert.ok(committed.components.schemas.Problem);
  });
});
