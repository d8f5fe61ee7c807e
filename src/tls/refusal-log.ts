import type { Logger } from 'pino';
import { DEFAULT_LOG_RATE, RateLimitedLog, type RateLimitedLogOptions } from '../log/rate-limited-log.js';

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

/** Log rate of {@link RefusalLog} (at most `maxLines` individual lines per `windowMs`), and who else hears of each refusal. */
export type RefusalLogOptions = RateLimitedLogOptions & {
  /** Told of every refusal, logged or suppressed (metrics: `recordRefusal`). */
  onRefusal?: (r: Refusal) => void;
};

/** 20 lines per 10 s: enough to see who is refused, too few for a flood to fill the disk. */
export const DEFAULT_REFUSAL_LOG = DEFAULT_LOG_RATE;

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
  private readonly log: RateLimitedLog;
  private readonly onRefusal?: (r: Refusal) => void;

  constructor(logger: Logger, options: RefusalLogOptions = {}) {
    this.log = new RateLimitedLog(logger, 'TLS client refusals not logged individually (log rate limit)', options);
    this.onRefusal = options.onRefusal;
  }

  /** Records one refusal: logs it, or counts it for the window's summary line. */
  record(r: Refusal): void {
    this.onRefusal?.(r);
    this.log.warn(r.code, { ...r, ...(r.subject ? { subject: escapeInvisible(r.subject) } : {}) }, 'TLS client refused');
  }

  /** Writes the summary of suppressed lines now, if any (also called at shutdown). */
  flush(): void {
    this.log.flush();
  }

  /** Refusals since start, by code. */
  counts(): Record<string, number> {
    return this.log.counts();
  }
}
