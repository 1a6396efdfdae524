/**
 * Property: any message an AMQP client can deliver (application headers of any kind: null and
 * undefined values, nested tables, arrays, Buffers, numbers, booleans, AMQP timestamps as amqplib
 * decodes them, Backtrack's and CloudEvents' own header names with garbage in them; any content
 * bytes; any or no message properties) goes through decoding and the subscription's per-message
 * and batch paths with core's real pipeline: nothing throws, and every delivery is settled
 * exactly once (acked, or acked after its dead letter was published).
 *
 * The subscription runs for real; only the broker is faked: a connection whose channel records
 * acks and nacks and hands the consumer callback to the test, and a publisher that records what
 * is published (dead letters, retries).
 */
import fc from 'fast-check';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  MalformedMessageError,
  createConsumerPipeline,
  defineEvent,
  handle,
} from '@backtrack/core';
import type { ChannelModel, ConsumeMessage } from 'amqplib';
import type { RabbitConnection } from '../connection/RabbitConnection.js';
import { fromAmqpMessage } from '../envelope/amqpBinding.js';
import type { RabbitPublisher } from '../publisher/RabbitPublisher.js';
import { DEFAULT_RABBIT_CONSUMER_OPTIONS, RabbitSubscription } from './RabbitSubscription.js';

const Ping = defineEvent('test.ping').version(1, z.object({ n: z.number() }));

const bytes = fc.uint8Array({ maxLength: 24 }).map((a) => Buffer.from(a));
const timestamp = fc
  .integer({ min: -1e12, max: 1e13 })
  .map((value) => ({ '!': 'timestamp', value }));
const scalar = fc.oneof(
  fc.constant(null),
  fc.constant(undefined),
  fc.string({ maxLength: 12 }),
  fc.integer(),
  fc.double(),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  fc.boolean(),
  bytes,
  timestamp,
);
const { value: headerValue } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 6 }), tie('value'), { maxKeys: 3 }),
  ),
}));
const headerName = fc.oneof(
  fc.constantFrom(
    'cloudEvents_id',
    'cloudEvents_type',
    'cloudEvents_source',
    'cloudEvents_specversion',
    'cloudEvents_time',
    'cloudEvents_schemaversion',
    'cloudEvents_subject',
    'cloudEvents_dataschema',
    'cloudEvents:id',
    'cloudEvents:type',
    'cloudEvents:time',
    'x-backtrack-attempt',
    'x-backtrack-original-exchange',
    'x-delivery-count',
    'x-death',
  ),
  fc.string({ maxLength: 12 }),
);
const validHeaders = fc.uuid().map((id): Record<string, unknown> => ({
  cloudEvents_id: id,
  cloudEvents_source: '//prop',
  cloudEvents_type: 'test.ping',
  cloudEvents_specversion: '1.0',
  cloudEvents_time: '2026-01-01T00:00:00Z',
  cloudEvents_schemaversion: '1',
}));
const validContent = fc.integer().map((n) => Buffer.from(JSON.stringify({ n })));
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const propertiesArb = fc.record(
  {
    messageId: maybe(fc.oneof(fc.string({ maxLength: 12 }), fc.uuid())),
    type: maybe(fc.oneof(fc.constant('test.ping'), fc.string({ maxLength: 12 }))),
    contentType: maybe(
      fc.constantFrom(
        'application/json',
        'application/cloudevents+json',
        'application/cloudevents-batch+json',
        'text/plain',
        '',
      ),
    ),
    timestamp: maybe(fc.oneof(fc.integer({ min: 0, max: 4e9 }), fc.constant(null))),
    headers: maybe(
      fc.oneof(
        fc.dictionary(headerName, headerValue, { maxKeys: 6 }),
        fc
          .tuple(validHeaders, fc.dictionary(headerName, headerValue, { maxKeys: 3 }))
          .map(([valid, extra]) => ({ ...valid, ...extra })),
        validHeaders,
      ),
    ),
  },
  { requiredKeys: [] },
);
const messageArb = fc.record({
  content: fc.oneof(bytes, validContent),
  properties: propertiesArb,
});
type Generated = { content: Buffer; properties: Partial<ConsumeMessage['properties']> };

/** Error-level log lines: a delivery or batch the subscription failed to handle shows up here. */
function capturingLogger() {
  const errors: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        const entry = JSON.parse(line) as { level: number; msg: string };
        if (entry.level >= 50) errors.push(entry.msg);
      }
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), errors };
}

