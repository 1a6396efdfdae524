// Prints one closing line over every vitest run of the suite: "tests: N passed, N failed, N skipped".
import { existsSync, readFileSync } from 'node:fs';

let passed = 0;
let failed = 0;
let skipped = 0;
let missing = 0;
for (const file of process.argv.slice(2)) {
  if (!existsSync(file)) {
    missing += 1;
    continue;
  }
  const r = JSON.parse(readFileSync(file, 'utf8'));
  passed += r.numPassedTests ?? 0;
  // A file that fails to load has no failed test but fails its suite: count it once.
  const failedTests = r.numFailedTests ?? 0;
  failed +=
    failedTests > 0
      ? failedTests
      : r.success === false
        ? Math.max(1, r.numFailedTestSuites ?? 0)
        : 0;
  skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
}
if (missing > 0) failed += missing;
console.log(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 ? 1 : 0);
