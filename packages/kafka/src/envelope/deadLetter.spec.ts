import { describe, expect, it } from 'vitest';
import type { KafkaHeaderValue } from '../client/KafkaClient.js';
import {
  NULL_HEADERS_HEADER,
  readDeadLetter,
  restoreNullHeaders,
  writableHeaders,
} from './deadLetter.js';

// Header names any producer may send that are also names on Object.prototype: found by the
// subscription's property test (a `toString` header with a null value failed the whole batch).
const prototypeNames = ['toString', '__proto__', 'constructor', 'hasOwnProperty', 'valueOf'];

describe('dead-letter headers with names of Object.prototype members', () => {
  it('writes and restores null and byte values under those names, byte for byte', () => {
    for (const name of prototypeNames) {
      const original: Record<string, KafkaHeaderValue> = Object.create(null);
      original[name] = [null, Buffer.from('b')];
      original['plain'] = null;
      const written = writableHeaders(original)!;
      expect(Object.keys(written).sort()).toEqual([NULL_HEADERS_HEADER, name, 'plain'].sort());
      const consumed: Record<string, KafkaHeaderValue> = Object.create(null);
      for (const [k, v] of Object.entries(written)) {
        consumed[k] = Array.isArray(v)
          ? v.map((x) => Buffer.from(x as Buffer | string))
          : Buffer.from(v as Buffer | string);
      }
      const back = restoreNullHeaders(consumed);
      expect(back[name]).toEqual([null, Buffer.from('b')]);
      expect(back['plain']).toBeNull();
      expect(Object.getPrototypeOf(back)).toBeNull();
      const dl = readDeadLetter(
        { key: null, value: Buffer.from('x'), headers: consumed, offset: '0', timestamp: '0' },
        0,
      );
      expect(Object.keys(dl.headers).sort()).toEqual([name, 'plain'].sort());
      expect(dl.headers[name]).toEqual([null, Buffer.from('b')]);
    }
  });

  it('does not restore a null for a name only the prototype has', () => {
    const consumed: Record<string, KafkaHeaderValue> = Object.create(null);
    consumed[NULL_HEADERS_HEADER] = Buffer.from(JSON.stringify({ toString: [0] }));
    const back = restoreNullHeaders(consumed);
    expect(Object.keys(back)).toEqual([]);
  });
});
