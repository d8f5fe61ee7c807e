// Lints Dockerfiles with dockerfile-utils (the Dockerfile language server's validator);
// exits 1 on any error or warning. Usage: node scripts/lint-dockerfile.mjs Dockerfile...
import { readFileSync } from 'node:fs';
import { validate } from 'dockerfile-utils';

let problems = 0;
for (const file of process.argv.slice(2)) {
  const diagnostics = validate(readFileSync(file, 'utf8'), { deprecatedMaintainer: 1, emptyContinuationLine: 1, instructionCasing: 1, instructionCmdMultiple: 1, instructionEntrypointMultiple: 1, instructionHealthcheckMultiple: 1, instructionJSONInSingleQuotes: 1, instructionWorkdirRelative: 1 });
  for (const d of diagnostics) {
    problems++;
    console.error(`${file}:${d.range.start.line + 1}:${d.range.start.character + 1}: ${d.message}`);
  }
}
if (problems > 0) process.exit(1);
console.log(`dockerfile lint: ${process.argv.length - 2} file(s) clean`);
