/**
 * 1. Kafka consume: raw kafkajs `eachBatch` with a trivial handler (read the value, resolve and
 * commit the batch's offset) versus the Backtrack Kafka subscription running core's consumer
 * pipeline (decode, validate, upcast v1 -> v2, idempotent claim/complete, handler, commit), over
 * the same messages of one topic, each side with its own new consumer group. Backtrack runs twice:
 * with RedisDedupeStore and with InMemoryDedupeStore.
 *
 * Throughput is counted from the first batch handed to the consumer code to the commit of the
 * last message, so group joins and the first fetch are not part of it.
 */
import {
  createConsumerPipeline,
  handle,
  InMemoryDedupeStore,
  type DedupeStore,
  type MessageProcessor,
} from '@backtrack/core';
import { createKafkaTransport, type KafkaSubscription } from '@backtrack/kafka';
import { createRedisClient, RedisDedupeStore } from '@backtrack/redis';
import {
  BenchOrderPlaced,
  cpuSecondsSince,
  encodedOrders,
  SERVICES,
  silentLogger,
  uniqueName,
  waitFor,
} from '../common.js';
import { createTopic, dropKafka, loadTopic, rawKafka } from '../kafkaSupport.js';
import { deleteByPrefix } from '../redisKeys.js';
import type { Benchmark } from '../runner.js';

const CONSUME_TIMEOUT_MS = 600_000;

/** Messages per second, and CPU microseconds of this process per message, over the same span. */
interface Measured {
  rate: number;
  cpuUs: number;
}

export const kafkaConsumeBenchmark: Benchmark = {
  id: 'kafka-consume',
  title: 'Kafka consume: raw eachBatch vs Backtrack consumer (Redis and in-memory dedupe)',
  async run(o, rec) {
    const n = o.messages;
    const topic = uniqueName('bench-kc');
    Object.assign(rec.params, { messages: n, partitions: 1, topic });
    rec
      .metric('raw', {
        label: 'kafkajs eachBatch, trivial handler',
        role: 'baseline',
        unit: 'msg/s',
      })
      .metric('bt-redis', {
        label: 'Backtrack consumer, Redis dedupe',
        role: 'backtrack',
        unit: 'msg/s',
      })
      .metric('bt-memory', {
        label: 'Backtrack consumer, in-memory dedupe',
        role: 'backtrack',
        unit: 'msg/s',
      })
      .metric('cpu-raw', {
        label: 'raw: CPU of this process per message',
        role: 'info',
        unit: 'µs',
      })
      .metric('cpu-bt-redis', {
        label: 'Backtrack+Redis: CPU per message',
        role: 'info',
        unit: 'µs',
      })
      .metric('cpu-bt-memory', {
        label: 'Backtrack+memory: CPU per message',
        role: 'info',
        unit: 'µs',
      })
      .ratio('redis', {
        label: 'Backtrack+Redis / raw',
        numerator: 'bt-redis',
        denominator: 'raw',
        target: 0.9,
      })
      .ratio('memory', {
        label: 'Backtrack+memory / raw',
        numerator: 'bt-memory',
        denominator: 'raw',
        target: 0.9,
      });

    const kafka = rawKafka();
    const admin = kafka.admin();
    await admin.connect();
    const redis = createRedisClient(SERVICES.redis);
    const prefix = `${uniqueName('bench-kc')}:`;
    const transport = createKafkaTransport(
      { brokers: SERVICES.kafka, clientId: 'bench-backtrack' },
      { logger: silentLogger },
    );
    const groups: string[] = [];
    try {
      await createTopic(admin, topic);
      rec.log(` loading ${n} messages into ${topic}`);
      await loadTopic(kafka, topic, encodedOrders(n));
      for (let run = 0; run < o.runs; run++) {
        rec.log(` run ${run + 1}/${o.runs}`);
        const sides = ['raw', 'bt-redis', 'bt-memory'];
        // Rotate the order so no side always runs first (cold JIT) or last (warm caches).
        const order = sides.map((_, i) => sides[(i + run) % sides.length]!);
        for (const side of order) {
          const group = `${topic}-${side}-${run}`;
          groups.push(group);
          if (side === 'raw') {
            const r = await rawConsume(kafka, topic, group, n);
            rec.record('raw', r.rate);
            rec.record('cpu-raw', r.cpuUs);
          } else {
            const store: DedupeStore =
              side === 'bt-redis'
                ? new RedisDedupeStore({ keyPrefix: prefix }, { redis, logger: silentLogger })
                : new InMemoryDedupeStore();
            const r = await backtrackConsume(transport, topic, group, n, store);
            rec.record(side, r.rate);
            rec.record(`cpu-${side}`, r.cpuUs);
          }
        }
      }
      rec.note(
        `Default ${n.toLocaleString('en-US')} messages per run (the issue asks for 200k; pass --messages 200000). One partition, messages written at v1 and read at v2 (upcast).`,
      );
    } finally {
      await transport.close().catch(() => undefined);
      await dropKafka(admin, [topic, `${topic}.retry`, `${topic}.dlq`], groups);
      await admin.disconnect().catch(() => undefined);
      await deleteByPrefix(redis, prefix).catch(() => undefined);
      await redis.quit().catch(() => undefined);
    }
  },
};

