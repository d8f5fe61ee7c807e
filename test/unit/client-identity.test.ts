import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { unfitReason } from '../../src/auth/client-identity.js';
import { createCa, issueCert, type IssuedCert } from '../../hack/certs.js';

const der = (c: IssuedCert): Buffer => Buffer.from(new X509Certificate(c.certPem).raw);

describe('unfitReason (checks OpenSSL leaves to us)', () => {
  let ca: IssuedCert;
  before(async () => { ca = await createCa('unit CA'); });

  it('accepts a current clientAuth certificate', async () => {
    assert.equal(unfitReason(der(await issueCert(ca, { commonName: 'ok', usages: ['client'] })), Date.now()), undefined);
  });
  it('accepts a certificate for both usages', async () => {
    assert.equal(unfitReason(der(await issueCert(ca, { commonName: 'both', usages: ['server', 'client'] })), Date.now()), undefined);
  });
  it('refuses a serverAuth-only certificate', async () => {
    assert.match(unfitReason(der(await issueCert(ca, { commonName: 's', usages: ['server'] })), Date.now()) ?? '', /clientAuth/);
  });
  it('refuses a certificate that expired since (a resumed session would skip OpenSSL)', async () => {
    const c = await issueCert(ca, { commonName: 'c', usages: ['client'], days: 1 });
    assert.match(unfitReason(der(c), Date.now() + 2 * 86_400_000) ?? '', /expired/);
  });
  it('refuses a certificate not valid yet', async () => {
    const c = await issueCert(ca, { commonName: 'c', usages: ['client'], notBefore: new Date(Date.now() + 86_400_000), days: 2 });
    assert.match(unfitReason(der(c), Date.now()) ?? '', /not yet valid/);
  });
});
