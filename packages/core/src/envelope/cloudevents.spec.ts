import { describe, expect, it } from 'vitest';
import {
  contentModeOf,
  decodeEnvelope,
  encodeEnvelope,
  STRUCTURED_CONTENT_TYPE,
  toStructuredMessage,
} from './codec.js';
import { createEnvelope, schemaVersionFromDataschema, withDataschemaVersion } from './envelope.js';
import {
  BatchModeUnsupportedError,
  InvalidEnvelopeError,
  MalformedMessageError,
} from './errors.js';
import type { EncodedMessage } from './types.js';

const bytes = (text: string) => new TextEncoder().encode(text);

const full = createEnvelope({
  type: 'order.placed',
  source: '//shop/orders',
  schemaversion: 2,
  data: { orderId: 'o-1', amountCents: 1250 },
  id: 'id-1',
  time: '2026-01-02T03:04:05.678Z',
  subject: 'order/o-1',
  dataschema: 'https://schemas.example.com/order.placed/v2',
  sagaid: 'saga-1',
  causationid: 'c-1',
  correlationid: 'k-1',
  producerservice: 'orders',
  producerversion: '2.4.0',
  partitionkey: 'o-1',
  extensions: {
    tenantid: 'acme',
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  },
});

/** A plain CloudEvent from a foreign producer, binary mode: only the required attributes. */
function plain(extra: Record<string, string> = {}): EncodedMessage {
  return {
    headers: { id: 'f-1', source: '//foreign', type: 'order.placed', specversion: '1.0', ...extra },
    body: bytes('{"orderId":"o-9"}'),
  };
}

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('CloudEvents attributes in the envelope', () => {
  it('round-trips subject, dataschema and unknown extensions in binary mode', () => {
    const message = encodeEnvelope(full);
    expect(message.headers).toMatchObject({
      subject: 'order/o-1',
      dataschema: 'https://schemas.example.com/order.placed/v2',
      tenantid: 'acme',
      traceparent: full.extensions!['traceparent'],
    });
    expect(decodeEnvelope(message)).toEqual(full);
  });

  it('accepts a plain CloudEvent without time and schemaversion', () => {
    const envelope = decodeEnvelope(plain());
    expect(envelope.time).toBeUndefined();
    expect('time' in envelope).toBe(false);
    expect(envelope.schemaversion).toBe(1);
    expect(envelope.data).toEqual({ orderId: 'o-9' });
  });

  it('takes the schema version from a dataschema that names one, else from the per-type default', () => {
    expect(
      decodeEnvelope(plain({ dataschema: 'https://schemas.example.com/order.placed/v3' }))
        .schemaversion,
    ).toBe(3);
    expect(
      decodeEnvelope(plain(), { defaultSchemaVersion: (type) => (type === 'order.placed' ? 2 : 1) })
        .schemaversion,
    ).toBe(2);
    // An explicit schemaversion wins over both.
    expect(
      decodeEnvelope(plain({ schemaversion: '4', dataschema: 'urn:x:v3' }), {
        defaultSchemaVersion: () => 2,
      }).schemaversion,
    ).toBe(4);
  });

  it.each([
    ['https://schemas.example.com/order.placed/v2', 2],
    ['https://schemas.example.com/order.placed/v12.json', 12],
    ['urn:schemas:order.placed:v5', 5],
    ['https://schemas.example.com/order.placed.json#v7', 7],
    ['https://registry.example.com/subjects/orders-value/versions/3', 3],
    ['https://schemas.example.com/order.placed?version=6', 6],
    ['https://schemas.example.com/order.placed.json', undefined],
    ['https://schemas.example.com/v0', undefined],
    ['https://schemas.example.com/v2/order.placed', undefined],
  ])('reads the version of dataschema %s as %s', (uri, version) => {
    expect(schemaVersionFromDataschema(uri)).toBe(version);
  });

  it('rewrites a versioned dataschema for another version, leaves others alone', () => {
    expect(withDataschemaVersion('https://s.example.com/order.placed/v2', 2, 1)).toBe(
      'https://s.example.com/order.placed/v1',
    );
    expect(withDataschemaVersion('https://r.example.com/subjects/x/versions/2', 2, 10)).toBe(
      'https://r.example.com/subjects/x/versions/10',
    );
    expect(withDataschemaVersion('https://s.example.com/order.placed.json', 2, 1)).toBe(
      'https://s.example.com/order.placed.json',
    );
    expect(withDataschemaVersion(undefined, 2, 1)).toBeUndefined();
  });

  it('ignores headers that cannot be attribute names and never keeps constructor/prototype', () => {
    const envelope = decodeEnvelope(
      plain({ 'x-trace': 'a', constructor: 'b', prototype: 'c', tenantid: 'acme' }),
    );
    expect(envelope.extensions).toEqual({ tenantid: 'acme' });
    expect(Object.getPrototypeOf(envelope.extensions)).toBe(Object.prototype);
  });

  it('rejects an empty extension header', () => {
    const error = caught(() => decodeEnvelope(plain({ tenantid: '' })));
    expect(error).toBeInstanceOf(MalformedMessageError);
    expect((error as MalformedMessageError).reason).toBe('invalid-attribute');
  });

  it('refuses to create envelopes with invalid extensions', () => {
    const base = { type: 't', source: '//s', schemaversion: 1, data: null };
    for (const extensions of [
      { 'Bad-Name': 'x' },
      { sagaid: 'use the typed field' },
      { constructor: 'x' },
      { tenantid: '' },
      { tenantid: 1.5 },
      { tenantid: { nested: true } },
    ]) {
      expect(() =>
        createEnvelope({ ...base, extensions: extensions as unknown as Record<string, string> }),
      ).toThrow(InvalidEnvelopeError);
    }
  });
});

