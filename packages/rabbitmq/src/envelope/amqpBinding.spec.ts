import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createEnvelope, decodeEnvelope, encodeEnvelope } from '@backtrack/core';
import type { EncodedMessage } from '@backtrack/core';
import { contentModeOf } from '@backtrack/core/adapter';
import { RABBIT_ERROR_CODES, RabbitError } from '../errors.js';
import { fromAmqpMessage, headerToPositiveInt, toAmqpMessage } from './amqpBinding.js';
import { readDeadLetter } from './deadLetter.js';

const encoded = encodeEnvelope(
  createEnvelope({
    type: 'order.placed',
    source: '//shop/orders',
    schemaversion: 2,
    data: { orderId: 'o-1' },
    id: 'evt-1',
    time: '2026-01-02T03:04:05.678901+02:00',
    sagaid: 'saga-1',
    causationid: 'cmd-1',
  }),
);

describe('CloudEvents AMQP binding', () => {
  it('writes every attribute but datacontenttype as a cloudEvents_ property, and id, type, content type and time as AMQP properties too', () => {
    const { content, options } = toAmqpMessage(encoded);
    expect(options).toMatchObject({
      messageId: 'evt-1',
      type: 'order.placed',
      contentType: 'application/json',
      timestamp: Math.floor(Date.parse('2026-01-02T03:04:05.678901+02:00') / 1000),
      persistent: true,
      mandatory: true,
    });
    expect(options.headers).toEqual({
      cloudEvents_id: 'evt-1',
      cloudEvents_type: 'order.placed',
      cloudEvents_source: '//shop/orders',
      cloudEvents_specversion: '1.0',
      cloudEvents_time: '2026-01-02T03:04:05.678901+02:00',
      cloudEvents_schemaversion: '2',
      cloudEvents_sagaid: 'saga-1',
      cloudEvents_causationid: 'cmd-1',
    });
    expect(content.toString()).toBe('{"orderId":"o-1"}');
  });

  it('decodes back to the same neutral message (time string kept exactly)', () => {
    const { content, options } = toAmqpMessage(encoded);
    const back = fromAmqpMessage({ content, properties: { ...options, headers: options.headers } });
    expect(back.headers).toEqual(encoded.headers);
    expect(decodeEnvelope(back)).toEqual(decodeEnvelope(encoded));
  });

  it('falls back to the timestamp property, accepts the cloudEvents: prefix and reads native AMQP values as canonical strings', () => {
    const back = fromAmqpMessage({
      content: Buffer.from('{}'),
      properties: {
        messageId: 'm',
        type: 't',
        contentType: undefined,
        timestamp: 1_700_000_000,
        headers: {
          'cloudEvents:source': '//x',
          cloudEvents_schemaversion: 3,
          cloudEvents_flag: true,
          cloudEvents_bytes: Buffer.from('b'),
          cloudEvents_nested: { a: 1 },
          'x-death': [],
          other: 'ignored',
        },
      },
    });
    expect(back.headers).toEqual({
      id: 'm',
      type: 't',
      source: '//x',
      schemaversion: '3',
      flag: 'true',
      // A byte array is a CloudEvents Binary: its canonical string is base64.
      bytes: 'Yg==',
      time: '2023-11-14T22:13:20.000Z',
    });
  });

  it('refuses an attribute the envelope reads when it is an AMQP array or table', () => {
    const read = (headers: Record<string, unknown>) => () =>
      fromAmqpMessage({
        content: Buffer.from('{}'),
        properties: {
          messageId: 'm',
          type: 't',
          contentType: undefined,
          timestamp: undefined,
          headers,
        },
      });
    expect(read({ cloudEvents_time: [new Date().toISOString()] })).toThrow(
      expect.objectContaining({
        reason: 'invalid-attribute',
        details: { reason: 'invalid-attribute', attribute: 'time' },
      }),
    );
    expect(read({ cloudEvents_id: { nested: 'id' } })).toThrow(/"id".*AMQP table/);
    // An unknown extension of that shape is only left out.
    expect(read({ cloudEvents_tenant: ['a'] })().headers).not.toHaveProperty('tenant');
  });

  it('never throws on a message without properties; the codec reports what is missing', () => {
    const back = fromAmqpMessage({
      content: Buffer.from([1, 2]),
      properties: {
        messageId: undefined,
        type: undefined,
        contentType: undefined,
        timestamp: undefined,
        headers: undefined,
      },
    });
    expect(back.headers).toEqual({});
    expect([...back.body]).toEqual([1, 2]);
  });

  it('refuses a message without an id', () => {
    const error = (() => {
      try {
        toAmqpMessage({ headers: { type: 'x' }, body: new Uint8Array() });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(RabbitError);
    expect((error as RabbitError).code).toBe(RABBIT_ERROR_CODES.MESSAGE_INVALID);
  });

  it('reads attempt headers as positive integers only', () => {
    expect(headerToPositiveInt(3)).toBe(3);
    expect(headerToPositiveInt('4')).toBe(4);
    expect(headerToPositiveInt(5n)).toBe(5);
    expect(headerToPositiveInt(0)).toBeUndefined();
    expect(headerToPositiveInt('x')).toBeUndefined();
    expect(headerToPositiveInt(1.5)).toBeUndefined();
  });

  it('reads a broker dead letter (delivery limit) with a broker: code', () => {
    const { content, options } = toAmqpMessage(encoded);
    const letter = readDeadLetter({
      content,
      properties: {
        ...options,
        headers: {
          ...options.headers,
          'x-first-death-reason': 'delivery_limit',
          'x-first-death-queue': 'billing',
        },
      },
    });
    expect(letter).toMatchObject({
      code: 'broker:delivery_limit',
      reason: 'broker: delivery_limit',
      queue: 'billing',
      attempt: 1,
    });
    expect(letter.message.headers).toEqual(encoded.headers);
  });

  it('reads cloudEvents_ properties before the AMQP properties: a transport message-id never replaces the event id', () => {
    const back = fromAmqpMessage({
      content: Buffer.from('{}'),
      properties: {
        messageId: 'transport-id',
        type: 'transport.type',
        headers: {
          cloudEvents_id: 'event-id',
          'cloudEvents:id': 'colon-id',
          cloudEvents_type: 'event.type',
          'cloudEvents:source': '//colon',
          cloudEvents_source: '//underscore',
        },
      },
    });
    expect(back.headers).toMatchObject({
      id: 'event-id',
      type: 'event.type',
      source: '//underscore',
    });
  });

  it('accepts time as an AMQP timestamp application property (amqplib decodes it as { "!": "timestamp" })', () => {
    const back = fromAmqpMessage({
      content: Buffer.from('{}'),
      properties: {
        headers: {
          cloudEvents_id: 'e',
          cloudEvents_source: '//s',
          cloudEvents_type: 't',
          cloudEvents_specversion: '1.0',
          cloudEvents_time: { '!': 'timestamp', value: 1_700_000_000 },
        },
      },
    });
    expect(back.headers['time']).toBe('2023-11-14T22:13:20.000Z');
    expect(decodeEnvelope(back).time).toBe('2023-11-14T22:13:20.000Z');
    const fromDate = fromAmqpMessage({
      content: Buffer.from('{}'),
      properties: { headers: { cloudEvents_time: new Date('2024-02-03T04:05:06Z') } },
    });
    expect(fromDate.headers['time']).toBe('2024-02-03T04:05:06.000Z');
  });

  it('keeps subject, dataschema and unknown extensions through the binding', () => {
    const message = encodeEnvelope(
      createEnvelope({
        type: 'order.placed',
        source: '//shop/orders',
        schemaversion: 1,
        data: {},
        subject: 'order/o-1',
        dataschema: 'https://schemas.example.com/order.placed/v1',
        extensions: { tenantid: 'acme', traceparent: '00-abc-def-01' },
      }),
    );
    const { content, options } = toAmqpMessage(message);
    expect(options.headers).toMatchObject({
      cloudEvents_subject: 'order/o-1',
      cloudEvents_dataschema: 'https://schemas.example.com/order.placed/v1',
      cloudEvents_tenantid: 'acme',
      cloudEvents_traceparent: '00-abc-def-01',
    });
    const envelope = decodeEnvelope(fromAmqpMessage({ content, properties: options }));
    expect(envelope).toMatchObject({
      subject: 'order/o-1',
      dataschema: 'https://schemas.example.com/order.placed/v1',
      extensions: { tenantid: 'acme', traceparent: '00-abc-def-01' },
    });
  });

  it('publishes structured mode on request: the JSON event as the body, no cloudEvents_ properties', () => {
    const { content, options } = toAmqpMessage(encoded, 'structured');
    expect(options.contentType).toBe('application/cloudevents+json; charset=utf-8');
    expect(options.messageId).toBe('evt-1');
    expect(options.type).toBe('order.placed');
    expect(options.headers).toEqual({});
    const event = JSON.parse(content.toString()) as Record<string, unknown>;
    expect(event).toMatchObject({ id: 'evt-1', type: 'order.placed', data: { orderId: 'o-1' } });
    const back = decodeEnvelope(fromAmqpMessage({ content, properties: options }));
    expect(back).toEqual(decodeEnvelope(encoded));
  });

  it('a dead letter redriven through fromAmqpMessage → toAmqpMessage (backtrack dlq redrive) keeps every attribute', () => {
    const foreign = {
      content: Buffer.from('{"orderId":"o-1"}'),
      properties: {
        messageId: 'transport-id',
        contentType: 'application/json',
        headers: {
          'cloudEvents:id': 'e-1',
          'cloudEvents:source': '//foreign',
          'cloudEvents:type': 'order.placed',
          'cloudEvents:specversion': '1.0',
          'cloudEvents:time': { '!': 'timestamp', value: 1_700_000_000 },
          'cloudEvents:subject': 'order/o-1',
          'cloudEvents:tenantid': 'acme',
          'cloudEvents:priority': 5,
          'x-backtrack-dead-letter-code': 'BT_ERR_X',
        },
      },
    };
    const before = decodeEnvelope(readDeadLetter(foreign).message);
    const { content, options } = toAmqpMessage(readDeadLetter(foreign).message);
    expect(options.messageId).toBe('e-1');
    const after = decodeEnvelope(fromAmqpMessage({ content, properties: options }));
    expect(after).toEqual(before);
    expect(after).toMatchObject({
      id: 'e-1',
      time: '2023-11-14T22:13:20.000Z',
      subject: 'order/o-1',
      extensions: { tenantid: 'acme', priority: '5' },
    });
  });

  it('maps any headers as the straightforward mapping did (one pass, remembered header names)', () => {
    /** toAmqpMessage before session 6 (binary mode given), the reference. */
    function reference(message: EncodedMessage) {
      const structured = contentModeOf(message.headers) !== 'binary';
      const id = message.headers['id'];
      if (!structured && (typeof id !== 'string' || id.length === 0)) return 'throws';
      const headers: Record<string, string> = {};
      const options: Record<string, unknown> = { persistent: true, mandatory: true, headers };
      if (typeof id === 'string' && id.length > 0) options['messageId'] = id;
      for (const [name, value] of Object.entries(message.headers)) {
        switch (name) {
          case 'content-type':
            options['contentType'] = value;
            continue;
          case 'type':
            options['type'] = value;
            break;
          case 'time': {
            const ms = Date.parse(value);
            if (Number.isFinite(ms)) options['timestamp'] = Math.floor(ms / 1000);
            break;
          }
        }
        if (!structured) headers[`cloudEvents_${name}`] = value;
      }
      return { content: Buffer.from(message.body), options };
    }
    const name = fc.oneof(
      fc.constantFrom('id', 'type', 'time', 'content-type', 'Content-Type', 'CONTENT-TYPE'),
      fc.constantFrom('source', 'specversion', '__proto__', 'constructor', '0', ''),
      fc.string({ maxLength: 14 }),
    );
    const value = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.constantFrom('', ' Application/CloudEvents+JSON ', 'application/cloudevents-batch+json'),
      fc.constantFrom('application/json', '2026-01-02T03:04:05Z', 'not a time'),
    );
    fc.assert(
      fc.property(fc.dictionary(name, value, { maxKeys: 10 }), (headers) => {
        const message = { headers, body: new Uint8Array([1, 2, 3]) };
        const expected = reference(message);
        if (expected === 'throws') {
          expect(() => toAmqpMessage(message)).toThrow(RabbitError);
          return;
        }
        const actual = toAmqpMessage(message);
        expect(actual.content.equals(expected.content)).toBe(true);
        expect(actual.options).toEqual(expected.options);
        expect(Object.keys(actual.options.headers!)).toEqual(
          Object.keys(expected.options['headers'] as object),
        );
      }),
      { numRuns: 2_000 },
    );
  });
});
