/**
 * The publish frames Backtrack makes itself are amqplib's, byte for byte: every message the fast
 * encoder takes is compared with what amqplib's own encoder (`Args.publish`, `encodeMethod`,
 * `encodeProperties`, `makeBodyFrame`) writes for it; what it does not take goes to amqplib.
 */
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import type { ConfirmChannel, Options } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { encodeEnvelope, createEnvelope } from '@backtrack/core';
import { toAmqpMessage } from '../envelope/amqpBinding.js';
import { encodePublish, publishOn } from './publishFrames.js';

// amqplib's package exports hide lib/: load its files by path.
const require = createRequire(import.meta.url);
const lib = join(dirname(require.resolve('amqplib')), 'lib');
const defs = require(join(lib, 'defs.js')) as {
  BasicPublish: number;
  BasicProperties: number;
  encodeMethod(method: number, channel: number, fields: unknown): Buffer;
  encodeProperties(id: number, channel: number, size: number, fields: unknown): Buffer;
};
const frame = require(join(lib, 'frame.js')) as {
  makeBodyFrame(channel: number, payload: Buffer): Buffer;
};
const args = require(join(lib, 'api_args.js')) as {
  publish(exchange: string, routingKey: string, options: Options.Publish): unknown;
};

/** amqplib's frames of a publish (head only when the body is sent apart), or its error. */
function amqplibFrames(
  channel: number,
  exchange: string,
  routingKey: string,
  content: Buffer,
  options: Options.Publish,
  withBody: boolean,
): Buffer | Error {
  try {
    const fields = args.publish(exchange, routingKey, options);
    const parts = [
      defs.encodeMethod(defs.BasicPublish, channel, fields),
      defs.encodeProperties(defs.BasicProperties, channel, content.length, fields),
    ];
    if (withBody && content.length > 0) parts.push(frame.makeBodyFrame(channel, content));
    return Buffer.concat(parts);
  } catch (error) {
    return error as Error;
  }
}

const text = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 90 }), // lone surrogates, astral characters, 3-byte units
  fc.string({ minLength: 250, maxLength: 300 }),
);
const headerValue = fc.oneof(
  { weight: 8, arbitrary: text },
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.boolean(), fc.constant(null)) },
);
const optionsArb: fc.Arbitrary<Options.Publish> = fc.record(
  {
    headers: fc.dictionary(fc.oneof(text, fc.constantFrom('1', '007', 'CC')), headerValue, {
      maxKeys: 14,
    }),
    persistent: fc.boolean(),
    deliveryMode: fc.oneof(fc.boolean(), fc.integer({ min: 0, max: 300 })),
    mandatory: fc.boolean(),
    contentType: text,
    contentEncoding: text,
    priority: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.constant(1.5)),
    correlationId: text,
    replyTo: text,
    messageId: text,
    timestamp: fc.oneof(fc.nat(), fc.integer({ min: 2 ** 32, max: 2 ** 40 }), fc.constant(-1)),
    type: text,
    userId: text,
    appId: text,
    expiration: fc.constant('1000'),
    CC: fc.constant('elsewhere'),
  },
  { requiredKeys: [] },
);