describe('structured content mode', () => {
  it('encodes the event in the CloudEvents JSON format and decodes it back', () => {
    const message = encodeEnvelope(full, { mode: 'structured' });
    expect(message.headers['content-type']).toBe(`${STRUCTURED_CONTENT_TYPE}; charset=utf-8`);
    expect(contentModeOf(message.headers)).toBe('structured');
    const event = JSON.parse(new TextDecoder().decode(message.body)) as Record<string, unknown>;
    expect(event).toEqual({
      specversion: '1.0',
      id: 'id-1',
      source: '//shop/orders',
      type: 'order.placed',
      time: '2026-01-02T03:04:05.678Z',
      datacontenttype: 'application/json',
      subject: 'order/o-1',
      dataschema: 'https://schemas.example.com/order.placed/v2',
      schemaversion: 2,
      sagaid: 'saga-1',
      causationid: 'c-1',
      correlationid: 'k-1',
      producerservice: 'orders',
      producerversion: '2.4.0',
      partitionkey: 'o-1',
      tenantid: 'acme',
      traceparent: full.extensions!['traceparent'],
      data: { orderId: 'o-1', amountCents: 1250 },
    });
    expect(decodeEnvelope(message)).toEqual(full);
    expect(decodeEnvelope(toStructuredMessage(encodeEnvelope(full)))).toEqual(full);
  });

  it('reads a foreign structured event: only the body counts, JSON-typed extensions kept', () => {
    const message: EncodedMessage = {
      // Headers of a structured message are not read (this stale id must not win).
      headers: { 'Content-Type': 'application/cloudevents+json', id: 'stale' },
      body: bytes(
        JSON.stringify({
          specversion: '1.0',
          id: 'f-2',
          source: '//foreign',
          type: 'order.placed',
          count: 3,
          sampled: true,
          empty: null,
          data: { orderId: 'o-2' },
        }),
      ),
    };
    const envelope = decodeEnvelope(message);
    expect(envelope).toEqual({
      id: 'f-2',
      source: '//foreign',
      type: 'order.placed',
      specversion: '1.0',
      datacontenttype: 'application/json',
      schemaversion: 1,
      extensions: { count: 3, sampled: true },
      data: { orderId: 'o-2' },
    });
    // Re-encoded in binary mode the JSON-typed extensions become their canonical strings.
    expect(encodeEnvelope(envelope).headers).toMatchObject({ count: '3', sampled: 'true' });
  });

  it.each([
    ['not an object', '[1,2]', 'invalid-shape'],
    [
      'a prototype-pollution key in data',
      '{"specversion":"1.0","id":"a","source":"//s","type":"t","data":{"__proto__":{"x":1}}}',
      'forbidden-key',
    ],
    [
      'a prototype-pollution key as an attribute',
      '{"specversion":"1.0","id":"a","source":"//s","type":"t","constructor":"x","data":1}',
      'forbidden-key',
    ],
    ['no id', '{"specversion":"1.0","source":"//s","type":"t","data":1}', 'missing-attribute'],
    [
      'a numeric id',
      '{"specversion":"1.0","id":5,"source":"//s","type":"t","data":1}',
      'invalid-attribute',
    ],
    [
      'an object extension',
      '{"specversion":"1.0","id":"a","source":"//s","type":"t","ext":{},"data":1}',
      'invalid-attribute',
    ],
    [
      'binary data',
      '{"specversion":"1.0","id":"a","source":"//s","type":"t","data_base64":"AA=="}',
      'unsupported-content-type',
    ],
    [
      'specversion 0.3',
      '{"specversion":"0.3","id":"a","source":"//s","type":"t","data":1}',
      'unsupported-specversion',
    ],
    ['invalid JSON', '{"specversion":', 'invalid-json'],
  ])('dead-letters a structured event with %s', (_, text, reason) => {
    const message: EncodedMessage = {
      headers: { 'content-type': STRUCTURED_CONTENT_TYPE },
      body: bytes(text),
    };
    const error = caught(() => decodeEnvelope(message));
    expect(error).toBeInstanceOf(MalformedMessageError);
    expect((error as MalformedMessageError).reason).toBe(reason);
    expect((error as MalformedMessageError).original).toBe(message);
  });

  it('reads datacontenttype only from its own member, never from a "content-type" member', () => {
    const message: EncodedMessage = {
      headers: { 'content-type': STRUCTURED_CONTENT_TYPE },
      body: bytes(
        '{"specversion":"1.0","id":"a","source":"//s","type":"t","content-type":"text/plain","data":1}',
      ),
    };
    expect(decodeEnvelope(message).datacontenttype).toBe('application/json');
  });

  it('no longer reports a structured event as a binary one missing its "id" header', () => {
    const message = encodeEnvelope(full, { mode: 'structured' });
    const onlyContentType = {
      headers: { 'content-type': message.headers['content-type']! },
      body: message.body,
    };
    expect(decodeEnvelope(onlyContentType)).toEqual(full);
  });

  it('applies maxBytes to the whole structured event', () => {
    const message = encodeEnvelope(full, { mode: 'structured' });
    const error = caught(() => decodeEnvelope(message, { maxBytes: 100 }));
    expect((error as MalformedMessageError).reason).toBe('too-large');
  });
});

describe('batched content mode', () => {
  it('is dead-lettered with its own code and reason', () => {
    const message: EncodedMessage = {
      headers: { 'content-type': 'application/cloudevents-batch+json; charset=utf-8' },
      body: bytes('[{"specversion":"1.0","id":"a","source":"//s","type":"t","data":1}]'),
    };
    const error = caught(() => decodeEnvelope(message));
    expect(error).toBeInstanceOf(BatchModeUnsupportedError);
    expect(error).toBeInstanceOf(MalformedMessageError);
    const e = error as BatchModeUnsupportedError;
    expect(e.code).toBe('BT_ERR_CLOUDEVENTS_BATCH_UNSUPPORTED');
    expect(e.reason).toBe('batch-mode-unsupported');
    expect(e.retriable).toBe(false);
    expect(e.message).toMatch(/batched content mode/);
    expect(e.original).toBe(message);
    expect(contentModeOf(message.headers)).toBe('batch');
  });
});
