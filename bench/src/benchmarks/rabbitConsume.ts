/**
 * 3. RabbitMQ consume: raw amqplib (manual ack, trivial handler) versus the Backtrack RabbitMQ
 * subscription running core's consumer pipeline with RedisDedupeStore, both with the same
 * prefetch, each on its own quorum queue holding the same messages (one publish to a topic
 * exchange fans out to both queues).
 *
 * Throughput is counted from the first delivery to the acknowledgement of the last message.
 */
import { createConsumerPipeline, handle, type MessageProcessor } from '@backtrack/core';
import {
  consumerTopology,
  createRabbitTransport,
  DEFAULT_RABBIT_CONSUMER_OPTIONS,
  type RabbitSubscription,
  type RabbitTransport,
} from '@backtrack/rabbitmq';
import { createRedisClient, RedisDedupeStore } from '@backtrack/redis';
import type { ChannelModel } from 'amqplib';
import {
  BenchOrderPlaced,
  cpuSecondsSince,
  encodedOrders,
  SERVICES,
  silentLogger,
  uniqueName,
  waitFor,
} from '../common.js';
import { amqpOf, confirmPublish, rawConnect } from '../rabbitSupport.js';
import { deleteByPrefix } from '../redisKeys.js';
import type { Benchmark } from '../runner.js';

const TIMEOUT_MS = 600_000;

export const rabbitConsumeBenchmark: Benchmark = {
  id: 'rabbitmq-consume',
  title: 'RabbitMQ consume: raw amqplib manual ack vs Backtrack consumer (Redis dedupe)',
  async run(o, rec) {
    const n = o.messages;
    const exchange = uniqueName('bench-rc');
    Object.assign(rec.params, { messages: n, prefetch: o.prefetch, queueType: 'quorum', exchange });
    rec
      .metric('raw', {
        label: 'amqplib consume + ack, trivial handler',
        role: 'baseline',
        unit: 'msg/s',
      })
      .metric('bt', { label: 'Backtrack consumer, Redis dedupe', role: 'backtrack', unit: 'msg/s' })
      .metric('cpu-raw', {
        label: 'raw: CPU of this process per message',
        role: 'info',
        unit: 'µs',
      })
      .metric('cpu-bt', { label: 'Backtrack+Redis: CPU per message', role: 'info', unit: 'µs' })
      .ratio('redis', {
        label: 'Backtrack+Redis / raw',
        numerator: 'bt',
        denominator: 'raw',
        target: 0.85,
      });

    const model = await rawConnect();
    const channel = await model.createConfirmChannel();
    channel.on('error', () => undefined); // a failed call rejects; see rawConnect
    const redis = createRedisClient(SERVICES.redis);
    const prefix = `${uniqueName('bench-rc')}:`;
    const transport = await createRabbitTransport(
      { url: SERVICES.amqp, connectionName: 'bench-backtrack' },
      { logger: silentLogger },
    );
    const queues: string[] = [];
    const topologies: ReturnType<typeof consumerTopology>[] = [];
    try {
      await channel.assertExchange(exchange, 'topic', { durable: true });
      const messages = encodedOrders(n).map(amqpOf);
      for (let run = 0; run < o.runs; run++) {
        rec.log(` run ${run + 1}/${o.runs}`);
        const rawQueue = `${exchange}.raw.${run}`;
        const btQueue = `${exchange}.bt.${run}`;
        await channel.assertQueue(rawQueue, {
          durable: true,
          arguments: {
            'x-queue-type': 'quorum',
            'x-delivery-limit': DEFAULT_RABBIT_CONSUMER_OPTIONS.deliveryLimit,
          },
        });
        await channel.bindQueue(rawQueue, exchange, '#');
        queues.push(rawQueue);
        const topology = consumerTopology({
          queue: btQueue,
          exchanges: [exchange],
          deliveryLimit: DEFAULT_RABBIT_CONSUMER_OPTIONS.deliveryLimit,
          retryDelaysMs: DEFAULT_RABBIT_CONSUMER_OPTIONS.retryDelaysMs,
        });
        topologies.push(topology);
        await transport.declare(topology.topology);
        rec.log(`  loading ${n} messages into ${rawQueue} and ${btQueue}`);
        await confirmPublish(channel, exchange, n, 500, (i) => messages[i]!);
        const order = run % 2 === 0 ? ['raw', 'bt'] : ['bt', 'raw'];
        for (const side of order) {
          const r =
            side === 'raw'
              ? await rawConsume(model, rawQueue, n, o.prefetch)
              : await backtrackConsume(
                  transport,
                  exchange,
                  btQueue,
                  n,
                  o.prefetch,
                  new RedisDedupeStore({ keyPrefix: prefix }, { redis, logger: silentLogger }),
                );
          rec.record(side, r.rate);
          rec.record(`cpu-${side}`, r.cpuUs);
        }
      }
      rec.note(
        `Default ${n.toLocaleString('en-US')} messages per run; prefetch ${o.prefetch} on both sides (--prefetch). Quorum queues with the same delivery limit on both sides.`,
      );
    } finally {
      for (const q of queues) await channel.deleteQueue(q).catch(() => undefined);
      for (const t of topologies)
        await transport
          .deleteTopology({
            queues: t.topology.queues ?? [],
            exchanges: (t.topology.exchanges ?? []).filter((e) => e.name !== exchange),
          })
          .catch(() => undefined);
      await channel.deleteExchange(exchange).catch(() => undefined);
      await transport.close().catch(() => undefined);
      await model.close().catch(() => undefined);
      await deleteByPrefix(redis, prefix).catch(() => undefined);
      await redis.quit().catch(() => undefined);
    }
  },
};

