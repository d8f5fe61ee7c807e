import { basename, dirname } from 'node:path';
import { createStream, type Generator, type RotatingFileStream } from 'rotating-file-stream';
import type { AuditEvent } from './audit-event.js';
import type { AuditRecorder } from '../metrics/recorders.js';

/** Where audit events go: one JSON line each. */
export interface AuditSink {
  /** Queues one event; never throws, never drops (a slow disk buffers in memory). */
  write(event: AuditEvent): void;
  /** Flushes everything queued and closes the file. */
  close(): Promise<void>;
}

/** `--audit-log-*`: `path` `-` is stdout; otherwise a file rotated at `maxSizeMb`, keeping `maxBackups` old files (0: all). */
export interface AuditLogOptions {
  path: string;
  maxSizeMb: number;
  maxBackups: number;
  /** Told when the file cannot be written; events then go to `fallback` instead. */
  onError: (err: Error) => void;
  /** Where events go once the file has failed (default stdout). */
  fallback?: NodeJS.WritableStream;
  /** Told of every event handed to the sink (metrics); the sinks never drop one. */
  recorder?: AuditRecorder;
}

/** Writes events as JSON lines on a stream we do not own (stdout): no rotation, never closed. */
class LineSink implements AuditSink {
  constructor(private readonly out: NodeJS.WritableStream) {}
  write(event: AuditEvent): void {
    this.writeLine(`${JSON.stringify(event)}\n`);
  }
  writeLine(line: string): void {
    this.out.write(line);
  }
  async close(): Promise<void> {}
}

/**
 * A size-rotated file (rotating-file-stream, classical logrotate naming: `audit.log.1`
 * is the newest backup). The library queues writes while it rotates and never splits
 * one write across two files, so a burst across a rotation loses nothing. If the file
 * fails (the library then closes the stream for good), every line it had not yet
 * confirmed, and every later one, goes to the fallback stream instead.
 */
class RotatingFileSink implements AuditSink {
  private failed: LineSink | undefined;
  private readonly stream: RotatingFileStream;
  /** Lines handed to the file whose write has not been confirmed yet. */
  private readonly unconfirmed = new Set<{ line: string }>();

  constructor(options: AuditLogOptions) {
    const bytes = Math.max(1, Math.round(options.maxSizeMb * 1024 * 1024));
    const name = basename(options.path);
    // Classical mode names backups by index; unlimited mode by rotation time (and index within it).
    const unlimited = (time: number | Date | null, index?: number): string =>
      time === null ? name : `${name}.${(time as Date).toISOString().replaceAll(':', '')}.${index ?? 1}`;
    const common = { path: dirname(options.path), size: `${bytes}B` as const, mode: 0o600 };
    this.stream = options.maxBackups > 0
      ? createStream(name, { ...common, rotate: options.maxBackups })
      : createStream(unlimited as Generator, common);
    this.stream.on('error', (err: Error) => {
      if (!this.failed) {
        this.failed = new LineSink(options.fallback ?? process.stdout);
        options.onError(err);
      }
      for (const entry of this.unconfirmed) this.failed.writeLine(entry.line);
      this.unconfirmed.clear();
    });
  }

  write(event: AuditEvent): void {
    const line = `${JSON.stringify(event)}\n`;
    if (this.failed) return this.failed.writeLine(line);
    const entry = { line };
    this.unconfirmed.add(entry);
    this.stream.write(line, (err) => { if (!err) this.unconfirmed.delete(entry); });
  }

  close(): Promise<void> {
    if (this.failed) return Promise.resolve();
    return new Promise((resolve) => {
      this.stream.once('error', () => resolve());
      this.stream.end(() => resolve());
    });
  }
}

/** Opens the audit log named by `--audit-log-path`. */
export function openAuditLog(options: AuditLogOptions): AuditSink {
  const sink = options.path === '-' ? new LineSink(process.stdout) : new RotatingFileSink(options);
  const recorder = options.recorder;
  if (!recorder) return sink;
  return {
    write: (event) => { sink.write(event); recorder.event('written'); },
    close: () => sink.close(),
  };
}
