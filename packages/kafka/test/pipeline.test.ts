/**
 * Core's consumer pipeline (decode → validate + upcast → idempotent → handlers) running on the
 * Kafka transport against the real broker: typed events of two schema versions, duplicates across
 * a consumer restart, poison messages, and per-key order through retries.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  InMemoryDedupeStore,
  createConsumerPipeline,
  defineEvent,
  encodeEnvelope,
  handle,
  type EncodedMessage,
  type IncomingMessage,
  type MessageProcessor,
} from '@backtrack/core';
import { BACKTRACK_HEADERS } from '@backtrack/kafka/adapter';
import { RedisDedupeStore, createRedisClient } from '@backtrack/redis';
import { probeService } from '../../../test/support/services.js';
import { kafkaBroker } from './broker.js';
import { committedOffsets, makeTransport, readTopic, uniqueName, waitFor } from './helpers.js';

const broker = await kafkaBroker();
const redis = await probeService('redis');
afterAll(() => broker.stop());

const OrderPlaced = defineEvent('order.placed')
  .version(1, z.object({ orderId: z.string(), amount: z.number() }))
  .version(
    2,
    z.object({ orderId: z.string(), amountCents: z.number().int(), currency: z.string() }),
    {
      up: (v1) => ({
        orderId: v1.orderId,
        amountCents: Math.round(v1.amount * 100),
        currency: 'EUR',
      }),
      down: (v2) => ({ orderId: v2.orderId, amount: v2.amountCents / 100 }),
    },
  );

const SOURCE = '//backtrack/kafka-test';

describe.skipIf(!broker.available)('consumer pipeline on Kafka (real broker)', () => {
  const brokers = broker.brokers;

  it('round trip: v1 and v2 events published, consumed upcast to v2 with typed data', async () => {
    const transport = makeTransport(brokers);
    const topic = uniqueName('bt-typed');
    const group = uniqueName('billing');
    const received: {
      orderId: string;
      amountCents: number;
      currency: string;
      version: number;
      wire: number;
    }[] = [];
    const pipeline = createConsumerPipeline({
      name: group,
      handlers: [
        handle(
          OrderPlaced,
          ({ data, version, envelope }) => {
            received.push({ ...data, version, wire: envelope.schemaversion });
          },
          { version: 2 },
        ),
      ],
    });
    try {
      await transport.ensureTopics({ topics: [topic], partitions: 2 });
      await transport.publish([
        {
          topic,
          key: 'o-1',
          message: encodeEnvelope(
            OrderPlaced.envelope({ orderId: 'o-1', amount: 12.5 }, { source: SOURCE, version: 1 }),
          ),
        },
        {
          topic,
          key: 'o-2',
          message: encodeEnvelope(
            OrderPlaced.envelope(
              { orderId: 'o-2', amountCents: 999, currency: 'USD' },
              { source: SOURCE },
            ),
          ),
        },
      ]);
      await transport.subscribe({ topics: [topic], group, processor: pipeline });
      await waitFor(() => received.length === 2, 'both events');
      const byId = Object.fromEntries(received.map((r) => [r.orderId, r]));
      expect(byId['o-1']).toEqual({
        orderId: 'o-1',
        amountCents: 1250,
        currency: 'EUR',
        version: 2,
        wire: 1,
      });
      expect(byId['o-2']).toEqual({
        orderId: 'o-2',
        amountCents: 999,
        currency: 'USD',
        version: 2,
        wire: 2,
      });
    } finally {
      await transport.close();
    }
  });

  describe.skipIf(!redis.available)('with a Redis dedupe store', () => {
    const redisClient = createRedisClient(redis.url);
    afterAll(() => redisClient.quit());

    it('duplicates: published twice and redelivered after a restart before commit, the effect happens once', async () => {
      const topic = uniqueName('bt-dup');
      const group = uniqueName('billing');
      const keyPrefix = `${uniqueName('bt-kafka-dedupe')}:`;
      const effects = new Map<string, number>();
      const makePipeline = () =>
        createConsumerPipeline(
          {
            name: group,
            handlers: [
              handle(
                OrderPlaced,
                ({ data }) => void effects.set(data.orderId, (effects.get(data.orderId) ?? 0) + 1),
              ),
            ],
            idempotency: { leaseMs: 5_000, ttlMs: 60_000 },
          },
          { dedupeStore: new RedisDedupeStore({ keyPrefix }, { redis: redisClient }) },
        );

      const encoded = encodeEnvelope(
        OrderPlaced.envelope(
          { orderId: 'o-dup', amountCents: 100, currency: 'EUR' },
          { source: SOURCE },
        ),
      );
      const other = encodeEnvelope(
        OrderPlaced.envelope(
          { orderId: 'o-other', amountCents: 1, currency: 'EUR' },
          { source: SOURCE },
        ),
      );

      // Process 1 handles the first copy, then "dies" before its offset is committed.
      const first = makeTransport(brokers, { consumer: { closeTimeoutMs: 500 } });
      let release!: () => void;
      const hang = new Promise<void>((r) => (release = r));
      const inner = makePipeline();
      let handledInFirst = 0;
      const crashing: MessageProcessor = {
        async process(m: IncomingMessage) {
          const d = await inner.process(m);
          handledInFirst++;
          await hang; // the process is killed here: the disposition never reaches the commit
          return d;
        },
      };
      try {
        await first.ensureTopics({ topics: [topic], partitions: 1 });
        await first.publish([
          { topic, key: 'o-dup', message: encoded },
          { topic, key: 'o-dup', message: encoded }, // the producer's retry wrote it twice
          { topic, key: 'o-other', message: other },
        ]);
        await first.subscribe({ topics: [topic], group, processor: crashing });
        await waitFor(() => handledInFirst === 1, 'the first copy handled');
      } finally {
        await first.close();
        release();
      }
      expect(effects.get('o-dup')).toBe(1);
      expect((await committedOffsets(brokers, group, topic))[0]).toBe('-1');

      // Process 2 (same group, same store) gets all three again: both copies are duplicates.
      const second = makeTransport(brokers);
      const outcomes: string[] = [];
      try {
        const pipeline = makePipeline();
        await second.subscribe({
          topics: [topic],
          group,
          processor: pipeline,
          onDisposition: (e) =>
            outcomes.push(
              e.disposition.kind === 'ack' ? e.disposition.outcome : e.disposition.kind,
            ),
        });
        await waitFor(() => outcomes.length === 3, 'three dispositions');
        expect(outcomes).toEqual(['duplicate', 'duplicate', 'handled']);
        expect(effects.get('o-dup')).toBe(1);
        expect(effects.get('o-other')).toBe(1);
        await waitFor(
          async () => (await committedOffsets(brokers, group, topic))[0] === '3',
          'commit to 3',
        );
      } finally {
        await second.close();
      }
    });
  });

  it('poison: malformed bytes, unknown type, unknown version and invalid data each land in the DLQ with the reason; the consumer goes on', async () => {
    const transport = makeTransport(brokers);
    const topic = uniqueName('bt-poison');
    const group = uniqueName('billing');
    const handled: string[] = [];
    const pipeline = createConsumerPipeline(
      {
        name: group,
        handlers: [handle(OrderPlaced, ({ data }) => void handled.push(data.orderId))],
      },
      { dedupeStore: new InMemoryDedupeStore() },
    );
    const valid = (orderId: string) =>
      encodeEnvelope(
        OrderPlaced.envelope({ orderId, amountCents: 1, currency: 'EUR' }, { source: SOURCE }),
      );
    const base = valid('template');
    const variant = (headers: Record<string, string>, body?: string): EncodedMessage => ({
      headers: { ...base.headers, id: randomUUID(), ...headers },
      body: body === undefined ? base.body : new TextEncoder().encode(body),
    });
    const poison = {
      malformed: variant({}, '{"orderId": "o-x", amount'),
      unknownType: variant({ type: 'order.teleported' }),
      unknownVersion: variant({ schemaversion: '9' }),
      invalidData: variant(
        {},
        JSON.stringify({ orderId: 'o-y', amountCents: 'lots', currency: 'EUR' }),
      ),
    };
    try {
      await transport.ensureTopics({ topics: [topic], partitions: 1 });
      await transport.publish([
        { topic, key: 'k', message: valid('o-1') },
        ...Object.values(poison).map((message) => ({ topic, key: 'k', message })),
        { topic, key: 'k', message: valid('o-2') },
      ]);
      const sub = await transport.subscribe({ topics: [topic], group, processor: pipeline });
      await waitFor(() => handled.length === 2, 'both valid orders');
      expect(handled).toEqual(['o-1', 'o-2']);
      const dls = await readTopic(brokers, `${topic}.dlq`, 4);
      const byId = new Map(dls.map((d) => [d.headers.ce_id, d]));
      const expected: [keyof typeof poison, string, RegExp][] = [
        ['malformed', 'BT_ERR_MALFORMED_MESSAGE', /json/i],
        ['unknownType', 'BT_ERR_CONSUMER_UNHANDLED_EVENT', /order\.teleported/],
        ['unknownVersion', 'BT_ERR_SCHEMA_VERSION_UNKNOWN', /9/],
        ['invalidData', 'BT_ERR_SCHEMA_VALIDATION', /amountCents|invalid/i],
      ];
      for (const [name, code, reason] of expected) {
        const dl = byId.get(poison[name].headers.id!);
        expect(dl, name).toBeDefined();
        expect(dl!.headers[BACKTRACK_HEADERS.deadLetterCode], name).toBe(code);
        expect(dl!.headers[BACKTRACK_HEADERS.reason], name).toMatch(reason);
        expect(dl!.value!.equals(Buffer.from(poison[name].body)), `${name} keeps its bytes`).toBe(
          true,
        );
        expect(dl!.headers.ce_type, name).toBe(poison[name].headers.type);
      }
      await waitFor(
        async () => (await committedOffsets(brokers, group, topic))[0] === '6',
        'commit past every message',
      );
      expect(sub.stats()).toMatchObject({ acked: 2, deadLettered: 4 });
    } finally {
      await transport.close();
    }
  });

  it('per-key order holds while another key goes through handler retries', async () => {
    const transport = makeTransport(brokers);
    const topic = uniqueName('bt-pipe-order');
    const group = uniqueName('billing');
    const seen: { key: string; n: number }[] = [];
    const failures = new Map<string, number>();
    const pipeline = createConsumerPipeline(
      {
        name: group,
        retry: { attempts: 4, initialDelayMs: 50, maxDelayMs: 100, jitter: 'none' },
        handlers: [
          handle(OrderPlaced, ({ data }) => {
            const [key, n] = data.orderId.split(':') as [string, string];
            if (key === 'flaky' && (failures.get(data.orderId) ?? 0) < 2) {
              failures.set(data.orderId, (failures.get(data.orderId) ?? 0) + 1);
              throw new Error('payment gateway timeout');
            }
            seen.push({ key, n: Number(n) });
          }),
        ],
      },
      { dedupeStore: new InMemoryDedupeStore() },
    );
    try {
      await transport.ensureTopics({ topics: [topic], partitions: 2 });
      const messages = [];
      for (let n = 0; n < 15; n++) {
        for (const key of ['a', 'b', 'flaky']) {
          messages.push({
            topic,
            key,
            message: encodeEnvelope(
              OrderPlaced.envelope(
                { orderId: `${key}:${n}`, amountCents: n, currency: 'EUR' },
                { source: SOURCE },
              ),
            ),
          });
        }
      }
      await transport.publish(messages);
      await transport.subscribe({ topics: [topic], group, processor: pipeline });
      await waitFor(() => seen.length === 45, 'all 45 handled');
      for (const key of ['a', 'b']) {
        expect(seen.filter((s) => s.key === key).map((s) => s.n)).toEqual([...Array(15).keys()]);
      }
      expect(
        seen
          .filter((s) => s.key === 'flaky')
          .map((s) => s.n)
          .sort((x, y) => x - y),
      ).toEqual([...Array(15).keys()]);
    } finally {
      await transport.close();
    }
  });
});
