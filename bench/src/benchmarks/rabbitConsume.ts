/**
 * 3. RabbitMQ consume, three sides with the same prefetch, each on its own quorum queue holding
 * the same messages (one publish to a topic exchange fans out to all queues):
 * - raw: amqplib consume, trivial handler, manual ack;
 * - hand-written: what a competent engineer writes for the same guarantees: amqplib consume, the
 *   deliveries that arrived together as one window, `JSON.parse`, the `cloudEvents_` headers, one
 *   zod parse, the v1 -> v2 upcast, every id of the window claimed in ONE pipelined Redis round
 *   trip (`SET key token NX PX`), the handler for the claimed ones, the done marks in ONE
 *   pipelined round trip, then one multiple-ack;
 * - Backtrack: the RabbitMQ subscription running core's consumer pipeline (`processBatch` per
 *   window) with RedisDedupeStore.
 *
 * Throughput is counted from the first delivery to the acknowledgement of the last message.
 */
import { randomUUID } from 'node:crypto';
import {
  createConsumerPipeline,
  handle,
  type Disposition,
  type MessageProcessor,
} from '@backtrack/core';
import {
  consumerTopology,
  createRabbitTransport,
  DEFAULT_RABBIT_CONSUMER_OPTIONS,
  type RabbitSubscription,
  type RabbitTransport,
} from '@backtrack/rabbitmq';
import { createRedisClient, RedisDedupeStore } from '@backtrack/redis';
import type { ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import type { Redis } from 'ioredis';
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
  title:
    'RabbitMQ consume: raw amqplib manual ack, hand-written idempotent consumer (Redis) and Backtrack consumer (Redis dedupe)',
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
      .metric('hand', {
        label: 'hand-written: window, JSON.parse, zod, upcast, 1 claim + 1 done-mark round trip',
        role: 'baseline',
        unit: 'msg/s',
      })
      .metric('bt', { label: 'Backtrack consumer, Redis dedupe', role: 'backtrack', unit: 'msg/s' })
      .metric('cpu-raw', {
        label: 'raw: CPU of this process per message',
        role: 'info',
        unit: 'µs',
      })
      .metric('cpu-hand', { label: 'hand-written: CPU per message', role: 'info', unit: 'µs' })
      .metric('cpu-bt', { label: 'Backtrack+Redis: CPU per message', role: 'info', unit: 'µs' })
      .ratio('redis-hand', {
        label: 'Backtrack+Redis / hand-written+Redis',
        numerator: 'bt',
        denominator: 'hand',
        target: 0.9,
      })
      .ratio('redis', {
        label: 'Backtrack+Redis / raw',
        numerator: 'bt',
        denominator: 'raw',
        target: 0.6,
      })
      .ratio('cpu-hand', {
        label: 'CPU per message: Backtrack / hand-written',
        numerator: 'cpu-bt',
        denominator: 'cpu-hand',
      });

    const prefix = `${uniqueName('bench-rc')}:`;
    const world = await openConsumeWorld('bench-backtrack', exchange, prefix);
    const { model, channel, redis, transport, queues, topologies } = world;
    try {
      await channel.assertExchange(exchange, 'topic', { durable: true });
      const messages = encodedOrders(n).map(amqpOf);
      for (let run = 0; run < o.runs; run++) {
        rec.log(` run ${run + 1}/${o.runs}`);
        const rawQueue = `${exchange}.raw.${run}`;
        const handQueue = `${exchange}.hand.${run}`;
        const btQueue = `${exchange}.bt.${run}`;
        for (const q of [rawQueue, handQueue]) {
          await channel.assertQueue(q, {
            durable: true,
            arguments: {
              'x-queue-type': 'quorum',
              'x-delivery-limit': DEFAULT_RABBIT_CONSUMER_OPTIONS.deliveryLimit,
            },
          });
          await channel.bindQueue(q, exchange, '#');
          queues.push(q);
        }
        const topology = consumerTopology({
          queue: btQueue,
          exchanges: [exchange],
          deliveryLimit: DEFAULT_RABBIT_CONSUMER_OPTIONS.deliveryLimit,
          retryDelaysMs: DEFAULT_RABBIT_CONSUMER_OPTIONS.retryDelaysMs,
        });
        topologies.push(topology);
        await transport.declare(topology.topology);
        rec.log(`  loading ${n} messages into ${rawQueue}, ${handQueue} and ${btQueue}`);
        await confirmPublish(channel, exchange, n, 500, (i) => messages[i]!);
        const orders = [
          ['raw', 'hand', 'bt'],
          ['bt', 'raw', 'hand'],
          ['hand', 'bt', 'raw'],
        ];
        for (const side of orders[run % orders.length]!) {
          const r =
            side === 'raw'
              ? await rawConsume(model, rawQueue, n, o.prefetch)
              : side === 'hand'
                ? await handWrittenConsume(
                    model,
                    redis,
                    `${prefix}${handQueue}:`,
                    handQueue,
                    n,
                    o.prefetch,
                  )
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
        `Default ${n.toLocaleString('en-US')} messages per run; prefetch ${o.prefetch} on every side (--prefetch). Quorum queues with the same delivery limit on every side; messages written at v1, read at v2 (upcast) by the hand-written and Backtrack sides.`,
      );
    } finally {
      await world.close();
    }
  },
};

/** What a RabbitMQ consume run sets up: a raw confirm channel, Redis and a Backtrack transport. */
export interface ConsumeWorld {
  model: ChannelModel;
  channel: ConfirmChannel;
  redis: Redis;
  transport: RabbitTransport;
  /** Queues the run declared itself, deleted by `close`. */
  queues: string[];
  /** Backtrack consumer topologies the run declared, deleted by `close`. */
  topologies: ReturnType<typeof consumerTopology>[];
  /** Deletes the queues, topologies, exchange and Redis keys under `prefix`, and disconnects. */
  close(): Promise<void>;
}

