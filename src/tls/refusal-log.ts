import type { Logger } from 'pino';

/** One refused TLS client: a handshake OpenSSL or we refused, a connection over a cap, or a request on a connection whose certificate no longer holds. */
export interface Refusal {
  /** Stable code: OpenSSL's (`CERT_HAS_EXPIRED`, `ERR_TLS_HANDSHAKE_TIMEOUT`…) or ours (`MAX_CONNECTIONS_PER_IP`, `UNFIT_CERTIFICATE`…). */
  code: string;
  /** Human-readable reason. */
  reason: string;
  remote?: string;
  /** Subject of the certificate the client sent, control and format characters escaped. */
  subject?: string;
  /** SHA-256 fingerprint of that certificate, `AA:BB:…`. */
  fingerprint256?: string;
}

/** Log rate of {@link RefusalLog}: at most `maxLines` individual lines per `windowMs`. */
export interface RefusalLogOptions {
  maxLines?: number;
  windowMs?: number;
  now?: () => number;
}

/** 20 lines per 10 s: enough to see who is refused, too few for a flood to fill the disk. */
export const DEFAULT_REFUSAL_LOG = { maxLines: 20, windowMs: 10_000 };

const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

/** `s` with Unicode control and format characters shown as `\u{…}`, so a logged name cannot hide or reorder text. */
export function escapeInvisible(s: string): string {
  return s.replace(INVISIBLE, (ch) => `\\u{${ch.codePointAt(0)!.toString(16)}}`);
}

/**
 * The single place refused TLS clients are logged (at `warn`, with code, reason, source
 * address and, when a certificate was sent, its subject and fingerprint). Rate-limited:
 * past `maxLines` in a window, refusals are only counted, and one summary line per window
 * gives the count of suppressed lines by code. Totals by code are kept for the life of
 * the process.
 */
export class RefusalLog {
  private readonly maxLines: number;
  private readonly windowMs: number;
  private readonly now: () => number;
  private windowStart = -Infinity;
  private lines = 0;
  private suppressed = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly totals = new Map<string, number>();

  constructor(private readonly logger: Logger, options: RefusalLogOptions = {}) {
    this.maxLines = options.maxLines ?? DEFAULT_REFUSAL_LOG.maxLines;
    this.windowMs = options.windowMs ?? DEFAULT_REFUSAL_LOG.windowMs;
    this.now = options.now ?? Date.now;
  }

  /** Records one refusal: logs it, or counts it for the window's summary line. */
  record(r: Refusal): void {
    this.totals.set(r.code, (this.totals.get(r.code) ?? 0) + 1);
    const now = this.now();
    if (now - this.windowStart >= this.windowMs) {
      this.flush();
      this.windowStart = now;
      this.lines = 0;
    }
    if (this.lines < this.maxLines) {
      this.lines++;
      this.logger.warn({ ...r, ...(r.subject ? { subject: escapeInvisible(r.subject) } : {}) }, 'TLS client refused');
      return;
    }
    this.suppressed.set(r.code, (this.suppressed.get(r.code) ?? 0) + 1);
    this.timer ??= setTimeout(() => this.flush(), Math.max(0, this.windowStart + this.windowMs - now)).unref();
  }

  /** Writes the summary of suppressed lines now, if any (also called at shutdown). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.suppressed.size === 0) return;
    const byCode = Object.fromEntries(this.suppressed);
    const count = [...this.suppressed.values()].reduce((a, b) => a + b, 0);
    this.suppressed = new Map();
    this.logger.warn({ suppressed: count, byCode, windowSeconds: this.windowMs / 1000 }, 'TLS client refusals not logged individually (log rate limit)');
  }

  /** Refusals since start, by code. */
  counts(): Record<string, number> {
    return Object.fromEntries(this.totals);
  }
}
