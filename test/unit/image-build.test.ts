import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execFile, execFileSync } from 'node:child_process';

const ROOT = resolve(import.meta.dirname, '../..');

describe('hack/image/build.sh without podman', () => {
  it('exits 3 naming what is missing when podman, runc and debootstrap cannot be installed (the container test then skips)', async () => {
    // A PATH with only what the script needs before it looks for the tools: no podman, no apt-get.
    const bin = mkdtempSync(join(tmpdir(), 'no-podman-'));
    for (const tool of ['dirname', 'id']) symlinkSync(execFileSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), join(bin, tool));
    const r = await new Promise<{ code: number; stderr: string }>((done) => {
      execFile('/bin/bash', [join(ROOT, 'hack/image/build.sh')], { env: { PATH: bin, HOME: bin } }, (err, _out, stderr) => {
        done({ code: err ? Number((err as { code?: number }).code) : 0, stderr });
      });
    });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /cannot install podman runc debootstrap/);
  });
});
