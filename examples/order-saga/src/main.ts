/**
 * `npm run example`: the order saga on the in-memory transport, with nothing else running.
 * Exits 0 when the checker finds every order consistent, 1 otherwise.
 */
import { runExample } from './example.js';

try {
  const report = await runExample();
  process.exitCode = report.ok ? 0 : 1;
} catch (error) {
  console.error(error);
  process.exitCode = 1;
}
