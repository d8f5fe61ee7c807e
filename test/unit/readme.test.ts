import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FLAGS } from '../../src/config.js';

const ROOT = join(import.meta.dirname, '../..');
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const makefile = readFileSync(join(ROOT, 'Makefile'), 'utf8');

describe('README stays true to the code', () => {
  it('documents every flag with its environment variable and default', () => {
    for (const f of FLAGS) {
      const row = readme.split('\n').find((l) => l.startsWith(`| \`--${f.flag} `));
      assert.ok(row, `README flag table lacks --${f.flag}`);
      assert.ok(row.includes(f.env), `--${f.flag}: ${f.env}`);
      if (f.default !== undefined) assert.ok(row.includes(`\`${f.default}\``), `--${f.flag}: default ${f.default}`);
    }
  });

  it('documents every Makefile target', () => {
    const targets = [...makefile.matchAll(/^([a-z][a-z0-9-]*):.*##/gm)].map((m) => m[1]);
    assert.ok(targets.length > 10);
    for (const t of targets) assert.ok(readme.includes(`\`${t}\``), `README lacks make target ${t}`);
  });

  it('opens with the two commands, and CI calls the README test command', () => {
    assert.match(readme, /```sh\nmake demo[^\n]*\nmake test/);
    assert.match(readFileSync(join(ROOT, '.ci/run'), 'utf8'), /^make test$/m);
  });
});
