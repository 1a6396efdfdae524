import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createConsumerPipeline } from '../consumer/pipeline.js';
import { handle } from '../consumer/middleware.js';
import type { IncomingMessage, MessageProcessor } from '../consumer/processor.js';
import { decodeEnvelope, decodeHandedOver, encodeEnvelope } from '../envelope/codec.js';
import { MALFORMED_REASONS } from '../envelope/errors.js';
import type { Envelope } from '../envelope/types.js';
import { InMemoryJournal } from '../journal/InMemoryJournal.js';
import { createPublisher, type PublishOptions } from '../publisher/Publisher.js';
import { defineEvent, type EventData } from '../schema/defineEvent.js';
import { EventRegistry } from '../schema/EventRegistry.js';
import { InMemoryTransport, type InMemoryRecord } from './InMemoryTransport.js';

const OrderPlaced = defineEvent('order.placed').version(
  1,
  z.object({ orderId: z.string(), amountCents: z.int(), note: z.string().optional() }),
);
const registry = new EventRegistry([OrderPlaced]);

let lastPublished: InMemoryRecord | undefined;

/** Publishes through the journaling publisher on an in-memory transport; returns the deliveries. */
async function deliver(
  publishes: { data: EventData<typeof OrderPlaced>; options?: PublishOptions<1> }[],
): Promise<IncomingMessage[]> {
  const transport = new InMemoryTransport({ partitions: 1 });
  const received: IncomingMessage[] = [];
  const processor: MessageProcessor = {
    async process(message) {
      received.push(message);
      return { kind: 'ack', outcome: 'handled' };
    },
  };
  await transport.subscribe({ topics: ['orders'], group: 'g', processor });
  const publisher = createPublisher(
    { service: 'orders', version: '1.0.0' },
    { transport, journal: new InMemoryJournal(), registry },
  );
  for (const { data, options } of publishes) await publisher.publish(OrderPlaced, data, options);
  await transport.idle();
  lastPublished = transport.published('orders').at(-1);
  await transport.close();
  return received;
}

/** Equal values and the same key order (what a handler or a log line would see). */
function expectSameEnvelope(actual: Envelope<unknown> | undefined, expected: Envelope<unknown>) {
  expect(actual).toStrictEqual(expected);
  expect(Object.keys(actual!)).toStrictEqual(Object.keys(expected));
}

