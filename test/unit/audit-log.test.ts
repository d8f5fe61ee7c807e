import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openAuditLog } from '../../src/audit/audit-log.js';
import { buildAuditEvent, type AuditEvent } from '../../src/audit/audit-event.js';

const event = (i: number): AuditEvent => buildAuditEvent({
  auditId: `req-${i}`, requestUri: '/deployments/shop/web/replicas', verb: 'update', user: { username: 'ci', groups: ['system:authenticated'] },
  sourceIp: '10.0.0.1', objectRef: { apiGroup: 'apps', apiVersion: 'v1', resource: 'deployments', subresource: 'scale', namespace: 'shop', name: 'web' },
  code: 200, receivedAtMs: 0, completedAtMs: 1, annotations: { 'k8s-api-proxy/replicas-after': String(i) },
});

function readAll(dir: string): AuditEvent[] {
  return readdirSync(dir).flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEvent));
}

describe('audit log file', () => {
  it('loses no event in a burst of 2000 across many rotations, keeping at most maxBackups old files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'audit-'));
    const log = openAuditLog({ path: join(dir, 'audit.log'), maxSizeMb: 0.05, maxBackups: 100, onError: (err) => assert.fail(err) });
    for (let i = 0; i < 2000; i++) log.write(event(i));
    await log.close();
    const files = readdirSync(dir);
    assert.ok(files.length > 10, `rotated into ${files.join(', ')}`);
    const ids = readAll(dir).map((e) => e.auditID);
    assert.equal(ids.length, 2000);
    assert.equal(new Set(ids).size, 2000);
    for (const f of files) assert.ok(statSync(join(dir, f)).size <= 0.05 * 1024 * 1024 + 1024, `${f} near the size bound`);
  });

  it('keeps only maxBackups rotated files (audit.log.1 is the newest)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'audit-'));
    const log = openAuditLog({ path: join(dir, 'audit.log'), maxSizeMb: 0.01, maxBackups: 2, onError: (err) => assert.fail(err) });
    for (let i = 0; i < 300; i++) log.write(event(i));
    await log.close();
    assert.deepEqual(readdirSync(dir).sort(), ['audit.log', 'audit.log.1', 'audit.log.2']);
    const newest = readAll(dir).map((e) => Number(e.annotations['k8s-api-proxy/replicas-after']));
    assert.ok(newest.includes(299));
  });

  it('keeps every rotated file with maxBackups 0, and the file is private (0600)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'audit-'));
    const log = openAuditLog({ path: join(dir, 'audit.log'), maxSizeMb: 0.01, maxBackups: 0, onError: (err) => assert.fail(err) });
    for (let i = 0; i < 300; i++) log.write(event(i));
    await log.close();
    assert.equal(readAll(dir).length, 300);
    assert.equal(statSync(join(dir, 'audit.log')).mode & 0o777, 0o600);
  });
});

describe('audit log file that cannot be written', () => {
  it('reports the error once and sends every event, also those queued before the failure, to the fallback', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'audit-'));
    writeFileSync(join(dir, 'not-a-dir'), '');
    const fallback = new PassThrough();
    let text = '';
    fallback.on('data', (c: Buffer) => { text += c.toString(); });
    const errors: Error[] = [];
    const log = openAuditLog({ path: join(dir, 'not-a-dir', 'audit.log'), maxSizeMb: 1, maxBackups: 1, onError: (e) => errors.push(e), fallback });
    for (let i = 0; i < 5; i++) log.write(event(i));
    await new Promise((r) => setTimeout(r, 200));
    for (let i = 5; i < 10; i++) log.write(event(i));
    await log.close();
    assert.equal(errors.length, 1);
    const ids = text.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as AuditEvent).auditID);
    assert.deepEqual(ids.sort(), Array.from({ length: 10 }, (_, i) => `req-${i}`).sort());
  });
});
