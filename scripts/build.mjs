// Bundles src/cli.ts into one ESM file, bin/api, runnable with `node` (>= 20.19).
// Dependencies are bundled so the container image needs no node_modules.
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';

// How bin/api starts Node.js, in its first line, so `./bin/api` and the container image
// (which runs the file itself) start alike. V8 lets its young generation grow to
// 2 × 64 MiB on a machine of this size; the proxy's requests make little short-lived
// garbage and are served as fast with 2 × 8 MiB, which keeps a 50,000-Deployment proxy
// under 200 MiB RSS (README, Performance: 298 → 159–164 MiB once synced, with the list
// pages decoded without a copy, src/kube/kube-client.ts).
const NODE_FLAGS = ['--max-semi-space-size=8'];
// The bundle's dependencies (undici among them) fail on older Node.js lines with a
// TypeError at load; say what is wrong instead, before any of them is evaluated.
// package.json "engines" gives the same bound.
const NODE_CHECK = "((v) => { const [a, b] = v.split('.').map(Number); if (a < 24 || (a === 24 && b < 11)) { process.stderr.write(`k8s-api-proxy: needs Node.js 24.11 or later (package.json engines); this is ${v}\\n`); process.exit(1); } })(process.versions.node);";

await build({
  entryPoints: ['src/cli.ts'],
  outfile: 'bin/api',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: 'linked',
  legalComments: 'linked',
  // Some CommonJS dependencies call require(); give the ESM bundle one.
  banner: { js: `#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}\n${NODE_CHECK}\nimport { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);` },
  logLevel: 'warning',
});
chmodSync('bin/api', 0o755);
console.log('built bin/api');
