/**
 * The content headers Backtrack decodes itself are amqplib's, value for value: every header frame
 * amqplib's encoder makes (and corrupted copies of them) decodes here to what amqplib's own
 * `parseFrame` + `decodeFrame` give, or is left to amqplib.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createEnvelope, encodeEnvelope } from '@backtrack/core';
import { toAmqpMessage } from '../envelope/amqpBinding.js';
import { ContentHeaderDecoder, decodeContentHeadersFast } from './decodeContentHeaders.js';

// amqplib's package exports hide lib/: load its files by path.
const require = createRequire(import.meta.url);
const lib = join(dirname(require.resolve('amqplib')), 'lib');
const defs = require(join(lib, 'defs.js')) as {
  BasicProperties: number;
  BasicDeliver: number;
  BasicAck: number;
  encodeProperties(id: number, channel: number, size: number, fields: unknown): Buffer;
  encodeMethod(method: number, channel: number, fields: unknown): Buffer;
};
const frame = require(join(lib, 'frame.js')) as {
  parseFrame(bin: Buffer, max: number): { rest: Buffer } | false;
  decodeFrame(frame: unknown): unknown;
  makeBodyFrame(channel: number, payload: Buffer): Buffer;
};

const MAX_FRAME = 131_072;

/** amqplib's decoding of the frame at the start of `bytes`: [frame, bytes left] or its error. */
function amqplibDecode(bytes: Buffer): [unknown, number] | Error | false {
  try {
    const parsed = frame.parseFrame(bytes, MAX_FRAME);
    if (!parsed) return false;
    return [frame.decodeFrame(parsed), parsed.rest.length];
  } catch (error) {
    return error as Error;
  }
}

const text = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 60 }), // lone surrogates, astral characters
  fc.string({ minLength: 90, maxLength: 140 }),
);
const shortText = fc.string({ unit: 'binary', maxLength: 60 });
const headerValue = fc.oneof(
  { weight: 8, arbitrary: text },
  {
    weight: 2,
    arbitrary: fc.oneof(
      fc.integer({ min: -128, max: 127 }),
      fc.integer(),
      fc.integer({ min: -(2 ** 52), max: 2 ** 52 }),
      fc.double({ noNaN: true }),
      fc.boolean(),
      fc.constant(null),
    ),
  },
  {
    weight: 1,
    arbitrary: fc.oneof(
      fc.array(fc.string(), { maxLength: 3 }),
      fc.record({ nested: fc.string() }),
      fc.constant({ '!': 'timestamp', value: 7 }),
      fc.constant({ '!': 'decimal', value: { places: 2, digits: 314 } }),
      fc.constant({ '!': 'byte', value: -3 }),
      fc.constant({ '!': 'float', value: 1.5 }),
      fc.constant({ '!': 'int16', value: -300 }),
      fc.constant({ '!': 'unsignedbyte', value: 200 }),
      fc.constant({ '!': 'unsignedshort', value: 60_000 }),
      fc.constant({ '!': 'unsignedint', value: 4_000_000_000 }),
      fc.constant({ '!': 'int64', value: -(2 ** 40) }),
      fc.constant(Buffer.from('bytes')),
    ),
  },
);
/** The headers of a CloudEvent, with ids and times that change and names that do not. */
const cloudEventHeaders = fc.record({
  cloudEvents_id: fc.uuid(),
  cloudEvents_source: fc.constantFrom('//shop/orders', '//shop/payments'),
  cloudEvents_type: fc.constantFrom('shop.order.placed', 'shop.payment.taken'),
  cloudEvents_specversion: fc.constant('1.0'),
  cloudEvents_time: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  cloudEvents_partitionkey: fc.string({ maxLength: 12 }),
});
const propertiesArb = fc.record(
  {
    headers: fc.oneof(
      cloudEventHeaders,
      fc.dictionary(
        fc.oneof(shortText, fc.constantFrom('__proto__', 'cloudEvents_id')),
        headerValue,
        {
          maxKeys: 14,
        },
      ),
    ),
    deliveryMode: fc.integer({ min: 0, max: 255 }),
    priority: fc.integer({ min: 0, max: 9 }),
    contentType: shortText,
    contentEncoding: shortText,
    correlationId: shortText,
    replyTo: shortText,
    expiration: fc.constantFrom('1000', '60000'),
    messageId: shortText,
    timestamp: fc.oneof(fc.nat(), fc.integer({ min: 2 ** 32, max: 2 ** 52 })),
    type: shortText,
    userId: shortText,
    appId: shortText,
    clusterId: shortText,
  },
  { requiredKeys: [] },
);

