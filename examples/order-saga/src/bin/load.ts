/**
 * The load driver with all four services in this process, on any transport:
 *   tsx order-saga/src/bin/load.ts [--transport memory|kafka|rabbitmq] [--orders 1000] [--concurrency 64]
 *     [--partitions 8] [--consumers 1] [--prefetch 256] [--linger-ms 0] [--processes K] [--json]
 * Places the orders, then runs the checker until consistent; exits 1 if it never is.
 *
 * `--processes K` (Kafka, RabbitMQ): inventory, payments and shipping each run as K child
 * processes (bin/worker.ts) in one consumer group per service, or with `--layout shared` all
 * three in each of K children; the orders service (the saga engine and its reply consumer)
 * stays in this process. CPU per order is then summed over this process and every child.
 * `--warmup N` places N orders first, unmeasured (the JIT of every process warms up).
 */
import { loadavg } from 'node:os';
import cliProgress from 'cli-progress';
import { checkUntilConsistent, formatReport } from '../checker.js';
import { readLoadConfig, topologyOf } from '../config.js';
import { startOtel } from '../infra/otel.js';
import { startServiceProcesses, type ServiceProcesses } from '../infra/processes.js';
import { createRuntime } from '../infra/runtime.js';
import { placeOrders } from '../load.js';
import { setStock, startShop, type ShopSystem } from '../system.js';
import { startOrders } from '../services/orders.js';
import { formatTrace, trace } from '../trace.js';

let config;
try {
  config = readLoadConfig();
} catch (error) {
  console.error(`load: ${(error as Error).message}`);
  process.exit(2);
}
/** `--processes K`: participants in K child processes; 0 = all in this one. */
const { processes, layout, warmup } = config;
const runtime = await createRuntime({
  transport: config.transport,
  store: config.store,
  prefix: `${config.prefix}-load-${Date.now().toString(36)}`,
  ...topologyOf(config),
});
// --otel: spans and metrics of the run (the endpoint lives as long as the run).
const otel = config.otel ? await startOtel({ metricsPort: config.metricsPort }) : undefined;
await otel?.monitor(runtime);
const replyTimeoutMs = config.transport === 'memory' ? 5_000 : 30_000;
let children: ServiceProcesses | undefined;
let shop: Pick<ShopSystem, 'orders' | 'stop'>;
if (processes === 0) {
  shop = await startShop(runtime, {
    stockFor: config.orders + warmup,
    replyTimeoutMs,
  });
} else {
  // Ctrl-C: the children get the terminal's SIGINT too and stop by themselves; this process
  // waits for them (SIGKILL after 10 s) before it exits.
  process.once('SIGINT', () => {
    void (children?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  });
  await setStock(runtime.states, config.orders + warmup);
  children = await startServiceProcesses({
    processes,
    layout,
    args: [
      ...['--transport', config.transport, '--store', config.store, '--prefix', runtime.prefix],
      ...['--partitions', String(config.partitions), '--consumers', String(config.consumers)],
      ...['--prefetch', String(config.prefetch), '--linger-ms', String(config.lingerMs)],
    ],
  });
  // On stderr, so --json keeps one line on stdout.
  console.error(
    `load: inventory, payments and shipping in ${processes} processes ${layout === 'shared' ? 'in all' : 'each'} (prefix ${runtime.prefix}, pids ${children.pids.join(' ')})`,
  );
  const orders = await startOrders(
    await runtime.infraFor('orders'),
    runtime.states.orders,
    runtime.sagaStore,
    { replyTimeoutMs },
  );
  shop = { orders, stop: () => orders.stop() };
}
trace.enabled = config.flags.trace === true;
const json = config.flags.json === true;
const bar = new cliProgress.SingleBar(
  {
    format: '  orders {bar} {value}/{total} {duration_formatted}',
    stream: process.stderr,
  },
  cliProgress.Presets.shades_classic,
);
try {
  if (process.stderr.isTTY) bar.start(config.orders, 0);
  // CPU of this process while placing (all four services run in it in memory), and with
  // --processes of every child: less sensitive than orders/s to what else the machine runs.
  if (warmup > 0)
    await placeOrders(shop.orders, {
      count: warmup,
      start: config.orders,
      concurrency: config.concurrency,
    });
  const childCpuBefore = await children?.cpu();
  const cpuBefore = process.cpuUsage();
  const result = await placeOrders(shop.orders, {
    count: config.orders,
    concurrency: config.concurrency,
    onOrder: (n) => bar.update(n),
  });
  bar.stop();
  const cpu = process.cpuUsage(cpuBefore);
  const childCpu = await children?.cpu();
  const perOrder = (us: number) => Math.round(us / Math.max(1, result.placed));
  const cpuByProcess: Record<string, number> = {
    orders: perOrder(cpu.user + cpu.system),
  };
  for (const [service, us] of Object.entries(childCpu ?? {}))
    cpuByProcess[service] = perOrder(us - (childCpuBefore?.[service] ?? 0));
  const cpuUsPerOrder = Object.values(cpuByProcess).reduce((a, b) => a + b, 0);
  const load1 = Math.round(loadavg()[0]! * 100) / 100;
  const ordersPerS = result.placed / (result.durationMs / 1000);
  if (!json) {
    console.log(
      `placed ${result.placed} orders on ${config.transport} in ${(result.durationMs / 1000).toFixed(1)} s (${ordersPerS.toFixed(0)}/s): ` +
        Object.entries(result.byStatus)
          .map(([s, n]) => `${n} ${s}`)
          .join(', ') +
        (children
          ? ` | CPU ${cpuUsPerOrder} µs/order over ${1 + children.pids.length} processes (` +
            Object.entries(cpuByProcess)
              .map(([p, us]) => `${p} ${us}`)
              .join(', ') +
            `), load average ${load1}`
          : ` | process CPU ${cpuUsPerOrder} µs/order, load average ${load1}`),
    );
  }
  const checkStart = performance.now();
  const report = await checkUntilConsistent(runtime.states, {
    timeoutMs: 60_000,
  });
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
        processes,
        ...(children ? { layout } : {}),
        durationMs: result.durationMs,
        ordersPerS: Math.round(ordersPerS * 10) / 10,
        cpuUsPerOrder,
        ...(children ? { cpuUsPerOrderByProcess: cpuByProcess, pids: children.pids } : {}),
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
  await children?.stop();
  await runtime.destroy();
  await runtime.close();
  await otel?.shutdown();
}
