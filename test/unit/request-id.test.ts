import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { InjectOptions } from 'fastify';
import { buildServer, buildHealthServer } from '../../src/server.js';
import { SAFE_REQUEST_ID } from '../../src/http/request-id.js';
import { OPEN_ACCESS } from '../helpers/open-access.js';
import { listsOf } from '../helpers/stand-ins.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The API app with a logger whose JSON lines are collected. */
function app(set: () => Promise<never> = async () => { throw new TypeError('boom'); }) {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
  const server = buildServer({
    ...OPEN_ACCESS,
    lists: listsOf(),
    replicas: { get: () => { throw new Error('unused'); }, read: () => { throw new Error('unused'); }, set },
    apiHealth: async () => ({ ok: true }), readiness: { check: () => ({ ready: true }) }, logger: pino({ level: 'info' }, sink),
  });
  return { server, lines };
}

describe('X-Request-Id', () => {
  const kept = ['abc', 'A', '0f8fad5b-d9cb-469f-a165-70867728950e', '01ARZ3NDEKTSV4RRFFQ69G5FAV', 'trace.span_1-2', 'x'.repeat(64)];
  for (const id of kept) {
    it(`keeps a safe client id (${id.length > 20 ? `${id.slice(0, 20)}…` : id}), echoes it and logs it as reqId`, async () => {
      const { server, lines } = app();
      const r = await server.inject({ url: '/deployments', headers: { 'x-request-id': id } });
      assert.equal(r.statusCode, 200);
      assert.equal(r.headers['x-request-id'], id);
      assert.ok(lines.some((l) => l.msg === 'request' && l.reqId === id), JSON.stringify(lines));
    });
  }

  const replaced: Array<[string, string | string[]]> = [
    ['an empty id', ''], ['one over 64 characters', 'x'.repeat(65)], ['spaces', 'a b'], ['a quote', 'a"b'],
    ['a log-forging newline (percent-encoded)', 'a%0Ab'], ['non-ASCII', 'café'], ['a slash', 'a/b'], ['a header given twice', ['a', 'b']],
  ];
  for (const [what, id] of replaced) {
    it(`replaces ${what} with a generated UUID`, async () => {
      const { server, lines } = app();
      const r = await server.inject({ url: '/deployments', headers: { 'x-request-id': id } });
      const echoed = r.headers['x-request-id'] as string;
      assert.match(echoed, UUID);
      assert.ok(lines.some((l) => l.msg === 'request' && l.reqId === echoed));
    });
  }

  it('generates a different UUID for each request without one', async () => {
    const { server } = app();
    const a = (await server.inject('/deployments')).headers['x-request-id'] as string;
    const b = (await server.inject('/deployments')).headers['x-request-id'] as string;
    assert.match(a, UUID);
    assert.notEqual(a, b);
  });

  const errors: Array<[string, InjectOptions, number]> = [
    ['404 (unknown path)', { url: '/nope' }, 404],
    ['405 (other method)', { method: 'DELETE', url: '/deployments' }, 405],
    ['400 (malformed URL, answered before any hook)', { url: '/deployments/%ZZ/x/replicas' }, 400],
    ['400 (over-long path segment)', { url: `/deployments/${'a'.repeat(300)}/x/replicas` }, 400],
    ['422 (invalid body)', { method: 'PUT', url: '/deployments/ns/web/replicas', payload: { replicas: -1 } }, 422],
    ['500 (a bug)', { method: 'PUT', url: '/deployments/ns/web/replicas', payload: { replicas: 1 } }, 500],
  ];
  for (const [what, req, status] of errors) {
    it(`echoes the id on a ${what}`, async () => {
      const { server } = app();
      const r = await server.inject({ ...req, headers: { ...req.headers, 'x-request-id': 'err-1' } });
      assert.equal(r.statusCode, status);
      assert.equal(r.headers['x-request-id'], 'err-1');
    });
  }

  it('is echoed on the probe listener too', async () => {
    const health = buildHealthServer({ readiness: { check: () => ({ ready: true }) }, logger: pino({ level: 'silent' }) });
    assert.equal((await health.inject({ url: '/livez', headers: { 'x-request-id': 'probe-7' } })).headers['x-request-id'], 'probe-7');
  });

  it('the rule is 1-64 characters of [A-Za-z0-9._-]', () => {
    assert.equal(SAFE_REQUEST_ID.source, '^[A-Za-z0-9._-]{1,64}$');
  });
});
