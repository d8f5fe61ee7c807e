import type { EventEmitter } from 'node:events';
import type { TLSSocket } from 'node:tls';
import type { ConnectionCap, RefusalReason, TlsRecorder } from '../metrics/recorders.js';

/**
 * Reports the TLS clients of `server` (a `tls.Server`, e.g. Fastify's HTTPS server) to
 * `recorder`: accepted (then counted open until its socket closes) and, unless
 * `refusals: false`, refused during the handshake (`tlsClientError`). Register it after the
 * listener that drops unfit clients right after the handshake (the TLS guard, prepended),
 * so their sockets are already destroyed here and not counted as accepted; the guard's
 * RefusalLog reports every refusal through {@link recordRefusal}.
 */
export function observeHandshakes(server: EventEmitter, recorder: TlsRecorder, options: { refusals?: boolean } = {}): void {
  // refusals: false when another component reports refusals (e.g. a refusal log calling recordRefusal).
  if (options.refusals ?? true) {
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket?: TLSSocket) => recorder.refused(classifyTlsError(err, socket?.authorizationError)));
  }
  server.on('secureConnection', (socket: TLSSocket) => {
    if (socket.destroyed) return;
    recorder.accepted();
    socket.once('close', () => recorder.closed());
  });
}

/** Maps a `rejectUnfitClient` / `unfitReason` message to its bounded label (`other` when it matches none). */
export function classifyUnfit(message: string): RefusalReason {
  if (/not verified/.test(message)) return 'untrusted_certificate';
  if (/^no client certificate/.test(message)) return 'no_certificate';
  if (/clientAuth/.test(message)) return 'no_client_auth';
  if (/CA certificate/.test(message)) return 'ca_certificate';
  if (/\bCNs?\b|certificate subject/.test(message)) return 'bad_subject';
  if (/not yet valid/.test(message)) return 'not_yet_valid';
  if (/expired/.test(message)) return 'expired';
  return 'other';
}

/**
 * Maps a handshake failure to its bounded label. OpenSSL's verdict on the client
 * certificate (`authorizationError`, e.g. `CERT_HAS_EXPIRED`, `INVALID_PURPOSE`) wins:
 * Node then ends the socket and reports only ECONNRESET. Otherwise the error code: no
 * certificate, a protocol mismatch (version, cipher, plain HTTP on the TLS port), a
 * client that went away, or `other`.
 */
export function classifyTlsError(err: NodeJS.ErrnoException, authorizationError?: string | Error | null): RefusalReason {
  const verdict = authorizationError ? String((authorizationError as { code?: string }).code ?? authorizationError) : '';
  if (verdict === 'CERT_HAS_EXPIRED') return 'expired';
  if (verdict === 'CERT_NOT_YET_VALID') return 'not_yet_valid';
  if (verdict === 'INVALID_PURPOSE') return 'no_client_auth';
  if (verdict) return 'untrusted_certificate';
  const code = err.code ?? '';
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') return 'no_certificate';
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_TLS_HANDSHAKE_TIMEOUT' || code === 'ETIMEDOUT') return 'aborted';
  if (/CERTIFICATE|UNKNOWN_CA|VERIFY/.test(code)) return 'untrusted_certificate';
  if (/PROTOCOL|VERSION|CIPHER|HTTP_REQUEST|HANDSHAKE_FAILURE|WRONG_SSL|RECORD/.test(code)) return 'protocol';
  return 'other';
}

/** Our own refusal codes for connections over a cap, and the cap each is. */
const CAP_CODES: Record<string, ConnectionCap> = { MAX_CONNECTIONS: 'max_connections', MAX_CONNECTIONS_PER_IP: 'per_client_ip' };

/**
 * Reports one refused TLS client given as a stable code and a reason text (a refusal
 * log's record): a cap code counts as a connection closed by that cap; OpenSSL's
 * verification codes (`CERT_HAS_EXPIRED`, `UNABLE_TO_GET_ISSUER_CERT_LOCALLY`…), handshake
 * error codes (`ERR_SSL_*`, `ECONNRESET`, `ERR_TLS_HANDSHAKE_TIMEOUT`), `NO_CLIENT_CERTIFICATE`,
 * `UNFIT_CERTIFICATE` (classified by its reason) and the per-request re-checks
 * (`CERTIFICATE_EXPIRED_ON_CONNECTION`, `CA_NO_LONGER_TRUSTED`) count as refused clients.
 */
export function recordRefusal(recorder: TlsRecorder, code: string, reason = ''): void {
  const cap = CAP_CODES[code];
  if (cap) return recorder.closedByCap(cap);
  if (code === 'NO_CLIENT_CERTIFICATE') return recorder.refused('no_certificate');
  if (code === 'UNFIT_CERTIFICATE') return recorder.refused(classifyUnfit(reason));
  // Checked again on each request: the certificate expired, or its CA left --client-ca.
  if (code === 'CERTIFICATE_EXPIRED_ON_CONNECTION') return recorder.refused('expired');
  if (code === 'CA_NO_LONGER_TRUSTED' || code === 'UNVERIFIED') return recorder.refused('untrusted_certificate');
  if (code === 'TLS_ERROR') return recorder.refused('other');
  // A code without ERR_ / E prefix is OpenSSL's verdict on the certificate.
  if (/^[A-Z_]+$/.test(code) && !/^(ERR_|E[A-Z]+$)/.test(code)) return recorder.refused(classifyTlsError({ name: 'Error', message: '' }, code));
  recorder.refused(classifyTlsError(Object.assign(new Error(reason), { code })));
}