describe('ContentHeaderDecoder', () => {
  it('decodes every basic header frame as amqplib does, across frames that share strings', () => {
    const decoder = new ContentHeaderDecoder();
    let taken = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2047 }),
        fc.oneof(fc.nat(), fc.integer({ min: 2 ** 32, max: 2 ** 50 })),
        propertiesArb,
        fc.uint8Array({ maxLength: 20 }),
        (channel, size, properties, after) => {
          let bytes: Buffer;
          try {
            bytes = defs.encodeProperties(defs.BasicProperties, channel, size, properties);
          } catch {
            return; // (amqplib cannot encode it either)
          }
          bytes = Buffer.concat([bytes, after]);
          const ours = decoder.frame(bytes, MAX_FRAME);
          const theirs = amqplibDecode(bytes);
          if (ours === undefined) return;
          taken += 1;
          expect(Array.isArray(theirs)).toBe(true);
          const [theirFrame, theirRest] = theirs as [unknown, number];
          expect(isDeepStrictEqual(ours[0], theirFrame)).toBe(true);
          expect(ours[0]).toEqual(theirFrame);
          expect(Object.keys(ours[0].fields)).toEqual(
            Object.keys((theirFrame as { fields: object }).fields),
          );
          expect(bytes.length - ours[1]).toBe(theirRest);
        },
      ),
      { numRuns: 3_000 },
    );
    // Most of them take the fast path (only tables, arrays and tagged values do not).
    expect(taken).toBeGreaterThan(1_500);
  });

  it('decodes corrupted frames as amqplib does, or leaves them to amqplib', () => {
    const decoder = new ContentHeaderDecoder();
    fc.assert(
      fc.property(
        propertiesArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.nat(),
        (properties, flips, cut) => {
          let bytes: Buffer;
          try {
            bytes = defs.encodeProperties(defs.BasicProperties, 1, 10, properties);
          } catch {
            return;
          }
          for (const [at, value] of flips) bytes[at % bytes.length] = value;
          bytes = bytes.subarray(0, bytes.length - (cut % 3 === 0 ? cut % 7 : 0));
          const ours = decoder.frame(bytes, MAX_FRAME);
          if (ours === undefined) return;
          const theirs = amqplibDecode(bytes);
          expect(Array.isArray(theirs)).toBe(true);
          expect(isDeepStrictEqual(ours[0], (theirs as [unknown, number])[0])).toBe(true);
          expect(bytes.length - ours[1]).toBe((theirs as [unknown, number])[1]);
        },
      ),
      { numRuns: 3_000 },
    );
  });

  it('takes the header of every CloudEvent toAmqpMessage makes, reusing repeated strings', () => {
    const decoder = new ContentHeaderDecoder();
    const decoded = [1, 2].map((n) => {
      const envelope = createEnvelope({
        type: 'test.thing',
        source: '//test/ünïcode',
        data: { n },
        schemaversion: 1,
        partitionkey: `k-${n}`,
        sagaid: 'saga-1',
      });
      const { content, options } = toAmqpMessage(encodeEnvelope(envelope));
      const bytes = defs.encodeProperties(defs.BasicProperties, 3, content.length, {
        ...options,
        deliveryMode: 2,
      });
      const ours = decoder.frame(bytes, MAX_FRAME);
      expect(ours).toBeDefined();
      expect(ours![0]).toEqual((amqplibDecode(bytes) as [unknown, number])[0]);
      return ours![0].fields['headers'] as Record<string, string>;
    });
    expect(decoded[1]!['cloudEvents_partitionkey']).toBe('k-2');
    expect(decoded[1]!['cloudEvents_source']).toBe('//test/ünïcode');
  });

  it('leaves other frames, other classes, incomplete and oversized frames to amqplib', () => {
    const decoder = new ContentHeaderDecoder();
    const header = defs.encodeProperties(defs.BasicProperties, 1, 5, { messageId: 'm' });
    const deliver = defs.encodeMethod(defs.BasicDeliver, 1, {
      consumerTag: 'c',
      deliveryTag: 1,
      redelivered: false,
      exchange: 'e',
      routingKey: 'k',
    });
    const otherClass = Buffer.from(header);
    otherClass.writeUInt16BE(50, 7); // queue class
    const badEnd = Buffer.from(header);
    badEnd[badEnd.length - 1] = 0;
    for (const bytes of [
      deliver,
      frame.makeBodyFrame(1, Buffer.from('hello')),
      otherClass,
      badEnd,
      header.subarray(0, header.length - 1),
      header.subarray(0, 5),
    ]) {
      expect(decoder.frame(bytes, MAX_FRAME)).toBeUndefined();
    }
    expect(decoder.frame(header, 10)).toBeUndefined(); // larger than the frame max
    expect(decoder.frame(header, 0)).toBeDefined(); // (no max)
  });
});

