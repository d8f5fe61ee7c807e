import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { pino } from 'pino';
import { clientIdentity, rejectUnfitClient, unfitReason } from '../../src/auth/client-identity.js';
import { createCa, issueCert, type IssuedCert } from '../../hack/certs.js';

/** A stand-in for a handshaken TLS socket: what OpenSSL decided, and the peer it saw. */
function socket(authorized: boolean, peer: Record<string, unknown> | undefined, authorizationError?: string) {
  const s = { authorized, authorizationError, remoteAddress: '127.0.0.9', destroyed: false, getPeerCertificate: () => peer ?? {}, destroy: () => { s.destroyed = true; } };
  return s;
}
function logLines() {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, logger: pino({ level: 'info' }, { write: (l: string) => { lines.push(JSON.parse(l)); } }) };
}

describe('clientIdentity and rejectUnfitClient (the TLS socket, never headers)', () => {
  let client: IssuedCert;
  let peer: Record<string, unknown>;
  before(async () => {
    const ca = await createCa('unit CA');
    client = await issueCert(ca, { commonName: 'ci pipeline', usages: ['client'] });
    const x = new X509Certificate(client.certPem);
    peer = { raw: Buffer.from(x.raw), subject: { CN: 'ci pipeline' }, fingerprint256: x.fingerprint256 };
  });

  it('is the verified leaf CN and fingerprint', () => {
    assert.deepEqual(clientIdentity(socket(true, peer) as unknown as TLSSocket), { commonName: 'ci pipeline', fingerprint256: peer.fingerprint256 });
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

  it('keeps a fit client', () => {
    const { lines, logger } = logLines();
    const s = socket(true, peer);
    assert.equal(rejectUnfitClient(s as unknown as TLSSocket, logger), true);
    assert.equal(s.destroyed, false);
    assert.deepEqual(lines, []);
  });
  const refused: Array<[string, ReturnType<typeof socket> | (() => ReturnType<typeof socket>), string]> = [
    ['an unverified client, naming OpenSSL\'s reason', socket(false, undefined, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'), 'client certificate not verified: UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
    ['a client that sent no certificate', socket(false, undefined), 'client certificate not verified: none presented'],
    ['a verified socket without a peer certificate', socket(true, undefined), 'no client certificate'],
  ];
  for (const [label, s, reason] of refused) {
    it(`drops and logs ${label}`, () => {
      const { lines, logger } = logLines();
      const sock = typeof s === 'function' ? s() : s;
      assert.equal(rejectUnfitClient(sock as unknown as TLSSocket, logger), false);
      assert.equal(sock.destroyed, true);
      assert.deepEqual(lines.map((l) => [l.level, l.msg, l.reason, l.remote]), [[40, 'TLS client refused', reason, '127.0.0.9']]);
    });
  }
  it('drops an expired client (a resumed session skips OpenSSL) and logs its subject', () => {
    const { lines, logger } = logLines();
    const s = socket(true, peer);
    assert.equal(rejectUnfitClient(s as unknown as TLSSocket, logger, Date.parse(new X509Certificate(client.certPem).validTo) + 1_000), false);
    assert.equal(s.destroyed, true);
    assert.deepEqual([lines[0].reason, lines[0].subject], ['certificate has expired', { CN: 'ci pipeline' }]);
  });

  it('counts the first and last second of the validity period as valid, and allows spaces in the CN', () => {
    const x = new X509Certificate(client.certPem);
    const raw = Buffer.from(x.raw);
    assert.equal(unfitReason(raw, Date.parse(x.validFrom)), undefined);
    assert.equal(unfitReason(raw, Date.parse(x.validTo)), undefined);
    assert.equal(unfitReason(raw, Date.parse(x.validFrom) - 1), 'certificate is not yet valid');
  });
});
