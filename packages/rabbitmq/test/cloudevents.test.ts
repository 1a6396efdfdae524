/**
 * CloudEvents interop on the real RabbitMQ broker through plain amqplib. The CloudEvents SDK has no
 * AMQP binding, so `specWrite`/`specRead` below are written from the text of the CloudEvents AMQP
 * protocol binding 1.0.2:
 *
 * - 3.1.1 `datacontenttype` maps to the AMQP `content-type` property.
 * - 3.1.3 binary mode: every other attribute MUST be an application property named
 *   `cloudEvents_<name>` (`cloudEvents:<name>` accepted as the alternative prefix); values either
 *   as the canonical string or as the native AMQP type (Timestamp → timestamp, Integer → long,
 *   Boolean → boolean). The data is the message body.
 * - 3.2 structured mode: `content-type: application/cloudevents+json`, the event in the JSON
 *   format as the body.
 *
 * Then: a transport `message-id` never replaces `cloudEvents_id`; retries and dead letters keep
 * every attribute.
 */
import amqplib, { type ConsumeMessage, type GetMessage } from 'amqplib';
import { CloudEvent } from 'cloudevents';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  createConsumerPipeline,
  createEnvelope,
  defineEvent,
  encodeEnvelope,
  handle,
  type Envelope,
} from '@backtrack/core';
import { readDeadLetter, type RabbitTransport } from '@backtrack/rabbitmq';
import { probeService } from '../../../test/support/services.js';
import { BrokerProbe, declaredNames, openTransport, uniqueName, waitFor } from './support.js';

const rabbit = await probeService('rabbitmq');

const OrderPlaced = defineEvent('order.placed')
  .version(1, z.object({ orderId: z.string() }))
  .version(2, z.object({ orderId: z.string(), amountCents: z.int() }), {
    up: (v1) => ({ ...v1, amountCents: 0 }),
    down: ({ orderId }) => ({ orderId }),
  });

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
type Attributes = Record<string, unknown>;

/** Every attribute a foreign producer may send (time with second precision: AMQP timestamps). */
function foreignEvent(id: string): Attributes & { data: unknown } {
  return {
    specversion: '1.0',
    id,
    source: '//foreign/orders',
    type: 'order.placed',
    time: '2026-03-04T05:06:07.000Z',
    datacontenttype: 'application/json',
    subject: 'order/o-7',
    dataschema: 'https://schemas.example.com/order.placed/v2',
    tenantid: 'acme',
    traceparent: TRACEPARENT,
    priority: 5,
    sampled: true,
    data: { orderId: 'o-7', amountCents: 700 },
  };
}

interface SpecWriteOptions {
  prefix?: 'cloudEvents_' | 'cloudEvents:';
  /** Write `time` as an AMQP timestamp, integers as long, booleans as boolean. */
  nativeTypes?: boolean;
  /** Also set the AMQP message-id property (to a different value than the event id). */
  messageId?: string;
}

/** A producer following the AMQP binding (binary mode). */
function specWriteBinary(
  event: Attributes & { data: unknown },
  options: SpecWriteOptions = {},
): { content: Buffer; options: amqplib.Options.Publish } {
  const prefix = options.prefix ?? 'cloudEvents_';
  const headers: Record<string, unknown> = {};
  const { data, datacontenttype, ...attributes } = event;
  for (const [name, value] of Object.entries(attributes)) {
    if (options.nativeTypes && name === 'time') {
      headers[prefix + name] = {
        '!': 'timestamp',
        value: Math.floor(Date.parse(String(value)) / 1000),
      };
    } else {
      headers[prefix + name] = options.nativeTypes ? value : String(value);
    }
  }
  return {
    content: Buffer.from(JSON.stringify(data)),
    options: {
      contentType: String(datacontenttype),
      headers,
      ...(options.messageId ? { messageId: options.messageId } : {}),
    },
  };
}