describe('ContentHeaderDecoder.deliver', () => {
  const deliverArb = fc.record({
    consumerTag: fc.oneof(fc.constant('amq.ctag-1'), shortText),
    deliveryTag: fc.oneof(fc.nat(), fc.integer({ min: 2 ** 32, max: 2 ** 52 })),
    redelivered: fc.boolean(),
    exchange: fc.oneof(fc.constantFrom('orders', ''), shortText),
    routingKey: fc.oneof(fc.constant('shop.order.placed'), shortText),
  });

  it('decodes every basic.deliver frame as amqplib does, corrupted ones too, or leaves it', () => {
    const decoder = new ContentHeaderDecoder();
    let taken = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2047 }),
        deliverArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 2 }),
        fc.uint8Array({ maxLength: 10 }),
        (channel, fields, flips, after) => {
          let bytes: Buffer;
          try {
            bytes = defs.encodeMethod(defs.BasicDeliver, channel, fields);
          } catch {
            return;
          }
          bytes = Buffer.concat([bytes, after]);
          for (const [at, value] of flips) bytes[at % bytes.length] = value;
          const ours = decoder.deliver(bytes, MAX_FRAME);
          if (ours === undefined) return;
          taken += 1;
          const theirs = amqplibDecode(bytes);
          expect(Array.isArray(theirs)).toBe(true);
          expect(isDeepStrictEqual(ours[0], (theirs as [unknown, number])[0])).toBe(true);
          expect(bytes.length - ours[1]).toBe((theirs as [unknown, number])[1]);
        },
      ),
      { numRuns: 2_000 },
    );
    expect(taken).toBeGreaterThan(500);
  });

  it('leaves other methods, content headers and bodies to amqplib', () => {
    const decoder = new ContentHeaderDecoder();
    const ack = defs.encodeMethod(defs.BasicAck, 1, { deliveryTag: 1, multiple: true });
    const header = defs.encodeProperties(defs.BasicProperties, 1, 5, { messageId: 'm' });
    for (const bytes of [ack, header, frame.makeBodyFrame(1, Buffer.from('x'))]) {
      expect(decoder.deliver(bytes, MAX_FRAME)).toBeUndefined();
    }
  });
});

describe('decodeContentHeadersFast', () => {
  /** The parts of an amqplib 2 connection the decoder uses; `recvFrame` as amqplib's. */
  function fakeConnection(chunks: Buffer[]) {
    const calls: string[] = [];
    const connection = {
      rest: Buffer.alloc(0),
      maxFrameSize: MAX_FRAME,
      recvFrame(this: { rest: Buffer; recvFrame(): unknown }): unknown {
        calls.push('amqplib');
        const parsed = frame.parseFrame(this.rest, MAX_FRAME);
        if (!parsed) {
          const incoming = chunks.shift();
          if (incoming === undefined) return false;
          this.rest = Buffer.concat([this.rest, incoming]);
          return this.recvFrame();
        }
        this.rest = parsed.rest;
        return frame.decodeFrame(parsed);
      },
    };
    return { connection, calls };
  }

  it('decodes the header frames itself and the rest through amqplib, in order', () => {
    const header = defs.encodeProperties(defs.BasicProperties, 1, 5, {
      messageId: 'm-1',
      headers: { cloudEvents_id: 'm-1' },
    });
    const body = frame.makeBodyFrame(1, Buffer.from('hello'));
    const tagged = defs.encodeProperties(defs.BasicProperties, 1, 2, {
      headers: { 'x-death': [{ count: 1 }] },
    });
    const deliver = defs.encodeMethod(defs.BasicDeliver, 1, {
      consumerTag: 'c',
      deliveryTag: 7,
      redelivered: true,
      exchange: 'e',
      routingKey: 'k',
    });
    const all = Buffer.concat([deliver, header, body, tagged, header, deliver]);
    // Split inside the second header, so amqplib reads more and hands back to the decoder.
    const { connection, calls } = fakeConnection([all.subarray(0, 30), all.subarray(30)]);
    expect(decodeContentHeadersFast(connection)).toBe(true);
    expect(decodeContentHeadersFast(connection)).toBe(true); // (idempotent)
    const frames: unknown[] = [];
    for (let f = connection.recvFrame(); f; f = connection.recvFrame()) frames.push(f);
    const expected: unknown[] = [];
    for (let rest: Buffer = all; rest.length > 0;) {
      const parsed = frame.parseFrame(rest, MAX_FRAME) as { rest: Buffer };
      expected.push(frame.decodeFrame(parsed));
      rest = parsed.rest;
    }
    expect(frames).toEqual(expected);
    // amqplib's recvFrame ran for: the first read (then the deliver was decoded here), the header
    // cut in two (it read the rest, the header was decoded here), the body, the header with a
    // table in a table, and the last read (nothing left). The last header and deliver: here.
    expect(calls).toHaveLength(5);
  });

  it('changes nothing on a connection without the amqplib internals it needs', () => {
    expect(decodeContentHeadersFast({ rest: Buffer.alloc(0) })).toBe(false);
    expect(decodeContentHeadersFast(undefined)).toBe(false);
  });
});
