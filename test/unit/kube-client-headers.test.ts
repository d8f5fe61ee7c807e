import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingHttpHeaders } from 'node:http';
import { VERSION } from '../../src/version.js';
import { fakeApiServer, json, type FakeApiServer } from '../helpers/fake-api-server.js';

describe('what the proxy tells the API server about itself', () => {
  let server: FakeApiServer | undefined;
  afterEach(async () => { await server?.close(); server = undefined; });

  it('sends User-Agent k8s-api-proxy/<package version> on every call', async () => {
    const seen: IncomingHttpHeaders[] = [];
    server = await fakeApiServer((req, res) => { seen.push(req.headers); json(res, 200, { metadata: { resourceVersion: '1' } }); });
    const client = await server.client();
    await client.request('GET', '/apis/apps/v1/namespaces/ns/deployments/web/scale');
    await client.request('PUT', '/apis/apps/v1/namespaces/ns/deployments/web/scale?fieldManager=k8s-api-proxy', { body: {} });
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string };
    assert.equal(VERSION, pkg.version, 'src/version.ts follows package.json');
    assert.deepEqual(seen.map((h) => h['user-agent']), [`k8s-api-proxy/${pkg.version}`, `k8s-api-proxy/${pkg.version}`]);
  });
});

describe('how the proxy reads the API server\'s answers', () => {
  let server: FakeApiServer | undefined;
  afterEach(async () => { await server?.close(); server = undefined; });

  it('decodes UTF-8 characters that arrive split across chunks (each multi-byte character cut in two)', async () => {
    const annotation = 'ünïcødé ✓ 日本 🚀';
    const body = Buffer.from(JSON.stringify({ metadata: { annotations: { note: annotation } } }));
    server = await fakeApiServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      // One byte per write, each flushed on its own: every multi-byte character spans writes.
      let i = 0;
      const next = (): void => { if (i < body.length) res.write(body.subarray(i, ++i), () => setImmediate(next)); else res.end(); };
      next();
    });
    const client = await server.client();
    const got = await client.request<{ metadata: { annotations: { note: string } } }>('GET', '/apis/apps/v1/namespaces/ns/deployments/web');
    assert.equal(got.metadata.annotations.note, annotation);
  });
});
