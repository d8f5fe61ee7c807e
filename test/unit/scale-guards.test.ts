import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { GuardrailPolicy, MAX_REPLICAS_ANNOTATION, MIN_REPLICAS_ANNOTATION } from '../../src/kube/guardrails.js';
import { rolloutOf, type RolloutFields } from '../../src/kube/rollout.js';
import { autoscalersOf, projectHpa, type CachedHpa } from '../../src/kube/hpa.js';
import { Reflector, type CacheChange, type ReflectorClock } from '../../src/kube/reflector.js';
import { DEPLOYMENTS, type CachedDeployment } from '../../src/kube/deployments.js';
import { parseScaleQuery } from '../../src/routes/deployment-status.js';
import { ProblemError } from '../../src/errors.js';
import { buildServer } from '../../src/server.js';
import { ChangeStream } from '../../src/kube/change-stream.js';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type { CacheReader } from '../../src/kube/object-store.js';
import { fakeApiServer, json, deployment, type FakeApiServer } from '../helpers/fake-api-server.js';
import { waitFor } from '../helpers/wait.js';
import { OPEN_ACCESS } from '../helpers/open-access.js';
import type { Authorizer } from '../../src/authz/authorizer.js';
import { listsOf, replicasAnswer } from '../helpers/stand-ins.js';

const UNUSED_REPLICAS = { get: () => { throw new Error('unused'); }, read: async () => { throw new Error('unused'); }, set: async () => { throw new Error('unused'); } };

const annotated = (annotations: Record<string, string>) => ({ metadata: { name: 'web', namespace: 'shop', annotations } });

function problemOf(f: () => unknown): ProblemError {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof ProblemError, String(err));
    return err;
  }
  assert.fail('expected a ProblemError');
}

describe('replica guardrails', () => {
  const cases: Array<{ name: string; ann: Record<string, string>; cap: number; replicas: number; refused?: RegExp }> = [
    { name: 'a PUT above the max annotation is refused naming the annotation', ann: { [MAX_REPLICAS_ANNOTATION]: '10' }, cap: 1000, replicas: 11, refused: /above the maximum of 10 .*annotation k8s-api-proxy\.io\/max-replicas/ },
    { name: 'a PUT at the max annotation is accepted', ann: { [MAX_REPLICAS_ANNOTATION]: '10' }, cap: 1000, replicas: 10 },
    { name: 'a PUT below the min annotation is refused naming the annotation', ann: { [MIN_REPLICAS_ANNOTATION]: '2' }, cap: 1000, replicas: 1, refused: /below the minimum of 2 .*annotation k8s-api-proxy\.io\/min-replicas/ },
    { name: 'a PUT above the global cap is refused naming the flag', ann: {}, cap: 100, replicas: 101, refused: /above the maximum of 100 .*flag --max-replicas/ },
    { name: 'the global cap wins over a larger annotation', ann: { [MAX_REPLICAS_ANNOTATION]: '500' }, cap: 100, replicas: 101, refused: /flag --max-replicas/ },
    { name: 'a cap of 0 means no cap', ann: {}, cap: 0, replicas: 2_000_000 },
    { name: 'a malformed max annotation is ignored, not blocking', ann: { [MAX_REPLICAS_ANNOTATION]: 'ten' }, cap: 1000, replicas: 50 },
    { name: 'a negative annotation is malformed', ann: { [MIN_REPLICAS_ANNOTATION]: '-1' }, cap: 1000, replicas: 0 },
    { name: 'a min above the max ignores both', ann: { [MIN_REPLICAS_ANNOTATION]: '5', [MAX_REPLICAS_ANNOTATION]: '3' }, cap: 1000, replicas: 4 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const policy = new GuardrailPolicy(c.cap);
      if (c.refused) {
        const p = problemOf(() => policy.check(annotated(c.ann), c.replicas));
        assert.equal(p.status, 422);
        assert.equal(p.reason, 'Invalid');
        assert.match(p.message, c.refused);
      } else {
        policy.check(annotated(c.ann), c.replicas);
      }
    });
  }

  it('reads an annotation as people write it: spaces around it and leading zeros are accepted', () => {
    const policy = new GuardrailPolicy(1000);
    const g = policy.of(annotated({ [MAX_REPLICAS_ANNOTATION]: '05', [MIN_REPLICAS_ANNOTATION]: ' 1 ' }));
    assert.deepEqual([g.max, g.min, g.problems], [{ replicas: 5, source: `annotation ${MAX_REPLICAS_ANNOTATION}` }, { replicas: 1, source: `annotation ${MIN_REPLICAS_ANNOTATION}` }, []]);
  });

  it('reports malformed annotations in the bounds and logs each once', () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (l: string) => { lines.push(l); } });
    const policy = new GuardrailPolicy(1000, logger);
    const g = policy.of(annotated({ [MAX_REPLICAS_ANNOTATION]: '1e3', [MIN_REPLICAS_ANNOTATION]: '1' }));
    policy.of(annotated({ [MAX_REPLICAS_ANNOTATION]: '1e3', [MIN_REPLICAS_ANNOTATION]: '1' }));
    assert.equal(g.problems.length, 1);
    assert.match(g.problems[0], /max-replicas: "1e3" is not a whole number/);
    assert.deepEqual(g.max, { replicas: 1000, source: 'flag --max-replicas' });
    assert.deepEqual(g.min, { replicas: 1, source: 'annotation k8s-api-proxy.io/min-replicas' });
    assert.equal(lines.length, 1);
    assert.match(lines[0], /malformed replica guardrail annotation ignored/);
  });
});

