import type { CachedDeployment } from './deployments.js';
import { specReplicas } from './deployments.js';
import type { CacheReader } from './object-store.js';
import type { CacheChange } from './reflector.js';
import { rvAtLeast } from './replicas.js';

/** Changes kept for `Last-Event-ID` resumes (about 150 bytes each serialized). */
export const DEFAULT_HISTORY_EVENTS = 10_000;

/** One change, serialized once as a Server-Sent Events frame and shared by every watcher. */
export interface StreamEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  namespace: string;
  resourceVersion: string;
  /** `id: RV\nevent: TYPE\ndata: {"name":…,"namespace":…,"replicas":…}\n\n` (UTF-8). */
  frame: Buffer;
}

/** What a new watcher receives before the live events: either the missed changes, or the whole state. */
export type Catchup =
  | { kind: 'resume'; events: StreamEvent[] }
  | { kind: 'relist'; reason: string };

/** The Deployment cache as the stream needs it: reads, the current resourceVersion, and changes. */
export interface StreamSource extends CacheReader<CachedDeployment> {
  subscribe(listener: (change: CacheChange<CachedDeployment>) => void): () => void;
  /** The resourceVersion the cache reflects (every change up to it has been emitted). */
  resourceVersion(): string;
}

/** The list item shape plus replicas: what each event's `data` holds. */
export function itemOf(d: CachedDeployment): { name: string; namespace: string; replicas: number } {
  return { name: d.metadata.name, namespace: d.metadata.namespace ?? '', replicas: specReplicas(d) };
}

/** An SSE frame (https://html.spec.whatwg.org/multipage/server-sent-events.html); `id` omitted when empty. */
export function sseFrame(event: string, data: unknown, id = ''): Buffer {
  return Buffer.from(`${id ? `id: ${id}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`, 'utf8');
}

/**
 * The Deployment change stream: turns each cache change into one serialized SSE frame,
 * keeps the last `historyEvents` of them for resumes, and hands every frame to every
 * subscriber (who filter by namespace). Serializing once per change, not per watcher,
 * is what lets 1,000 watchers share one event's cost.
 */
export class ChangeStream {
  private readonly history: StreamEvent[] = [];
  private head = 0;
  /**
   * The history holds every change after this resourceVersion: at first the cache's
   * resourceVersion when the stream started (or its first list's), then the newest
   * evicted event's. '' until known.
   */
  private floor: string;
  private readonly subscribers = new Map<(ev: StreamEvent) => void, () => void>();
  private readonly unsubscribe: () => void;

  /**
   * `onFanout(watchers, ms, cpuMs)` is told, per change, how long handing its frame to
   * every watcher took (wall and this process's CPU time, milliseconds), including the
   * sockets' encryption and writes that Node runs before the next event-loop phase
   * (measured until `setImmediate` fires, so other work in that phase counts too).
   */
  constructor(
    private readonly source: StreamSource,
    private readonly historyEvents = DEFAULT_HISTORY_EVENTS,
    private readonly onFanout?: (watchers: number, ms: number, cpuMs: number) => void,
  ) {
    this.floor = source.resourceVersion();
    this.unsubscribe = source.subscribe((c) => this.publish(c));
  }

  /**
   * Calls `subscriber` with each new event, synchronously, until the returned function is
   * called; `onEnd` runs if the stream closes first (shutdown).
   */
  subscribe(subscriber: (ev: StreamEvent) => void, onEnd: () => void = () => undefined): () => void {
    this.subscribers.set(subscriber, onEnd);
    return () => { this.subscribers.delete(subscriber); };
  }

  get watchers(): number {
    return this.subscribers.size;
  }

  /** The current resourceVersion: a watcher that has seen the state at it resumes from it. */
  resourceVersion(): string {
    return this.source.resourceVersion();
  }

  /**
   * The events after `lastEventId`, when the history still holds all of them; otherwise
   * a relist (the client's state is too old, as `410 Gone` in Kubernetes). A resourceVersion
   * is compared as a number (etcd revisions); anything else cannot be resumed.
   */
  since(lastEventId: string): Catchup {
    if (!/^\d{1,20}$/.test(lastEventId)) return { kind: 'relist', reason: `Last-Event-ID "${lastEventId.slice(0, 40)}" is not a resourceVersion of this stream` };
    // Synced and nothing published yet: the history is complete from the cache's resourceVersion.
    if (this.floor === '' && this.source.hasSynced()) this.floor = this.source.resourceVersion();
    if (this.floor === '' || !rvAtLeast(lastEventId, this.floor)) {
      return { kind: 'relist', reason: `resourceVersion ${lastEventId} is older than this proxy's change history (it starts after ${this.floor || 'the first list'})` };
    }
    // An id this stream has not reached (another cluster's, or made up): resuming from it
    // would skip every change until the stream passes it, silently.
    const now = this.source.resourceVersion();
    if (lastEventId !== now && rvAtLeast(lastEventId, now)) {
      return { kind: 'relist', reason: `resourceVersion ${lastEventId} is newer than this stream's (${now})` };
    }
    const events: StreamEvent[] = [];
    for (let i = 0; i < this.history.length; i++) {
      const ev = this.history[(this.head + i) % this.history.length];
      if (!rvAtLeast(lastEventId, ev.resourceVersion)) events.push(ev);
    }
    return { kind: 'resume', events };
  }

  /** Stops following the cache and ends every subscription (their `onEnd` runs). */
  close(): void {
    this.unsubscribe();
    const ends = [...this.subscribers.values()];
    this.subscribers.clear();
    for (const end of ends) end();
  }

  private publish(c: CacheChange<CachedDeployment>): void {
    const ev: StreamEvent = {
      type: c.type, namespace: c.object.metadata.namespace ?? '', resourceVersion: c.resourceVersion,
      frame: sseFrame(c.type, itemOf(c.object), c.resourceVersion),
    };
    if (this.floor === '') this.floor = c.resourceVersion;
    if (this.history.length < this.historyEvents) {
      this.history.push(ev);
    } else {
      this.floor = this.history[this.head].resourceVersion;
      this.history[this.head] = ev;
      this.head = (this.head + 1) % this.history.length;
    }
    const t0 = performance.now();
    const cpu0 = this.onFanout ? process.cpuUsage() : undefined;
    for (const s of this.subscribers.keys()) s(ev);
    if (this.onFanout && this.subscribers.size > 0) {
      const watchers = this.subscribers.size;
      setImmediate(() => {
        const cpu = process.cpuUsage(cpu0);
        this.onFanout?.(watchers, performance.now() - t0, (cpu.user + cpu.system) / 1000);
      });
    }
  }
}
