/**
 * The hand-written order saga's load driver, the baseline of the e2e benchmark: the same orders
 * (examples' `orderSpec` mix, N orders, C at once), the same checker, on raw kafkajs or amqplib
 * with ioredis, and no Backtrack on the hot path.
 *
 *   tsx bench/src/handwritten/main.ts --transport kafka|rabbitmq [--orders 2000] [--concurrency 256]
 *     [--partitions 8] [--prefetch 256] [--queue-type quorum|classic]
 *     [--cloudevents] [--warmup 0] [--json]
 *
 * Prints one JSON line starting with `{"transport"` (as the example's load driver does), or a
 * sentence; exits 1 when the checker never finds the shop consistent.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { initialStock, orderSpec } from '../../../examples/order-saga/src/catalog.js';
import { checkUntilConsistent, formatReport } from '../../../examples/order-saga/src/checker.js';
import { createRedisStates } from '../../../examples/order-saga/src/state/redis.js';
import { deleteByPrefix } from '../redisKeys.js';
import { kafkaBus, rabbitBus, type Bus } from './bus.js';
import { READS, TOPIC_OF } from './messages.js';
import { startHandShop, type HandShop } from './shop.js';

const { values } = parseArgs({
  options: {
    transport: { type: 'string', default: 'kafka' },
    orders: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '256' },
    partitions: { type: 'string', default: '8' },
    prefetch: { type: 'string', default: '256' },
    'queue-type': { type: 'string', default: 'quorum' },
    cloudevents: { type: 'boolean', default: false },
    warmup: { type: 'string', default: '0' },
    json: { type: 'boolean', default: false },
  },
});
const transport = values.transport;
if (transport !== 'kafka' && transport !== 'rabbitmq') {
  console.error(`handwritten: --transport kafka|rabbitmq, not ${transport}`);
  process.exit(2);
}
const count = Number(values.orders);
const concurrency = Number(values.concurrency);
const partitions = Number(values.partitions);
const warmup = Number(values.warmup);
const prefix = `hw-${Date.now().toString(36)}-${process.pid}`;

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const states = createRedisStates(redis, prefix);
const topics = [...new Set([...Object.values(TOPIC_OF), ...Object.values(READS).flat(), 'dlq'])];
const bus: Bus =
  transport === 'kafka'
    ? await kafkaBus(
        (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(','),
        prefix,
        topics,
        partitions,
      )
    : await rabbitBus(
        process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
        prefix,
        Number(values.prefetch),
        values['queue-type'] === 'classic' ? 'classic' : 'quorum',
      );

/** N orders from the example's mix, `concurrency` at once; counts outcomes like its driver. */
async function placeAll(shop: HandShop, start: number, n: number) {
  const byStatus: Record<string, number> = {};
  let surprises = 0;
  let next = start;
  const end = start + n;
  const worker = async () => {
    while (next < end) {
      const { order, expected } = orderSpec(next++);
      const final = await shop.place(order);
      byStatus[final.status] = (byStatus[final.status] ?? 0) + 1;
      const got =
        final.status !== 'cancelled'
          ? final.status
          : final.reason?.includes('out of stock')
            ? 'out-of-stock'
            : final.reason?.includes('declined')
              ? 'declined'
              : 'cancelled';
      if (got !== expected) surprises++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return { byStatus, surprises };
}

try {
  for (const [sku, qty] of Object.entries(initialStock(count + warmup)))
    await states.inventory.setStock(sku, qty);
  const shop = await startHandShop(
    redis,
    bus,
    states,
    prefix,
    30_000,
    values.cloudevents ? (transport === 'kafka' ? 'ce_' : 'cloudEvents_') : undefined,
  );
  if (warmup > 0) await placeAll(shop, count, warmup);
  const cpuBefore = process.cpuUsage();
  const began = performance.now();
  const { byStatus, surprises } = await placeAll(shop, 0, count);
  const durationMs = performance.now() - began;
  const cpu = process.cpuUsage(cpuBefore);
  const report = await checkUntilConsistent(states, { timeoutMs: 60_000 });
  const ordersPerS = Math.round((count / (durationMs / 1000)) * 10) / 10;
  const cpuUsPerOrder = Math.round((cpu.user + cpu.system) / count);
  if (values.json) {
    console.log(
      JSON.stringify({
        transport,
        implementation: 'hand-written',
        orders: count,
        concurrency,
        partitions,
        durationMs: Math.round(durationMs),
        ordersPerS,
        cpuUsPerOrder,
        loadAverage: Math.round(loadavg()[0]! * 100) / 100,
        byStatus,
        surprises,
        consistent: report.ok,
      }),
    );
  } else {
    console.log(
      `hand-written, ${transport}: ${count} orders in ${(durationMs / 1000).toFixed(1)} s (${ordersPerS}/s), ` +
        `process CPU ${cpuUsPerOrder} µs/order, surprises ${surprises}`,
    );
    console.log(formatReport(report));
  }
  process.exitCode = report.ok && surprises === 0 ? 0 : 1;
} finally {
  await bus.close();
  await bus.destroy();
  await deleteByPrefix(redis, `${prefix}:`);
  redis.disconnect();
}