/** A producer following the AMQP binding (structured mode). */
function specWriteStructured(event: Attributes & { data: unknown }): {
  content: Buffer;
  options: amqplib.Options.Publish;
} {
  return {
    content: Buffer.from(JSON.stringify(event)),
    options: { contentType: 'application/cloudevents+json; charset=utf-8' },
  };
}

/** A consumer following the AMQP binding: the event's attributes (and data) from a message. */
function specRead(message: ConsumeMessage | GetMessage): Record<string, unknown> {
  const contentType = String(message.properties.contentType ?? '');
  if (contentType.startsWith('application/cloudevents+json')) {
    return JSON.parse(message.content.toString('utf8')) as Record<string, unknown>;
  }
  const event: Record<string, unknown> = {};
  const headers = (message.properties.headers ?? {}) as Record<string, unknown>;
  for (const prefix of ['cloudEvents_', 'cloudEvents:']) {
    for (const [key, value] of Object.entries(headers)) {
      if (!key.startsWith(prefix)) continue;
      const name = key.slice(prefix.length);
      if (name in event) continue;
      const timestamp = value as { '!'?: string; value?: number };
      event[name] =
        timestamp?.['!'] === 'timestamp'
          ? new Date((timestamp.value ?? 0) * 1000).toISOString()
          : value;
    }
  }
  if (contentType) event['datacontenttype'] = contentType;
  event['data'] = contentType.includes('json')
    ? JSON.parse(message.content.toString('utf8'))
    : message.content;
  return event;
}

/** What Backtrack must make of {@link foreignEvent}. */
function expectedEnvelope(id: string, extensions: Envelope['extensions']): Envelope<unknown> {
  return {
    id,
    source: '//foreign/orders',
    type: 'order.placed',
    specversion: '1.0',
    time: '2026-03-04T05:06:07.000Z',
    datacontenttype: 'application/json',
    subject: 'order/o-7',
    dataschema: 'https://schemas.example.com/order.placed/v2',
    schemaversion: 2,
    extensions,
    data: { orderId: 'o-7', amountCents: 700 },
  };
}

function backtrackEnvelope() {
  return createEnvelope({
    type: 'order.placed',
    source: '//backtrack/orders',
    schemaversion: 2,
    time: '2026-05-06T07:08:09.123Z',
    subject: 'order/o-8',
    dataschema: 'https://schemas.example.com/order.placed/v2',
    sagaid: 'saga-8',
    causationid: 'cmd-8',
    correlationid: 'corr-8',
    producerservice: 'orders',
    producerversion: '2.4.0',
    partitionkey: 'o-8',
    extensions: { tenantid: 'acme', traceparent: TRACEPARENT },
    data: { orderId: 'o-8', amountCents: 800 },
  });
}

