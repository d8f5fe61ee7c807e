import { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Server as TlsServer, TLSSocket, DetailedPeerCertificate } from 'node:tls';
import { clientIdentity, unfitReason, type ClientIdentity } from '../auth/client-identity.js';
import { ProblemError } from '../errors.js';
import type { RefusalLog } from './refusal-log.js';
import type { TrustedCas } from './trust.js';

/** Connection limits of the API listener (0 switches a cap or bound off). */
export interface ConnectionLimits {
  /** A TLS handshake not finished within this is closed (Node's default would be 120 s). */
  handshakeTimeoutMs: number;
  /**
   * Open connections in total. At the cap, a new connection takes the place of the
   * oldest one still in its TLS handshake (a valid client finishes in milliseconds, a
   * silent one holds its place until the timeout); when none is, the new one is closed.
   */
  maxConnections: number;
  /** Open connections from one source address; past it new ones from there are closed at once. */
  maxConnectionsPerIp: number;
  /** A connection older than this is closed after its next response. */
  maxConnectionAgeMs: number;
}

/** Defaults of {@link ConnectionLimits}; the README's Operations section gives the memory they stand for. */
export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  handshakeTimeoutMs: 10_000, maxConnections: 1_000, maxConnectionsPerIp: 200, maxConnectionAgeMs: 600_000,
};

/** What is fixed about a connection at the handshake that opened it (TLS renegotiation is off, so it cannot change). */
export interface PinnedConnection {
  identity: ClientIdentity;
  openedAtMs: number;
  /** Earliest notAfter of the verified chain (leaf, intermediates, root). */
  notAfterMs: number;
  /** SHA-256 fingerprints of the verified chain, to check against the client CA bundle in force. */
  chain: string[];
  /** The {@link TrustedCas.generation} the chain was last found trusted in (-1: not yet checked). */
  trustedInGeneration: number;
}

/** The guard's answer for a request: go ahead (as `identity`), refuse with a problem, or drop an unverified socket. */
export type RequestVerdict =
  | { kind: 'ok'; identity: ClientIdentity; closeAfter: boolean }
  | { kind: 'refuse'; problem: ProblemError }
  | { kind: 'drop' };

/** Why a response that outlives its request (a watch stream) must end now; `reason` is also the client's. */
export interface ConnectionEnd {
  reason: 'CertificateExpired' | 'CertificateNoLongerTrusted' | 'MaxConnectionAge';
  message: string;
}

/**
 * What a response that outlives its request (a watch stream) keeps checking about its
 * connection: the per-request check of {@link TlsGuard.check} never runs again for it.
 */
export interface ConnectionTerm {
  /**
   * The moment (epoch ms) the connection must end by at the latest: just past the earliest
   * notAfter of its chain, or when it reaches `--max-connection-age-seconds`; Infinity when neither applies.
   */
  deadlineMs: number;
  /** Why the connection must end now (certificate expired, its CA removed by a reload, max age reached), else undefined. */
  endReason(): ConnectionEnd | undefined;
}

/**
 * Why `conn` must not serve any longer at `now`, else undefined. The trust verdict is
 * cached per bundle generation on `conn`, as for requests.
 */
export function connectionEnd(conn: PinnedConnection, trust: TrustedCas, maxConnectionAgeMs: number, now: number): ConnectionEnd | undefined {
  if (now > conn.notAfterMs) {
    return { reason: 'CertificateExpired', message: `the client certificate (or its chain) expired at ${new Date(conn.notAfterMs).toISOString()}; reconnect with a valid certificate` };
  }
  if (conn.trustedInGeneration !== trust.generation) {
    if (!trust.trusts(conn.chain)) {
      return { reason: 'CertificateNoLongerTrusted', message: 'the client certificate\'s CA was removed from --client-ca; reconnect with a certificate from a trusted CA' };
    }
    conn.trustedInGeneration = trust.generation;
  }
  if (maxConnectionAgeMs > 0 && now - conn.openedAtMs >= maxConnectionAgeMs) {
    return { reason: 'MaxConnectionAge', message: `the connection reached --max-connection-age-seconds (${maxConnectionAgeMs / 1000} s); reconnect, resuming with Last-Event-ID` };
  }
  return undefined;
}

