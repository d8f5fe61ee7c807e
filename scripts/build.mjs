// Bundles src/cli.ts into one ESM file, bin/api, runnable with `node` (>= 20.19).
// Dependencies are bundled so the container image needs no node_modules.
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';

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
  banner: { js: "#!/usr/bin/env node\nimport { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  logLevel: 'warning',
});
chmodSync('bin/api', 0o755);
console.log('built bin/api');
