import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { clientIdentity, unfitReason } from '../../src/auth/client-identity.js';
import { createCa, issueCert, type IssuedCert } from '../../hack/certs.js';

/** A stand-in for a handshaken TLS socket: what OpenSSL decided, and the peer it saw. */
function socket(authorized: boolean, peer: Record<string, unknown> | undefined, authorizationError?: string) {
  const s = { authorized, authorizationError, remoteAddress: '127.0.0.9', destroyed: false, getPeerCertificate: () => peer ?? {}, destroy: () => { s.destroyed = true; } };
  return s;
}
describe('clientIdentity (the TLS socket, never headers) and unfitReason bounds', () => {
  let client: IssuedCert;
  let peer: Record<string, unknown>;
  before(async () => {
    const ca = await createCa('unit CA');
    client = await issueCert(ca, { commonName: 'ci pipeline', usages: ['client'] });
    const x = new X509Certificate(client.certPem);
    peer = { raw: Buffer.from(x.raw), subject: { CN: 'ci pipeline' }, fingerprint256: x.fingerprint256 };
  });

  it('is the verified leaf CN, fingerprint, and groups (no O: only system:authenticated)', () => {
    assert.deepEqual(clientIdentity(socket(true, peer) as unknown as TLSSocket), { commonName: 'ci pipeline', fingerprint256: peer.fingerprint256, groups: ['system:authenticated'] });
  });
  it('maps a single O (Node gives a string) and several O (an array) to groups, in certificate order', () => {
    assert.deepEqual(clientIdentity(socket(true, { ...peer, subject: { CN: 'x', O: 'dev' } }) as unknown as TLSSocket)?.groups, ['dev', 'system:authenticated']);
    assert.deepEqual(clientIdentity(socket(true, { ...peer, subject: { CN: 'x', O: ['ops', 'dev'] } }) as unknown as TLSSocket)?.groups, ['ops', 'dev', 'system:authenticated']);
  });
  const none: Array<[string, unknown]> = [
    ['a socket that is not TLS', { authorized: true }],
    ['no socket at all', undefined],
    ['an unverified certificate', socket(false, undefined)],
    ['no peer certificate', socket(true, undefined)],
  ];
  for (const [label, s] of none) it(`is undefined for ${label}`, () => assert.equal(clientIdentity(s as TLSSocket), undefined));
  it('is "" for a verified leaf without a CN, and joins several (both then refused by unfitReason)', () => {
    assert.equal(clientIdentity(socket(true, { ...peer, subject: {} }) as unknown as TLSSocket)?.commonName, '');
    assert.equal(clientIdentity(socket(true, { ...peer, subject: { CN: ['a', 'b'] } }) as unknown as TLSSocket)?.commonName, 'a,b');
  });

  it('counts the first and last second of the validity period as valid, and allows spaces in the CN', () => {
    const x = new X509Certificate(client.certPem);
    const raw = Buffer.from(x.raw);
    assert.equal(unfitReason(raw, Date.parse(x.validFrom)), undefined);
    assert.equal(unfitReason(raw, Date.parse(x.validTo)), undefined);
    assert.equal(unfitReason(raw, Date.parse(x.validFrom) - 1), 'certificate is not yet valid');
  });
});
