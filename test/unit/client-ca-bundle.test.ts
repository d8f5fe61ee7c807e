import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';
import { serverTlsOptions } from '../../src/tls/server-tls.js';
import { TrustedCas, caBundleForOpenSsl, clientCaProblems, pemBlocks } from '../../src/tls/trust.js';

/** OpenSSL's verdict on each client certificate, against a listener built with the proxy's TLS options for `bundle`. */
async function verdicts(c: CertFixture, bundle: string, clients: Array<{ cert: string; key: string }>): Promise<string[]> {
  const server = tls.createServer(serverTlsOptions(readFileSync(c.serverCertFile), readFileSync(c.serverKeyFile), Buffer.from(bundle)));
  const seen: string[] = [];
  server.on('secureConnection', (s) => {
    seen.push(s.authorized ? 'verified' : String(s.authorizationError));
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  try {
    for (const client of clients) {
      await new Promise<void>((resolve) => {
        const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: c.ca, ...client });
        s.on('close', () => resolve()).on('error', () => resolve());
      });
    }
  } finally {
    server.close();
  }
  return seen;
}

describe('client CA bundles as files are really written (run together, CRLF, comments)', () => {
  let c: CertFixture;
  before(async () => { c = await makeCertFixture(); });
  const two = (sep: string, eol = '\n') => [c.ca.trim(), c.otherCa.trim()].join(sep).replaceAll('\n', eol);
  const cases: Array<[name: string, bundle: () => string]> = [
    ['each block on lines of its own (the usual file)', () => `${two('\n')}\n`],
    ['two blocks run together on one line (a file concatenated without its last newline)', () => two('')],
    ['run together with a space between', () => two(' ')],
    ['CRLF line ends', () => `${two('\n', '\r\n')}\r\n`],
    ['CRLF line ends and run together', () => two('', '\r\n')],
    ['comments between blocks (as in distribution trust bundles)', () => `# first CA\n${c.ca.trim()}\n\n# other CA\n${c.otherCa.trim()}\n`],
  ];
  for (const [name, bundle] of cases) {
    it(`${name}: both CAs' clients are verified by OpenSSL, and the bundle checks and trust set agree`, async () => {
      const pem = bundle();
      assert.deepEqual(clientCaProblems(pem), []);
      assert.equal(pemBlocks(pem).length, 2);
      assert.equal(pemBlocks(caBundleForOpenSsl(pem)).length, 2);
      assert.deepEqual(await verdicts(c, pem, [c.client, c.otherCaClient]), ['verified', 'verified']);
    });
  }

  it('a client of a CA not in the bundle is still refused', async () => {
    assert.deepEqual(await verdicts(c, c.ca.trim() + c.ca.trim(), [c.client, c.otherCaClient]), ['verified', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE']);
  });

  it('TrustedCas reads the same two certificates from a run-together bundle', () => {
    const [a, b] = pemBlocks(c.ca).concat(pemBlocks(c.otherCa));
    const trust = new TrustedCas(two(''));
    const fp = (pem: string) => new X509Certificate(pem).fingerprint256;
    assert.ok(trust.trusts([fp(a)]) && trust.trusts([fp(b)]));
  });
});
