import { constants } from 'node:crypto';

/** The mTLS policy of the API listener, as `https.createServer` / `setSecureContext` options. */
export interface ServerTlsOptions {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
  requestCert: true;
  rejectUnauthorized: true;
  minVersion: 'TLSv1.2';
  secureOptions: number;
}

/**
 * Server TLS options: TLS 1.2 minimum, a client certificate required and verified
 * against `ca`, and no session resumption (no tickets; Node keeps no server-side
 * session cache unless asked), so every connection runs the full certificate check.
 */
export function serverTlsOptions(cert: Buffer, key: Buffer, ca: Buffer): ServerTlsOptions {
  return {
    cert, key, ca,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    secureOptions: constants.SSL_OP_NO_TICKET,
  };
}
