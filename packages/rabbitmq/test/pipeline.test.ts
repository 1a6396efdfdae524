/**
 * The RabbitMQ transport with core's real consumer pipeline: schema versions and upcasting over
 * the wire, poison messages to the dead-letter queue, handler retries through the retry queues.
 */
import amqplib from 'amqplib';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  CONSUMER_DEAD_LETTER_CODES,
  InMemoryDedupeStore,
  createConsumerPipeline,
  createEnvelope,
  defineEvent,
  encodeEnvelope,
  handle,
} from '@backtrack/core';
import { readDeadLetter } from '@backtrack/rabbitmq';
import { probeService } from '../../../test/support/services.js';
import { uniqueName, useBroker, waitFor } from './support.js';
import { ConsumerSpy } from '@backtrack/core/testing';

const rabbit = await probeService('rabbitmq');

const OrderPlaced = defineEvent('order.placed')
  .version(1, z.object({ orderId: z.string(), amount: z.number() }))
  .version(2, z.object({ orderId: z.string(), amountCents: z.int(), currency: z.string() }), {
    up: (v1) => ({
      orderId: v1.orderId,
      amountCents: Math.round(v1.amount * 100),
      currency: 'EUR',
    }),
    down: (v2) => ({ orderId: v2.orderId, amount: v2.amountCents / 100 }),
  });

const source = '//backtrack/rabbit-tests';

