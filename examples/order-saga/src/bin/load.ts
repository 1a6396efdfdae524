/**
 * The load driver with all four services in this process, on any transport:
 *   tsx order-saga/src/bin/load.ts [--transport memory|kafka|rabbitmq] [--orders 1000] [--concurrency 64]
 *     [--partitions 8] [--consumers 1] [--prefetch 64] [--linger-ms 0] [--json]
 * Places the orders, then runs the checker until consistent; exits 1 if it never is.
 */
import { loadavg } from 'node:os';
import cliProgress from 'cli-progress';
import { checkUntilConsistent, formatReport } from '../checker.js';
import { readConfig, topologyOf } from '../config.js';
import { startOtel } from '../infra/otel.js';
import { createRuntime } from '../infra/runtime.js';
import { placeOrders } from '../load.js';
import { startShop } from '../system.js';
import { formatTrace, trace } from '../trace.js';

let config;
try {
  config = readConfig(
    process.argv.slice(2),
    { orders: 1_000, concurrency: 64 },
    { trace: { type: 'boolean' }, json: { type: 'boolean' } },
  );
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
// --otel: spans and metrics of the run (the endpoint lives as long as the run).
const otel = config.otel ? await startOtel({ metricsPort: config.metricsPort }) : undefined;
await otel?.monitor(runtime);
const shop = await startShop(runtime, {
  stockFor: config.orders,
  replyTimeoutMs: config.transport === 'memory' ? 5_000 : 30_000,
});
trace.enabled = config.flags.trace === true;
const json = config.flags.json === true;
const bar = new cliProgress.SingleBar(
  { format: '  orders {bar} {value}/{total} {duration_formatted}', stream: process.stderr },
  cliProgress.Presets.shades_classic,
);
try {
  if (process.stderr.isTTY) bar.start(config.orders, 0);
  // CPU of this process while placing (all four services run in it in memory): less sensitive
  // than orders/s to what else the machine runs.
  const cpuBefore = process.cpuUsage();
  const result = await placeOrders(shop.orders, {
    count: config.orders,
    concurrency: config.concurrency,
    onOrder: (n) => bar.update(n),
  });
  bar.stop();
  const cpu = process.cpuUsage(cpuBefore);
  const cpuUsPerOrder = Math.round((cpu.user + cpu.system) / Math.max(1, result.placed));
  const load1 = Math.round(loadavg()[0]! * 100) / 100;
  const ordersPerS = result.placed / (result.durationMs / 1000);
  if (!json) {
    console.log(
      `placed ${result.placed} orders on ${config.transport} in ${(result.durationMs / 1000).toFixed(1)} s (${ordersPerS.toFixed(0)}/s): ` +
        Object.entries(result.byStatus)
          .map(([s, n]) => `${n} ${s}`)
          .join(', ') +
        ` | process CPU ${cpuUsPerOrder} µs/order, load average ${load1}`,
    );
  }
  const checkStart = performance.now();
  const report = await checkUntilConsistent(runtime.states, { timeoutMs: 60_000 });
  const checkMs = performance.now() - checkStart;
  if (json) {
    // One line on stdout for the e2e benchmark (bench/src/benchmarks/e2e.ts).
    console.log(
      JSON.stringify({
        transport: config.transport,
        orders: result.placed,
        concurrency: config.concurrency,
        partitions: config.partitions,
        consumers: config.consumers,
        durationMs: result.durationMs,
        ordersPerS: Math.round(ordersPerS * 10) / 10,
        cpuUsPerOrder,
        loadAverage: load1,
        byStatus: result.byStatus,
        surprises: result.surprises.length,
        consistent: report.ok,
        checkMs: Math.round(checkMs),
        ...(trace.enabled ? { trace: trace.summary() } : {}),
      }),
    );
  } else {
    console.log(formatReport(report));
    if (trace.enabled) console.log(`where an order's time goes:\n${formatTrace(trace.summary())}`);
  }
  process.exitCode = report.ok ? 0 : 1;
} finally {
  bar.stop();
  await shop.stop();
  await runtime.destroy();
  await runtime.close();
  await otel?.shutdown();
}
