import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { watchServerCertificate } from '../../src/tls/reload.js';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';
import { waitFor } from '../helpers/wait.js';

// README: "The certificate, key and CA files are watched and hot-reloaded for new
// connections; a broken new set is logged and ignored." The integration tier shows a
// renewed server certificate and an added CA served over real TLS (mtls.test.ts); this
// shows each kind of broken set left out, at the function that decides it.
describe('certificate hot reload (watchServerCertificate)', () => {
  let certs: CertFixture;
  let dir: string;
  let files: { certFile: string; keyFile: string; caFile: string; cert: Buffer; key: Buffer; ca: Buffer };
  const contexts: object[] = [];
  const cas: string[] = [];
  const lines: Array<Record<string, unknown>> = [];
  let stop: () => void;

  before(async () => {
    certs = await makeCertFixture();
    dir = mkdtempSync(join(tmpdir(), 'k8s-api-proxy-reload-'));
    const copy = (from: string, name: string): string => { const p = join(dir, name); writeFileSync(p, readFileSync(from)); return p; };
    files = { certFile: copy(certs.serverCertFile, 'tls.crt'), keyFile: copy(certs.serverKeyFile, 'tls.key'), caFile: copy(certs.caFile, 'ca.crt'), cert: readFileSync(certs.serverCertFile), key: readFileSync(certs.serverKeyFile), ca: readFileSync(certs.caFile) };
    const app = { server: { setSecureContext: (o: object) => { contexts.push(o); } } } as unknown as FastifyInstance;
    const logger = pino({ level: 'info' }, { write: (l: string) => { lines.push(JSON.parse(l) as Record<string, unknown>); } });
    stop = watchServerCertificate(app, files, logger, (ca) => { cas.push(ca.toString()); });
  });
  after(() => { stop(); rmSync(dir, { recursive: true, force: true }); });

  /** Replaces `file` atomically (as a Secret volume does) and waits for the reload's verdict. */
  async function replace(file: string, content: string): Promise<Record<string, unknown>> {
    const seen = lines.length;
    writeFileSync(`${file}.new`, content);
    renameSync(`${file}.new`, file);
    return (await waitFor('a reload verdict', () => lines.slice(seen).find((l) => /^TLS certificate reload/.test(String(l.msg))), 5_000, 25))!;
  }
  const failed = 'TLS certificate reload failed; keeping the previous certificate';

  it('ignores a client CA bundle holding only an intermediate (it would refuse every client)', async () => {
    const verdict = await replace(files.caFile, readFileSync(certs.intermediate.onlyFile, 'utf8'));
    assert.deepEqual([verdict.level, verdict.msg], [50, failed]);
    assert.match(String(verdict.err), /^--client-ca: .*intermediate CA/);
    assert.deepEqual([contexts.length, cas.length], [0, 0], 'the previous context stays, open connections keep the previous CA');
  });

  it('ignores a CA file that is no certificate', async () => {
    const verdict = await replace(files.caFile, 'not a certificate\n');
    assert.deepEqual([verdict.msg, contexts.length, cas.length], [failed, 0, 0]);
  });

  it('ignores a certificate whose key is not the one on disk', async () => {
    writeFileSync(files.caFile, files.ca); // back to the good bundle, but no verdict yet: the cert below arrives within the debounce
    const other = await certs.issueServer();
    const verdict = await replace(files.certFile, other.certPem);
    assert.deepEqual([verdict.msg, verdict.err, contexts.length], [failed, '--tls-key does not match --tls-cert', 0]);
  });

  it('takes a good new set: a new context, and the new client CA for open connections', async () => {
    const bundle = `${certs.ca}\n${certs.otherCa}\n`;
    writeFileSync(files.certFile, files.cert);
    const verdict = await replace(files.caFile, bundle);
    assert.deepEqual([verdict.level, verdict.msg], [30, 'TLS certificate reloaded']);
    assert.deepEqual([contexts.length, cas], [1, [bundle]]);
  });
});
