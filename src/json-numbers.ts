/**
 * Number tokens as written: `JSON.parse` turns `2.9999999999999999` into 3 and `1e2`
 * into 100, so a field that must be an integer literal is checked against its source.
 * A leaf: the HTTP layer records, routes read.
 */

/** The source text of each number token in a parsed body, per holder object and key. */
const NUMBER_SOURCES = new WeakMap<object, Map<string, string>>();

/**
 * A `JSON.parse` reviver that keeps the source text of every number token
 * (ECMAScript's JSON.parse source text access, in V8 since 11.4), so a route can decide
 * from `2.9999999999999999` what `JSON.parse` turned into `3`.
 */
export function recordNumberSource(this: unknown, key: string, value: unknown, context?: { source?: string }): unknown {
  if (typeof value === 'number' && context?.source !== undefined && typeof this === 'object' && this !== null) {
    let m = NUMBER_SOURCES.get(this);
    if (!m) NUMBER_SOURCES.set(this, (m = new Map()));
    m.set(key, context.source);
  }
  return value;
}

/**
 * The JSON token text of the number at `holder[key]` in a body parsed by this server,
 * e.g. `"1e2"` for `{"replicas": 1e2}`; undefined when it was not a number token.
 */
export function numberSource(holder: unknown, key: string): string | undefined {
  return typeof holder === 'object' && holder !== null ? NUMBER_SOURCES.get(holder)?.get(key) : undefined;
}
