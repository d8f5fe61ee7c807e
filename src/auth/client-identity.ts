import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';

/** id-kp-clientAuth (RFC 5280 §4.2.1.12). */
export const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/** Who a client is, from its verified certificate. */
export interface ClientIdentity {
  /** Leaf subject CN. */
  commonName: string;
  /** SHA-256 fingerprint of the leaf, `AA:BB:…`. */
  fingerprint256: string;
  /** Subject O values in certificate order, then `system:authenticated`: kube-apiserver's x509 mapping. */
  groups: string[];
}

/** The group kube-apiserver adds to every authenticated user. */
export const AUTHENTICATED_GROUP = 'system:authenticated';

/**
 * The client identity of an mTLS connection, mapped as kube-apiserver maps x509 client
 * certificates (k8s.io/apiserver authentication/request/x509 `CommonNameUserConversion`):
 * subject CN → username, each subject O → a group, plus `system:authenticated`. Only the TLS layer is consulted, never request headers. Returns
 * undefined when the socket is not TLS, not authorized, or has no peer certificate.
 */
export function clientIdentity(socket: TLSSocket): ClientIdentity | undefined {
  if (!socket || typeof socket.getPeerCertificate !== 'function' || !socket.authorized) return undefined;
  const cert = socket.getPeerCertificate();
  if (!cert || !cert.raw) return undefined;
  const cn = cert.subject?.CN;
  const o = cert.subject?.O;
  const groups = [...(o === undefined ? [] : Array.isArray(o) ? o : [o]), AUTHENTICATED_GROUP];
  return { commonName: Array.isArray(cn) ? cn.join(',') : (cn ?? ''), fingerprint256: cert.fingerprint256, groups };
}

/** Unicode control, format (bidi overrides, zero-width…), line and paragraph separators: text a log reader cannot see. */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

/**
 * Why a subject attribute value is unfit to name a client, or undefined. Control and
 * format characters (Cc, Cf, Zl, Zp: C0/C1 controls, U+202E and other bidi overrides,
 * zero-width characters) would let a logged name read as another; a comma in a CN would
 * read as two CNs (`alice,bob`).
 */
export function unfitName(attr: 'CN' | 'O', value: string): string | undefined {
  if (value.trim() === '') return `certificate subject ${attr} is blank`;
  if (INVISIBLE.test(value)) return `certificate subject ${attr} holds Unicode control or format characters`;
  if (attr === 'CN' && value.includes(',')) return 'certificate subject CN holds a comma (it would read as several names)';
  return undefined;
}

/**
 * Why a verified peer certificate is still unfit as a client certificate, or undefined
 * when it is fit. OpenSSL has checked the chain against `--client-ca` and the validity
 * dates; Node's TLS server does not enforce the extended key usage, so we do:
 * the leaf must carry clientAuth (a server certificate presented as a client one is
 * refused). A CA certificate is no client, and the subject must hold exactly one CN,
 * the identity we log, and no O that could not be read unambiguously.
 * Validity is checked again because a resumed session would skip OpenSSL's.
 */
export function unfitReason(der: Buffer, nowMs: number): string | undefined {
  const cert = new X509Certificate(der);
  // The identity is the subject CN: exactly one (also across multi-valued RDNs, which
  // the legacy object lists as an array), or the log could not say unambiguously who acted.
  const subject = cert.toLegacyObject().subject as Record<string, string | string[] | undefined> | undefined;
  const cn = subject?.CN;
  if (cn === undefined) return 'certificate subject has no CN';
  if (Array.isArray(cn)) return `certificate subject has ${cn.length} CNs; exactly one is required`;
  const badName = unfitName('CN', cn) ?? [subject?.O ?? []].flat().map((o) => unfitName('O', o)).find(Boolean);
  if (badName) return badName;
  if (cert.ca) return 'a CA certificate (basicConstraints CA:TRUE) is not a client certificate';
  const usages = cert.keyUsage; // Node names the extended key usage OIDs "keyUsage"
  if (!usages || !usages.includes(OID_CLIENT_AUTH)) return 'certificate lacks the clientAuth extended key usage';
  if (nowMs < Date.parse(cert.validFrom)) return 'certificate is not yet valid';
  if (nowMs > Date.parse(cert.validTo)) return 'certificate has expired';
  return undefined;
}
