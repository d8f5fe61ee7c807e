import type { KubeClient, RequestOptions, WatchEvent, WatchOptions } from '../../src/kube/kube-client.js';
import type { ReflectorClock } from '../../src/kube/reflector.js';

/**
 * In-memory stand-ins for what a Reflector uses, so its loop runs without sockets or real
 * time: every step is a promise or a `setImmediate` turn, and a test waits in turns, not
 * milliseconds. A mutant that stalls the loop fails at the turn bound, at once.
 */

/** One watch the reflector opened: the test plays the API server's side of it. */
export interface ScriptedWatch {
  /** The collection path, without the query. */
  path: string;
  query: URLSearchParams;
  options: WatchOptions;
  /** The server accepted the watch (2xx headers): calls `onOpen`. */
  open(): void;
  /** One event line; an `onEvent` throw ends the watch with that error, as KubeClient does. */
  send(type: WatchEvent['type'] | string, object: unknown): void;
  /** The server ended the stream normally (its timeoutSeconds ran out). */
  end(): void;
  /** The stream failed (a transport error, a stall, a non-2xx answer). */
  fail(err: unknown): void;
  /** True once the watch has ended, failed or been aborted. */
  readonly closed: boolean;
}

/** What {@link scriptedKube} answers a list page with: the page, or a thrown error. */
export type ListHandler = (query: URLSearchParams, path: string, options: RequestOptions) => unknown;

/** A KubeClient stand-in: `request` answers from `list`, `watch` hands each watch to the test. */
export interface ScriptedKube {
  client: KubeClient;
  /** Every request and watch, `GET path?query` / `WATCH path?query`, in order. */
  calls: string[];
  /** Every watch opened, in order. */
  watches: ScriptedWatch[];
  /** The options of every list request, in order. */
  requestOptions: RequestOptions[];
}

function aborted(): Error {
  return Object.assign(new Error('This operation was aborted'), { name: 'AbortError' });
}

/** Builds a {@link ScriptedKube}; list pages come from `list`. */
export function scriptedKube(list: ListHandler): ScriptedKube {
  const calls: string[] = [];
  const watches: ScriptedWatch[] = [];
  const requestOptions: RequestOptions[] = [];
  const client = {
    request: async (method: string, target: string, options: RequestOptions = {}) => {
      calls.push(`${method} ${target}`);
      requestOptions.push(options);
      await Promise.resolve();
      if (options.signal?.aborted) throw aborted();
      const [path, query = ''] = target.split('?');
      return list(new URLSearchParams(query), path, options);
    },
    watch: (target: string, options: WatchOptions) => new Promise<void>((resolve, reject) => {
      calls.push(`WATCH ${target}`);
      const [path, query = ''] = target.split('?');
      let closed = false;
      const settle = (err?: unknown): void => {
        if (closed) return;
        closed = true;
        options.signal?.removeEventListener('abort', onAbort);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onAbort = (): void => settle(aborted());
      if (options.signal?.aborted) return settle(aborted());
      options.signal?.addEventListener('abort', onAbort, { once: true });
      watches.push({
        path, query: new URLSearchParams(query), options,
        open: () => options.onOpen?.(),
        send: (type, object) => {
          if (closed) return;
          try {
            options.onEvent({ type, object } as WatchEvent);
          } catch (err) {
            settle(err);
          }
        },
        end: () => settle(),
        fail: (err) => settle(err),
        get closed() { return closed; },
      });
    }),
  } as unknown as KubeClient;
  return { client, calls, watches, requestOptions };
}

/** A {@link ReflectorClock} on fake time: `sleep` records its delay, moves the time on by it and yields one turn. */
export interface ManualClock extends ReflectorClock {
  /** Every sleep asked for, ms. */
  sleeps: number[];
  /** Moves the time on by `ms`. */
  advance(ms: number): void;
}

/** A {@link ManualClock} starting at `start` ms, whose `random()` is `random`. */
export function manualClock(random = 0.5, start = 1_000_000): ManualClock {
  let t = start;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => t,
    random: () => random,
    advance: (ms) => { t += ms; },
    sleep: (ms) => { sleeps.push(ms); t += ms; return new Promise((r) => setImmediate(r)); },
  };
}

/** One event-loop turn (lets every pending promise and one `setImmediate` round run). */
export const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Waits in event-loop turns (never in wall time) until `probe` is truthy; throws after `maxTurns`. */
export async function turnsUntil<T>(what: string, probe: () => T, maxTurns = 200): Promise<T> {
  for (let i = 0; i < maxTurns; i++) {
    const v = probe();
    if (v) return v;
    await turn();
  }
  throw new Error(`not reached within ${maxTurns} turns: ${what}`);
}