describe('rollout verdict (kubectl rollout status, rollout_status.go)', () => {
  const dep = (spec: number, generation: number, status: NonNullable<RolloutFields['status']>): RolloutFields =>
    ({ metadata: { name: 'web', generation }, spec: { replicas: spec }, status });
  const deadline = { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' };
  const cases: Array<[string, RolloutFields, string, RegExp]> = [
    ['complete when every replica is updated and available', dep(3, 2, { observedGeneration: 2, replicas: 3, updatedReplicas: 3, availableReplicas: 3 }), 'Complete', /successfully rolled out/],
    ['progressing while the spec is not observed', dep(3, 3, { observedGeneration: 2, replicas: 3, updatedReplicas: 3, availableReplicas: 3 }), 'Progressing', /spec update to be observed/],
    ['progressing while fewer replicas are updated', dep(3, 2, { observedGeneration: 2, replicas: 3, updatedReplicas: 1, availableReplicas: 1 }), 'Progressing', /1 out of 3 new replicas/],
    ['progressing while old replicas terminate', dep(3, 2, { observedGeneration: 2, replicas: 5, updatedReplicas: 3, availableReplicas: 3 }), 'Progressing', /2 old replicas are pending termination/],
    ['progressing while updated replicas are not available', dep(3, 2, { observedGeneration: 2, replicas: 3, updatedReplicas: 3, availableReplicas: 2 }), 'Progressing', /2 of 3 updated replicas are available/],
    ['stalled on ProgressDeadlineExceeded, before the counters', dep(3, 2, { observedGeneration: 2, replicas: 3, updatedReplicas: 1, conditions: [deadline] }), 'Stalled', /exceeded its progress deadline/],
    ['not stalled while the deadline verdict is for an older generation', dep(3, 3, { observedGeneration: 2, conditions: [deadline] }), 'Progressing', /observed/],
    ['scaled to zero when spec.replicas is 0 and nothing is left', dep(0, 2, { observedGeneration: 2 }), 'ScaledToZero', /successfully rolled out/],
  ];
  for (const [name, d, verdict, message] of cases) {
    it(name, () => {
      const r = rolloutOf(d);
      assert.equal(r.verdict, verdict);
      assert.match(r.message, message);
    });
  }
});

describe('HorizontalPodAutoscaler projection and targets', () => {
  const hpa = (name: string, target: string, kind = 'Deployment', apiVersion = 'apps/v1', min?: number): CachedHpa => projectHpa({
    metadata: { name, namespace: 'shop', resourceVersion: '1', managedFields: [{}] },
    spec: { scaleTargetRef: { apiVersion, kind, name: target }, ...(min !== undefined ? { minReplicas: min } : {}), maxReplicas: 10, metrics: [{ type: 'Resource' }] },
  });
  const cache = (items: CachedHpa[]): CacheReader<CachedHpa> => ({
    get: () => undefined, list: (ns) => items.filter((h) => h.metadata.namespace === ns), hasSynced: () => true,
  });

  it('keeps only the target and range; minReplicas defaults to 1', () => {
    assert.deepEqual(hpa('a', 'web'), {
      metadata: { name: 'a', namespace: 'shop', resourceVersion: '1' },
      spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' }, minReplicas: 1, maxReplicas: 10 },
    });
  });

  it('finds the HPAs targeting a Deployment by kind, group and name, sorted', () => {
    const all = [hpa('z', 'web', 'Deployment', 'apps/v1', 2), hpa('a', 'web'), hpa('other', 'api'), hpa('rs', 'web', 'ReplicaSet'), hpa('crd', 'web', 'Deployment', 'example.com/v1')];
    assert.deepEqual(autoscalersOf(cache(all), 'shop', 'web'), [{ name: 'a', minReplicas: 1, maxReplicas: 10 }, { name: 'z', minReplicas: 2, maxReplicas: 10 }]);
    assert.deepEqual(autoscalersOf(cache(all), 'other', 'web'), []);
  });
});

describe('PUT query extensions', () => {
  const cases: Array<[string, Record<string, unknown>, ReturnType<typeof parseScaleQuery> | RegExp]> = [
    ['no query is a plain write', {}, { force: false, waitMs: undefined }],
    ['force=true', { force: 'true' }, { force: true, waitMs: undefined }],
    ['wait=ready waits 60 s by default', { wait: 'ready' }, { force: false, waitMs: 60_000 }],
    ['timeout in seconds', { wait: 'ready', timeout: '5s' }, { force: false, waitMs: 5_000 }],
    ['timeout in milliseconds', { wait: 'ready', timeout: '1500ms' }, { force: false, waitMs: 1_500 }],
    ['timeout in minutes, up to 5', { wait: 'ready', timeout: '5m' }, { force: false, waitMs: 300_000 }],
    ['a longer timeout is refused', { wait: 'ready', timeout: '6m' }, /querystring\.timeout/],
    ['a timeout without a unit is refused', { wait: 'ready', timeout: '60' }, /querystring\.timeout/],
    ['a timeout without wait is refused', { timeout: '5s' }, /only meaningful with wait=ready/],
    ['another wait value is refused', { wait: 'available' }, /querystring\.wait/],
    ['force=yes is refused', { force: 'yes' }, /querystring\.force/],
    ['a repeated parameter is refused', { force: ['true', 'true'] }, /given more than once/],
  ];
  for (const [name, query, expected] of cases) {
    it(name, () => {
      if (expected instanceof RegExp) {
        const p = problemOf(() => parseScaleQuery(query));
        assert.equal(p.status, 400);
        assert.match(p.message, expected);
      } else {
        assert.deepEqual(parseScaleQuery(query), expected);
      }
    });
  }
});

describe('Reflector change notifications', () => {
  let server: FakeApiServer | undefined;
  let reflector: Reflector<CachedDeployment> | undefined;
  afterEach(async () => {
    await reflector?.stop();
    await server?.close();
  });
  const clock: ReflectorClock = { now: () => Date.now(), random: () => 0.5, sleep: () => new Promise((r) => setTimeout(r, 1)) };
  const line = (type: string, object: unknown): string => `${JSON.stringify({ type, object })}\n`;

  it('reports watch events after storing them, and a relist as its difference with the old content', async () => {
    let lists = 0;
    server = await fakeApiServer((req, res) => {
      const u = new URL(req.url!, 'http://x');
      if (!u.searchParams.get('watch')) {
        lists++;
        return lists === 1
          ? json(res, 200, { metadata: { resourceVersion: '10' }, items: [deployment('ns', 'keep', '5'), deployment('ns', 'same', '6'), deployment('ns', 'gone', '7')] })
          : json(res, 200, { metadata: { resourceVersion: '50' }, items: [deployment('ns', 'keep', '40', 3), deployment('ns', 'same', '6'), deployment('ns', 'new', '45')] });
      }
      res.writeHead(200);
      if (u.searchParams.get('resourceVersion') === '10') {
        res.write(line('MODIFIED', deployment('ns', 'keep', '11', 2)));
        res.write(line('DELETED', deployment('ns', 'same', '12')));
        res.write(line('ADDED', deployment('ns', 'same', '13')));
        res.end(line('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old' }));
      } else res.flushHeaders();
    });
    reflector = new Reflector(await server.client(), DEPLOYMENTS, { clock });
    const seen: string[] = [];
    reflector.subscribe((c: CacheChange<CachedDeployment>) => {
      // The cache already shows the change when the listener runs.
      const cached = reflector!.get('ns', c.object.metadata.name);
      assert.equal(c.type === 'DELETED' ? cached : cached?.metadata.resourceVersion, c.type === 'DELETED' ? undefined : c.object.metadata.resourceVersion);
      seen.push(`${c.type} ${c.object.metadata.name} ${c.resourceVersion}`);
    });
    reflector.start();
    await waitFor('relist', () => lists === 2 && reflector!.status().resourceVersion === '50');
    assert.deepEqual(seen, [
      'ADDED keep 10', 'ADDED same 10', 'ADDED gone 10',
      'MODIFIED keep 11', 'DELETED same 12', 'ADDED same 13',
      // relist at 50: keep changed, same changed (13 -> 6), new appeared, gone disappeared
      'MODIFIED keep 50', 'MODIFIED same 50', 'ADDED new 50', 'DELETED gone 50',
    ]);
  });
});

