/**
 * The load driver with all four services in this process, on any transport:
 *   tsx order-saga/src/bin/load.ts [--transport memory|kafka|rabbitmq] [--orders 1000] [--concurrency 64]
 *     [--partitions 8] [--consumers 1] [--prefetch 64] [--linger-ms 0] [--json]
 * Places the orders, then runs the checker until consistent; exits 1 if it never is.
 */
import cliProgress from 'cli-progress';
import { checkUntilConsistent, formatReport } from '../checker.js';
import { readConfig, topologyOf } from '../config.js';
import { createRuntime } from '../infra/runtime.js';
import { placeOrders } from '../load.js';
import { startShop } from '../system.js';

let config;
try {
  config = readConfig(process.argv.slice(2), { orders: 1_000, concurrency: 64 });
} catch (error) {
  console.error(`load: ${(error as Error).message}`);
  process.exit(2);
}
const runtime = await createRuntime({
  transport: config.transport,
  store: config.store,
  prefix: `${config.prefix}-load-${Date.now().toString(36)}`,
  ...topologyOf(config),
});
const shop = await startShop(runtime, {
  stockFor: config.orders,
  replyTimeoutMs: config.transport === 'memory' ? 5_000 : 30_000,
});
const bar = new cliProgress.SingleBar(
  { format: '  orders {bar} {value}/{total} {duration_formatted}', stream: process.stderr },
  cliProgress.Presets.shades_classic,
);
try {
  if (process.stderr.isTTY) bar.start(config.orders, 0);
  const result = await placeOrders(shop.orders, {
    count: config.orders,
    concurrency: config.concurrency,
    onOrder: (n) => bar.update(n),
  });
  bar.stop();
  const rate = (result.placed / (result.durationMs / 1000)).toFixed(0);
  console.log(
    `placed ${result.placed} orders on ${config.transport} in ${(result.durationMs / 1000).toFixed(1)} s (${rate}/s): ` +
      Object.entries(result.byStatus)
        .map(([s, n]) => `${n} ${s}`)
        .join(', '),
  );
  const report = await checkUntilConsistent(runtime.states, { timeoutMs: 60_000 });
  console.log(formatReport(report));
  process.exitCode = report.ok ? 0 : 1;
} finally {
  bar.stop();
  await shop.stop();
  await runtime.destroy();
  await runtime.close();
}
