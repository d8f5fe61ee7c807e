/**
 * Coalesces concurrent calls with the same key into one, without ever answering a caller
 * with a call that started before it arrived. A caller that finds no call running starts
 * one; a caller that finds one running waits for the next one, which starts once the
 * running one has settled and is shared by every caller that queued meanwhile. So at most
 * one call per key runs at a time (and at most one more waits), and every answer comes
 * from a call that started after its caller arrived: what a consistent (quorum) read-
 * through promises, however many clients ask at once.
 *
 * Calls given for one key must be interchangeable (the queued call is the first queuer's).
 * A caller's `signal` only stops that caller waiting (rejecting with the signal's reason);
 * the shared call runs on, bounded by its own timeouts, for the others.
 */
export class SingleFlight<T> {
  private readonly keys = new Map<string, KeyState<T>>();
  /** Calls started since construction; for tests and logs. */
  started = 0;

  /** The answer of a call for `key` that starts no earlier than now. */
  run(key: string, call: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    let state = this.keys.get(key);
    let answer: Promise<T>;
    if (!state) {
      state = {};
      this.keys.set(key, state);
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
    return this.keys.size;
  }

  private launch(key: string, state: KeyState<T>, call: () => Promise<T>): Promise<T> {
    this.started++;
    const p = Promise.resolve().then(call);
    state.current = p;
    const settled = (): void => {
      if (state.current !== p) return;
      const next = state.queued;
      state.queued = undefined;
      if (next) next.start();
      else this.keys.delete(key);
    };
    p.then(settled, settled);
    return p;
  }
}

interface KeyState<T> {
  current?: Promise<T>;
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