async function rawConsume(
  kafka: ReturnType<typeof rawKafka>,
  topic: string,
  group: string,
  n: number,
): Promise<Measured> {
  const consumer = kafka.consumer({
    groupId: group,
    maxWaitTimeInMs: 500,
    maxBytesPerPartition: 1_048_576,
    sessionTimeout: 30_000,
    heartbeatInterval: 3_000,
  });
  let count = 0;
  let bytes = 0;
  let first = 0;
  let last = 0;
  let cpu0: NodeJS.CpuUsage | undefined;
  let cpu = 0;
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary }) => {
        if (first === 0) {
          first = performance.now();
          cpu0 = process.cpuUsage();
        }
        for (const m of batch.messages) bytes += m.value?.length ?? 0; // the trivial handler
        const lastOffset = batch.messages[batch.messages.length - 1]?.offset;
        if (lastOffset === undefined) return;
        resolveOffset(lastOffset);
        await commitOffsetsIfNecessary({
          topics: [
            {
              topic: batch.topic,
              partitions: [
                { partition: batch.partition, offset: (BigInt(lastOffset) + 1n).toString() },
              ],
            },
          ],
        });
        count += batch.messages.length;
        if (count >= n && last === 0) {
          last = performance.now();
          cpu = cpuSecondsSince(cpu0!);
        }
      },
    });
    await waitFor(() => last !== 0, CONSUME_TIMEOUT_MS, `raw consumer ${group}`);
  } finally {
    await consumer.disconnect().catch(() => undefined);
  }
  if (bytes === 0) throw new Error('raw consumer read nothing');
  return { rate: n / ((last - first) / 1000), cpuUs: (cpu * 1e6) / n };
}

async function backtrackConsume(
  transport: ReturnType<typeof createKafkaTransport>,
  topic: string,
  group: string,
  n: number,
  store: DedupeStore,
): Promise<Measured> {
  let sum = 0;
  const pipeline = createConsumerPipeline(
    {
      name: group,
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
  let acked = 0;
  let other = 0;
  const processor: MessageProcessor = {
    process: (m) => pipeline.process(m),
    processBatch: (messages) => {
      if (first === 0) {
        first = performance.now();
        cpu0 = process.cpuUsage();
      }
      return pipeline.processBatch(messages);
    },
  };
  let subscription: KafkaSubscription | undefined;
  try {
    subscription = await transport.subscribe({
      topics: [topic],
      group,
      processor,
      onDisposition: (event) => {
        if (event.action === 'acked') acked++;
        else other++;
        if (acked >= n && last === 0) {
          last = performance.now();
          cpu = cpuSecondsSince(cpu0!);
        }
      },
    });
    await waitFor(
      () => {
        if (other > 0) throw new Error(`${other} messages were not acknowledged in ${group}`);
        return last !== 0;
      },
      CONSUME_TIMEOUT_MS,
      `Backtrack consumer ${group}`,
    );
  } finally {
    await subscription?.close().catch(() => undefined);
  }
  if (sum === 0) throw new Error('handler saw no data');
  return { rate: n / ((last - first) / 1000), cpuUs: (cpu * 1e6) / n };
}