describe.skipIf(!rabbit.available)('RabbitMQ transport with the core consumer pipeline', () => {
  const broker = useBroker(rabbit.url);

  it('round trip with two schema versions: v1 is upcast for a v2 handler, v2 downcast for a v1 handler', async () => {
    const exchange = uniqueName('bt-versions');
    const seenV2: unknown[] = [];
    const seenV1: unknown[] = [];
    const newConsumer = createConsumerPipeline({
      name: 'billing-v2',
      handlers: [handle(OrderPlaced, ({ data, version }) => void seenV2.push({ version, data }))],
    });
    // A consumer rolled back to the version that only knows v1.
    const oldConsumer = createConsumerPipeline({
      name: 'billing-v1',
      handlers: [
        handle(OrderPlaced, ({ data, version }) => void seenV1.push({ version, data }), {
          version: 1,
        }),
      ],
    });
    const subNew = await broker.transport.subscribe({
      topics: [exchange],
      group: uniqueName('bt-v2'),
      processor: newConsumer,
    });
    const subOld = await broker.transport.subscribe({
      topics: [exchange],
      group: uniqueName('bt-v1'),
      processor: oldConsumer,
    });

    // An old producer writes v1, a new one v2.
    await broker.transport.publish([
      {
        topic: exchange,
        message: encodeEnvelope(
          OrderPlaced.envelope({ orderId: 'o-1', amount: 12.34 }, { source, version: 1 }),
        ),
      },
      {
        topic: exchange,
        message: encodeEnvelope(
          OrderPlaced.envelope({ orderId: 'o-2', amountCents: 999, currency: 'USD' }, { source }),
        ),
      },
    ]);
    await waitFor(
      'both consumers to handle both events',
      () => seenV2.length === 2 && seenV1.length === 2,
    );
    const byOrder = (a: unknown, b: unknown) => JSON.stringify(a).localeCompare(JSON.stringify(b));
    expect(seenV2.sort(byOrder)).toEqual([
      { version: 2, data: { orderId: 'o-1', amountCents: 1234, currency: 'EUR' } },
      { version: 2, data: { orderId: 'o-2', amountCents: 999, currency: 'USD' } },
    ]);
    expect(seenV1.sort(byOrder)).toEqual([
      { version: 1, data: { orderId: 'o-1', amount: 12.34 } },
      { version: 1, data: { orderId: 'o-2', amount: 9.99 } },
    ]);
    await subNew.close();
    await subOld.close();
  });

  it('poison: malformed bytes, no envelope, unknown type, unknown version and invalid data go to the DLQ with the reason; the consumer continues', async () => {
    const exchange = uniqueName('bt-poison');
    const group = uniqueName('bt-poison-q');
    const handled: string[] = [];
    const spy = new ConsumerSpy();
    const pipeline = createConsumerPipeline(
      {
        name: group,
        handlers: [handle(OrderPlaced, ({ data }) => void handled.push(data.orderId))],
      },
      { dedupeStore: new InMemoryDedupeStore(), spy },
    );
    const sub = await broker.transport.subscribe({
      topics: [exchange],
      group,
      processor: pipeline,
    });

    const good = (orderId: string) =>
      encodeEnvelope(
        OrderPlaced.envelope({ orderId, amountCents: 1, currency: 'EUR' }, { source }),
      );
    const malformed = { ...good('x'), body: new TextEncoder().encode('{"orderId": "o-') };
    const unknownType = encodeEnvelope(
      createEnvelope({ type: 'order.exploded', source, schemaversion: 1, data: { orderId: 'o' } }),
    );
    const unknownVersion = encodeEnvelope(
      createEnvelope({ type: 'order.placed', source, schemaversion: 7, data: { orderId: 'o' } }),
    );
    const invalidData = encodeEnvelope(
      createEnvelope({
        type: 'order.placed',
        source,
        schemaversion: 2,
        data: { orderId: 'o', amountCents: 'lots' },
      }),
    );
    await broker.transport.publish([{ topic: exchange, message: good('before') }]);
    await broker.transport.publish([
      { topic: exchange, message: malformed },
      { topic: exchange, message: unknownType },
      { topic: exchange, message: unknownVersion },
      { topic: exchange, message: invalidData },
    ]);
    // A foreign producer: no properties, no CloudEvents headers, not even JSON.
    const raw = await amqplib.connect(rabbit.url);
    const ch = await raw.createConfirmChannel();
    ch.publish(exchange, 'whatever', Buffer.from([0xff, 0x00, 0x13]));
    await ch.waitForConfirms();
    await raw.close();
    await broker.transport.publish([{ topic: exchange, message: good('after') }]);

    const letters = (await broker.probe.take(`${group}.dlq`, 5)).map(readDeadLetter);
    expect(letters).toHaveLength(5);
    const byId = new Map(letters.map((l) => [l.message.headers['id'] ?? 'none', l]));
    expect(byId.get(malformed.headers['id']!)).toMatchObject({
      code: 'BT_ERR_MALFORMED_MESSAGE',
      queue: group,
    });
    expect(Buffer.from(byId.get(malformed.headers['id']!)!.message.body).toString()).toBe(
      '{"orderId": "o-',
    );
    expect(byId.get(unknownType.headers['id']!)).toMatchObject({
      code: CONSUMER_DEAD_LETTER_CODES.UNHANDLED,
    });
    expect(byId.get(unknownType.headers['id']!)!.reason).toContain('order.exploded');
    expect(byId.get(unknownVersion.headers['id']!)).toMatchObject({
      code: 'BT_ERR_SCHEMA_VERSION_UNKNOWN',
    });
    expect(byId.get(invalidData.headers['id']!)).toMatchObject({
      code: 'BT_ERR_SCHEMA_VALIDATION',
    });
    expect(byId.get(invalidData.headers['id']!)!.message.headers).toEqual(invalidData.headers);
    const foreign = byId.get('none')!;
    expect(foreign.code).toBe('BT_ERR_MALFORMED_MESSAGE');
    expect(foreign.reason).toMatch(/missing/);
    expect([...Buffer.from(foreign.message.body)]).toEqual([0xff, 0x00, 0x13]);
    for (const letter of letters) expect(letter.attempt).toBe(1);

    await waitFor('the good messages', () => handled.length === 2);
    expect(handled.sort()).toEqual(['after', 'before']);
    expect(sub.stats).toMatchObject({ deadLettered: 5, retried: 0 });
    await sub.close();
    expect(await broker.probe.messageCount(group)).toBe(0);
  });

  it('a failing handler is retried with backoff through the retry queues, then dead-lettered with retries exhausted', async () => {
    const exchange = uniqueName('bt-retries');
    const group = uniqueName('bt-retries-q');
    const attempts: number[] = [];
    let flaky = 0;
    const pipeline = createConsumerPipeline(
      {
        name: group,
        retry: { attempts: 3, initialDelayMs: 100, maxDelayMs: 150 },
        handlers: [
          handle(OrderPlaced, ({ data, attempt }) => {
            attempts.push(attempt);
            if (data.orderId === 'always-fails') throw new Error('payment provider is down');
            if (data.orderId === 'fails-once' && flaky++ === 0) throw new Error('timeout');
          }),
        ],
      },
      { dedupeStore: new InMemoryDedupeStore() },
    );
    const sub = await broker.transport.subscribe({
      topics: [exchange],
      group,
      processor: pipeline,
    });
    await broker.transport.publish(
      ['always-fails', 'fails-once'].map((orderId) => ({
        topic: exchange,
        message: encodeEnvelope(
          OrderPlaced.envelope({ orderId, amountCents: 1, currency: 'EUR' }, { source }),
        ),
      })),
    );
    const [letter] = await broker.probe.take(`${group}.dlq`, 1, 20_000);
    const dl = readDeadLetter(letter!);
    expect(dl.code).toBe(CONSUMER_DEAD_LETTER_CODES.RETRIES_EXHAUSTED);
    expect(dl.attempt).toBe(3);
    expect(dl.reason).toContain('payment provider is down');
    // The dead letter can reach its queue before the runner counts it (it counts after the confirm).
    await waitFor(
      'the flaky one to succeed and the dead letter to be counted',
      () => sub.stats.acked === 1 && sub.stats.deadLettered === 1,
    );
    expect(attempts.sort()).toEqual([1, 1, 2, 2, 3]);
    expect(sub.stats).toMatchObject({ retried: 3, deadLettered: 1, acked: 1 });
    await sub.close();
  });
});
