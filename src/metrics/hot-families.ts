/**
 * Counter and histogram families for the per-request path. prom-client validates and
 * hashes the label set on every `inc`/`observe` (about a microsecond each on a busy
 * machine, several per request); here a caller resolves a label set to a slot once and
 * then only adds numbers. prom-client's Registry renders these families through `get()`,
 * in the same shape as its own, so the exposition is unchanged.
 */
import type { Registry } from 'prom-client';

/** One label set of a {@link HotCounter}. */
export interface CounterSlot { value: number }

/** One label set of a {@link HotHistogram}: per-bucket (not cumulative) counts, sum and count. */
export interface HistogramSlot { buckets: number[]; sum: number; count: number }

interface Sample { labels: Record<string, string | number>; value: number; metricName?: string; sharedLabels?: Record<string, string> }

abstract class HotFamily<S> {
  readonly aggregator = 'sum';
  protected readonly slots = new Map<string, { labels: Record<string, string>; slot: S }>();

  constructor(readonly name: string, readonly help: string, readonly labelNames: readonly string[], registry: Registry) {
    // The registry only reads name, help, type and get(); see prom-client's Registry.getMetricsAsString.
    registry.registerMetric(this as never);
  }

  /** The slot of one label set (values in `labelNames` order), created at zero on first use. */
  slot(...values: string[]): S {
    const key = values.join('\u0000');
    let entry = this.slots.get(key);
    if (!entry) {
      entry = { labels: Object.fromEntries(this.labelNames.map((n, i) => [n, values[i]])), slot: this.empty() };
      this.slots.set(key, entry);
    }
    return entry.slot;
  }

  /** Called by `Registry.resetMetrics()`. */
  reset(): void {
    this.slots.clear();
  }

  protected abstract empty(): S;
}

/** A counter family; add with `slot(...).value += n`. */
export class HotCounter extends HotFamily<CounterSlot> {
  readonly type = 'counter';

  protected empty(): CounterSlot {
    return { value: 0 };
  }

  /** The family as prom-client's Registry renders it. */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const values = [...this.slots.values()].map(({ labels, slot }) => ({ labels, value: slot.value }));
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

/** A histogram family with fixed upper bounds; record with {@link HotHistogram.observe}. */
export class HotHistogram extends HotFamily<HistogramSlot> {
  readonly type = 'histogram';

  constructor(name: string, help: string, labelNames: readonly string[], readonly bounds: readonly number[], registry: Registry) {
    super(name, help, labelNames, registry);
  }

  /** Adds one observation to a slot of this family. */
  observe(slot: HistogramSlot, value: number): void {
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]) i++;
    slot.buckets[i]++; // index bounds.length is +Inf
    slot.sum += value;
    slot.count++;
  }

  protected empty(): HistogramSlot {
    return { buckets: new Array<number>(this.bounds.length + 1).fill(0), sum: 0, count: 0 };
  }

  /** The family as prom-client's Registry renders it: cumulative `_bucket`s, `+Inf`, `_sum`, `_count`. */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const values: Sample[] = [];
    for (const { labels, slot } of this.slots.values()) {
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += slot.buckets[i];
        // le first, then the family's labels: prom-client's own order (its sharedLabels).
        values.push({ labels: { le }, sharedLabels: labels, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf' }, sharedLabels: labels, value: slot.count, metricName: `${this.name}_bucket` });
      values.push({ labels, value: slot.sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: slot.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