describe('in-memory handover of the journaling publisher messages', () => {
  it('gives the consumer the envelope decodeEnvelope reads from the delivered bytes', async () => {
    const received = await deliver([
      { data: { orderId: 'o-1', amountCents: 100 } },
      {
        data: { orderId: 'o-2', amountCents: 200, note: 'ünïcödé \u2028 "quoted"' },
        options: {
          key: 'o-2',
          sagaId: 's-2',
          causationId: 'c-2',
          correlationId: 'r-2',
          subject: 'orders/o-2',
          id: 'fixed-id',
        },
      },
    ]);
    expect(received).toHaveLength(2);
    for (const incoming of received) {
      const handed = decodeHandedOver(incoming.message);
      expect(handed).toBeDefined();
      expectSameEnvelope(handed, decodeEnvelope(incoming.message));
      // The data is the consumer's own: a second read gives another object.
      expect(decodeHandedOver(incoming.message)!.data).not.toBe(handed!.data);
    }
    expect(decodeHandedOver(received[1]!.message)!.data).toStrictEqual({
      orderId: 'o-2',
      amountCents: 200,
      note: 'ünïcödé \u2028 "quoted"',
    });
  });

  it('a delivered message still looks and serialises as a plain message', async () => {
    const [incoming] = await deliver([{ data: { orderId: 'o-1', amountCents: 1 } }]);
    const { message } = incoming!;
    expect(Object.keys(message)).toStrictEqual(['headers', 'body']);
    // So does the broker's (and the journal's) kept message.
    expect(Object.keys(lastPublished!.message)).toStrictEqual(['headers', 'body']);
    expect(JSON.parse(JSON.stringify(message))).toHaveProperty('headers.type', 'order.placed');
    // Its headers and body are the delivery's own copy.
    message.headers['type'] = 'changed';
    message.body.fill(0);
    const [again] = await deliver([{ data: { orderId: 'o-1', amountCents: 1 } }]);
    expect(again!.message.headers['type']).toBe('order.placed');
  });

  it('leaves to decodeEnvelope what it does not take as it is', async () => {
    const received = await deliver([
      // Extensions are decoded as strings; a dataschema is compared with the version.
      { data: { orderId: 'o-1', amountCents: 1 }, options: { extensions: { tenant: 'acme' } } },
      {
        data: { orderId: 'o-2', amountCents: 2 },
        options: { dataschema: 'https://schemas.example.com/order.placed/v1' },
      },
    ]);
    expect(received).toHaveLength(2);
    for (const incoming of received) expect(decodeHandedOver(incoming.message)).toBeUndefined();
    // A message published on the transport directly (not sealed by the publisher).
    const transport = new InMemoryTransport();
    const raw: IncomingMessage[] = [];
    await transport.subscribe({
      topics: ['t'],
      group: 'g',
      processor: {
        async process(message) {
          raw.push(message);
          return { kind: 'ack', outcome: 'handled' };
        },
      },
    });
    const envelope = OrderPlaced.envelope(
      { orderId: 'o-3', amountCents: 3 },
      { source: 'urn:test', time: new Date() },
    );
    await transport.publish([{ topic: 't', message: encodeEnvelope(envelope) }]);
    await transport.idle();
    expect(raw).toHaveLength(1);
    expect(decodeHandedOver(raw[0]!.message)).toBeUndefined();
  });

  it('decodes what a middleware put in place of the delivered headers or body', async () => {
    const [a, b, c] = await deliver([
      { data: { orderId: 'o-1', amountCents: 1 } },
      { data: { orderId: 'o-2', amountCents: 2 } },
      { data: { orderId: 'o-3', amountCents: 3 } },
    ]);
    // A new headers object: decoded from it, not taken from the sealed headers.
    a!.message.headers = { ...a!.message.headers, type: 'order.renamed' };
    expect(decodeHandedOver(a!.message)).toBeUndefined();
    expect(decodeEnvelope(a!.message).type).toBe('order.renamed');
    // A new body (a decrypting middleware, say): decoded from it.
    b!.message.body = Buffer.from(JSON.stringify({ orderId: 'o-22', amountCents: 22 }));
    expect(decodeHandedOver(b!.message)).toBeUndefined();
    // Bytes changed in place: the changed bytes are what is parsed, as on a broker.
    const body = Buffer.from(c!.message.body);
    const at = body.indexOf('o-3');
    c!.message.body[at + 2] = '4'.charCodeAt(0);
    expect(decodeHandedOver(c!.message)!.data).toStrictEqual({ orderId: 'o-4', amountCents: 3 });
  });

  it('a body over the consumer limit is decoded (and refused) as before', async () => {
    const [incoming] = await deliver([{ data: { orderId: 'o-1', amountCents: 1 } }]);
    expect(decodeHandedOver(incoming!.message, { maxBytes: 8 })).toBeUndefined();
    expect(() => decodeEnvelope(incoming!.message, { maxBytes: 8 })).toThrow(
      expect.objectContaining({ reason: MALFORMED_REASONS.TOO_LARGE }),
    );
  });

  it('the pipeline hands the handler the same envelope and data', async () => {
    const transport = new InMemoryTransport({ partitions: 1 });
    const seen: { envelope: Envelope<unknown>; data: unknown; bytes: Envelope<unknown> }[] = [];
    const processor = createConsumerPipeline(
      {
        name: 'billing',
        handlers: [
          handle(OrderPlaced, (ctx) => {
            seen.push({
              envelope: ctx.envelope,
              data: ctx.data,
              bytes: decodeEnvelope({
                headers: ctx.message.message.headers,
                body: ctx.message.message.body,
              }),
            });
          }),
        ],
      },
      { registry },
    );
    await transport.subscribe({ topics: ['orders'], group: 'billing', processor });
    const publisher = createPublisher(
      { service: 'orders', version: '1.0.0' },
      { transport, journal: new InMemoryJournal(), registry },
    );
    await publisher.publish(OrderPlaced, { orderId: 'o-9', amountCents: 9 }, { sagaId: 's-9' });
    await transport.idle();
    expect(seen).toHaveLength(1);
    expectSameEnvelope(seen[0]!.envelope, seen[0]!.bytes);
    expect(seen[0]!.data).toStrictEqual({ orderId: 'o-9', amountCents: 9 });
    expect(transport.deadLetters).toHaveLength(0);
  });
});
