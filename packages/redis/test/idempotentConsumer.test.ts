/**
 * The idempotent consumer pipeline of @backtrack/core on a RedisDedupeStore, end to end: two
 * instances of one consumer race for the same message, batches claim in one round trip, and a
 * Redis outage pauses the consumer instead of processing without a dedupe guarantee.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  createConsumerPipeline,
  defineEvent,
  encodeEnvelope,
  handle,
  type IncomingMessage,
} from '@backtrack/core';
import { RedisDedupeStore, createRedisClient } from '@backtrack/redis';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { countCommands, deleteByPrefix } from './support.js';

const redis = await probeService('redis');

const OrderPlaced = defineEvent('order.placed').version(
  1,
  z.object({ orderId: z.string(), amountCents: z.int() }),
);

function message(id: string, orderId = id): IncomingMessage {
  return {
    message: encodeEnvelope(
      OrderPlaced.envelope({ orderId, amountCents: 500 }, { source: '//shop', id }),
    ),
    attempt: 1,
    origin: { transport: 'test', topic: 'orders', group: 'billing' },
  };
}

describe.skipIf(!redis.available)('idempotent consumer pipeline on RedisDedupeStore', () => {
  const admin = createRedisClient(redis.url);
  const prefix = `${uniqueName('bt-idem')}:`;
  afterAll(async () => {
    await deleteByPrefix(admin, prefix);
    await admin.quit();
  });

  /** One consumer instance: its own connection, the shared key prefix, effects counted in Redis. */
  function instance(name: string, handlerDelayMs = 0) {
    const redisClient = createRedisClient(redis.url);
    const store = new RedisDedupeStore({ keyPrefix: `${prefix}dedupe:` }, { redis: redisClient });
    const pipeline = createConsumerPipeline(
      {
        name: 'billing',
        handlers: [
          handle(OrderPlaced, async ({ data, idempotencyKey }) => {
            expect(idempotencyKey).toMatch(/^billing:/);
            await new Promise((r) => setTimeout(r, handlerDelayMs));
            await admin.hincrby(`${prefix}effects`, data.orderId, 1);
            await admin.rpush(`${prefix}handledBy`, name);
          }),
        ],
        idempotency: { leaseMs: 10_000, ttlMs: 60_000 },
      },
      { dedupeStore: store },
    );
    return { redisClient, pipeline };
  }

  it('two instances receiving one message concurrently: one handles it, the other redelivers, then acks a duplicate', async () => {
    const a = instance('a', 300);
    const b = instance('b', 300);
    try {
      const [da, db] = await Promise.all([
        a.pipeline.process(message('evt-1')),
        b.pipeline.process(message('evt-1')),
      ]);
      const dispositions = [da, db];
      expect(dispositions).toContainEqual({ kind: 'ack', outcome: 'handled' });
      expect(dispositions.find((d) => d.kind !== 'ack')).toMatchObject({
        kind: 'redeliver',
        pause: false,
      });
      // The redelivery arrives after the first instance finished: a duplicate, acked unhandled.
      expect(await b.pipeline.process(message('evt-1'))).toEqual({
        kind: 'ack',
        outcome: 'duplicate',
      });
      expect(await a.pipeline.process(message('evt-1'))).toEqual({
        kind: 'ack',
        outcome: 'duplicate',
      });
      expect(await admin.hget(`${prefix}effects`, 'evt-1')).toBe('1');
      expect(await admin.llen(`${prefix}handledBy`)).toBe(1);
    } finally {
      await Promise.all([a.redisClient.quit(), b.redisClient.quit()]);
    }
  });

  it('processes a batch with duplicates inside it and across instances: each message once, claims in one round trip', async () => {
    const a = instance('a');
    const b = instance('b');
    try {
      await a.redisClient.ping();
      const ids = Array.from({ length: 40 }, (_, i) => `batch-${i}`);
      const batch = [...ids, ...ids.slice(0, 10)].map((id) => message(id));
      const counter = countCommands(a.redisClient);
      await a.pipeline.processBatch(batch.slice(0, 1)); // warm the script cache
      counter.reset();
      const first = await a.pipeline.processBatch(batch.slice(1));
      const claims = counter.names.filter((n) => n === 'evalsha' || n === 'eval');
      // One claimMany for the batch, then one completeMany for its done marks.
      expect(claims.length).toBe(2);
      expect(first.filter((d) => d.kind === 'ack' && d.outcome === 'handled')).toHaveLength(39);

      const again = await b.pipeline.processBatch(batch);
      expect(again.every((d) => d.kind === 'ack' && d.outcome === 'duplicate')).toBe(true);
      const effects = await admin.hgetall(`${prefix}effects`);
      for (const id of ids) expect(effects[id]).toBe('1');
    } finally {
      await Promise.all([a.redisClient.quit(), b.redisClient.quit()]);
    }
  });

  it('pauses and redelivers, never calls the handler, while Redis is unreachable', async () => {
    const offline = createRedisClient('redis://127.0.0.1:1');
    offline.on('error', () => undefined);
    let calls = 0;
    try {
      const pipeline = createConsumerPipeline(
        { name: 'billing', handlers: [handle(OrderPlaced, () => void calls++)] },
        { dedupeStore: new RedisDedupeStore({}, { redis: offline }) },
      );
      const started = Date.now();
      const disposition = await pipeline.process(message('evt-offline'));
      expect(disposition).toMatchObject({ kind: 'redeliver', pause: true });
      expect(Date.now() - started).toBeLessThan(2_500);
      const batch = await pipeline.processBatch([message('o1'), message('o2')]);
      expect(batch.every((d) => d.kind === 'redeliver' && d.pause)).toBe(true);
      expect(calls).toBe(0);
    } finally {
      offline.disconnect();
    }
  });
});
