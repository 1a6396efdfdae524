/**
 * The dedupe store goes away mid-stream (a TCP proxy in front of the real Redis is cut): the
 * Kafka consumer pauses and rewinds instead of processing without a dedupe guarantee, commits
 * nothing past the first unprocessed record, dead-letters nothing, and once Redis is back
 * processes every record exactly once. Real broker, real Redis.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createConsumerPipeline, defineEvent, encodeEnvelope, handle } from '@backtrack/core';
import { RedisDedupeStore, createRedisClient } from '@backtrack/redis';
import { probeService } from '../../../test/support/services.js';
import { startProxy } from '../../../test/support/tcpProxy.js';
import { kafkaBroker } from './broker.js';
import { committedOffsets, makeTransport, uniqueName, waitFor } from './helpers.js';

const broker = await kafkaBroker();
const redis = await probeService('redis');
afterAll(() => broker.stop());

const OrderPlaced = defineEvent('order.placed').version(1, z.object({ orderId: z.string() }));

describe.skipIf(!broker.available || !redis.available)(
  'dedupe store outage under a Kafka consumer',
  () => {
    it('pauses and rewinds while Redis is down, then processes every record exactly once', async () => {
      const brokers = broker.brokers;
      const topic = uniqueName('bt-outage');
      const group = uniqueName('g');
      let proxy = await startProxy(redis);
      const client = createRedisClient(`redis://127.0.0.1:${proxy.port}`);
      client.on('error', () => undefined);
      const effects = new Map<string, number>();
      const pipeline = createConsumerPipeline(
        {
          name: group,
          handlers: [
            handle(
              OrderPlaced,
              ({ data }) => void effects.set(data.orderId, (effects.get(data.orderId) ?? 0) + 1),
            ),
          ],
          idempotency: { leaseMs: 5_000, ttlMs: 60_000, unavailableDelayMs: 200 },
        },
        {
          dedupeStore: new RedisDedupeStore(
            { keyPrefix: `${uniqueName('bt-outage')}:` },
            { redis: client },
          ),
        },
      );
      const transport = makeTransport(brokers);
      const publish = (from: number, to: number) =>
        transport.publish(
          Array.from({ length: to - from }, (_, i) => ({
            topic,
            key: 'k',
            message: encodeEnvelope(
              OrderPlaced.envelope({ orderId: `o-${from + i}` }, { source: '//test' }),
            ),
          })),
        );
      try {
        await transport.ensureTopics({ topics: [topic], partitions: 1 });
        const sub = await transport.subscribe({ topics: [topic], group, processor: pipeline });
        await publish(0, 3);
        await waitFor(() => effects.size === 3, 'three handled before the outage');
        await waitFor(
          async () => (await committedOffsets(brokers, group, topic))[0] === '3',
          'commit to 3',
        );

        await proxy.cut();
        await publish(3, 8);
        await waitFor(() => sub.stats().redelivered >= 3, 'three pause-and-rewind rounds');
        expect(effects.size).toBe(3);
        expect((await committedOffsets(brokers, group, topic))[0]).toBe('3');
        expect(sub.stats().deadLettered).toBe(0);

        proxy = await startProxy(redis, proxy.port);
        await waitFor(() => effects.size === 8, 'all eight handled after the outage');
        await waitFor(
          async () => (await committedOffsets(brokers, group, topic))[0] === '8',
          'commit to 8',
        );
        expect([...effects.values()].every((n) => n === 1)).toBe(true);
        expect(sub.stats()).toMatchObject({ acked: 8, deadLettered: 0, retried: 0 });
      } finally {
        await transport.close();
        client.disconnect();
        await proxy.cut();
      }
    });
  },
);
