// Prints one closing line over every vitest run of the suite: "tests: N passed, N failed, N skipped",
// preceded by each failed test (run, file, name, first lines of its message), so the last lines a CI
// log keeps say what failed, not only how many.
import { existsSync, readFileSync } from 'node:fs';
import { basename, relative } from 'node:path';

let passed = 0;
let failed = 0;
let skipped = 0;
const failures = [];
for (const file of process.argv.slice(2)) {
  const run = basename(file, '.json');
  if (!existsSync(file)) {
    failed += 1;
    failures.push(`[${run}] no results: ${file} was not written (the run did not finish)`);
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
  for (const suite of r.testResults ?? []) {
    const where = relative(process.cwd(), suite.name ?? '?');
    const failedHere = (suite.assertionResults ?? []).filter((t) => t.status === 'failed');
    for (const t of failedHere) {
      failures.push(
        `[${run}] ${where} > ${t.fullName ?? t.title}\n${firstLines(t.failureMessages)}`,
      );
    }
    if (failedHere.length === 0 && suite.status === 'failed') {
      failures.push(`[${run}] ${where} (the file failed)\n${firstLines([suite.message ?? ''])}`);
    }
  }
}

function firstLines(messages) {
  return (messages ?? [])
    .join('\n')
    .split('\n')
    .slice(0, 8)
    .map((l) => `    ${l}`)
    .join('\n');
}

if (failures.length > 0) {
  console.log(`\nfailed:`);
  for (const f of failures) console.log(`  ${f}`);
}
console.log(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 ? 1 : 0);
