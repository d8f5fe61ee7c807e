import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { Reflector, backoffDelayMs, DEFAULT_BACKOFF, type ReflectorClock } from '../../src/kube/reflector.js';
import { DEPLOYMENTS, type CachedDeployment } from '../../src/kube/deployments.js';
import { fakeApiServer, json, deployment, type FakeApiServer } from '../helpers/fake-api-server.js';
import { waitFor } from '../helpers/wait.js';

/** A clock whose sleeps are recorded and last 1 ms, so backoff can be observed without waiting. */
function recordingClock(): ReflectorClock & { sleeps: number[] } {
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => Date.now(),
    random: () => 0.5,
    sleep: (ms) => { sleeps.push(ms); return new Promise((r) => setTimeout(r, 1)); },
  };
}

const watchLine = (type: string, object: unknown): string => `${JSON.stringify({ type, object })}\n`;

describe('Reflector (list/watch cache)', () => {
  let server: FakeApiServer | undefined;
  let reflector: Reflector<CachedDeployment> | undefined;
  afterEach(async () => {
    await reflector?.stop();
    await server?.close();
    reflector = undefined;
    server = undefined;
  });

  it('lists in pages with limit/continue, strips managedFields, and indexes by namespace', async () => {
    server = await fakeApiServer((req, res) => {
      const u = new URL(req.url!, 'http://x');
      if (u.searchParams.get('watch')) return void res.writeHead(200).flushHeaders();
      if (!u.searchParams.get('continue')) json(res, 200, { metadata: { continue: 'page2', resourceVersion: '' }, items: [deployment('a', 'one', '5'), deployment('b', 'two', '6')] });
      else json(res, 200, { metadata: { resourceVersion: '10' }, items: [deployment('a', 'three', '7')] });
    });
    reflector = new Reflector(await server.client(), DEPLOYMENTS, { pageSize: 2, clock: recordingClock() });
    reflector.start();
    await reflector.whenSynced;
    assert.deepEqual(server.requests.slice(0, 2), ['/apis/apps/v1/deployments?limit=2', '/apis/apps/v1/deployments?limit=2&continue=page2']);
    assert.deepEqual(reflector.list('a').map((d) => d.metadata.name).sort(), ['one', 'three']);
    assert.deepEqual(reflector.list('b').map((d) => d.metadata.name), ['two']);
    assert.equal(reflector.list().length, 3);
    assert.equal((reflector.get('a', 'one')?.metadata as Record<string, unknown>).managedFields, undefined);
    assert.ok(Object.isFrozen(reflector.get('a', 'one')), 'cached objects cannot be mutated by readers');
    await waitFor('watch from the list RV', () => server!.requests.some((r) => r.includes('watch=true') && r.includes('resourceVersion=10')));
  });

  it('asks for smaller pages when a 70 MiB first page exceeds the 64 MiB response bound, and syncs', async () => {
    // Ten Deployments of 7 MiB each (a huge annotation): the default page (limit=500) is 70 MiB.
    const big = 'x'.repeat(7 * 1024 * 1024);
    const items = Array.from({ length: 10 }, (_, i) => JSON.stringify({ ...deployment('ns', `d${i}`, String(i + 1)), metadata: { name: `d${i}`, namespace: 'ns', resourceVersion: String(i + 1), annotations: { big } } }));
    server = await fakeApiServer((req, res) => {
      const u = new URL(req.url!, 'http://x');
      if (u.searchParams.get('watch')) return void res.writeHead(200).flushHeaders();
      const from = Number(u.searchParams.get('continue') ?? 0);
      const to = Math.min(items.length, from + Number(u.searchParams.get('limit')));
      const cont = to < items.length ? String(to) : '';
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`{"metadata":{"resourceVersion":"50","continue":"${cont}"},"items":[${items.slice(from, to).join(',')}]}`);
    });
    reflector = new Reflector(await server.client(), DEPLOYMENTS, { clock: recordingClock() });
    reflector.start();
    await reflector.whenSynced;
    assert.equal(reflector.list().length, 10);
    assert.equal(reflector.status().failures, 0, 'no failed attempt, no backoff');
    const limits = server.requests.filter((r) => !r.includes('watch=true')).map((r) => Number(new URL(r, 'http://x').searchParams.get('limit')));
    assert.equal(limits[0], 500);
    assert.ok(limits.at(-1)! * 7 < 64, `the page that fit was under 64 MiB (limits ${limits.join(', ')})`);
    assert.equal((reflector.get('ns', 'd3')?.metadata as Record<string, unknown>).annotations, undefined, 'the cache keeps a projection, not the 7 MiB object');
  });

  it('waitForResourceVersion resolves once the watch delivers that resourceVersion, and false after its timeout', async () => {
    let push: ((line: string) => void) | undefined;
    server = await fakeApiServer((req, res) => {
      const u = new URL(req.url!, 'http://x');
      if (!u.searchParams.get('watch')) return json(res, 200, { metadata: { resourceVersion: '10' }, items: [deployment('ns', 'web', '10')] });
      res.writeHead(200).flushHeaders();
      push = (line) => res.write(line);
    });
    reflector = new Reflector(await server.client(), DEPLOYMENTS, { clock: recordingClock() });
    reflector.start();
    await reflector.whenSynced;
    assert.equal(await reflector.waitForResourceVersion('9', 1_000), true, 'already there');
    assert.equal(await reflector.waitForResourceVersion('12', 50), false, 'not delivered within 50 ms');
    const waiting = reflector.waitForResourceVersion('12', 5_000);
    await waitFor('watch open', () => push);
    push!(watchLine('MODIFIED', deployment('ns', 'web', '12', 3)));
    assert.equal(await waiting, true);
    assert.equal(reflector.resourceVersion(), '12');
    assert.equal(reflector.get('ns', 'web')?.spec.replicas, 3);
  });

  it('applies watch events and reconnects from the last resourceVersion without relisting', async () => {
    server = await fakeApiServer((req, res, n) => {
      const u = new URL(req.url!, 'http://x');
      if (!u.searchParams.get('watch')) return json(res, 200, { metadata: { resourceVersion: '1' }, items: [deployment('ns', 'web', '1', 1)] });
      if (u.searchParams.get('resourceVersion') === '1') {
        res.writeHead(200);
        res.write(watchLine('MODIFIED', deployment('ns', 'web', '2', 4)));
        res.write(watchLine('ADDED', deployment('ns', 'api', '3', 2)));
        res.write(watchLine('BOOKMARK', { metadata: { resourceVersion: '9' } }));
        setTimeout(() => res.end(), 1_100 - n); // a normal, healthy end (server timeoutSeconds)
        return;
      }
      res.writeHead(200).flushHeaders();
    });
    reflector = new Reflector(await server.client(), DEPLOYMENTS, { clock: recordingClock() });
    reflector.start();
    await waitFor('second watch', () => server!.requests.some((r) => r.includes('resourceVersion=9')), 5_000);
    assert.equal(reflector.get('ns', 'web')?.spec?.replicas, 4);
    assert.equal(reflector.get('ns', 'api')?.spec?.replicas, 2);
    assert.equal(server.requests.filter((r) => !r.includes('watch=true')).length, 1, 'listed once');
    const watch = new URL(server.requests[1], 'http://x').searchParams;
    assert.equal(watch.get('allowWatchBookmarks'), 'true');
    const t = Number(watch.get('timeoutSeconds'));
    assert.ok(t >= 300 && t <= 600, `timeoutSeconds ${t} within client-go's 5-10 min`);
  });

  it('removes an object on a DELETED watch event, from get and from its namespace list', async () => {
    server = await fakeApiServer((req, res) => {
      const u = new URL(req.url!, 'http://x');
      if (!u.searchParams.get('watch')) return json(res, 200, { metadata: { resourceVersion: '1' }, items: [deployment('ns', 'web', '1'), deployment('ns', 'api', '1')] });
      res.writeHead(200);
      if (u.searchParams.get('resourceVersion') === '1') {
        res.write(watchLine('DELETED', deployment('ns', 'web', '5')));
        res.write(watchLine('BOOKMARK', { metadata: { resourceVersion: '6' } }));
      }
      res.flushHeaders();
    });
    reflector = new Reflector(await server.client(), DEPLOYMENTS, { clock: recordingClock() });
    reflector.start();
    await waitFor('bookmark after the delete applied', () => reflector!.status().resourceVersion === '6');
    assert.equal(reflector.get('ns', 'web'), undefined);
    assert.deepEqual(reflector.list('ns').map((d) => d.metadata.name), ['api']);
    assert.deepEqual(reflector.list().map((d) => d.metadata.name), ['api']);
  });

  it('relists on 410 Gone and drops objects deleted during the gap', async () => {
    let lists = 0;
    server = await fakeApiServer((req, res) => {
      const u = new URL(req.url!, 'http://x');
      if (!u.searchParams.get('watch')) {
        lists++;
        return lists === 1
          ? json(res, 200, { metadata: { resourceVersion: '100' }, items: [deployment('ns', 'keep', '90'), deployment('ns', 'gone', '91')] })
          : json(res, 200, { metadata: { resourceVersion: '300' }, items: [deployment('ns', 'keep', '250', 7)] });
      }
      res.writeHead(200);
      if (u.searchParams.get('resourceVersion') === '100') {
        res.end(watchLine('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 100 (200)' }));
      } else res.flushHeaders();
    });
    const clock = recordingClock();
    reflector = new Reflector(await server.client(), DEPLOYMENTS, { clock });
    reflector.start();
    await waitFor('relist', () => lists === 2 && reflector!.status().resourceVersion === '300');
    assert.equal(reflector.get('ns', 'gone'), undefined, 'deleted during the gap');
    assert.equal(reflector.get('ns', 'keep')?.spec?.replicas, 7);
    assert.equal(reflector.status().relists, 2);
    assert.deepEqual(clock.sleeps, [], 'the first 410 relists at once');
  });

  it('relists at once on a 410 after an outage, whatever backoff the outage built up, and keeps its resourceVersion until then', async () => {
    // The list is 20 s old when the API server comes back and expires its watch.
    let now = 1_000_000;
    let lists = 0;
    let watches = 0;
    let rvAtRelist: string | undefined;
    server = await fakeApiServer((req, res) => {
      const u = new URL(req.url!, 'http://x');
      if (!u.searchParams.get('watch')) {
        lists++;
        if (lists === 2) rvAtRelist = reflector!.resourceVersion();
        return json(res, 200, { metadata: { resourceVersion: lists === 1 ? '100' : '300' }, items: [deployment('ns', 'web', lists === 1 ? '90' : '250', lists)] });
      }
      watches++;
      if (watches <= 4) return json(res, 503, { kind: 'Status', code: 503, message: 'etcd down' });
      res.writeHead(200);
      if (u.searchParams.get('resourceVersion') === '100') res.end(watchLine('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 100 (200)' }));
      else res.flushHeaders();
    });
    const sleeps: number[] = [];
    const rvDuringGap: string[] = [];
    const clock: ReflectorClock = {
      now: () => now,
      random: () => 0.5,
      sleep: (ms) => { sleeps.push(ms); now += ms + 5_000; rvDuringGap.push(reflector!.resourceVersion()); return new Promise((r) => setTimeout(r, 1)); },
    };
    reflector = new Reflector(await server.client(), DEPLOYMENTS, { clock });
    reflector.start();
    await waitFor('relisted after the outage', () => lists === 2 && reflector!.resourceVersion() === '300', 5_000);
    assert.deepEqual(sleeps, [800, 1600, 3200, 6400], 'four backoffs for the four failed watches, none after the 410');
    assert.deepEqual(rvDuringGap, ['100', '100', '100', '100'], 'reads keep the last resourceVersion through the outage');
    assert.equal(rvAtRelist, '100', 'and between the 410 and the new list: never an empty one');
    assert.equal(reflector.get('ns', 'web')?.spec?.replicas, 2);
  });

  it('backs off when every watch answers 410 Gone (no tight relist loop)', async () => {
    let lists = 0;
    server = await fakeApiServer((req, res) => {
      if (!req.url!.includes('watch=true')) {
        lists++;
        return json(res, 200, { metadata: { resourceVersion: String(100 + lists) }, items: [] });
      }
      res.writeHead(200);
      res.end(watchLine('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old' }));
    });
    const clock = recordingClock();
    reflector = new Reflector(await server.client(), DEPLOYMENTS, { clock });
    reflector.start();
    await waitFor('several relists', () => lists >= 5, 5_000);
    // The first 410 relists at once (counted as one failure); every further one backs off.
    assert.deepEqual(clock.sleeps.slice(0, 3), [1600, 3200, 6400]);
    assert.ok(clock.sleeps.length >= lists - 2, `a sleep before each repeated relist (${clock.sleeps.length} sleeps, ${lists} lists)`);
  });

  it('backs off with jitter from 800 ms to a 30 s cap on repeated failures and never stops', async () => {
    server = await fakeApiServer((_req, res) => json(res, 500, { kind: 'Status', code: 500, message: 'etcd down' }));
    const clock = recordingClock();
    reflector = new Reflector(await server.client(), DEPLOYMENTS, { clock });
    reflector.start();
    await waitFor('10 attempts', () => server!.requests.length >= 10, 5_000);
    assert.deepEqual(clock.sleeps.slice(0, 8), [800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]);
    assert.equal(reflector.hasSynced(), false);
    assert.match(reflector.status().lastError, /etcd down/);
  });

  it('spreads backoff delays with jitter', () => {
    const lo = backoffDelayMs(DEFAULT_BACKOFF, 3, () => 0);
    const hi = backoffDelayMs(DEFAULT_BACKOFF, 3, () => 0.999);
    assert.equal(lo, 2400);
    assert.ok(hi > 3900 && hi <= 4000, String(hi));
    assert.equal(backoffDelayMs(DEFAULT_BACKOFF, 50, () => 0.999), 30_000, 'never above the cap');
  });

  it('restarts a watch that stays silent longer than inactivityMs (half-open connection)', async () => {
    server = await fakeApiServer((req, res) => {
      const u = new URL(req.url!, 'http://x');
      if (!u.searchParams.get('watch')) return json(res, 200, { metadata: { resourceVersion: '1' }, items: [] });
      res.writeHead(200).flushHeaders(); // then silence, never ending
    });
    reflector = new Reflector(await server.client(), DEPLOYMENTS, { clock: recordingClock(), inactivityMs: 200 });
    reflector.start();
    await waitFor('watch restarted twice', () => server!.requests.filter((r) => r.includes('watch=true')).length >= 3, 3_000);
    assert.match(reflector.status().lastError, /no data for 200 ms/);
  });

  it('names the bound that fired when a watch gets no response headers at all (a stalled connect), not the inactivity bound', async () => {
    server = await fakeApiServer((req, res) => {
      const u = new URL(req.url!, 'http://x');
      if (!u.searchParams.get('watch')) return json(res, 200, { metadata: { resourceVersion: '1' }, items: [] });
      // never answers the watch
    });
    reflector = new Reflector(await server.client(), DEPLOYMENTS, { clock: recordingClock(), inactivityMs: 60_000, requestTimeoutMs: 200 });
    reflector.start();
    await waitFor('a failed watch', () => /watch/.test(reflector!.status().lastError ?? ''), 3_000);
    assert.match(reflector.status().lastError, /no response headers within 200 ms/);
    assert.doesNotMatch(reflector.status().lastError, /no data for/);
  });

  it('survives a watch connection reset mid-stream (regression: readline re-emitted the error and killed the process)', async () => {
    server = await fakeApiServer((req, res) => {
      const u = new URL(req.url!, 'http://x');
      if (!u.searchParams.get('watch')) return json(res, 200, { metadata: { resourceVersion: '1' }, items: [] });
      res.writeHead(200);
      res.write(watchLine('ADDED', deployment('ns', 'x', '2')));
      setTimeout(() => req.socket.destroy(), 20);
    });
    reflector = new Reflector(await server.client(), DEPLOYMENTS, { clock: recordingClock() });
    reflector.start();
    await waitFor('reconnected after resets', () => server!.requests.filter((r) => r.includes('watch=true')).length >= 3, 3_000);
    assert.equal(reflector.get('ns', 'x')?.metadata.resourceVersion, '2');
  });

  it('stop() ends the loop and closes the open watch', async () => {
    server = await fakeApiServer((req, res) => {
      if (!req.url!.includes('watch=true')) return json(res, 200, { metadata: { resourceVersion: '1' }, items: [] });
      res.writeHead(200).flushHeaders();
    });
    reflector = new Reflector(await server.client(), DEPLOYMENTS, { clock: recordingClock() });
    reflector.start();
    await waitFor('watching', () => reflector!.status().watching);
    await reflector.stop();
    const n = server.requests.length;
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(server.requests.length, n);
  });
});
