/**
 * What the kube layer reports to metrics, as small recorder interfaces defined here on
 * the consumer side (ARCHITECTURE.md: the kube layer never sees prom-client or the
 * registry). Entry passes implementations from `src/metrics/registry.ts`; without one,
 * the no-op recorders below are used, so every kube class stays testable alone.
 */

/** Calls to the API server: one `request` per finished call. */
export interface UpstreamRecorder {
  /**
   * @param verb HTTP method (`GET`, `PUT`…), or `WATCH` for a watch stream.
   * @param code HTTP status as a string, or `error` when no answer came (unreachable, reset, timeout).
   * @param seconds time to the whole answer; undefined for watches (long-running by design).
   */
  request(verb: string, code: string, seconds?: number): void;
}

/** Why a reflector lists from scratch: its first list, or its resourceVersion expired (410 Gone). */
export type RelistReason = 'initial' | 'expired';

/** What a reflector does, labelled with its resource name (a registration, never client input). */
export interface ReflectorRecorder {
  /** A list page was received. */
  listPage(resource: string): void;
  /** A full list was stored. */
  relisted(resource: string, reason: RelistReason): void;
  /** The API server accepted a watch (first or restarted). */
  watchStarted(resource: string): void;
  /** A watch event was applied (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR`). */
  event(resource: string, type: string): void;
  /** The loop backs off this long after a failure. */
  backoff(resource: string, seconds: number): void;
}

/**
 * How a replicas write ended; `updated` changed the value, `unchanged` found it already set,
 * `refused` was refused by admission (403), `queue_full` was refused (429) with too many
 * writes in line.
 */
export type WriteOutcome = 'updated' | 'unchanged' | 'conflict' | 'not_found' | 'invalid' | 'refused' | 'timeout' | 'aborted' | 'queue_full' | 'upstream_error' | 'error';

/** Replica writes: each 409 that is retried, and each write's outcome. */
export interface WriteRecorder {
  conflictRetried(): void;
  write(outcome: WriteOutcome): void;
}

/** Records nothing. */
export const NOOP_UPSTREAM_RECORDER: UpstreamRecorder = { request: () => undefined };
/** Records nothing. */
export const NOOP_REFLECTOR_RECORDER: ReflectorRecorder = {
  listPage: () => undefined, relisted: () => undefined, watchStarted: () => undefined, event: () => undefined, backoff: () => undefined,
};
/** Records nothing. */
export const NOOP_WRITE_RECORDER: WriteRecorder = { conflictRetried: () => undefined, write: () => undefined };

/**
 * Times a call to the API server and reports it once it settles: the status on an
 * answer (`{status}` results, or a `code` carried by the error), else `error`.
 */
export async function timedCall<T extends { status: number }>(recorder: UpstreamRecorder, verb: string, call: Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    const result = await call;
    recorder.request(verb, String(result.status), (performance.now() - started) / 1000);
    return result;
  } catch (err) {
    recorder.request(verb, 'error', (performance.now() - started) / 1000);
    throw err;
  }
}

/** The outcome label of a failed write, from the HTTP status of the problem it became. */
export function writeOutcomeOf(status: number): WriteOutcome {
  switch (status) {
    case 403: return 'refused';
    case 404: return 'not_found';
    case 409: return 'conflict';
    case 408: return 'aborted';
    case 422: return 'invalid';
    case 504: return 'timeout';
    case 502:
    case 503: return 'upstream_error';
    default: return 'error';
  }
}
