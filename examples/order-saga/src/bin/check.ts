/**
 * The consistency checker on its own: reads every service's state from Redis (the services'
 * stores on Kafka/RabbitMQ) and prints the verdict; exits 1 on any inconsistency.
 *   tsx order-saga/src/bin/check.ts --transport kafka [--prefix shop] [--verbose]
 */
import { checkConsistency, formatReport } from '../checker.js';
import { boot } from './common.js';

const { runtime, config } = await boot('check', { verbose: { type: 'boolean' } });
try {
  const report = await checkConsistency(runtime.states);
  console.log(formatReport(report, config.flags.verbose === true ? Number.MAX_SAFE_INTEGER : 10));
  process.exitCode = report.ok ? 0 : 1;
} finally {
  await runtime.close();
}