describe('scale extension routes (Fastify inject over in-memory caches)', () => {
  type Listener = (c: CacheChange<CachedDeployment>) => void;
  function world(items: CachedDeployment[], hpas: CachedHpa[] = [], authorizer?: Authorizer) {
    const listeners = new Set<Listener>();
    const writes: number[] = [];
    const deployments = {
      get: (ns: string, name: string) => items.find((i) => i.metadata.namespace === ns && i.metadata.name === name),
      list: (ns?: string) => items.filter((i) => ns === undefined || i.metadata.namespace === ns),
      hasSynced: () => true,
      subscribe: (l: Listener) => { listeners.add(l); return () => { listeners.delete(l); }; },
    };
    const autoscalers: CacheReader<CachedHpa> = { get: () => undefined, list: (ns) => hpas.filter((h) => h.metadata.namespace === ns), hasSynced: () => true };
    const app = buildServer({
      ...OPEN_ACCESS, ...(authorizer ? { authorizer } : {}),
      lists: listsOf(items), logger: pino({ level: 'silent' }),
      replicas: {
        get: (namespace, deployment) => replicasAnswer(namespace, deployment, 1),
        read: async (namespace, deployment) => replicasAnswer(namespace, deployment, 1),
        set: async (namespace, deployment, n) => { writes.push(n); return replicasAnswer(namespace, deployment, n, 1); },
      },
      apiHealth: async () => ({ ok: true }), readiness: { check: () => ({ ready: true }) },
      scale: { deployments, autoscalers, guardrails: new GuardrailPolicy(100) },
    });
    const update = (d: CachedDeployment): void => {
      const i = items.findIndex((x) => x.metadata.name === d.metadata.name);
      items[i] = d;
      for (const l of listeners) l({ type: 'MODIFIED', object: d, resourceVersion: '9' });
    };
    return { app, writes, update, listeners };
  }
  const web = (replicas: number, status: Record<string, unknown>, annotations: Record<string, string> = {}): CachedDeployment =>
    ({ metadata: { name: 'web', namespace: 'shop', generation: 2, annotations }, spec: { replicas }, status: { observedGeneration: 2, ...status } }) as unknown as CachedDeployment;
  const hpaFor = (target: string): CachedHpa => projectHpa({ metadata: { name: 'web-hpa', namespace: 'shop' }, spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: target }, minReplicas: 2, maxReplicas: 8 } });
  const put = (url: string, replicas: number) => ({ method: 'PUT' as const, url, payload: { replicas } });

  it('GET /deployments/{ns}/{name} asks get deployments.apps for that name (README authorization table); denied is 403 before any lookup', async () => {
    const asked: unknown[] = [];
    const deny: Authorizer = { authorize: async (_u, a) => { asked.push(a); return { allowed: false, reason: 'test' }; } };
    const { app } = world([web(3, {})], [], deny);
    const r = await app.inject('/deployments/shop/nope');
    assert.equal(r.statusCode, 403, 'a missing Deployment is still 403 to a denied client');
    assert.deepEqual(asked, [{ verb: 'get', group: 'apps', resource: 'deployments', namespace: 'shop', name: 'nope' }]);
  });

  it('GET /deployments/{ns}/{name} answers the status, verdict, guardrails and autoscalers', async () => {
    const { app } = world([web(3, { replicas: 3, updatedReplicas: 3, readyReplicas: 3, availableReplicas: 3, conditions: [{ type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable' }, { type: 'ReplicaFailure', status: 'False' }] }, { [MAX_REPLICAS_ANNOTATION]: 'x' })], [hpaFor('web')]);
    const r = await app.inject('/deployments/shop/web');
    assert.equal(r.statusCode, 200);
    assert.deepEqual(r.json(), {
      name: 'web', namespace: 'shop', replicas: 3, generation: 2,
      status: { observedGeneration: 2, replicas: 3, updatedReplicas: 3, readyReplicas: 3, availableReplicas: 3 },
      conditions: [{ type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable' }],
      rollout: 'Complete', rolloutMessage: 'deployment "web" successfully rolled out',
      guardrails: { max: { replicas: 100, source: 'flag --max-replicas' }, problems: ['k8s-api-proxy.io/max-replicas: "x" is not a whole number of replicas between 0 and 2147483647; ignored'] },
      autoscalers: [{ name: 'web-hpa', minReplicas: 2, maxReplicas: 8 }],
    });
    assert.equal((await app.inject('/deployments/shop/nope')).statusCode, 404);
    const q = await app.inject('/deployments/shop/web?verbose=1');
    assert.equal(q.statusCode, 400, 'an unknown query parameter');
    assert.equal(q.json().detail, 'querystring.verbose: unknown parameter; none is accepted');
    const m = await app.inject({ method: 'DELETE', url: '/deployments/shop/web' });
    assert.equal(m.statusCode, 405);
    assert.equal(m.headers.allow, 'GET, HEAD');
  });

  it('refuses a PUT outside the guardrails with 422 before writing', async () => {
    const { app, writes } = world([web(3, {}, { [MAX_REPLICAS_ANNOTATION]: '10' })]);
    const r = await app.inject(put('/deployments/shop/web/replicas', 11));
    assert.equal(r.statusCode, 422);
    assert.match(r.json().detail, /annotation k8s-api-proxy\.io\/max-replicas/);
    assert.deepEqual(writes, []);
  });

  it('refuses a PUT on an autoscaled Deployment with 409 ManagedByAutoscaler, even within its range, unless forced', async () => {
    const { app, writes } = world([web(3, {})], [hpaFor('web')]);
    const r = await app.inject(put('/deployments/shop/web/replicas', 4));
    assert.equal(r.statusCode, 409);
    assert.equal(r.json().reason, 'ManagedByAutoscaler');
    assert.equal(r.json().title, 'Conflict');
    assert.match(r.json().detail, /HorizontalPodAutoscaler "web-hpa" \(minReplicas 2, maxReplicas 8\)/);
    assert.deepEqual(writes, []);
    const f = await app.inject(put('/deployments/shop/web/replicas?force=true', 4));
    assert.equal(f.statusCode, 200);
    assert.deepEqual(writes, [4]);
    const capped = await app.inject(put('/deployments/shop/web/replicas?force=true', 101));
    assert.equal(capped.statusCode, 422, 'force does not lift the guardrails');
    assert.deepEqual(writes, [4]);
  });

  it('?wait=ready answers once the cached rollout is complete at the new count', async () => {
    const w = world([web(1, { replicas: 1, updatedReplicas: 1, availableReplicas: 1 })]);
    const pending = w.app.inject(put('/deployments/shop/web/replicas?wait=ready&timeout=5s', 2));
    await waitFor('the wait subscribes', () => w.listeners.size === 1);
    w.update({ ...web(2, { replicas: 1, updatedReplicas: 1, availableReplicas: 1 }), metadata: { name: 'web', namespace: 'shop', generation: 3 } } as unknown as CachedDeployment);
    w.update({ ...web(2, { observedGeneration: 3, replicas: 2, updatedReplicas: 2, availableReplicas: 2 }), metadata: { name: 'web', namespace: 'shop', generation: 3 } } as unknown as CachedDeployment);
    const r = await pending;
    assert.equal(r.statusCode, 200);
    assert.deepEqual(r.json(), { deployment: 'web', namespace: 'shop', replicas: 2 });
    assert.equal(w.listeners.size, 0, 'unsubscribed');
  });

  it('?wait=ready answers 202 with the current status when the timeout passes', async () => {
    const w = world([web(1, { replicas: 1, updatedReplicas: 1, availableReplicas: 0 })]);
    const r = await w.app.inject(put('/deployments/shop/web/replicas?wait=ready&timeout=200ms', 1));
    assert.equal(r.statusCode, 202);
    assert.equal(r.json().rollout, 'Progressing');
    assert.match(r.json().rolloutMessage, /0 of 1 updated replicas are available/);
    assert.equal(w.listeners.size, 0);
  });
});

describe('change stream (SSE) over real loopback sockets', () => {
  type L = (c: CacheChange<CachedDeployment>) => void;
  function source(items: CachedDeployment[] = []) {
    const listeners = new Set<L>();
    let rv = '100';
    return {
      get: () => undefined, list: () => items, hasSynced: () => true,
      subscribe: (l: L) => { listeners.add(l); return () => { listeners.delete(l); }; },
      resourceVersion: () => rv,
      emit(type: CacheChange<CachedDeployment>['type'], name: string, newRv: string, replicas = 1, namespace = 'a') {
        rv = newRv;
        const object = { metadata: { name, namespace, resourceVersion: newRv }, spec: { replicas } } as CachedDeployment;
        for (const l of listeners) l({ type, object, resourceVersion: newRv });
      },
    };
  }
  const dep = (namespace: string, name: string, replicas: number) => ({ metadata: { name, namespace, resourceVersion: '90' }, spec: { replicas } }) as CachedDeployment;

  it('resumes from the history after Last-Event-ID, and asks for a relist once the history no longer reaches back', () => {
    const src = source();
    const stream = new ChangeStream(src, 3);
    src.emit('ADDED', 'x', '101');
    src.emit('MODIFIED', 'x', '102', 2);
    src.emit('DELETED', 'x', '103');
    const r = stream.since('101');
    assert.equal(r.kind, 'resume');
    assert.deepEqual(r.kind === 'resume' && r.events.map((e) => e.frame.toString()), [
      'id: 102\nevent: MODIFIED\ndata: {"name":"x","namespace":"a","replicas":2}\n\n',
      'id: 103\nevent: DELETED\ndata: {"name":"x","namespace":"a","replicas":1}\n\n',
    ]);
    assert.equal(stream.since('100').kind, 'resume', 'the stream started at 100: nothing is missing after it');
    assert.equal(stream.since('99').kind, 'relist', 'before the stream started');
    src.emit('ADDED', 'y', '104'); // evicts 101
    assert.equal(stream.since('100').kind, 'relist');
    assert.equal(stream.since('101').kind, 'resume');
    assert.equal(stream.since('abc').kind, 'relist');
    assert.equal(stream.since('104').kind, 'resume', 'the current resourceVersion: nothing missed');
    const future = stream.since('999999999');
    assert.deepEqual(future, { kind: 'relist', reason: 'resourceVersion 999999999 is newer than this stream\'s (104)' }, 'an id from the future would skip changes silently');
    const got: Buffer[] = [];
    stream.subscribe((ev) => got.push(ev.frame));
    stream.subscribe((ev) => got.push(ev.frame));
    src.emit('MODIFIED', 'y', '105', 3);
    assert.equal(got.length, 2);
    assert.equal(got[0], got[1], 'one serialized frame (the same Buffer) for every watcher');
  });

  const logged: Array<Record<string, unknown>> = [];
  const capture = pino({ level: 'warn' }, { write: (l: string) => { logged.push(JSON.parse(l) as Record<string, unknown>); } });
  async function listen(src: ReturnType<typeof source>, stream: ChangeStream, maxBufferedBytes: number, keepAliveMs = 60_000) {
    const app = buildServer({
      ...OPEN_ACCESS,
      lists: listsOf(src.list()), logger: capture,
      replicas: UNUSED_REPLICAS,
      apiHealth: async () => ({ ok: true }), readiness: { check: () => ({ ready: true }) },
      watch: { stream, deployments: src, maxBufferedBytes, keepAliveMs },
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address() as AddressInfo;
    return { app, base: `http://127.0.0.1:${addr.port}` };
  }

  function read(url: string, headers: Record<string, string> = {}): Promise<{ text: () => string; res: http.IncomingMessage; req: http.ClientRequest }> {
    return new Promise((resolve, reject) => {
      const req = http.get(url, { headers }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => { text += c; });
        resolve({ text: () => text, res, req });
      });
      req.on('error', reject);
    });
  }

  it('filters the all-namespaces stream by the authorizer exactly like the list: a client allowed only in a sees nothing from b', async () => {
    const src = source([dep('b', 'z', 1), dep('a', 'x', 3)]);
    const stream = new ChangeStream(src);
    const onlyA: Authorizer = { authorize: async (_u, a) => ({ allowed: a.namespace === 'a', reason: 'test' }) };
    const app = buildServer({
      ...OPEN_ACCESS, authorizer: onlyA,
      lists: listsOf(src.list()), logger: capture,
      replicas: UNUSED_REPLICAS,
      apiHealth: async () => ({ ok: true }), readiness: { check: () => ({ ready: true }) },
      watch: { stream, deployments: src, maxBufferedBytes: 1 << 20, keepAliveMs: 60_000 },
      scale: { deployments: src, autoscalers: { get: () => undefined, list: () => [], hasSynced: () => true }, guardrails: new GuardrailPolicy(0) },
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    try {
      const w = await read(`${base}/deployments?watch=true`);
      await waitFor('synced', () => w.text().includes('SYNCED'));
      src.emit('MODIFIED', 'z', '101', 7, 'b');
      src.emit('MODIFIED', 'x', '102', 5, 'a');
      await waitFor('the event from a', () => w.text().includes('"replicas":5'));
      assert.doesNotMatch(w.text(), /"namespace":"b"/);
      w.req.destroy();
      const forbidden = await app.inject('/deployments?watch=true&namespace=b');
      assert.equal(forbidden.statusCode, 403);
      const status = await app.inject('/deployments/b/z');
      assert.equal(status.statusCode, 403, 'the status endpoint is authorized too (get deployments)');
    } finally {
      await app.close();
    }
  });

  it('starts with the state (sorted, filtered) and SYNCED, then live events, and keep-alive comments; headers go out at once', async () => {
    const src = source([dep('b', 'z', 1), dep('a', 'y', 2), dep('a', 'x', 3)]);
    const stream = new ChangeStream(src);
    const { app, base } = await listen(src, stream, 1 << 20, 50);
    try {
      const w = await read(`${base}/deployments?watch=true&namespace=a`, { 'x-request-id': 'watch-req-1' });
      assert.equal(w.res.headers['content-type'], 'text/event-stream; charset=utf-8');
      assert.equal(w.res.headers['x-request-id'], 'watch-req-1', 'the stream carries X-Request-Id like every answer');
      await waitFor('synced', () => w.text().includes('SYNCED'));
      src.emit('MODIFIED', 'x', '101', 5);
      src.emit('MODIFIED', 'z', '102', 5, 'b');
      await waitFor('keep-alive', () => w.text().includes(': keep-alive'));
      assert.equal(w.text().replaceAll(': keep-alive\n\n', ''), [
        'event: ADDED\ndata: {"name":"x","namespace":"a","replicas":3}\n\n',
        'event: ADDED\ndata: {"name":"y","namespace":"a","replicas":2}\n\n',
        'id: 100\nevent: SYNCED\ndata: {"resourceVersion":"100"}\n\n',
        'id: 101\nevent: MODIFIED\ndata: {"name":"x","namespace":"a","replicas":5}\n\n',
      ].join(''));
      w.req.destroy();
      await waitFor('unsubscribed', () => stream.watchers === 0);
      assert.equal((await app.inject('/deployments?watch=maybe')).statusCode, 400);
    } finally {
      await app.close();
    }
  });

  it('sends the headers of a resumed stream at once, before any event or keep-alive', async () => {
    const src = source([dep('a', 'x', 3)]);
    const stream = new ChangeStream(src);
    const { app, base } = await listen(src, stream, 1 << 20, 60_000);
    const req = http.get(`${base}/deployments?watch=true`, { headers: { 'last-event-id': '100' } });
    try {
      const res = await Promise.race([
        new Promise<http.IncomingMessage>((resolve) => req.once('response', resolve)),
        new Promise<never>((_r, reject) => setTimeout(() => reject(new Error('no headers within 2 s')), 2_000)),
      ]);
      assert.equal(res.statusCode, 200, 'nothing was missed, so no event yet: the headers alone say the stream is open');
    } finally {
      req.destroy();
      await app.close();
    }
  });

  it('cuts off a watcher that stops reading once its queue passes the bound; the others get every event', async () => {
    const src = source();
    const stream = new ChangeStream(src, 100);
    const { app, base } = await listen(src, stream, 256 * 1024);
    try {
      const healthy = await read(`${base}/deployments?watch=true`);
      const stalled = net.connect(Number(new URL(base).port), '127.0.0.1');
      stalled.pause(); // never reads: its kernel buffers fill, then the server's queue grows
      stalled.write('GET /deployments?watch=true HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitFor('two watchers', () => stream.watchers === 2);
      const name = 'n'.repeat(200);
      const total = 40_000; // about 10 MB of frames
      for (let i = 0; i < total; i += 50) {
        for (let j = i; j < i + 50; j++) src.emit('MODIFIED', name, String(1000 + j), j);
        await new Promise((r) => setTimeout(r, 0));
      }
      await waitFor('stalled watcher cut', () => stream.watchers === 1, 10_000);
      const cut = logged.find((l) => l.msg === 'watcher too slow: disconnected');
      assert.ok(cut, 'logged');
      assert.equal(cut.maxBufferedBytes, 256 * 1024);
      assert.ok(Number(cut.queuedBytes) > 256 * 1024);
      await waitFor('healthy watcher has everything', () => healthy.text().includes(`id: ${1000 + total - 1}\n`), 10_000);
      const ids = [...healthy.text().matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1])).filter((n) => n >= 1000);
      assert.equal(ids.length, total, 'no event lost or repeated for the healthy watcher');
      healthy.req.destroy();
      stalled.destroy();
    } finally {
      await app.close();
    }
  });
});

describe('the Deployment cache keeps what the scaling extensions read', () => {
  // If the cache ever stores a projection of each Deployment, it must keep these fields,
  // or guardrails silently stop applying and every rollout verdict turns wrong.
  it('keeps the guardrail annotations, generation, the status counters and the Available/Progressing conditions', () => {
    const raw = {
      metadata: {
        name: 'web', namespace: 'shop', resourceVersion: '7', generation: 4, managedFields: [{}],
        annotations: { [MIN_REPLICAS_ANNOTATION]: '2', [MAX_REPLICAS_ANNOTATION]: '9' },
      },
      spec: { replicas: 3 },
      status: {
        observedGeneration: 4, replicas: 3, updatedReplicas: 3, readyReplicas: 3, availableReplicas: 3,
        conditions: [
          { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable' },
          { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' },
        ],
      },
    };
    const cached = DEPLOYMENTS.transform(structuredClone(raw));
    assert.deepEqual(new GuardrailPolicy(0).of(cached as never), {
      min: { replicas: 2, source: 'annotation k8s-api-proxy.io/min-replicas' },
      max: { replicas: 9, source: 'annotation k8s-api-proxy.io/max-replicas' },
      problems: [],
    });
    const f = cached as unknown as RolloutFields;
    assert.equal(f.metadata.generation, 4);
    assert.deepEqual(f.status?.conditions?.map((c) => [c.type, c.status, c.reason]), [
      ['Available', 'True', 'MinimumReplicasAvailable'], ['Progressing', 'False', 'ProgressDeadlineExceeded'],
    ]);
    assert.equal(rolloutOf(f).verdict, 'Stalled');
    assert.deepEqual(
      [f.status?.observedGeneration, f.status?.replicas, f.status?.updatedReplicas, f.status?.readyReplicas, f.status?.availableReplicas],
      [4, 3, 3, 3, 3],
    );
  });
});
