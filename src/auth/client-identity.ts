import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';

/** id-kp-clientAuth (RFC 5280 §4.2.1.12). */
export const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/** Who a client is, from its verified certificate. */
export interface ClientIdentity {
  /** Leaf subject CN. */
  commonName: string;
  /** SHA-256 fingerprint of the leaf, `AA:BB:…`. */
  fingerprint256: string;
}

/**
 * The client identity of an mTLS connection: the verified peer leaf certificate's
 * subject CN. Only the TLS layer is consulted, never request headers. Returns
 * undefined when the socket is not TLS, not authorized, or has no peer certificate.
 */
export function clientIdentity(socket: TLSSocket): ClientIdentity | undefined {
  if (!socket || typeof socket.getPeerCertificate !== 'function' || !socket.authorized) return undefined;
  const cert = socket.getPeerCertificate();
  if (!cert || !cert.raw) return undefined;
  const cn = cert.subject?.CN;
  return { commonName: Array.isArray(cn) ? cn.join(',') : (cn ?? ''), fingerprint256: cert.fingerprint256 };
}

/**
 * Why a verified peer certificate is still unfit as a client certificate, or undefined
 * when it is fit. OpenSSL has checked the chain against `--client-ca` and the validity
 * dates; Node's TLS server does not enforce the extended key usage, so we do:
 * the leaf must carry clientAuth (a server certificate presented as a client one is
 * refused). A CA certificate is no client, and the subject must hold exactly one CN,
 * the identity we log. Validity is checked again because a resumed session would skip OpenSSL's.
 */
export function unfitReason(der: Buffer, nowMs: number): string | undefined {
  const cert = new X509Certificate(der);
  // The identity is the subject CN: exactly one (also across multi-valued RDNs, which
  // the legacy object lists as an array), not blank, no control characters, or the log
  // could not say unambiguously who acted.
  const cn = cert.toLegacyObject().subject?.CN as string | string[] | undefined;
  if (cn === undefined) return 'certificate subject has no CN';
  if (Array.isArray(cn)) return `certificate subject has ${cn.length} CNs; exactly one is required`;
  if (cn.trim() === '' || [...cn].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f)) return 'certificate subject CN is blank or holds control characters';
  if (cert.ca) return 'a CA certificate (basicConstraints CA:TRUE) is not a client certificate';
  const usages = cert.keyUsage; // Node names the extended key usage OIDs "keyUsage"
  if (!usages || !usages.includes(OID_CLIENT_AUTH)) return 'certificate lacks the clientAuth extended key usage';
  if (nowMs < Date.parse(cert.validFrom)) return 'certificate is not yet valid';
  if (nowMs > Date.parse(cert.validTo)) return 'certificate has expired';
  return undefined;
}

/**
 * Drops a freshly handshaken connection whose client certificate is missing,
 * unverified or unfit, before any HTTP request is read. Returns whether it was kept.
 */
export function rejectUnfitClient(socket: TLSSocket, logger: Logger, nowMs = Date.now()): boolean {
  const peer = socket.getPeerCertificate();
  let reason: string | undefined;
  if (!socket.authorized) reason = `client certificate not verified: ${String(socket.authorizationError ?? 'none presented')}`;
  else if (!peer?.raw) reason = 'no client certificate';
  else reason = unfitReason(peer.raw, nowMs);
  if (reason) {
    logger.warn({ remote: socket.remoteAddress, subject: peer?.subject, reason }, 'TLS client refused');
    socket.destroy();
    return false;
  }
  return true;
}
