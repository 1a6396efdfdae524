/**
 * `npm run example`: the order saga on the in-memory transport, with nothing else running.
 * `npm run -w @backtrack/examples order-saga -- --transport kafka|rabbitmq` tells the same story
 * over a real broker (with Redis); `--store postgres` keeps sagas, journal and dedupe in
 * PostgreSQL (DATABASE_URL). Exits 0 when the checker finds every order consistent, 1
 * otherwise, 2 on a bad argument.
 */
import { readConfig } from './config.js';
import { runExample } from './example.js';
import { startOtel, type Otel } from './infra/otel.js';

let config;
try {
  config = readConfig();
} catch (error) {
  console.error(`order-saga: ${(error as Error).message}`);
  process.exit(2);
}
let otel: Otel | undefined;
try {
  if (config.otel) otel = await startOtel({ metricsPort: config.metricsPort });
  const report = await runExample({ transport: config.transport, store: config.store, otel });
  process.exitCode = report.ok ? 0 : 1;
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  await otel?.shutdown();
}
