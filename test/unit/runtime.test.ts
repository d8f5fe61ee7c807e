/**
 * What we test is what we ship: one Node.js LTS line, pinned in .node-version, for the
 * tests (hack/node.sh puts it first on PATH for every make target and script), the
 * Dockerfile's build and runtime bases, package.json engines and @types/node.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '../..');
const pinned = readFileSync(join(ROOT, '.node-version'), 'utf8').trim();
const major = pinned.split('.')[0]!;
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  engines: { node: string }; devDependencies: Record<string, string>;
};

describe('the Node.js line', () => {
  it('.node-version pins an exact even (LTS) release', () => {
    assert.match(pinned, /^\d+\.\d+\.\d+$/);
    assert.equal(Number(major) % 2, 0, 'odd majors never become LTS');
  });

  it('is the one these tests run on', () => {
    assert.equal(process.versions.node.split('.')[0], major, `running ${process.version}; make and scripts/ run hack/node.sh first`);
  });

  it('is every Dockerfile stage base', () => {
    const bases = [...readFileSync(join(ROOT, 'Dockerfile'), 'utf8').matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
    assert.ok(bases.length >= 2);
    for (const b of bases) assert.match(b!, new RegExp(`^node:${major}-`), b);
  });

  it('is what package.json engines accept, and nothing older or newer', () => {
    assert.match(pkg.engines.node, new RegExp(`^>=${major}\\.\\d+ <${Number(major) + 1}$`));
  });

  it('matches @types/node', () => {
    assert.match(pkg.devDependencies['@types/node']!, new RegExp(`^\\^${major}\\.`));
  });
});
