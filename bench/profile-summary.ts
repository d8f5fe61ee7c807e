/**
 * Prints where a `.cpuprofile` of bin/api spent its time (see bench/profile.ts): self time
 * by function and by source file (bundle positions mapped back through bin/api.map), and
 * inclusive time by function. Usage: npx tsx bench/profile-summary.ts FILE [TOP]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number }; children?: number[] }
const prof = JSON.parse(readFileSync(process.argv[2], 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const TOP = Number(process.argv[3] ?? 40);

/** Generated line → [column, source index, source line] segments, from the bundle's source map. */
const map = JSON.parse(readFileSync(join(import.meta.dirname, '../bin/api.map'), 'utf8')) as { sources: string[]; mappings: string };
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const lines: Array<Array<[number, number, number]>> = [];
{
  let src = 0; let srcLine = 0;
  for (const line of map.mappings.split(';')) {
    const segs: Array<[number, number, number]> = [];
    let col = 0;
    for (const seg of line.split(',')) {
      if (!seg) continue;
      const v: number[] = [];
      let shift = 0; let value = 0;
      for (const ch of seg) {
        const d = B64.indexOf(ch);
        value += (d & 31) << shift;
        if (d & 32) shift += 5;
        else { v.push(value & 1 ? -(value >> 1) : value >> 1); value = 0; shift = 0; }
      }
      col += v[0];
      if (v.length >= 4) { src += v[1]; srcLine += v[2]; segs.push([col, src, srcLine]); }
    }
    lines.push(segs);
  }
}
function where(f: Node['callFrame']): string {
  if (!f.url.endsWith('/bin/api')) return f.url.replace(/^.*\/(node_modules\/)?/, '') || '(native)';
  const segs = lines[f.lineNumber] ?? [];
  let best = segs[0];
  for (const s of segs) if (s[0] <= f.columnNumber) best = s;
  if (!best) return 'api?';
  return `${map.sources[best[1]].replace(/^(\.\.\/)+/, '')}:${best[2] + 1}`;
}
const file = (w: string): string => w.replace(/:\d+$/, '');

const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const time = new Map<number, number>();
prof.samples.forEach((id, i) => time.set(id, (time.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0)));
const label = (n: Node): string => `${n.callFrame.functionName || '(anon)'} ${where(n.callFrame)}`;
const self = new Map<string, number>();
const selfFile = new Map<string, number>();
const incl = new Map<string, number>();
let total = 0;
let idle = 0;
const add = (m: Map<string, number>, k: string, us: number): void => { m.set(k, (m.get(k) ?? 0) + us); };
for (const [id, us] of time) {
  total += us;
  const n = byId.get(id)!;
  if (n.callFrame.functionName === '(idle)') { idle += us; continue; }
  add(self, label(n), us);
  add(selfFile, n.callFrame.url ? file(where(n.callFrame)) : n.callFrame.functionName, us);
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const l = label(byId.get(cur)!);
    if (seen.has(l)) continue;
    seen.add(l);
    add(incl, l, us);
  }
}
const busy = total - idle;
console.log(`total ${(total / 1000).toFixed(0)} ms, idle ${(idle / 1000).toFixed(0)} ms, busy ${(busy / 1000).toFixed(0)} ms`);
const show = (m: Map<string, number>, title: string): void => {
  console.log(`\n${title}`);
  for (const [l, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${(us / 1000).toFixed(1).padStart(9)} ms  ${((100 * us) / busy).toFixed(1).padStart(5)}%  ${l}`);
};
show(selfFile, 'self, by file');
show(self, 'self, by function');
show(incl, 'inclusive, by function');
