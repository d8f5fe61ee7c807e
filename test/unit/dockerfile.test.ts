import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { validate } from 'dockerfile-utils';

const ROOT = join(import.meta.dirname, '../..');
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const lines = dockerfile.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
const stages = dockerfile.split(/^FROM /m).slice(1);
const runtime = stages.at(-1)!;

describe('Dockerfile', () => {
  it('passes dockerfile-utils validation', () => {
    assert.deepEqual(validate(dockerfile).map((d) => `${d.range.start.line + 1}: ${d.message}`), []);
  });

  it('is multi-stage with a Node.js runtime (which line: runtime.test.ts)', () => {
    assert.ok(stages.length >= 2, 'multi-stage');
    assert.match(runtime, /^node:\d+[.\-\w]*\s+AS\s+\w+/);
  });

  it('runs as a numeric non-root user', () => {
    const user = /^USER\s+(\d+)(?::(\d+))?\s*$/m.exec(runtime);
    assert.ok(user, 'USER uid[:gid] in the runtime stage');
    assert.notEqual(user[1], '0');
  });

  it('copies nothing from certs/ or local state, and .dockerignore keeps them out of the context', () => {
    for (const l of lines.filter((x) => /^(COPY|ADD)\b/.test(x))) assert.doesNotMatch(l, /certs|\.cluster|\.key|\.crt/, l);
    assert.doesNotMatch(dockerfile, /^ADD /m);
    const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n');
    for (const p of ['certs/', '.cluster/', 'node_modules/']) assert.ok(ignore.includes(p), p);
  });

  it('runs the bundle itself, so the Node.js flags of its first line apply in the image too', () => {
    assert.match(runtime, /^ENTRYPOINT \["\/app\/api"\]$/m);
    assert.match(readFileSync(join(ROOT, 'scripts/build.mjs'), 'utf8'), /#!\/usr\/bin\/env -S node \$\{NODE_FLAGS\.join\(' '\)\}/);
  });

  it('exposes the API and probe ports', () => {
    assert.match(runtime, /^EXPOSE 8443 8081$/m);
  });
});
