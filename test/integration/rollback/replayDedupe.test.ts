/**
 * A replay reaches only the consumers that still need it, through the real brokers: the replay
 * names its original in `replayof`, and the default dedupe key takes that id. Two consumer groups
 * read one topic with a Redis dedupe store: `reader` handles the original (version 2) and
 * `old`, deployed with version 1 only, dead-letters it. After a replay downcast to version 1,
 * `old` handles the replay and `reader` acknowledges it as a duplicate without running its
 * handler again (before, the replay's new id made it handle the same effect twice).
 */
import { Redis } from 'ioredis';
import { z } from 'zod';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createConsumerPipeline,
  createPublisher,
  defineEvent,
  EventRegistry,
  handle,
  planRollback,
  runRollback,
  type Envelope,
  type Subscription,
} from '@backtrack/core';
import { ConsumerSpy } from '@backtrack/core/testing';
import type { KafkaTransport } from '@backtrack/kafka';
import { RedisDedupeStore, RedisJournal, RedisRollbackProgressStore } from '@backtrack/redis';
import { probeService, uniqueName } from '../../support/services.js';
import {
  deleteKeysContaining,
  openTransport,
  registry,
  StockReserved,
  type TransportKind,
} from './scenario.js';

const redisService = await probeService('redis');
const kafka = await probeService('kafka');
const rabbitmq = await probeService('rabbitmq');
const redis = redisService.available ? new Redis(redisService.url) : undefined;
afterAll(async () => {
  await redis?.quit();
});

/** `stock.reserved` as a consumer deployed before version 2 knows it. */
const StockReservedV1 = defineEvent('stock.reserved').version(
  1,
  z.object({ sku: z.string(), qty: z.int() }),
);

async function replayReachesOnlyWhoNeedsIt(kind: TransportKind, brokerUrl: string): Promise<void> {
  const topic = uniqueName(`bt-replay-dedupe-${kind}`);
  const prefixes = ['bt-replay-dd-journal', 'bt-replay-dd-progress', 'bt-replay-dd-dedupe'].map(
    (p) => uniqueName(p),
  );
  const [journalPrefix, progressPrefix, dedupePrefix] = prefixes as [string, string, string];
  const transport = await openTransport(kind, brokerUrl);
  const subscriptions: Subscription[] = [];
  try {
    if (kind === 'kafka') {
      await (transport as KafkaTransport).ensureTopics({ topics: [topic], partitions: 1 });
    }
    const journal = new RedisJournal({ keyPrefix: journalPrefix }, { redis: redis! });
    const progressStore = new RedisRollbackProgressStore(
      { keyPrefix: progressPrefix },
      { redis: redis! },
    );
    const dedupeStore = new RedisDedupeStore({ keyPrefix: dedupePrefix }, { redis: redis! });
    const handled = { reader: [] as string[], old: [] as string[] };
    const spies = { reader: new ConsumerSpy(), old: new ConsumerSpy() };
    const seen =
      (name: 'reader' | 'old') =>
      ({ envelope, idempotencyKey }: { envelope: Envelope<unknown>; idempotencyKey: string }) => {
        handled[name].push(`${envelope.schemaversion} ${idempotencyKey}`);
      };
    for (const name of ['reader', 'old'] as const) {
      subscriptions.push(
        await transport.subscribe({
          topics: [topic],
          group: uniqueName(`bt-replay-dd-${name}`),
          processor: createConsumerPipeline(
            {
              name,
              handlers: [
                name === 'reader'
                  ? handle(StockReserved, seen(name))
                  : handle(StockReservedV1, seen(name)),
              ],
            },
            {
              registry: name === 'reader' ? registry : new EventRegistry([StockReservedV1]),
              dedupeStore,
              spy: spies[name],
            },
          ),
        }),
      );
    }

    const bad = createPublisher(
      { service: 'inventory', version: '2.0.0', topicFor: () => topic },
      { transport, journal, registry },
    );
    const original = await bad.publish(StockReserved, { sku: 'a', quantity: 3, warehouse: 'w' });
    await spies.reader.waitFor({ messageId: original.id, kind: 'ack' }, { timeoutMs: 30_000 });
    const parked = await spies.old.waitFor(
      { messageId: original.id, kind: 'dead-letter' },
      { timeoutMs: 30_000 },
    );
    expect(parked.disposition).toMatchObject({
      error: { code: 'BT_ERR_SCHEMA_VERSION_UNKNOWN' },
    });

    const plan = await planRollback(
      {
        service: 'inventory',
        version: '2.0.0',
        strategy: 'replay',
        targetVersions: { 'stock.reserved': 1 },
      },
      { journal, registry },
    );
    const result = await runRollback(
      plan,
      { runId: uniqueName('bt-replay-dd-run'), owner: `replay-dedupe-${process.pid}` },
      { journal, transport, progressStore },
    );
    expect(result.status).toBe('completed');
    const replayId = plan.items[0]!.messages[0]!.id;

    const key = (consumer: string) =>
      `${consumer}:${encodeURIComponent(original.source)}:${original.id}`;
    const late = await spies.old.waitFor(
      { messageId: replayId, kind: 'ack' },
      { timeoutMs: 30_000 },
    );
    expect(late.disposition).toEqual({ kind: 'ack', outcome: 'handled' });
    expect(handled.old).toEqual([`1 ${key('old')}`]);
    const again = await spies.reader.waitFor(
      { messageId: replayId, kind: 'ack' },
      { timeoutMs: 30_000 },
    );
    expect(again.disposition).toEqual({ kind: 'ack', outcome: 'duplicate' });
    expect(handled.reader).toEqual([`2 ${key('reader')}`]);
  } finally {
    for (const subscription of subscriptions) await subscription.close().catch(() => undefined);
    await transport.close().catch(() => undefined);
    await deleteKeysContaining(redis!, prefixes);
  }
}

describe('a replay is handled only by the consumers that did not handle its original', () => {
  it.skipIf(!redisService.available || !kafka.available)(
    'Kafka',
    async () => {
      await replayReachesOnlyWhoNeedsIt('kafka', kafka.url);
    },
    90_000,
  );

  it.skipIf(!redisService.available || !rabbitmq.available)(
    'RabbitMQ',
    async () => {
      await replayReachesOnlyWhoNeedsIt('rabbitmq', rabbitmq.url);
    },
    90_000,
  );
});
