import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestNamespace, kubectl } from '../helpers/cluster.js';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.js';
import { waitFor } from '../helpers/wait.js';

describe('lists, ETags, pagination and read-your-writes across replicas (real control plane)', () => {
  let certs: CertFixture;
  let a: ProxyProcess;
  let b: ProxyProcess;
  let readThroughOnly: ProxyProcess;
  let ns: TestNamespace;

  before(async () => {
    certs = await makeCertFixture();
    ns = await TestNamespace.create('cons');
    for (const name of ['d1', 'd2', 'd3', 'd4', 'd5']) await ns.createDeployment(name, { replicas: 1 });
    // Two replicas as the chart runs them, and one that never waits (it always reads through when behind).
    // 100 PUTs in a row from one client: past the default per-client write limit (tested in hardening.test.ts).
    const noWriteLimit = ['--rate-limit-write-rps', '0'];
    [a, b, readThroughOnly] = await Promise.all([
      startProxy({ certs, args: noWriteLimit }), startProxy({ certs, args: noWriteLimit }), startProxy({ certs, args: [...noWriteLimit, '--consistency-wait-ms', '0'] }),
    ]);
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop(), readThroughOnly?.stop()]);
    await ns?.cleanup();
  });

  it('answers a list with ETag and Resource-Version, 304 to If-None-Match, and a new ETag once a Deployment is added', async () => {
    const url = `/deployments?namespace=${ns.name}`;
    const first = await a.request(url);
    assert.equal(first.status, 200);
    assert.match(String(first.headers['resource-version']), /^\d+$/);
    const etag = String(first.headers.etag);
    const again = await a.request(url, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    assert.equal(again.text, '');
    assert.equal((await b.request(url, { headers: { 'if-none-match': etag } })).status, 304, 'the other replica derives the same ETag from the same content');
    await ns.createDeployment('d6');
    const changed = (await waitFor('the new Deployment in the list', async () => {
      const r = await a.request(url, { headers: { 'if-none-match': etag } });
      return r.status === 200 ? r : undefined;
    }))!;
    assert.notEqual(changed.headers.etag, etag);
    assert.equal((changed.json as unknown[]).length, 6);
  });

  it('pages with limit/continue and expires a token with 410 Expired once the list changed', async () => {
    const names: string[] = [];
    let token = '';
    let firstToken = '';
    do {
      const r = await a.request(`/deployments?namespace=${ns.name}&limit=2${token ? `&continue=${encodeURIComponent(token)}` : ''}`);
      assert.equal(r.status, 200, r.text);
      names.push(...(r.json.items as Array<{ name: string }>).map((i) => i.name));
      token = r.json.metadata.continue ?? '';
      firstToken ||= token;
    } while (token);
    assert.deepEqual(names, ['d1', 'd2', 'd3', 'd4', 'd5', 'd6']);
    await ns.createDeployment('d7');
    const expired = (await waitFor('410 once the cache holds d7', async () => {
      const r = await a.request(`/deployments?namespace=${ns.name}&limit=2&continue=${encodeURIComponent(firstToken)}`);
      return r.status === 410 ? r : undefined;
    }))!;
    assert.match(String(expired.headers['content-type']), /^application\/problem\+json/);
    assert.equal(expired.json.reason, 'Expired');
  });

  it('PUT on one proxy, GET with minResourceVersion on the other: the written value 100 times out of 100', async (t) => {
    let stale = 0;
    for (let i = 0; i < 100; i++) {
      const want = (i % 9) + 1;
      const put = await a.request(`/deployments/${ns.name}/d1/replicas`, { method: 'PUT', body: { replicas: want } });
      assert.equal(put.status, 200, put.text);
      const rv = String(put.headers['resource-version']);
      assert.match(rv, /^\d+$/);
      // Alternate the two ways of asking, and the replica that waits with the one that reads through.
      const reader = i % 2 === 0 ? b : readThroughOnly;
      const get = i % 4 < 2
        ? await reader.request(`/deployments/${ns.name}/d1/replicas?minResourceVersion=${rv}`)
        : await reader.request(`/deployments/${ns.name}/d1/replicas`, { headers: { 'min-resource-version': rv } });
      assert.equal(get.status, 200, get.text);
      if (get.json.replicas !== want) stale++;
      assert.ok(BigInt(String(get.headers['resource-version'])) >= BigInt(rv), 'the answer reflects the write or newer');
    }
    assert.equal(stale, 0);
    const readThroughs = (p: ProxyProcess): number => p.logs.filter((l) => String(l.msg).includes('reading through')).length;
    t.diagnostic(`read-throughs: waiting replica ${readThroughs(b)}, never-waiting replica ${readThroughs(readThroughOnly)} (of 50 reads each)`);
  });

  it('a list with minResourceVersion on another replica shows a Deployment created through it', async () => {
    const created = await ns.createDeployment('fresh');
    const rv = String(created.metadata.resourceVersion);
    for (const p of [b, readThroughOnly]) {
      const r = await p.request(`/deployments?namespace=${ns.name}&minResourceVersion=${rv}`);
      assert.equal(r.status, 200);
      assert.ok((r.json as Array<{ name: string }>).some((d) => d.name === 'fresh'));
      assert.ok(BigInt(String(r.headers['resource-version'])) >= BigInt(rv));
    }
  });

  it('kube-apiserver refuses a Scale update whose uid is another object\'s, which the one-call write relies on', async () => {
    await ns.createDeployment('uidcheck', { replicas: 1 });
    const scale = (uid: string) => JSON.stringify({ apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name: 'uidcheck', namespace: ns.name, uid }, spec: { replicas: 3 } });
    const refused = await kubectl(['replace', '--raw', `/apis/apps/v1/namespaces/${ns.name}/deployments/uidcheck/scale`, '-f', '-'], { input: scale('00000000-0000-0000-0000-000000000000') });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /Precondition failed: UID/);
    assert.equal((await ns.getDeployment('uidcheck')).spec.replicas, 1, 'nothing written');
    await waitFor('the proxy caching uidcheck', async () => (await a.request(`/deployments/${ns.name}/uidcheck/replicas`)).status === 200);
    const put = await a.request(`/deployments/${ns.name}/uidcheck/replicas`, { method: 'PUT', body: { replicas: 3 } });
    assert.equal(put.status, 200, put.text);
    assert.equal((await ns.getDeployment('uidcheck')).spec.replicas, 3);
  });

  it('reads through, answering the current value, when asked for a resourceVersion the cluster has not reached', async () => {
    const r = await b.request(`/deployments/${ns.name}/d2/replicas?minResourceVersion=99999999999`);
    assert.equal(r.status, 200, 'never 504 for the wait');
    assert.equal(r.json.replicas, 1);
  });
});