async function run(generated: Generated[], batch: boolean) {
  const settled = new Map<number, number>();
  const nacked: number[] = [];
  let unacked: number[] = [];
  let deliver!: (message: ConsumeMessage | null) => void;
  const settle = (tag: number) => {
    settled.set(tag, (settled.get(tag) ?? 0) + 1);
    unacked = unacked.filter((t) => t !== tag);
  };
  const channel = {
    on: () => channel,
    prefetch: async () => {},
    consume: async (_queue: string, callback: (m: ConsumeMessage | null) => void) => {
      deliver = callback;
      return { consumerTag: 'ctag' };
    },
    ack: (message: ConsumeMessage, allUpTo?: boolean) => {
      const tag = message.fields.deliveryTag;
      if (allUpTo) for (const t of unacked.filter((t) => t <= tag)) settle(t);
      else settle(tag);
    },
    nack: (message: ConsumeMessage) => {
      nacked.push(message.fields.deliveryTag);
      settle(message.fields.deliveryTag);
    },
    cancel: async () => {},
    close: async () => {},
  };
  const model = { createChannel: async () => channel } as unknown as ChannelModel;
  const connection = {
    addSetupHook: () => () => undefined,
    waitForModel: async () => model,
    model,
    capabilities: {},
    consumerStarted: () => undefined,
    consumerCrashed: () => undefined,
  } as unknown as RabbitConnection;
  const published: { exchange: string; routingKey: string; content: Buffer }[] = [];
  const publisher = {
    publish: async (exchange: string, routingKey: string, content: Buffer) =>
      void published.push({ exchange, routingKey, content }),
  } as unknown as RabbitPublisher;
  const { logger, errors } = capturingLogger();
  const applied: number[] = [];
  const sub = new RabbitSubscription(
    {
      topics: ['prop.exchange'],
      group: 'prop.queue',
      processor: createConsumerPipeline({
        name: 'prop',
        unhandled: 'dead-letter',
        handlers: [handle(Ping, ({ data }) => void applied.push(data.n))],
      }),
      options: { ...DEFAULT_RABBIT_CONSUMER_OPTIONS, declare: false, batch, prefetch: 4 },
    },
    { connection, publisher, logger },
  );
  await sub.start();
  const messages = generated.map(
    (g, i) =>
      ({
        content: g.content,
        fields: {
          deliveryTag: i + 1,
          redelivered: false,
          exchange: 'prop.exchange',
          routingKey: 'r',
          consumerTag: 'ctag',
        },
        properties: g.properties,
      }) as unknown as ConsumeMessage,
  );
  for (const m of messages) {
    unacked.push(m.fields.deliveryTag);
    deliver(m);
  }
  await sub.close();
  return { messages, settled, nacked, published, errors, stats: sub.stats, applied };
}

describe('RabbitSubscription: any AMQP message gets a disposition (property)', () => {
  it('decoding gives string headers, or refuses an array/table attribute with a MalformedMessageError', () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        let decoded: ReturnType<typeof fromAmqpMessage>;
        try {
          decoded = fromAmqpMessage(m);
        } catch (error) {
          // The only refusal: an attribute the envelope reads is a list or a table.
          expect(error).toBeInstanceOf(MalformedMessageError);
          expect((error as MalformedMessageError).reason).toBe('invalid-attribute');
          return;
        }
        expect(decoded.body).toBeInstanceOf(Uint8Array);
        for (const v of Object.values(decoded.headers)) expect(typeof v).toBe('string');
      }),
      { numRuns: 500 },
    );
  }, 30_000);

  for (const batch of [false, true]) {
    it(`every delivery is settled once, dead letters keep their bytes (${batch ? 'batch' : 'per-message'} path)`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(messageArb, { minLength: 1, maxLength: 8 }),
          async (generated) => {
            const h = await run(generated, batch);
            expect(h.errors).toEqual([]);
            for (const m of h.messages) expect(h.settled.get(m.fields.deliveryTag)).toBe(1);
            expect(h.nacked).toEqual([]);
            expect(h.stats.received).toBe(generated.length);
            expect(h.stats.acked + h.stats.deadLettered).toBe(generated.length);
            expect(h.published).toHaveLength(h.stats.deadLettered);
            const contents = h.messages.map((m) => m.content);
            for (const letter of h.published) {
              expect(letter.routingKey).not.toBe('');
              expect(contents).toContainEqual(letter.content);
            }
            expect(h.applied.length).toBeLessThanOrEqual(h.stats.acked);
          },
        ),
        { numRuns: 100 },
      );
    }, 60_000);
  }
});
