#!/usr/bin/env node
// The `backtrack` command. A committed file (not one in dist/) so that npm links it when the
// package is installed, also in a fresh clone before `npm run build` has made dist/.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/bin.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write(
    'backtrack: the CLI is not built (no dist/bin.js): run `npm run build` in the repository\n',
  );
  process.exitCode = 1;
} else {
  await import(entry.href);
}