/** Messages per second, and CPU microseconds of this process per message, over the same span. */
interface Measured {
  rate: number;
  cpuUs: number;
}

async function rawConsume(
  model: ChannelModel,
  queue: string,
  n: number,
  prefetch: number,
): Promise<Measured> {
  const channel = await model.createChannel();
  channel.on('error', () => undefined);
  let count = 0;
  let bytes = 0;
  let first = 0;
  let last = 0;
  let cpu0: NodeJS.CpuUsage | undefined;
  let cpu = 0;
  try {
    await channel.prefetch(prefetch);
    await channel.consume(
      queue,
      (message) => {
        if (message === null) return;
        if (first === 0) {
          first = performance.now();
          cpu0 = process.cpuUsage();
        }
        bytes += message.content.length; // the trivial handler
        channel.ack(message);
        if (++count >= n && last === 0) {
          last = performance.now();
          cpu = cpuSecondsSince(cpu0!);
        }
      },
      { noAck: false },
    );
    await waitFor(() => last !== 0, TIMEOUT_MS, `raw consumer of ${queue}`, 20);
  } finally {
    await channel.close().catch(() => undefined);
  }
  if (bytes === 0) throw new Error('raw consumer read nothing');
  return { rate: n / ((last - first) / 1000), cpuUs: (cpu * 1e6) / n };
}

async function backtrackConsume(
  transport: RabbitTransport,
  exchange: string,
  queue: string,
  n: number,
  prefetch: number,
  store: RedisDedupeStore,
): Promise<Measured> {
  let sum = 0;
  const pipeline = createConsumerPipeline(
    {
      name: queue,
      handlers: [
        handle(
          BenchOrderPlaced,
          ({ data }) => {
            sum += data.amountCents;
          },
          { version: 2 },
        ),
      ],
      idempotency: { ttlMs: 600_000 },
    },
    { dedupeStore: store, logger: silentLogger },
  );
  let first = 0;
  let last = 0;
  let cpu0: NodeJS.CpuUsage | undefined;
  let cpu = 0;
  let handled = 0;
  const processor: MessageProcessor = {
    // The subscription acknowledges an `ack` disposition synchronously once this resolves.
    process: async (m) => {
      if (first === 0) {
        first = performance.now();
        cpu0 = process.cpuUsage();
      }
      const disposition = await pipeline.process(m);
      if (disposition.kind === 'ack' && ++handled >= n && last === 0) {
        last = performance.now();
        cpu = cpuSecondsSince(cpu0!);
      }
      return disposition;
    },
  };
  let subscription: RabbitSubscription | undefined;
  try {
    subscription = await transport.subscribe({
      topics: [exchange],
      group: queue,
      processor,
      prefetch,
    });
    const sub = subscription;
    await waitFor(
      () => {
        const s = sub.stats;
        if (s.retried + s.deadLettered > 0)
          throw new Error(`messages were not acknowledged in ${queue}`);
        return last !== 0;
      },
      TIMEOUT_MS,
      `Backtrack consumer of ${queue}`,
      20,
    );
  } finally {
    await subscription?.close().catch(() => undefined);
  }
  if (sum === 0) throw new Error('handler saw no data');
  return { rate: n / ((last - first) / 1000), cpuUs: (cpu * 1e6) / n };
}
