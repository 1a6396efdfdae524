import { describe, expect, it, vi } from 'vitest';
import { BacktrackError } from '../errors/BacktrackError.js';
import {
  DEFAULT_ENVELOPE_LIMITS,
  decodeEnvelope,
  encodeEnvelope,
  isJsonContentType,
} from './codec.js';
import { createEnvelope } from './envelope.js';
import { InvalidEnvelopeError, MalformedMessageError } from './errors.js';
import type { EncodedMessage, Envelope } from './types.js';

const bytes = (text: string) => new TextEncoder().encode(text);

function sample(overrides: Partial<Envelope<unknown>> = {}): Envelope<unknown> {
  return {
    ...createEnvelope(
      {
        type: 'order.placed',
        source: '//shop/orders',
        schemaversion: 2,
        data: { orderId: 'o-1', amountCents: 1250, currency: 'EUR', note: 'zoë ✓' },
        sagaid: 'saga-1',
        causationid: 'c-1',
        correlationid: 'k-1',
        producerservice: 'orders',
        producerversion: '2.4.0',
        partitionkey: 'o-1',
      },
      { generateId: () => 'id-1', now: () => new Date('2026-01-02T03:04:05.678Z') },
    ),
    ...overrides,
  };
}

function validMessage(): EncodedMessage {
  return encodeEnvelope(sample());
}

function expectMalformed(
  message: EncodedMessage,
  reason: string,
  options = {},
): MalformedMessageError {
  let caught: unknown;
  try {
    decodeEnvelope(message, options);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(MalformedMessageError);
  const error = caught as MalformedMessageError;
  expect(error).toBeInstanceOf(BacktrackError);
  expect(error.code).toBe('BT_ERR_MALFORMED_MESSAGE');
  expect(error.retriable).toBe(false);
  expect(error.reason).toBe(reason);
  expect(error.details.reason).toBe(reason);
  // The original message is kept as received: same bytes, same headers object.
  expect(error.original).toBe(message);
  expect(error.original.body).toBe(message.body);
  expect(JSON.stringify(error.toJSON())).not.toContain('orderId');
  return error;
}

describe('createEnvelope', () => {
  it('fills id, time, specversion and content type', () => {
    const envelope = createEnvelope({
      type: 't.x',
      source: '//s',
      schemaversion: 1,
      data: { a: 1 },
    });
    expect(envelope.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(Date.parse(envelope.time)).not.toBeNaN();
    expect(envelope.specversion).toBe('1.0');
    expect(envelope.datacontenttype).toBe('application/json');
    expect('sagaid' in envelope).toBe(false);
  });

  it('gives each envelope a fresh id', () => {
    const a = createEnvelope({ type: 't', source: '//s', schemaversion: 1, data: null });
    const b = createEnvelope({ type: 't', source: '//s', schemaversion: 1, data: null });
    expect(a.id).not.toBe(b.id);
  });

  it('accepts a Date for time', () => {
    const envelope = createEnvelope({
      type: 't',
      source: '//s',
      schemaversion: 1,
      data: 1,
      time: new Date('2026-05-01T00:00:00Z'),
    });
    expect(envelope.time).toBe('2026-05-01T00:00:00.000Z');
  });

  it('rejects an empty time in a process that has not yet validated any time', async () => {
    // The valid-time cache is module state: a fresh copy of the module is a fresh process.
    vi.resetModules();
    const fresh = await import('./envelope.js');
    const input = { type: 't', source: '//s', schemaversion: 1, data: 1, time: '' };
    expect(() => fresh.createEnvelope(input)).toThrow(/"time" must be an RFC 3339 timestamp/);
    fresh.createEnvelope({ ...input, time: '2026-05-01T00:00:00Z' });
    expect(() => fresh.createEnvelope(input)).toThrow(/"time" must be an RFC 3339 timestamp/);
  });

  it.each([
    [{ type: '' }, 'type'],
    [{ source: '' }, 'source'],
    [{ id: '' }, 'id'],
    [{ schemaversion: 0 }, 'schemaversion'],
    [{ schemaversion: 1.5 }, 'schemaversion'],
    [{ time: 'yesterday' }, 'time'],
    [{ sagaid: '' }, 'sagaid'],
  ])('rejects %o with InvalidEnvelopeError naming %s', (override, attribute) => {
    const input = { type: 't', source: '//s', schemaversion: 1, data: 1, ...override };
    const run = () => createEnvelope(input);
    expect(run).toThrow(InvalidEnvelopeError);
    try {
      run();
    } catch (error) {
      expect((error as InvalidEnvelopeError).code).toBe('BT_ERR_ENVELOPE_INVALID');
      expect((error as InvalidEnvelopeError).details.attribute).toBe(attribute);
    }
  });
});

describe('encodeEnvelope', () => {
  it('writes data as UTF-8 JSON and attributes as CloudEvents-named string headers', () => {
    const { headers, body } = validMessage();
    expect(headers).toEqual({
      id: 'id-1',
      source: '//shop/orders',
      type: 'order.placed',
      specversion: '1.0',
      time: '2026-01-02T03:04:05.678Z',
      schemaversion: '2',
      'content-type': 'application/json',
      sagaid: 'saga-1',
      causationid: 'c-1',
      correlationid: 'k-1',
      producerservice: 'orders',
      producerversion: '2.4.0',
      partitionkey: 'o-1',
    });
    expect(JSON.parse(new TextDecoder().decode(body))).toEqual(sample().data);
  });

  it('writes no header for an absent extension', () => {
    const envelope = createEnvelope({ type: 't', source: '//s', schemaversion: 1, data: {} });
    expect(Object.keys(encodeEnvelope(envelope).headers).sort()).toEqual(
      ['content-type', 'id', 'schemaversion', 'source', 'specversion', 'time', 'type'].sort(),
    );
  });

  it('writes the bytes TextEncoder writes, in both modes (non-ASCII and lone surrogates kept)', () => {
    // JSON.stringify escapes a lone surrogate (`\ud800` as six ASCII bytes): it round-trips.
    const text = 'zoë ✓ 𝄞 \ud800 end \udc00';
    for (const mode of ['binary', 'structured'] as const) {
      const message = encodeEnvelope(sample({ data: { text } }), { mode });
      expect(message.body).toBeInstanceOf(Uint8Array);
      const json = new TextDecoder('utf-8', { fatal: true }).decode(message.body);
      expect([...message.body]).toEqual([...bytes(json)]);
      if (mode === 'binary') expect(json).toBe(JSON.stringify({ text }));
      expect(decodeEnvelope(message).data).toEqual({ text });
    }
  });

  it('round-trips through decodeEnvelope unchanged', () => {
    expect(decodeEnvelope(validMessage())).toEqual(sample());
  });

  it('round-trips null, arrays and scalars as data', () => {
    for (const data of [null, [1, 'two'], 'text', 0, false]) {
      const envelope = sample({ data });
      expect(decodeEnvelope(encodeEnvelope(envelope)).data).toEqual(data);
    }
  });

  it('refuses data JSON cannot represent', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => encodeEnvelope(sample({ data: undefined }))).toThrow(InvalidEnvelopeError);
    expect(() => encodeEnvelope(sample({ data: 10n }))).toThrow(InvalidEnvelopeError);
    expect(() => encodeEnvelope(sample({ data: cyclic }))).toThrow(InvalidEnvelopeError);
  });

  it('refuses a non-JSON content type', () => {
    expect(() => encodeEnvelope(sample({ datacontenttype: 'application/avro' }))).toThrow(
      /not supported/,
    );
  });

  it('refuses a body over maxBytes', () => {
    expect(() => encodeEnvelope(sample({ data: 'x'.repeat(100) }), { maxBytes: 50 })).toThrow(
      /over the 50-byte limit/,
    );
  });
});