/** The {@link ConnectionTerm} of `conn` under `trust` and `--max-connection-age-seconds`, on the clock `now`. */
export function termOf(conn: PinnedConnection, trust: TrustedCas, maxConnectionAgeMs: number, now: () => number): ConnectionTerm {
  return {
    deadlineMs: Math.min(conn.notAfterMs + 1, maxConnectionAgeMs > 0 ? conn.openedAtMs + maxConnectionAgeMs : Infinity),
    endReason: () => connectionEnd(conn, trust, maxConnectionAgeMs, now()),
  };
}

/** What {@link TlsGuard} needs: where refusals go, the trusted CAs in force, the limits, a clock. */
export interface TlsGuardOptions {
  refusals: RefusalLog;
  trust: TrustedCas;
  limits: ConnectionLimits;
  now?: () => number;
}

/**
 * The API listener's front door, in front of HTTP:
 * - connection caps (total, per source address), checked before any TLS work; at the
 *   total cap the oldest connection still in its handshake makes room, so a flood of
 *   silent sockets cannot lock valid clients out;
 * - every refused handshake (OpenSSL's verdict, or ours on the certificate) handed to
 *   the refusal log with its reason, and the socket destroyed before HTTP sees a byte;
 * - the identity and certificate facts pinned per connection at its one handshake;
 * - per request: the certificate still valid and its CA still trusted, else 401.
 *
 * OpenSSL runs with `rejectUnauthorized: false` (see server-tls.ts) so that its verdict
 * (`socket.authorizationError`) and the certificate reach us here; no unverified socket
 * is ever handed on.
 */
export class TlsGuard {
  private readonly pinned = new WeakMap<TLSSocket, PinnedConnection>();
  private readonly perIp = new Map<string, number>();
  /** Raw sockets still in their TLS handshake, oldest first (a Set keeps insertion order). */
  private readonly handshaking = new Set<Socket>();
  /** Raw sockets closed to make room; their TLS socket's reset is not a second refusal. */
  private readonly evicted = new WeakSet<Socket>();
  private open = 0;
  private readonly now: () => number;

