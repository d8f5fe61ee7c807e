import { constants } from 'node:crypto';
import { caBundleForOpenSsl } from './trust.js';

/** The mTLS policy of the API listener, as `https.createServer` / `setSecureContext` options. */
export interface ServerTlsOptions {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
  requestCert: true;
  rejectUnauthorized: false;
  minVersion: 'TLSv1.2';
  ciphers: string;
  secureOptions: number;
  /** How often Node checks requestTimeout/headersTimeout (ms); its default of 30 s would let slow clients linger. */
  connectionsCheckingInterval: number;
}

/**
 * Cipher suites: the TLS 1.3 ones (all AEAD), and for TLS 1.2 forward-secret AEAD only
 * (no CBC, no SHA-1), as in Mozilla's "intermediate" profile. The TLS 1.3 names must be
 * listed: a list without them would switch TLS 1.3 off in Node.
 */
export const TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/**
 * Server TLS options: TLS 1.2 minimum, a client certificate requested and verified
 * against `ca` (a PEM bundle, each certificate put on lines of its own first: see
 * {@link caBundleForOpenSsl}), no session resumption (no tickets; Node keeps no server-side session
 * cache unless asked), so every connection runs the full certificate check, and no
 * renegotiation (TLS 1.2; 1.3 has none), so a connection keeps the certificate of the
 * handshake that opened it.
 *
 * `rejectUnauthorized` is false on purpose: with true, Node destroys a socket OpenSSL did
 * not verify before anyone can log why. OpenSSL still verifies every chain; the TLS guard
 * (guard.ts) refuses each unverified client in `secureConnection`, logging OpenSSL's
 * verdict, before the HTTP layer sees a byte.
 */
export function serverTlsOptions(cert: Buffer, key: Buffer, ca: Buffer): ServerTlsOptions {
  return {
    cert, key, ca: caBundleForOpenSsl(ca),
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
    ciphers: TLS_CIPHERS,
    secureOptions: constants.SSL_OP_NO_TICKET | constants.SSL_OP_NO_RENEGOTIATION,
    connectionsCheckingInterval: 1_000,
  };
}
