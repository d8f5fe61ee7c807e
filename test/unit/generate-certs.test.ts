import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCertSet, issueClientFromCa, DEFAULT_SERVER_SANS } from '../../hack/certs.js';

const cert = (dir: string, name: string): X509Certificate => new X509Certificate(readFileSync(join(dir, name)));

describe('generateCertSet (make generate-certs)', () => {
  it('writes a CA, a serverAuth-only server and a clientAuth-only client certificate, ECDSA P-256 / SHA-256', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gen-'));
    const written = await generateCertSet({ dir, extraSans: ['api.example.com', '10.1.2.3'] });
    assert.equal(written.length, 6);
    const ca = cert(dir, 'ca.crt');
    const server = cert(dir, 'server.crt');
    const client = cert(dir, 'client.crt');
    assert.equal(ca.ca, true);
    assert.ok(server.verify(ca.publicKey) && client.verify(ca.publicKey));
    assert.deepEqual(server.keyUsage, ['1.3.6.1.5.5.7.3.1']);
    assert.deepEqual(client.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.equal(client.subject, 'CN=client\nO=k8s-api-proxy-demo', 'the demo group, which make cluster-up binds to the scaler role');
    for (const san of [...DEFAULT_SERVER_SANS.filter((s) => !s.includes(':') && !/^\d/.test(s)).map((s) => `DNS:${s}`), 'DNS:api.example.com', 'IP Address:127.0.0.1', 'IP Address:10.1.2.3']) {
      assert.ok(server.subjectAltName?.includes(san), `${san} in ${server.subjectAltName}`);
    }
    assert.match(server.subjectAltName ?? '', /IP Address:0:0:0:0:0:0:0:1|IP Address:::1/);
    const key = createPrivateKey(readFileSync(join(dir, 'server.key')));
    assert.equal(key.asymmetricKeyType, 'ec');
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.ok(server.checkPrivateKey(key));
    for (const k of ['ca.key', 'server.key', 'client.key']) assert.equal(statSync(join(dir, k)).mode & 0o777, 0o600, k);
  });

  it('keeps an existing set unless forced, and refuses a partial one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gen-'));
    await generateCertSet({ dir });
    const before = readFileSync(join(dir, 'server.crt'), 'utf8');
    assert.deepEqual(await generateCertSet({ dir }), []);
    assert.equal(readFileSync(join(dir, 'server.crt'), 'utf8'), before);
    chmodSync(join(dir, 'server.key'), 0o644);
    await generateCertSet({ dir, force: true, clientCommonName: 'ci-pipeline', clientGroups: ['ci', 'shop-deployers'] });
    assert.notEqual(readFileSync(join(dir, 'server.crt'), 'utf8'), before);
    assert.equal(statSync(join(dir, 'server.key')).mode & 0o777, 0o600, 'FORCE tightens key permissions');
    assert.equal(cert(dir, 'client.crt').subject, 'CN=ci-pipeline\nO=ci\nO=shop-deployers', 'CLIENT_GROUPS become O values');
    const partial = mkdtempSync(join(tmpdir(), 'gen-'));
    writeFileSync(join(partial, 'ca.crt'), 'x');
    await assert.rejects(generateCertSet({ dir: partial }), /holds only ca.crt; run with FORCE=1/);
  });
});

describe('issueClientFromCa (make client-cert)', () => {
  it('issues a clientAuth certificate from the existing CA with CN and one O per group, key 0600', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gen-'));
    await generateCertSet({ dir });
    const written = await issueClientFromCa(dir, 'dashboard-1', 'dashboard-1', ['dashboards', 'viewers']);
    assert.deepEqual(written, [join(dir, 'dashboard-1.crt'), join(dir, 'dashboard-1.key')]);
    const c = cert(dir, 'dashboard-1.crt');
    assert.ok(c.verify(cert(dir, 'ca.crt').publicKey), 'signed by the existing CA');
    assert.equal(c.subject, 'CN=dashboard-1\nO=dashboards\nO=viewers');
    assert.deepEqual(c.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.ok(c.checkPrivateKey(createPrivateKey(readFileSync(join(dir, 'dashboard-1.key')))));
    assert.equal(statSync(join(dir, 'dashboard-1.key')).mode & 0o777, 0o600);
  });

  it('refuses to overwrite the set\'s own files or to write outside the directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gen-'));
    await generateCertSet({ dir });
    for (const bad of ['ca', 'client', '../x', '']) await assert.rejects(issueClientFromCa(dir, bad, 'x', []), /not a new file name/);
  });
});
