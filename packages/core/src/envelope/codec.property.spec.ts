import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeEnvelope, encodeEnvelope, FORBIDDEN_JSON_KEYS } from './codec.js';
import { createEnvelope, isExtensionName } from './envelope.js';
import { MalformedMessageError } from './errors.js';
import type { EncodedMessage } from './types.js';

const nonEmpty = fc.string({ minLength: 1, maxLength: 40 });
// JSON values without the forbidden keys (those are rejected on purpose, tested elsewhere).
const json = fc
  .jsonValue({ maxDepth: 4 })
  .filter((value) => !JSON.stringify(value).match(/"(__proto__|constructor|prototype)":/));

describe('envelope codec (properties)', () => {
  it('decode(encode(envelope)) gives the envelope back', () => {
    fc.assert(
      fc.property(
        nonEmpty,
        nonEmpty,
        nonEmpty,
        fc.integer({ min: 1, max: 1_000_000 }),
        json,
        fc.option(nonEmpty, { nil: undefined }),
        fc.date({
          min: new Date('1970-01-01T00:00:00Z'),
          max: new Date('9999-12-31T00:00:00Z'),
          noInvalidDate: true,
        }),
        (id, source, type, schemaversion, data, sagaid, time) => {
          const envelope = createEnvelope({ id, source, type, schemaversion, data, sagaid, time });
          const decoded = decodeEnvelope(encodeEnvelope(envelope));
          // JSON has no -0; everything else must survive unchanged.
          expect(decoded).toEqual(JSON.parse(JSON.stringify(envelope)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('decoding arbitrary bytes and headers either succeeds or throws MalformedMessageError, keeping the input', () => {
    const headerValue = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.constantFrom('1.0', '1', '2026-01-01T00:00:00Z'),
    );
    const headers = fc.record(
      {
        id: headerValue,
        source: headerValue,
        type: headerValue,
        specversion: headerValue,
        time: headerValue,
        schemaversion: headerValue,
        'content-type': fc.constantFrom('application/json', 'text/plain', ''),
      },
      { requiredKeys: [] },
    );
    const body = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      json.map((value) => new TextEncoder().encode(JSON.stringify(value))),
    );
    fc.assert(
      fc.property(headers, body, (h, b) => {
        const message: EncodedMessage = { headers: h as Record<string, string>, body: b };
        try {
          decodeEnvelope(message);
        } catch (error) {
          expect(error).toBeInstanceOf(MalformedMessageError);
          expect((error as MalformedMessageError).original).toBe(message);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('never returns data holding a forbidden key, however it is nested or escaped', () => {
    const key = fc.constantFrom(...FORBIDDEN_JSON_KEYS);
    fc.assert(
      fc.property(json, key, fc.boolean(), (value, forbidden, escape) => {
        const name = escape ? forbidden.replace('o', '\\u006f') : forbidden;
        const text = `{"outer":[${JSON.stringify(value)},{"${name}":{"polluted":true}}]}`;
        const headers = encodeEnvelope(
          createEnvelope({ type: 't', source: '//s', schemaversion: 1, data: null }),
        ).headers;
        expect(() => decodeEnvelope({ headers, body: new TextEncoder().encode(text) })).toThrow(
          /forbidden key/,
        );
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      }),
      { numRuns: 200 },
    );
  });

  it('decode(encode(envelope)) gives subject, dataschema and extensions back in both content modes', () => {
    const extensions = fc.dictionary(
      fc.stringMatching(/^[a-z][a-z0-9]{0,9}$/).filter((name) => isExtensionName(name)),
      nonEmpty,
      { maxKeys: 4 },
    );
    fc.assert(
      fc.property(
        json,
        fc.option(nonEmpty, { nil: undefined }),
        fc.option(nonEmpty, { nil: undefined }),
        extensions,
        fc.constantFrom('binary', 'structured'),
        (data, subject, dataschema, ext, mode) => {
          const envelope = createEnvelope({
            type: 't',
            source: '//s',
            schemaversion: 3,
            data,
            subject,
            dataschema,
            extensions: ext,
          });
          const decoded = decodeEnvelope(encodeEnvelope(envelope, { mode }));
          expect(decoded).toEqual(JSON.parse(JSON.stringify(envelope)));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('decoding arbitrary structured events either succeeds or throws MalformedMessageError', () => {
    const member = fc.oneof(json, fc.constantFrom('1.0', '//s', 'x', '2026-01-01T00:00:00Z'));
    const event = fc.dictionary(
      fc.constantFrom(
        'specversion',
        'id',
        'source',
        'type',
        'time',
        'schemaversion',
        'data',
        'ext1',
        'datacontenttype',
        'data_base64',
      ),
      member,
    );
    fc.assert(
      fc.property(event, (e) => {
        const message: EncodedMessage = {
          headers: { 'content-type': 'application/cloudevents+json' },
          body: new TextEncoder().encode(JSON.stringify(e)),
        };
        try {
          decodeEnvelope(message);
        } catch (error) {
          expect(error).toBeInstanceOf(MalformedMessageError);
          expect((error as MalformedMessageError).original).toBe(message);
        }
      }),
      { numRuns: 500 },
    );
  });
});
