/**
 * 1. Kafka consume, over the same messages of one topic, each side with its own new consumer
 * group:
 * - raw: kafkajs `eachBatch` with a trivial handler (read the value, resolve and commit);
 * - hand-written: what a competent engineer writes for the same guarantees: `eachBatch`,
 *   `JSON.parse`, read the `ce_` headers, one zod parse, the v1 -> v2 upcast, claim every id of
 *   the batch in ONE pipelined `SET NX PX` round trip (or a Map), the handler for the claimed
 *   ones, the done marks in ONE pipelined round trip, then commit;
 * - Backtrack: the Kafka subscription running core's consumer pipeline (decode, validate, upcast,
 *   claimMany, handler, completeMany, commit), with RedisDedupeStore and InMemoryDedupeStore.
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
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
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

/** Every side, in the order of the first run (`--sides` picks some, for profiling). */
export const KAFKA_CONSUME_SIDES = ['raw', 'hand-redis', 'hand-map', 'bt-redis', 'bt-memory'];
const SIDES = KAFKA_CONSUME_SIDES;
const LEASE_MS = 30_000;
const TTL_MS = 600_000;

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
      .metric('hand-redis', {
        label: 'hand-written eachBatch + zod + upcast, Redis SET NX PX pipelines',
        role: 'baseline',
        unit: 'msg/s',
      })
      .metric('hand-map', {
        label: 'hand-written eachBatch + zod + upcast, a Map',
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
      });
    for (const [side, label] of [
      ['raw', 'raw'],
      ['hand-redis', 'hand-written+Redis'],
      ['hand-map', 'hand-written+Map'],
      ['bt-redis', 'Backtrack+Redis'],
      ['bt-memory', 'Backtrack+memory'],
    ] as const) {
      rec.metric(`cpu-${side}`, {
        label: `${label}: CPU of this process per message`,
        role: 'info',
        unit: 'µs',
      });
    }
    rec
      .ratio('redis', {
        label: 'Backtrack+Redis / hand-written+Redis',
        numerator: 'bt-redis',
        denominator: 'hand-redis',
        target: 0.9,
      })
      .ratio('memory', {
        label: 'Backtrack+memory / hand-written+Map',
        numerator: 'bt-memory',
        denominator: 'hand-map',
        target: 0.9,
      })
      .ratio('memory-raw', {
        label: 'Backtrack+memory / raw trivial',
        numerator: 'bt-memory',
        denominator: 'raw',
        target: 0.5,
      })
      .ratio('redis-raw', {
        label: 'Backtrack+Redis / raw trivial',
        numerator: 'bt-redis',
        denominator: 'raw',
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
        const sides = SIDES.filter((side) => o.sides.length === 0 || o.sides.includes(side));
        // Rotate the order so no side always runs first (cold JIT) or last (warm caches).
        const order = sides.map((_, i) => sides[(i + run) % sides.length]!);
        for (const side of order) {
          const group = `${topic}-${side}-${run}`;
          groups.push(group);
          if (side === 'raw') {
            const r = await rawConsume(kafka, topic, group, n);
            rec.record('raw', r.rate);
            rec.record('cpu-raw', r.cpuUs);
          } else if (side === 'hand-redis' || side === 'hand-map') {
            const r = await handWrittenConsume(
              kafka,
              topic,
              group,
              n,
              side === 'hand-redis' ? redisClaims(redis, prefix) : mapClaims(),
            );
            rec.record(side, r.rate);
            rec.record(`cpu-${side}`, r.cpuUs);
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

/** The hand-written dedupe: claim a batch of keys at once, then mark the handled ones done at once. */
interface HandClaims {
  /** For each key: true = claimed by this batch, false = done or leased elsewhere. */
  claim(keys: string[], token: string): Promise<boolean[]>;
  done(keys: string[]): Promise<void>;
}

/** Redis: one pipeline of `SET key token NX PX` for the claims, one of `SET key done PX` for the marks. */
function redisClaims(redis: Redis, prefix: string): HandClaims {
  return {
    async claim(keys, token) {
      const pipeline = redis.pipeline();
      for (const key of keys) pipeline.set(`${prefix}${key}`, token, 'PX', LEASE_MS, 'NX');
      const replies = (await pipeline.exec()) ?? [];
      return replies.map(([error, reply]) => {
        if (error) throw error;
        return reply === 'OK';
      });
    },
    async done(keys) {
      if (keys.length === 0) return;
      const pipeline = redis.pipeline();
      for (const key of keys) pipeline.set(`${prefix}${key}`, 'done', 'PX', TTL_MS);
      for (const [error] of (await pipeline.exec()) ?? []) if (error) throw error;
    },
  };
}

/** A Map: the in-process equivalent. */
function mapClaims(): HandClaims {
  const entries = new Map<string, string>();
  return {
    async claim(keys, token) {
      return keys.map((key) => {
        if (entries.has(key)) return false;
        entries.set(key, token);
        return true;
      });
    },
    async done(keys) {
      for (const key of keys) entries.set(key, 'done');
    },
  };
}

const HandV1 = z.object({
  orderId: z.string(),
  amount: z.number(),
  customer: z.string(),
  sku: z.string(),
});

function header(value: unknown): string | undefined {
  return value === undefined || value === null ? undefined : String(value);
}

/**
 * The hand-written consumer with the same guarantees as Backtrack's: acknowledged (committed)
 * only after the effect and its durable done mark; a duplicate is not handled twice.
 */
async function handWrittenConsume(
  kafka: ReturnType<typeof rawKafka>,
  topic: string,
  group: string,
  n: number,
  claims: HandClaims,
): Promise<Measured> {
  const consumer = kafka.consumer({
    groupId: group,
    maxWaitTimeInMs: 500,
    maxBytesPerPartition: 1_048_576,
    sessionTimeout: 30_000,
    heartbeatInterval: 3_000,
  });
  let count = 0;
  let sum = 0;
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
        const keys: string[] = [];
        const orders: { amountCents: number }[] = [];
        for (const m of batch.messages) {
          const h = m.headers ?? {};
          const type = header(h['ce_type']);
          const version = Number(header(h['ce_schemaversion']));
          const id = header(h['ce_id']);
          const source = header(h['ce_source']);
          if (type !== 'bench.order.placed' || version !== 1 || !id || !source || !m.value)
            throw new Error('unexpected record');
          const v1 = HandV1.parse(JSON.parse(m.value.toString('utf8')));
          const v2 = {
            orderId: v1.orderId,
            amountCents: Math.round(v1.amount * 100),
            currency: 'EUR',
            customer: v1.customer,
            sku: v1.sku,
          };
          keys.push(`${group}:${source}:${id}`);
          orders.push(v2);
        }
        const claimed = await claims.claim(keys, randomUUID());
        const handled: string[] = [];
        for (let i = 0; i < keys.length; i++) {
          if (!claimed[i]) continue;
          sum += orders[i]!.amountCents; // the handler
          handled.push(keys[i]!);
        }
        await claims.done(handled);
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
    await waitFor(() => last !== 0, CONSUME_TIMEOUT_MS, `hand-written consumer ${group}`);
  } finally {
    await consumer.disconnect().catch(() => undefined);
  }
  if (sum === 0) throw new Error('hand-written handler saw no data');
  return { rate: n / ((last - first) / 1000), cpuUs: (cpu * 1e6) / n };
}
