/**
 * What each service receives, counted at its consumer on the real brokers: every message
 * delivered to a service's group is of a type the service handles, and none is acknowledged
 * as ignored. On Kafka, which delivers every message of a topic to each group that reads it,
 * this holds only because each service reads its own topic (infra/topics.ts); before, the
 * participants all read `<prefix>.orders` and dropped each other's commands.
 */
import type { Disposition, IncomingMessage, MessageProcessor, Transport } from '@backtrack/core';
import { describe, expect, it } from 'vitest';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { checkUntilConsistent } from './checker.js';
import { createRuntime, type Runtime, type TransportKind } from './infra/runtime.js';
import { placeOrders } from './load.js';
import { startShop } from './system.js';

const redis = await probeService('redis');
const kafka = await probeService('kafka');
const rabbitmq = await probeService('rabbitmq');

/** The types each service has a handler for (its `consume` routes). */
const HANDLED: Record<string, readonly string[]> = {
  orders: [
    'inventory.reserved',
    'inventory.reservation-rejected',
    'inventory.released',
    'payment.charged',
    'payment.declined',
    'payment.refunded',
    'shipping.shipped',
    'shipping.refused',
  ],
  inventory: ['inventory.reserve-requested', 'inventory.release-requested', 'payment.charged'],
  payments: [
    'payment.charge-requested',
    'payment.refund-requested',
    'payment.adjustment-requested',
  ],
  shipping: ['shipping.ship-requested'],
};

interface Received {
  /** Deliveries per service, by event type. */
  types: Record<string, Record<string, number>>;
  /** Deliveries a service acknowledged without a handler, per service. */
  ignored: Record<string, number>;
  /** The distinct transports the four services were given. */
  transports: number;
}

/** Wraps every subscription's processor of the runtime's services to count what they receive. */
function recordDeliveries(runtime: Runtime): Received {
  const received: Received = { types: {}, ignored: {}, transports: 0 };
  const serviceOf = (group: string) => group.slice(runtime.prefix.length + 1);
  const note = (group: string, m: IncomingMessage, d: Disposition) => {
    const service = serviceOf(group);
    const type = m.message.headers['type'] ?? m.message.headers['ce_type'] ?? '?';
    const byType = (received.types[service] ??= {});
    byType[type] = (byType[type] ?? 0) + 1;
    if (d.kind === 'ack' && d.outcome === 'ignored') {
      received.ignored[service] = (received.ignored[service] ?? 0) + 1;
    }
  };
  const watch = (group: string, processor: MessageProcessor): MessageProcessor => {
    const batch = processor.processBatch?.bind(processor);
    return {
      async process(message) {
        const d = await processor.process(message);
        note(group, message, d);
        return d;
      },
      ...(batch
        ? {
            async processBatch(messages, options) {
              const ds = await batch(messages, options);
              messages.forEach((m, i) => note(group, m, ds[i]!));
              return ds;
            },
          }
        : {}),
    };
  };
  const watched = new WeakSet<Transport>();
  const infraFor = runtime.infraFor.bind(runtime);
  runtime.infraFor = async (service, story) => {
    const infra = await infraFor(service, story);
    const transport = infra.transport;
    if (!watched.has(transport)) {
      watched.add(transport);
      received.transports += 1;
      const subscribe = transport.subscribe.bind(transport);
      transport.subscribe = (options) =>
        subscribe({ ...options, processor: watch(options.group, options.processor) });
    }
    return infra;
  };
  return received;
}

/** `transports`: how many the four services share (one per process on Kafka and in memory). */
async function expectOnlyHandled(transport: TransportKind, orders: number, transports: number) {
  const runtime = await createRuntime({ transport, prefix: uniqueName(`topics-${transport}`) });
  const received = recordDeliveries(runtime);
  const shop = await startShop(runtime, { stockFor: orders, replyTimeoutMs: 30_000 });
  try {
    const result = await placeOrders(shop.orders, { count: orders, concurrency: 16 });
    expect(result.surprises).toEqual([]);
    const report = await checkUntilConsistent(runtime.states, { timeoutMs: 20_000 });
    expect(report.ok).toBe(true);
    // Every participant got work (the mix has declines, refusals and compensations)...
    for (const service of Object.keys(HANDLED)) {
      expect(Object.keys(received.types[service] ?? {}), service).not.toEqual([]);
    }
    // ...and nothing but what it handles.
    for (const [service, types] of Object.entries(received.types)) {
      expect(
        Object.keys(types).filter((t) => !HANDLED[service]!.includes(t)),
        `${service} received types it does not handle`,
      ).toEqual([]);
    }
    expect(received.ignored).toEqual({});
    expect(received.transports).toBe(transports);
  } finally {
    await shop.stop();
    await runtime.destroy();
    await runtime.close();
  }
}

describe('each service receives only the types it handles', () => {
  it('in memory', async () => {
    await expectOnlyHandled('memory', 40, 1);
  }, 30_000);

  it.skipIf(!redis.available || !kafka.available)(
    'on Kafka (one topic per receiving service, one transport for the four services)',
    async () => {
      await expectOnlyHandled('kafka', 40, 1);
    },
    120_000,
  );

  it.skipIf(!redis.available || !rabbitmq.available)(
    'on RabbitMQ',
    async () => {
      await expectOnlyHandled('rabbitmq', 40, 4);
    },
    90_000,
  );
});