describe('publish frames', () => {
  it('are amqplib’s, byte for byte, whenever the fast encoder takes the message', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2047 }),
        text,
        text,
        fc.uint8Array({ maxLength: 2500 }),
        optionsArb,
        (channel, exchange, routingKey, body, options) => {
          const content = Buffer.from(body);
          const ours = encodePublish(channel, exchange, routingKey, content, options);
          if (ours === undefined) return;
          const theirs = amqplibFrames(
            channel,
            exchange,
            routingKey,
            content,
            options,
            ours.complete,
          );
          expect(theirs).toBeInstanceOf(Buffer);
          expect(ours.bytes.toString('hex')).toBe((theirs as Buffer).toString('hex'));
        },
      ),
      { numRuns: 3_000 },
    );
  });

  it('takes every CloudEvent toAmqpMessage makes (no fallback on the hot path)', () => {
    for (const [data, oneChunk] of [
      [{ n: 1 }, true],
      [{ text: 'å'.repeat(600) }, undefined],
      [{ big: 'x'.repeat(5_000) }, false],
    ] as const) {
      const envelope = createEnvelope({
        type: 'test.thing',
        source: '//test/ünïcode',
        data,
        schemaversion: 1,
        partitionkey: 'k-1',
        sagaid: 'saga-1',
      });
      const { content, options } = toAmqpMessage(encodeEnvelope(envelope));
      const ours = encodePublish(7, 'orders', 'test.thing', content, options);
      expect(ours).toBeDefined();
      if (oneChunk !== undefined) expect(ours!.complete).toBe(oneChunk);
      const theirs = amqplibFrames(7, 'orders', 'test.thing', content, options, ours!.complete);
      expect(ours!.bytes.equals(theirs as Buffer)).toBe(true);
    }
  });

  it('leaves to amqplib what only amqplib encodes: other header types, CC, expiration', () => {
    const content = Buffer.from('{}');
    for (const options of [
      { headers: { 'x-backtrack-attempt': 2 } },
      { headers: { list: ['a'] } },
      { headers: { when: { '!': 'timestamp', value: 1 } } },
      { CC: 'other' },
      { expiration: 5_000 },
      { priority: 1.5 },
      { timestamp: -1 },
      { messageId: 'x'.repeat(256) },
    ] as Options.Publish[]) {
      expect(encodePublish(1, 'e', 'k', content, options)).toBeUndefined();
    }
  });
});

describe('publishOn', () => {
  /** The parts of an amqplib 2 confirm channel publishOn writes to. */
  function fakeChannel() {
    const written: Buffer[] = [];
    const confirms: unknown[] = [];
    const published: unknown[][] = [];
    const connection = {
      channels: [null, { buffer: { write: (b: Buffer) => (written.push(b), true) } }],
      sentSinceLastCheck: false,
      sendContent: () => true,
    };
    const channel = Object.assign(new EventEmitter(), {
      ch: 1,
      connection,
      pushConfirmCallback: (cb: unknown) => confirms.push(cb),
      publish: (...a: unknown[]) => (published.push(a), true),
    });
    return { channel, connection, written, confirms, published };
  }

  it('writes the frames to the channel’s buffer and registers the confirm callback', () => {
    const { channel, connection, written, confirms, published } = fakeChannel();
    const cb = () => undefined;
    const options = { persistent: true, mandatory: true, headers: { a: 'b' }, messageId: 'm' };
    publishOn(channel as unknown as ConfirmChannel, 'e', 'k', Buffer.from('x'), options, cb);
    expect(published).toHaveLength(0);
    expect(confirms).toEqual([cb]);
    expect(connection.sentSinceLastCheck).toBe(true);
    expect(written).toHaveLength(1);
    expect(
      written[0]!.equals(amqplibFrames(1, 'e', 'k', Buffer.from('x'), options, true) as Buffer),
    ).toBe(true);
  });

  it('hands a closing channel or connection (amqplib replaced its send methods) to amqplib', () => {
    for (const target of ['channel', 'connection'] as const) {
      const fake = fakeChannel();
      const owner = target === 'channel' ? fake.channel : fake.connection;
      Object.assign(owner, { sendMessage: () => undefined });
      const cb = () => undefined;
      publishOn(fake.channel as unknown as ConfirmChannel, 'e', 'k', Buffer.from('x'), {}, cb);
      expect(fake.published).toEqual([['e', 'k', Buffer.from('x'), {}, cb]]);
      expect(fake.written).toHaveLength(0);
    }
  });

  it('uses amqplib’s publish when its internals are not there', () => {
    const published: unknown[][] = [];
    const channel = { publish: (...a: unknown[]) => (published.push(a), true) };
    publishOn(
      channel as unknown as ConfirmChannel,
      'e',
      'k',
      Buffer.from('x'),
      {},
      () => undefined,
    );
    expect(published).toHaveLength(1);
  });
});