  constructor(private readonly options: TlsGuardOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Installs the caps, the refusal logging and the certificate checks on `server` (an https/tls server that has not started listening). */
  install(server: TlsServer): void {
    const { limits, refusals } = this.options;
    // The caps wrap the TLS server's own connection listener, so a refused
    // socket costs no TLS state at all.
    const tlsListeners = server.listeners('connection') as Array<(s: Socket) => void>;
    server.removeAllListeners('connection');
    server.on('connection', (raw: Socket) => {
      if (!this.admit(raw)) return;
      for (const l of tlsListeners) l.call(server, raw);
    });
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      const raw = (socket as unknown as { _parent?: Socket })._parent;
      if (raw && this.evicted.has(raw)) return;
      const remote = raw?.remoteAddress ?? socket.remoteAddress;
      const reason = err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? `no TLS handshake within ${limits.handshakeTimeoutMs / 1000} s`
        : err.code === 'ECONNRESET' ? 'the client closed the connection during the handshake'
          : err.message.split('\n')[0].slice(0, 200);
      refusals.record({ code: err.code ?? 'TLS_ERROR', reason, remote });
    });
    // prependListener: runs before Node's HTTP connection listener, so a refused client's
    // bytes never reach the HTTP parser.
    server.prependListener('secureConnection', (socket: TLSSocket) => this.onSecure(socket));
  }

  private admit(raw: Socket): boolean {
    const { limits, refusals } = this.options;
    // Read now: Node caches the peer address, so tlsClientError can still name it after a close.
    const ip = raw.remoteAddress ?? '';
    const fromIp = this.perIp.get(ip) ?? 0;
    if (limits.maxConnectionsPerIp > 0 && fromIp >= limits.maxConnectionsPerIp) {
      refusals.record({ code: 'MAX_CONNECTIONS_PER_IP', reason: `over --max-connections-per-ip (${limits.maxConnectionsPerIp})`, remote: ip });
      raw.destroy();
      return false;
    }
    if (limits.maxConnections > 0 && this.open >= limits.maxConnections) {
      const oldest = this.handshaking.values().next().value;
      if (!oldest) {
        refusals.record({ code: 'MAX_CONNECTIONS', reason: `over --max-connections (${limits.maxConnections}), all past their handshake`, remote: ip });
        raw.destroy();
        return false;
      }
      this.handshaking.delete(oldest);
      this.evicted.add(oldest);
      refusals.record({ code: 'MAX_CONNECTIONS', reason: `over --max-connections (${limits.maxConnections}): the oldest connection still in its handshake was closed to make room`, remote: oldest.remoteAddress });
      oldest.destroy();
    }
    this.open++;
    this.perIp.set(ip, fromIp + 1);
    this.handshaking.add(raw);
    raw.once('close', () => {
      this.open--;
      this.handshaking.delete(raw);
      const n = (this.perIp.get(ip) ?? 1) - 1;
      if (n <= 0) this.perIp.delete(ip);
      else this.perIp.set(ip, n);
    });
    return true;
  }

  private onSecure(socket: TLSSocket): void {
    const raw = (socket as unknown as { _parent?: Socket })._parent;
    if (raw) this.handshaking.delete(raw);
    const peer = socket.getPeerCertificate(true) as DetailedPeerCertificate | null;
    const sent = peer?.raw ? { subject: new X509Certificate(peer.raw).subject.replaceAll('\n', ', '), fingerprint256: peer.fingerprint256 } : {};
    let code: string | undefined;
    let reason: string | undefined;
    if (!peer?.raw) [code, reason] = ['NO_CLIENT_CERTIFICATE', 'no client certificate presented'];
    else if (!socket.authorized) [code, reason] = [String(socket.authorizationError ?? 'UNVERIFIED'), `client certificate not verified by OpenSSL (${String(socket.authorizationError)})`];
    else if ((reason = unfitReason(peer.raw, this.now()))) code = 'UNFIT_CERTIFICATE';
    const identity = reason ? undefined : clientIdentity(socket);
    if (reason || !identity) {
      this.options.refusals.record({ code: code ?? 'UNFIT_CERTIFICATE', reason: reason ?? 'no client identity', remote: socket.remoteAddress, ...sent });
      socket.destroy();
      return;
    }
    // Node's own guard too (OpenSSL already refuses renegotiation via SSL_OP_NO_RENEGOTIATION).
    socket.disableRenegotiation();
    const chain: string[] = [];
    let notAfterMs = Infinity;
    for (let c: DetailedPeerCertificate | null | undefined = peer; c?.raw && !chain.includes(c.fingerprint256); c = c.issuerCertificate) {
      chain.push(c.fingerprint256);
      notAfterMs = Math.min(notAfterMs, Date.parse(c.valid_to));
    }
    this.pinned.set(socket, { identity, openedAtMs: this.now(), notAfterMs, chain, trustedInGeneration: -1 });
  }

  /**
   * The verdict for a request on `socket`: its pinned identity while the certificate is
   * valid and its CA still in the bundle; otherwise a 401 (the caller closes the
   * connection after it) or, for a socket the guard never accepted, a drop.
   */
  check(socket: TLSSocket): RequestVerdict {
    const conn = this.pinned.get(socket);
    if (!conn) return { kind: 'drop' };
    const now = this.now();
    if (now > conn.notAfterMs) {
      this.refused(socket, conn, 'CERTIFICATE_EXPIRED_ON_CONNECTION', 'client certificate (or its chain) expired while the connection was open');
      return { kind: 'refuse', problem: new ProblemError(401, 'Unauthorized', `the client certificate expired at ${new Date(conn.notAfterMs).toISOString()}; reconnect with a valid certificate`) };
    }
    // The chain is looked up in the bundle once per connection and CA reload, not per request.
    const { trust } = this.options;
    if (conn.trustedInGeneration !== trust.generation) {
      if (!trust.trusts(conn.chain)) {
        this.refused(socket, conn, 'CA_NO_LONGER_TRUSTED', 'the CA of the client certificate was removed from --client-ca');
        return { kind: 'refuse', problem: new ProblemError(401, 'Unauthorized', 'the client certificate\'s CA is no longer trusted; reconnect with a certificate from a trusted CA') };
      }
      conn.trustedInGeneration = trust.generation;
    }
    const maxAge = this.options.limits.maxConnectionAgeMs;
    return { kind: 'ok', identity: conn.identity, closeAfter: maxAge > 0 && now - conn.openedAtMs > maxAge };
  }

  /**
   * The term of the connection of `socket` (undefined for a socket the guard never
   * accepted), for responses that outlive their request.
   */
  term(socket: TLSSocket): ConnectionTerm | undefined {
    const conn = this.pinned.get(socket);
    return conn && termOf(conn, this.options.trust, this.options.limits.maxConnectionAgeMs, this.now);
  }

  private refused(socket: TLSSocket, conn: PinnedConnection, code: string, reason: string): void {
    this.options.refusals.record({ code, reason, remote: socket.remoteAddress, subject: `CN=${conn.identity.commonName}`, fingerprint256: conn.identity.fingerprint256 });
  }
}
