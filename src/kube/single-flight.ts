/**
 * Coalesces concurrent calls with the same key into one, without ever answering a caller
 * with a call that started before it arrived. A caller that finds no call running starts
 * one; a caller that finds one running waits for the next one, which starts once the
 * running one has settled and is shared by every caller that queued meanwhile. So at most
 * one call per key runs at a time (and at most one more waits), and every answer comes
 * from a call that started after its caller arrived: what a consistent (quorum) read-
 * through promises, however many clients ask at once.
 *
 * A caller may say when it arrived (`since`, `performance.now()` milliseconds): a call that
 * started after that is as good as a new one for it, so it joins the running call, or
 * takes the answer of one that finished less than {@link LINGER_MS} ago, when that call
 * started after it arrived. Without `since`, only calls starting from now count.
 *
 * Calls given for one key must be interchangeable (the queued call is the first queuer's).
 * A caller's `signal` only stops that caller waiting (rejecting with the signal's reason);
 * the shared call runs on, bounded by its own timeouts, for the others.
 */
/** How long a finished call's answer stays on hand for callers that arrived before it started, milliseconds. */
export const LINGER_MS = 1_000;

export class SingleFlight<T> {
  private readonly keys = new Map<string, KeyState<T>>();
  /** Calls started since construction; for tests and logs. */
  started = 0;

  /**
   * The answer of a call for `key` that starts no earlier than `since` (default: now).
   * @param since when the caller arrived, `performance.now()` milliseconds
   */
  run(key: string, call: () => Promise<T>, signal?: AbortSignal, since = Number.POSITIVE_INFINITY): Promise<T> {
    let state = this.keys.get(key);
    let answer: Promise<T>;
    if (!state) {
      state = {};
      this.keys.set(key, state);
      answer = this.launch(key, state, call);
    } else if (state.current && state.currentStartedAt! >= since) {
      answer = state.current;
    } else if (!state.current && state.last && state.last.startedAt >= since) {
      answer = Promise.resolve(state.last.value);
    } else if (!state.current) {
      answer = this.launch(key, state, call);
    } else {
      if (!state.queued) {
        let start!: () => void;
        const promise = new Promise<T>((resolve, reject) => {
          start = () => { this.launch(key, state!, call).then(resolve, reject); };
        });
        // Every queuer may have gone (aborted) by the time it settles.
        promise.catch(() => undefined);
        state.queued = { promise, start };
      }
      answer = state.queued.promise;
    }
    return signal ? untilAborted(answer, signal) : answer;
  }

  /** Keys with a call running; for tests. */
  get running(): number {
    let n = 0;
    for (const s of this.keys.values()) if (s.current) n++;
    return n;
  }

  /** Keys held (a call running, or an answer lingering); for tests. */
  get held(): number {
    return this.keys.size;
  }

  private launch(key: string, state: KeyState<T>, call: () => Promise<T>): Promise<T> {
    this.started++;
    const startedAt = performance.now();
    const p = Promise.resolve().then(call);
    state.current = p;
    state.currentStartedAt = startedAt;
    clearTimeout(state.linger);
    const settled = (ok: boolean, value?: T): void => {
      if (state.current !== p) return;
      state.current = undefined;
      state.last = ok ? { startedAt, value: value as T } : undefined;
      const next = state.queued;
      state.queued = undefined;
      if (next) next.start();
      else if (!state.last) this.keys.delete(key);
      else {
        state.linger = setTimeout(() => { if (!state.current && this.keys.get(key) === state) this.keys.delete(key); }, LINGER_MS);
        state.linger.unref();
      }
    };
    p.then((v) => settled(true, v), () => settled(false));
    return p;
  }
}

interface KeyState<T> {
  current?: Promise<T>;
  currentStartedAt?: number;
  last?: { startedAt: number; value: T };
  linger?: NodeJS.Timeout;
  queued?: { promise: Promise<T>; start: () => void };
}

function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e) => { signal.removeEventListener('abort', onAbort); reject(e); },
    );
  });
}