describe.skipIf(!rabbit.available)(
  'CloudEvents AMQP binding interop (real broker, amqplib)',
  () => {
    let transport: RabbitTransport;
    let structuredTransport: RabbitTransport;
    let probe: BrokerProbe;
    let raw: amqplib.ChannelModel;
    let channel: amqplib.ConfirmChannel;
    const rawQueues: string[] = [];
    const rawExchanges: string[] = [];

    beforeAll(async () => {
      transport = await openTransport(rabbit.url);
      structuredTransport = await openTransport(rabbit.url, { contentMode: 'structured' });
      probe = await BrokerProbe.open(rabbit.url);
      raw = await amqplib.connect(rabbit.url);
      channel = await raw.createConfirmChannel();
    });
    afterAll(async () => {
      const names = declaredNames(transport);
      await transport?.close();
      await structuredTransport?.close();
      await probe?.remove([...names.queues, ...rawQueues], [...names.exchanges, ...rawExchanges]);
      await probe?.close();
      await raw?.close();
    });

    /** Subscribes a pipeline recording each envelope its handler saw (and optionally failing). */
    async function consume(exchange: string, fail: () => boolean = () => false) {
      const group = uniqueName('ce-q');
      const seen: Envelope<unknown>[] = [];
      const pipeline = createConsumerPipeline({
        name: group,
        retry: { attempts: 2, initialDelayMs: 50, maxDelayMs: 100 },
        handlers: [
          handle(OrderPlaced, ({ envelope }) => {
            seen.push(envelope);
            if (fail()) throw new Error('downstream unavailable');
          }),
        ],
      });
      const sub = await transport.subscribe({ topics: [exchange], group, processor: pipeline });
      return { group, seen, sub };
    }

    async function publishRaw(
      exchange: string,
      message: { content: Buffer; options: amqplib.Options.Publish },
    ) {
      channel.publish(exchange, 'order.placed', message.content, message.options);
      await channel.waitForConfirms();
    }

    /** A queue of our own bound to `exchange`, read by the spec reader. */
    async function tap(exchange: string): Promise<string> {
      const queue = uniqueName('ce-tap');
      rawQueues.push(queue);
      rawExchanges.push(exchange);
      await channel.assertExchange(exchange, 'topic', { durable: true });
      await channel.assertQueue(queue, { durable: false, autoDelete: false });
      await channel.bindQueue(queue, exchange, '#');
      return queue;
    }

    it('reads cloudEvents_ properties as strings; a transport message-id does not replace cloudEvents_id', async () => {
      const exchange = uniqueName('ce-in-underscore');
      const { seen, sub } = await consume(exchange);
      await publishRaw(
        exchange,
        specWriteBinary(foreignEvent('ce-id-1'), { messageId: 'transport-id-1' }),
      );
      await waitFor('the foreign event', () => seen.length === 1);
      expect(seen[0]).toEqual(
        expectedEnvelope('ce-id-1', {
          tenantid: 'acme',
          traceparent: TRACEPARENT,
          priority: '5',
          sampled: 'true',
        }),
      );
      await sub.close();
    });

    it('reads cloudEvents: properties with native AMQP types (time as a timestamp, long, boolean)', async () => {
      const exchange = uniqueName('ce-in-colon');
      const { seen, sub } = await consume(exchange);
      await publishRaw(
        exchange,
        specWriteBinary(foreignEvent('ce-id-2'), { prefix: 'cloudEvents:', nativeTypes: true }),
      );
      await waitFor('the foreign event', () => seen.length === 1);
      expect(seen[0]).toEqual(
        expectedEnvelope('ce-id-2', {
          tenantid: 'acme',
          traceparent: TRACEPARENT,
          priority: '5',
          sampled: 'true',
        }),
      );
      await sub.close();
    });

    it('reads structured mode (application/cloudevents+json) and a plain event without time or schemaversion', async () => {
      const exchange = uniqueName('ce-in-structured');
      const { seen, sub } = await consume(exchange);
      await publishRaw(exchange, specWriteStructured(foreignEvent('ce-id-3')));
      await publishRaw(
        exchange,
        specWriteBinary({
          specversion: '1.0',
          id: 'ce-id-4',
          source: '//foreign',
          type: 'order.placed',
          datacontenttype: 'application/json',
          data: { orderId: 'o-min' },
        }),
      );
      await waitFor('both foreign events', () => seen.length === 2);
      const byId = Object.fromEntries(seen.map((e) => [e.id, e]));
      // Structured mode keeps the JSON types of the extensions.
      expect(byId['ce-id-3']).toEqual(
        expectedEnvelope('ce-id-3', {
          tenantid: 'acme',
          traceparent: TRACEPARENT,
          priority: 5,
          sampled: true,
        }),
      );
      expect(byId['ce-id-4']).toMatchObject({ schemaversion: 1, data: { orderId: 'o-min' } });
      expect(byId['ce-id-4']!.time).toBeUndefined();
      await sub.close();
    });

    it.each(['binary', 'structured'] as const)(
      'Backtrack → spec reader in %s mode: every attribute, and the SDK validates the event',
      async (mode) => {
        const exchange = uniqueName(`ce-out-${mode}`);
        const queue = await tap(exchange);
        const envelope = backtrackEnvelope();
        const publisher = mode === 'binary' ? transport : structuredTransport;
        await publisher.publish([{ topic: exchange, message: encodeEnvelope(envelope) }]);
        const [message] = await probe.take(queue, 1);
        expect(message).toBeDefined();
        if (mode === 'binary') {
          // Every attribute but datacontenttype is an application property, type and id included.
          expect(Object.keys(message!.properties.headers ?? {}).sort()).toEqual(
            [
              'id',
              'source',
              'type',
              'specversion',
              'time',
              'subject',
              'dataschema',
              'schemaversion',
              'sagaid',
              'causationid',
              'correlationid',
              'producerservice',
              'producerversion',
              'partitionkey',
              'tenantid',
              'traceparent',
            ]
              .map((name) => `cloudEvents_${name}`)
              .sort(),
          );
          expect(message!.properties.contentType).toBe('application/json');
        } else {
          expect(message!.properties.contentType).toMatch(/^application\/cloudevents\+json/);
        }
        const event = specRead(message!);
        expect(event).toMatchObject({
          id: envelope.id,
          source: envelope.source,
          type: envelope.type,
          specversion: '1.0',
          time: envelope.time,
          subject: envelope.subject,
          dataschema: envelope.dataschema,
          sagaid: 'saga-8',
          causationid: 'cmd-8',
          correlationid: 'corr-8',
          producerservice: 'orders',
          producerversion: '2.4.0',
          partitionkey: 'o-8',
          tenantid: 'acme',
          traceparent: TRACEPARENT,
          data: envelope.data,
        });
        expect(String(event['schemaversion'])).toBe('2');
        expect(new CloudEvent(event as never).validate()).toBe(true);
      },
    );

    it('retries and dead letters keep every attribute, native types included', async () => {
      const exchange = uniqueName('ce-dlq');
      const { group, seen, sub } = await consume(exchange, () => true);
      const sent = specWriteBinary(foreignEvent('ce-id-5'), {
        prefix: 'cloudEvents:',
        nativeTypes: true,
        messageId: 'transport-id-5',
      });
      await publishRaw(exchange, sent);
      const [letter] = await probe.take(`${group}.dlq`, 1, 20_000);
      expect(letter).toBeDefined();
      // Both deliveries (the first and the retry) saw every attribute.
      expect(seen).toHaveLength(2);
      const expected = expectedEnvelope('ce-id-5', {
        tenantid: 'acme',
        traceparent: TRACEPARENT,
        priority: '5',
        sampled: 'true',
      });
      expect(seen[0]).toEqual(expected);
      expect(seen[1]).toEqual(expected);
      // The dead letter carries the producer's properties unchanged, as the spec reader sees them.
      const { data: _data, ...attributes } = foreignEvent('ce-id-5');
      expect(specRead(letter!)).toEqual({
        ...attributes,
        data: { orderId: 'o-7', amountCents: 700 },
      });
      expect(readDeadLetter(letter!).message.headers['id']).toBe('ce-id-5');
      await sub.close();
    });

    it('a batched-mode message is dead-lettered whole with BT_ERR_CLOUDEVENTS_BATCH_UNSUPPORTED', async () => {
      const exchange = uniqueName('ce-batch');
      const { group, seen, sub } = await consume(exchange);
      const batch = JSON.stringify([foreignEvent('b-1'), foreignEvent('b-2')]);
      await publishRaw(exchange, {
        content: Buffer.from(batch),
        options: { contentType: 'application/cloudevents-batch+json' },
      });
      const [letter] = await probe.take(`${group}.dlq`, 1, 20_000);
      expect(letter).toBeDefined();
      const dl = readDeadLetter(letter!);
      expect(dl.code).toBe('BT_ERR_CLOUDEVENTS_BATCH_UNSUPPORTED');
      expect(dl.reason).toMatch(/batched content mode/);
      expect(dl.reasonCode).toBe('batch-mode-unsupported');
      expect(letter!.content.toString()).toBe(batch);
      expect(seen).toHaveLength(0);
      await sub.close();
    });
  },
);
