import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { TestNamespace, kubectlOk } from '../helpers/cluster.js';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.js';
import { openSse, type SseStream } from '../helpers/sse.js';

/** A short allowed TTL for the test proxy, so a revoked grant ends a stream quickly: re-asked every 1 s. */
const ALLOWED_TTL_MS = 2_000;
const REAUTHORIZE_MS = 1_000;

describe('GET /deployments?watch=true (SSE change stream) on a real control plane', () => {
  let certs: CertFixture;
  let proxy: ProxyProcess;
  let a: TestNamespace;
  let b: TestNamespace;
  const open: SseStream[] = [];

  before(async () => {
    certs = await makeCertFixture();
    a = await TestNamespace.create('watch-a');
    b = await TestNamespace.create('watch-b');
    await a.createDeployment('web', { replicas: 1 });
    await a.createDeployment('api', { replicas: 2 });
    await b.createDeployment('other', { replicas: 1 });
    proxy = await startProxy({ certs, args: ['--authorization-cache-allowed-ttl', `${ALLOWED_TTL_MS}ms`] });
  });
  after(async () => {
    for (const s of open) s.close();
    await proxy?.stop();
    await a?.cleanup();
    await b?.cleanup();
  });

  const watch = async (query: string, headers: Record<string, string> = {}): Promise<SseStream> => {
    const s = await openSse(`${proxy.apiUrl}/deployments?watch=true${query}`, { tls: { ca: certs.ca, ...certs.client }, headers });
    open.push(s);
    return s;
  };

  it('starts with the namespace\'s Deployments and SYNCED, then streams a change with id = its resourceVersion', async () => {
    const s = await watch(`&namespace=${a.name}`);
    assert.equal(s.status, 200);
    assert.equal(s.headers['content-type'], 'text/event-stream; charset=utf-8');
    const synced = await s.next((e) => e.event === 'SYNCED');
    assert.match(synced.id, /^\d+$/);
    assert.deepEqual(s.events.slice(0, 2).map((e) => [e.event, e.data]), [
      ['ADDED', { name: 'api', namespace: a.name, replicas: 2 }],
      ['ADDED', { name: 'web', namespace: a.name, replicas: 1 }],
    ]);
    await a.scale('web', 4);
    const rv = (await a.getDeployment('web')).metadata.resourceVersion;
    const ev = await s.next((e) => e.event === 'MODIFIED' && e.data.replicas === 4);
    assert.deepEqual(ev.data, { name: 'web', namespace: a.name, replicas: 4 });
    assert.equal(ev.id, rv);
    const fan = proxy.logs.find((l) => l.msg === 'change sent to watchers');
    assert.ok(fan && Number(fan.watchers) >= 1 && typeof fan.fanoutMs === 'number' && typeof fan.fanoutCpuMs === 'number', JSON.stringify(fan));
  });

  it('resumes with Last-Event-ID without losing an event, and names nothing from another namespace', async () => {
    const s = await watch(`&namespace=${a.name}`);
    const synced = await s.next((e) => e.event === 'SYNCED');
    s.close();
    // Changes while disconnected, in both namespaces.
    await a.scale('api', 5);
    await b.scale('other', 3);
    await a.createDeployment('late', { replicas: 2 });
    await a.deleteDeployment('web');
    await a.scale('api', 6);
    const lastRv = (await a.getDeployment('api')).metadata.resourceVersion;
    const r = await watch(`&namespace=${a.name}`, { 'last-event-id': synced.id });
    await r.next((e) => e.id === lastRv);
    assert.deepEqual(r.events.map((e) => [e.event, e.data.name, e.data.replicas]), [
      ['MODIFIED', 'api', 5], ['ADDED', 'late', 2], ['DELETED', 'web', 4], ['MODIFIED', 'api', 6],
    ]);
    const ids = r.events.map((e) => BigInt(e.id));
    assert.deepEqual(ids, [...ids].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)), 'ids increase');
    assert.ok(r.events.every((e) => e.data.namespace === a.name));
  });

  it('tells a client too far behind to relist, then sends the complete state', async () => {
    const s = await watch(`&namespace=${a.name}`, { 'last-event-id': '1' });
    const synced = await s.next((e) => e.event === 'SYNCED');
    assert.equal(s.events[0].event, 'RELIST');
    assert.equal(s.events[0].data.reason, 'Expired');
    assert.deepEqual(s.events.slice(1, -1).map((e) => e.data.name), ['api', 'late']);
    assert.match(synced.id, /^\d+$/);
  });

  it('a watch on every namespace sees both; one on namespace A never sees B', async () => {
    const all = await watch('');
    const onlyA = await watch(`&namespace=${a.name}`);
    await all.next((e) => e.event === 'SYNCED');
    const from = onlyA.events.length;
    await b.scale('other', 7);
    await a.scale('late', 3);
    await all.next((e) => e.event === 'MODIFIED' && e.data.name === 'other' && e.data.replicas === 7);
    await onlyA.next((e) => e.data.name === 'late' && e.data.replicas === 3, 5_000, from);
    assert.ok(onlyA.events.every((e) => e.data.namespace !== b.name));
  });

  it('answers 400 for watch values other than true/false', async () => {
    const r = await proxy.request('/deployments?watch=yes');
    assert.equal(r.status, 400);
    assert.equal(r.json.reason, 'BadRequest');
  });

  it('counts each stream as a connection: past --max-connections-per-ip a new watcher is refused', async () => {
    const capped = await startProxy({ certs, args: ['--max-connections-per-ip', '2'] });
    try {
      const streams = [];
      for (let i = 0; i < 2; i++) {
        const s = await openSse(`${capped.apiUrl}/deployments?watch=true`, { tls: { ca: certs.ca, ...certs.client } });
        open.push(s);
        streams.push(s);
        await s.next((e) => e.event === 'SYNCED');
      }
      await assert.rejects(openSse(`${capped.apiUrl}/deployments?watch=true`, { tls: { ca: certs.ca, ...certs.client } }));
      streams[0].close();
      await streams[0].ended;
      const again = await (async () => {
        for (let i = 0; ; i++) {
          try {
            return await openSse(`${capped.apiUrl}/deployments?watch=true`, { tls: { ca: certs.ca, ...certs.client } });
          } catch (err) {
            if (i > 20) throw err;
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      })();
      open.push(again);
      assert.equal(again.status, 200, 'a freed slot is usable again');
    } finally {
      await capped.stop();
    }
  });

  it('ends a stream (event CLOSED, Forbidden) within allowed TTL + re-authorization period after its RoleBinding is deleted; reconnecting gets 403', async () => {
    const name = `watch-rev-${randomBytes(3).toString('hex')}`;
    const tls = { ca: certs.ca, ...(await certs.issueClient(name)) };
    await kubectlOk(['-n', a.name, 'create', 'rolebinding', 'rev', '--clusterrole=k8s-api-proxy-k8s-api-proxy-viewer', `--user=${name}`]);
    const url = `${proxy.apiUrl}/deployments?watch=true&namespace=${a.name}`;
    let s: SseStream | undefined;
    for (let i = 0; i < 50 && s?.status !== 200; i++) { // RBAC may take a moment to see the new binding
      if (s) await new Promise((r) => setTimeout(r, 100));
      s = await openSse(url, { tls });
      open.push(s);
    }
    assert.equal(s!.status, 200);
    await s!.next((e) => e.event === 'SYNCED');
    await kubectlOk(['-n', a.name, 'delete', 'rolebinding', 'rev']);
    const removedAt = performance.now();
    const bound = ALLOWED_TTL_MS + REAUTHORIZE_MS;
    const closed = await s!.next((e) => e.event === 'CLOSED', bound + 3_000);
    const endedAfterMs = Math.round(closed.at - removedAt);
    await s!.ended;
    assert.equal(closed.data.reason, 'Forbidden');
    assert.equal(closed.data.message, `deployments.apps is forbidden: User "${name}" cannot list resource "deployments" in API group "apps" in the namespace "${a.name}"`);
    assert.ok(endedAfterMs <= bound + 1_500, `ended ${endedAfterMs} ms after the RoleBinding was deleted (bound ${bound} ms + review time)`);
    const again = await openSse(url, { tls });
    open.push(again);
    assert.equal(again.status, 403);
    const logged = proxy.logs.filter((l) => l.msg === 'watch stream ended by the proxy' && l.client === name);
    assert.equal(logged.length, 1, 'logged once');
    assert.equal(logged[0].reason, 'Forbidden');
    console.log(`# measured: stream ended ${endedAfterMs} ms after its RoleBinding was deleted (allowed TTL ${ALLOWED_TTL_MS} ms, re-authorized every ${REAUTHORIZE_MS} ms)`);
  });

  it('ends a stream (event CLOSED, MaxConnectionAge) when its connection reaches --max-connection-age-seconds', async () => {
    const aged = await startProxy({ certs, args: ['--max-connection-age-seconds', '2'] });
    try {
      const s = await openSse(`${aged.apiUrl}/deployments?watch=true&namespace=${a.name}`, { tls: { ca: certs.ca, ...certs.client } });
      open.push(s);
      const synced = await s.next((e) => e.event === 'SYNCED');
      const closed = await s.next((e) => e.event === 'CLOSED', 5_000);
      await s.ended;
      assert.equal(closed.data.reason, 'MaxConnectionAge');
      assert.ok(closed.at - synced.at <= 2_500, `ended ${Math.round(closed.at - synced.at)} ms after SYNCED`);
    } finally {
      await aged.stop();
    }
  });

  it('ends open streams at SIGTERM, so shutdown does not wait for them', async () => {
    const s = await watch('');
    await s.next((e) => e.event === 'SYNCED');
    const t0 = performance.now();
    assert.equal(await proxy.stop(), 0);
    await s.ended;
    assert.ok(performance.now() - t0 < 5_000, `stopped in ${Math.round(performance.now() - t0)} ms (the drain bound is 20 s)`);
  });
});