describe('decodeEnvelope', () => {
  it('exports a 1 MiB default limit', () => {
    expect(DEFAULT_ENVELOPE_LIMITS.maxBytes).toBe(1_048_576);
    expect(Object.isFrozen(DEFAULT_ENVELOPE_LIMITS)).toBe(true);
  });

  it('matches header names case-insensitively and ignores unrelated headers', () => {
    const { headers, body } = validMessage();
    const shouted = Object.fromEntries(
      Object.entries(headers).map(([k, v]) => [k.toUpperCase(), v]),
    );
    const decoded = decodeEnvelope({ headers: { ...shouted, 'x-trace': 'abc' }, body });
    expect(decoded).toEqual(sample());
  });

  it('treats a missing content-type as application/json', () => {
    const { headers, body } = validMessage();
    delete headers['content-type'];
    expect(decodeEnvelope({ headers, body }).datacontenttype).toBe('application/json');
  });

  it.each(['application/json; charset=utf-8', 'application/cloudevents+json', 'Application/JSON'])(
    'accepts content type %s',
    (type) => {
      expect(isJsonContentType(type)).toBe(true);
    },
  );

  // `time` and `schemaversion` are optional (CloudEvents; see cloudevents.spec.ts).
  it.each(['id', 'source', 'type', 'specversion'])(
    'rejects a message without the required header %s',
    (name) => {
      const message = validMessage();
      delete message.headers[name];
      const error = expectMalformed(message, 'missing-attribute');
      expect(error.details.attribute).toBe(name);
    },
  );

  it('reads only the headers object own properties, never inherited ones', () => {
    const { headers, body } = validMessage();
    delete headers.id;
    delete headers.sagaid;
    const inheriting = Object.assign(
      Object.create({ id: 'inherited-id', sagaid: 'inherited-saga', tenantid: 'acme' }) as Record<
        string,
        string
      >,
      headers,
    );
    expect(
      expectMalformed({ headers: inheriting, body }, 'missing-attribute').details.attribute,
    ).toBe('id');
    inheriting.id = 'id-1';
    const decoded = decodeEnvelope({ headers: inheriting, body });
    expect(decoded.sagaid).toBeUndefined();
    expect(decoded.extensions).toBeUndefined();
  });

  it('reports the first bad attribute in a fixed order whatever the header order', () => {
    const { headers, body } = validMessage();
    const reversed = Object.fromEntries(Object.entries(headers).reverse());
    reversed.partitionkey = '';
    reversed.subject = '';
    reversed.source = '';
    expect(
      expectMalformed({ headers: reversed, body }, 'missing-attribute').details.attribute,
    ).toBe('source');
    reversed.source = '//shop/orders';
    expect(
      expectMalformed({ headers: reversed, body }, 'invalid-attribute').details.attribute,
    ).toBe('subject');
  });

  it('rejects an empty required header', () => {
    const message = validMessage();
    message.headers.id = '';
    expectMalformed(message, 'missing-attribute');
  });

  it('rejects an empty optional header', () => {
    const message = validMessage();
    message.headers.sagaid = '';
    expectMalformed(message, 'invalid-attribute');
  });

  it('rejects a header that is not a string (an adapter forgot to convert a Buffer)', () => {
    const message = validMessage();
    (message.headers as Record<string, unknown>).type = Buffer.from('order.placed');
    const error = expectMalformed(message, 'invalid-attribute');
    expect(error.details.attribute).toBe('type');
  });

  it('rejects the same header twice with different values', () => {
    const message = validMessage();
    message.headers.TYPE = 'other.type';
    expectMalformed(message, 'invalid-attribute');
  });

  it.each(['0.3', '1', '2.0'])('rejects specversion %s', (version) => {
    const message = validMessage();
    message.headers.specversion = version;
    expectMalformed(message, 'unsupported-specversion');
  });

  it.each(['1.5', 'two', '0', '-1', '01', '1e3', ' 2', '9999999999999999'])(
    'rejects schemaversion %j',
    (version) => {
      const message = validMessage();
      message.headers.schemaversion = version;
      const error = expectMalformed(message, 'invalid-attribute');
      expect(error.details.attribute).toBe('schemaversion');
    },
  );

  it.each(['yesterday', '2026-13-45T00:00:00Z', '2026-01-02 03:04:05'])(
    'rejects time %j',
    (time) => {
      const message = validMessage();
      message.headers.time = time;
      expectMalformed(message, 'invalid-attribute');
    },
  );

  it.each([
    'text/plain',
    'application/avro',
    'application/json; charset=latin1',
    'application/xml',
  ])('rejects content type %s', (type) => {
    const message = validMessage();
    message.headers['content-type'] = type;
    expectMalformed(message, 'unsupported-content-type');
  });

  it('rejects invalid UTF-8', () => {
    const message = {
      headers: validMessage().headers,
      body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]),
    };
    expectMalformed(message, 'invalid-utf8');
  });

  it.each(['{"a":', '', 'undefined', "{'a':1}"])('rejects invalid JSON %j', (text) => {
    expectMalformed({ headers: validMessage().headers, body: bytes(text) }, 'invalid-json');
  });

  it('rejects pathologically deep JSON without crashing', () => {
    const deep = '['.repeat(200_000) + ']'.repeat(200_000);
    const message = { headers: validMessage().headers, body: bytes(deep) };
    // Either V8 parses it or it overflows; an overflow must come back as malformed, not a crash.
    try {
      decodeEnvelope(message, { maxBytes: 1_000_000 });
    } catch (error) {
      expect(error).toBeInstanceOf(MalformedMessageError);
    }
  });

  it('rejects a body over maxBytes before parsing it', () => {
    const message = { headers: validMessage().headers, body: bytes(`"${'x'.repeat(2000)}"`) };
    const error = expectMalformed(message, 'too-large', { maxBytes: 1000 });
    expect(error.details).toMatchObject({ bytes: 2002, maxBytes: 1000 });
    expect(decodeEnvelope(message, { maxBytes: 2002 }).data).toHaveLength(2000);
  });

  it.each([
    '{"__proto__":{"polluted":true}}',
    '{"a":[{"constructor":{"prototype":{"polluted":true}}}]}',
    '{"nested":{"prototype":1}}',
    '{"__pro\\u0074o__":{"polluted":true}}',
  ])('rejects the prototype-pollution payload %s', (json) => {
    const error = expectMalformed(
      { headers: validMessage().headers, body: bytes(json) },
      'forbidden-key',
    );
    expect(error.message).toMatch(/forbidden key/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('accepts the forbidden words as values and inside longer keys', () => {
    const data = { kind: 'constructor', prototypeId: 'p', text: '__proto__', escaped: '\u00e9' };
    expect(decodeEnvelope(encodeEnvelope(sample({ data }))).data).toEqual(data);
  });

  it('rejects a body that is not bytes and headers that are not an object', () => {
    expectMalformed(
      { headers: validMessage().headers, body: 'text' as unknown as Uint8Array },
      'invalid-shape',
    );
    expectMalformed(
      { headers: null as unknown as Record<string, string>, body: bytes('{}') },
      'invalid-shape',
    );
  });

  it('accepts a Buffer body (a Uint8Array subclass)', () => {
    const { headers, body } = validMessage();
    expect(decodeEnvelope({ headers, body: Buffer.from(body) })).toEqual(sample());
  });
});
