import { X509Certificate } from 'node:crypto';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
/** Longest issuer chain followed inside one bundle (roots, intermediates); real bundles are 2-3 deep. */
const MAX_CHAIN_DEPTH = 8;

/**
 * Every PEM certificate block of `pem`, in file order, wherever it starts: also after
 * CRLF line ends, text between blocks, or a previous block's END marker on the same line
 * (`-----END CERTIFICATE----------BEGIN CERTIFICATE-----`, a file concatenated without
 * its last newline).
 */
export function pemBlocks(pem: Buffer | string): string[] {
  return pem.toString().match(PEM_CERT) ?? [];
}

/**
 * The client CA bundle as OpenSSL should get it: each block of {@link pemBlocks} on lines
 * of its own. OpenSSL's PEM reader needs an END marker to end its line, so given two
 * blocks run together it loads neither (every client of both CAs is refused, silently);
 * split here, both load, the same certificates {@link TrustedCas} and
 * {@link clientCaProblems} see.
 */
export function caBundleForOpenSsl(pem: Buffer | string): Buffer {
  return Buffer.from(pemBlocks(pem).map((b) => `${b}\n`).join(''));
}

const name = (c: X509Certificate): string => c.subject.replaceAll('\n', ', ');
const issues = (issuer: X509Certificate, cert: X509Certificate): boolean => cert.checkIssued(issuer) && cert.verify(issuer.publicKey);

/**
 * What is wrong with a client CA bundle (`--client-ca`), one message per problem, each
 * starting with what to change; [] when it is usable. Every certificate must parse and be
 * a CA, and must chain, inside the bundle, to a self-signed root: OpenSSL needs the root
 * as its trust anchor, so a bundle holding only an issuing intermediate (cert-manager's
 * `ca.crt` of an intermediate issuer) would refuse every client in the handshake.
 */
export function clientCaProblems(pem: Buffer | string): string[] {
  const blocks = pemBlocks(pem);
  if (blocks.length === 0) return ['no PEM certificate found'];
  const problems: string[] = [];
  const certs: X509Certificate[] = [];
  for (const [i, b] of blocks.entries()) {
    try {
      const c = new X509Certificate(b);
      if (!c.ca) problems.push(`certificate #${i + 1} (${name(c)}) is not a CA certificate`);
      certs.push(c);
    } catch (err) {
      problems.push(`certificate #${i + 1} does not parse (${(err as Error).message})`);
    }
  }
  for (const [i, c] of certs.entries()) {
    let cur = c;
    for (let depth = 0; depth < MAX_CHAIN_DEPTH && !issues(cur, cur); depth++) {
      const parent = certs.find((p) => p !== cur && issues(p, cur));
      if (!parent) {
        problems.push(`certificate #${i + 1} (${name(c)}) is an intermediate CA whose issuer (${cur.issuer.replaceAll('\n', ', ')}) is not in the file, `
          + 'so every client would be refused in the handshake: add the root CA certificate that issued it to the same file '
          + '(its public certificate only; the root key can stay offline)');
        break;
      }
      cur = parent;
    }
  }
  return problems;
}

/**
 * The SHA-256 fingerprints of the client CA bundle in force. Connections record the
 * fingerprints of their verified chain at the handshake; after a hot reload removes a CA,
 * {@link TrustedCas.trusts} is false for the connections that chained to it.
 */
export class TrustedCas {
  private fingerprints = new Set<string>();
  private bundleGeneration = 0;

  constructor(pem: Buffer | string) {
    this.update(pem);
  }

  /** Replaces the bundle (after a successful reload). */
  update(pem: Buffer | string): void {
    this.fingerprints = new Set(pemBlocks(pem).map((b) => new X509Certificate(b).fingerprint256));
    this.bundleGeneration++;
  }

  /** Counts {@link update} calls: a verdict of {@link trusts} holds while this is unchanged. */
  get generation(): number {
    return this.bundleGeneration;
  }

  /** True when one of `chain` (fingerprints `AA:BB:…`) is a CA of the current bundle. */
  trusts(chain: readonly string[]): boolean {
    return chain.some((fp) => this.fingerprints.has(fp));
  }
}
