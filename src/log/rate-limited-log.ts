import type { Logger } from 'pino';

/** Log rate of {@link RateLimitedLog}: at most `maxLines` individual lines per `windowMs`. */
export interface RateLimitedLogOptions {
  maxLines?: number;
  windowMs?: number;
  now?: () => number;
}

/** 20 lines per 10 s: enough to see what is happening, too few for a flood to fill the disk. */
export const DEFAULT_LOG_RATE = { maxLines: 20, windowMs: 10_000 };

/**
 * `warn` lines that a client can cause (refused handshakes, malformed HTTP), rate-limited
 * so a flood cannot fill the disk: past `maxLines` in a window, lines are only counted by
 * `code`, and one summary line per window (`summaryMsg`, with `suppressed`, `byCode`,
 * `windowSeconds`) gives the count of lines not written. Totals by code are kept for the
 * life of the process.
 */
export class RateLimitedLog {
  private readonly maxLines: number;
  private readonly windowMs: number;
  private readonly now: () => number;
  private windowStart = -Infinity;
  private lines = 0;
  private suppressed = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly totals = new Map<string, number>();

  constructor(private readonly logger: Logger, private readonly summaryMsg: string, options: RateLimitedLogOptions = {}) {
    this.maxLines = options.maxLines ?? DEFAULT_LOG_RATE.maxLines;
    this.windowMs = options.windowMs ?? DEFAULT_LOG_RATE.windowMs;
    this.now = options.now ?? Date.now;
  }

  /** Writes `fields` with `msg` at `warn`, or counts it under `code` for the window's summary line. */
  warn(code: string, fields: Record<string, unknown>, msg: string): void {
    this.totals.set(code, (this.totals.get(code) ?? 0) + 1);
    const now = this.now();
    if (now - this.windowStart >= this.windowMs) {
      this.flush();
      this.windowStart = now;
      this.lines = 0;
    }
    if (this.lines < this.maxLines) {
      this.lines++;
      this.logger.warn(fields, msg);
      return;
    }
    this.suppressed.set(code, (this.suppressed.get(code) ?? 0) + 1);
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
    this.logger.warn({ suppressed: count, byCode, windowSeconds: this.windowMs / 1000 }, this.summaryMsg);
  }

  /** Lines (written or suppressed) since start, by code. */
  counts(): Record<string, number> {
    return Object.fromEntries(this.totals);
  }
}
