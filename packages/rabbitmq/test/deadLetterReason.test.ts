/**
 * The machine-readable `x-backtrack-reason` header on RabbitMQ dead letters (issue 15, item 9):
 * one value of core's DEAD_LETTER_REASONS per cause, on the real broker.
 */
import amqplib from 'amqplib';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  BacktrackError,
  createConsumerPipeline,
  createEnvelope,
  defineEvent,
  encodeEnvelope,
  handle,
} from '@backtrack/core';
import { readDeadLetter } from '@backtrack/rabbitmq';
import { probeService } from '../../../test/support/services.js';
import { uniqueName, useBroker } from './support.js';
import { DEAD_LETTER_REASON_HEADER } from '@backtrack/core/adapter';

const rabbit = await probeService('rabbitmq');

const Paid = defineEvent('order.paid').version(1, z.object({ orderId: z.string() }));
const source = '//backtrack/rabbit-reason';

describe.skipIf(!rabbit.available)('RabbitMQ dead letters carry x-backtrack-reason', () => {
  const broker = useBroker(rabbit.url);

  it('one stable value per cause, also read back by readDeadLetter', async () => {
    const exchange = uniqueName('bt-reason');
    const group = uniqueName('bt-reason-q');
    const pipeline = createConsumerPipeline({
      name: group,
      handlers: [
        handle(Paid, ({ data }) => {
          if (data.orderId === 'refused')
            throw new BacktrackError('APP_ORDER_CLOSED', 'order is closed', { retriable: false });
        }),
      ],
    });
    const sub = await broker.transport.subscribe({
      topics: [exchange],
      group,
      processor: pipeline,
    });
    const env = (type: string, data: unknown, schemaversion = 1) =>
      encodeEnvelope(createEnvelope({ type, source, schemaversion, data }));
    const cases = {
      'invalid-json': {
        ...env('order.paid', { orderId: 'x' }),
        body: new TextEncoder().encode('{"orderId'),
      },
      'schema-validation': env('order.paid', { orderId: 42 }),
      'unhandled-type': env('order.lost', { orderId: 'x' }),
      'unknown-version': env('order.paid', { orderId: 'x' }, 9),
      'handler-failed': env('order.paid', { orderId: 'refused' }),
    };
    await broker.transport.publish(
      Object.values(cases).map((message) => ({ topic: exchange, message })),
    );
    // A foreign producer: no CloudEvents headers at all.
    const raw = await amqplib.connect(rabbit.url);
    const ch = await raw.createConfirmChannel();
    ch.publish(exchange, 'whatever', Buffer.from([0xff, 0x00]));
    await ch.waitForConfirms();
    await raw.close();

    const letters = await broker.probe.take(`${group}.dlq`, 6);
    const byId = new Map(letters.map((l) => [String(l.properties.messageId ?? 'none'), l]));
    for (const [expected, message] of Object.entries(cases)) {
      const letter = byId.get(message.headers['id']!);
      expect(letter, expected).toBeDefined();
      expect(letter!.properties.headers?.[DEAD_LETTER_REASON_HEADER]).toBe(expected);
      expect(readDeadLetter(letter!).reasonCode).toBe(expected);
    }
    const foreign = byId.get('none')!;
    expect(foreign.properties.headers?.[DEAD_LETTER_REASON_HEADER]).toBe('missing-attribute');
    await sub.close();
  });
});