/** Opens the connections of a consume run (shared by this benchmark and src/rabbitCpu.ts). */
export async function openConsumeWorld(
  connectionName: string,
  exchange: string,
  prefix: string,
): Promise<ConsumeWorld> {
  const model = await rawConnect();
  const channel = await model.createConfirmChannel();
  channel.on('error', () => undefined); // a failed call rejects; see rawConnect
  const redis = createRedisClient(SERVICES.redis);
  const transport = await createRabbitTransport(
    { url: SERVICES.amqp, connectionName },
    { logger: silentLogger },
  );
  const queues: string[] = [];
  const topologies: ReturnType<typeof consumerTopology>[] = [];
  return {
    model,
    channel,
    redis,
    transport,
    queues,
    topologies,
    async close() {
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
    },
  };
}

/** Messages per second, and CPU microseconds of this process per message, over the same span. */
export interface Measured {
  rate: number;
  cpuUs: number;
  /** Windows (batches) the consumer handled, when it has them. */
  windows?: number;
}

export async function rawConsume(
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

export async function backtrackConsume(
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
  const start = () => {
    if (first === 0) {
      first = performance.now();
      cpu0 = process.cpuUsage();
    }
  };
  const done = (dispositions: Disposition[]) => {
    for (const d of dispositions) if (d.kind === 'ack') handled += 1;
    if (handled >= n && last === 0) {
      last = performance.now();
      cpu = cpuSecondsSince(cpu0!);
    }
  };
  const processor: MessageProcessor = {
    // The subscription acknowledges `ack` dispositions synchronously once these resolve.
    process: async (m) => {
      start();
      const disposition = await pipeline.process(m);
      done([disposition]);
      return disposition;
    },
    processBatch: async (messages) => {
      start();
      const dispositions = await pipeline.processBatch(messages);
      done(dispositions);
      return dispositions;
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
  return {
    rate: n / ((last - first) / 1000),
    cpuUs: (cpu * 1e6) / n,
    windows: subscription.stats.batches,
  };
}

const CE = 'cloudEvents_';
const V1 = BenchOrderPlaced.schema(1);

/**
 * The hand-written equivalent: same guarantees as the Backtrack side (a message is acknowledged
 * only after its effect and its durable done mark; a duplicate is acknowledged without effect),
 * written directly against amqplib and ioredis.
 */
export async function handWrittenConsume(
  model: ChannelModel,
  redis: Redis,
  keyPrefix: string,
  queue: string,
  n: number,
  prefetch: number,
): Promise<Measured> {
  const channel = await model.createChannel();
  channel.on('error', () => undefined);
  let sum = 0;
  let acked = 0;
  let first = 0;
  let last = 0;
  let cpu0: NodeJS.CpuUsage | undefined;
  let cpu = 0;
  let pending: ConsumeMessage[] = [];
  let running = false;
  let failure: unknown;
  const token = randomUUID();

  let windows = 0;
  const handleWindow = async (window: ConsumeMessage[]) => {
    windows += 1;
    const decoded: { key: string; amountCents: number }[] = [];
    for (const message of window) {
      const headers = message.properties.headers ?? {};
      if (headers[`${CE}specversion`] !== '1.0') throw new Error('not a CloudEvent');
      const version = Number(headers[`${CE}schemaversion`]);
      const id = message.properties.messageId as string;
      const body: unknown = JSON.parse(message.content.toString('utf8'));
      if (version !== 1) throw new Error(`unexpected version ${version}`);
      const v1 = V1.parse(body);
      decoded.push({ key: `${keyPrefix}${id}`, amountCents: Math.round(v1.amount * 100) });
    }
    const claims = redis.pipeline();
    for (const d of decoded) claims.set(d.key, token, 'PX', 30_000, 'NX');
    const claimed = (await claims.exec()) ?? [];
    const marks = redis.pipeline();
    decoded.forEach((d, i) => {
      if (claimed[i]?.[1] !== 'OK') return; // a duplicate (or held elsewhere: not in this bench)
      sum += d.amountCents; // the handler
      marks.set(d.key, 'done', 'PX', 600_000);
    });
    if (marks.length > 0) {
      for (const [error] of (await marks.exec()) ?? []) if (error) throw error;
    }
    channel.ack(window[window.length - 1]!, true);
    acked += window.length;
    if (acked >= n && last === 0) {
      last = performance.now();
      cpu = cpuSecondsSince(cpu0!);
    }
  };
  const drain = async () => {
    running = true;
    try {
      await new Promise<void>((resolve) => setImmediate(resolve));
      while (pending.length > 0) {
        const window = pending.slice(0, prefetch);
        pending = pending.slice(window.length);
        await handleWindow(window);
      }
    } catch (error) {
      failure = error;
    } finally {
      running = false;
    }
  };

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
        pending.push(message);
        if (!running) void drain();
      },
      { noAck: false },
    );
    await waitFor(
      () => {
        if (failure) throw failure instanceof Error ? failure : new Error(String(failure));
        return last !== 0;
      },
      TIMEOUT_MS,
      `hand-written consumer of ${queue}`,
      20,
    );
  } finally {
    await channel.close().catch(() => undefined);
  }
  if (sum === 0) throw new Error('hand-written handler saw no data');
  return { rate: n / ((last - first) / 1000), cpuUs: (cpu * 1e6) / n, windows };
}
