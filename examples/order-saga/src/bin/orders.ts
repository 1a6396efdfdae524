/**
 * The orders service as its own process:
 *   tsx order-saga/src/bin/orders.ts --transport kafka [--prefix shop] [--orders 20] [--start 0] [--exit]
 * On start it finishes the sagas a crash left in flight (recover), then places --orders orders
 * from the deterministic mix (numbered from --start) and keeps running (or exits with --exit).
 * Start inventory, payments and shipping first.
 */
import { OutboxRelay } from '@backtrack/core';
import { orderSpec } from '../catalog.js';
import { placeOrders } from '../load.js';
import { startOrders } from '../services/orders.js';
import { consoleStory } from '../story.js';
import { boot, runUntilSignal } from './common.js';

const { config, runtime } = await boot('orders', {
  start: { type: 'string' },
  exit: { type: 'boolean' },
});
const quiet = config.orders > 50;
const service = await startOrders(
  await runtime.infraFor('orders', quiet ? undefined : consoleStory()),
  runtime.states.orders,
  runtime.sagaStore,
  { replyTimeoutMs: 30_000 },
);
// The outbox relay: publishes journal records that a crash (or a broker outage) left
// unpublished. One per journal is enough; it runs with the orders process here.
const relay = new OutboxRelay(
  { olderThanMs: 30_000, intervalMs: 5_000 },
  { journal: runtime.journal, transport: await runtime.connect(), logger: runtime.logger },
);
relay.start();
console.log(`orders ${service.version} on ${config.transport} (prefix ${config.prefix})`);
const recovered = await service.recover();
if (recovered > 0) console.log(`orders: finished ${recovered} sagas left in flight`);
const start = Number(config.flags.start ?? 0);
const result = await placeOrders(service, {
  count: config.orders,
  start,
  concurrency: config.concurrency,
});
console.log(
  `orders: placed ${result.placed} (${orderSpec(start).order.orderId}…) in ${(result.durationMs / 1000).toFixed(1)} s: ` +
    Object.entries(result.byStatus)
      .map(([s, n]) => `${n} ${s}`)
      .join(', '),
);
const stop = async () => {
  await relay.stop();
  await service.stop();
};
if (config.flags.exit === true) {
  await stop();
  await runtime.close();
} else {
  runUntilSignal('orders', runtime, stop);
}
