import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defaultIdempotencyKey, encodeKeyPart } from './middleware.js';

/** The key as it was built before the fast path: every part through `encodeURIComponent`. */
function previousKey(consumer: string, source: string, id: string): string {
  return `${encodeURIComponent(consumer)}:${encodeURIComponent(source)}:${encodeURIComponent(id)}`;
}

function outcome(fn: () => string): { value: string } | { error: string } {
  try {
    return { value: fn() };
  } catch (error) {
    return { error: (error as Error).name };
  }
}

// Strings dense in the characters at the edge of the safe set, plus any code unit (lone
// surrogates included, on which encodeURIComponent throws).
const edgy = fc.string({
  unit: fc.constantFrom(..."aZ09-_.!~*'():/%?#[]@&=+$, \u00e9\u20ac", '\ud83d\ude00', '\ud800'),
});
const anyPart = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'grapheme' }),
  fc.string({ unit: 'binary-ascii' }),
  edgy,
);

describe('defaultIdempotencyKey', () => {
  it('gives the same key as encoding every part, for any consumer, source and id', () => {
    fc.assert(
      fc.property(anyPart, anyPart, anyPart, (consumer, source, id) => {
        expect(outcome(() => defaultIdempotencyKey(consumer, { source, id }))).toEqual(
          outcome(() => previousKey(consumer, source, id)),
        );
      }),
      { numRuns: 2000 },
    );
  });

  it('encodeKeyPart returns a safe id itself and escapes the separator and the rest', () => {
    const id = "AZaz09-_.!~*'()";
    expect(encodeKeyPart(id)).toBe(id);
    expect(encodeKeyPart('a:b')).toBe('a%3Ab');
    expect(encodeKeyPart('a%3Ab')).toBe('a%253Ab');
    expect(encodeKeyPart('é')).toBe('%C3%A9');
    expect(encodeKeyPart('')).toBe('');
    expect(() => encodeKeyPart('\ud800')).toThrow(URIError);
  });

  it('keeps different triples apart when a part contains the separator', () => {
    expect(defaultIdempotencyKey('c', { source: 'a:b', id: 'x' })).not.toBe(
      defaultIdempotencyKey('c', { source: 'a', id: 'b:x' }),
    );
  });

  it("keys a rollback's replay by the effect it replays (`replayof`), and nothing else by it", () => {
    const original = defaultIdempotencyKey('c', { source: '//shop', id: 'o-1' });
    expect(
      defaultIdempotencyKey('c', {
        source: '//shop',
        id: 'replay-of-o-1',
        extensions: { replayof: 'o-1', tenantid: 'acme' },
      }),
    ).toBe(original);
    // Encoded like an id: a `replayof` with the separator cannot reach another triple.
    expect(
      defaultIdempotencyKey('c', { source: '//shop', id: 'r', extensions: { replayof: 'b:x' } }),
    ).toBe(previousKey('c', '//shop', 'b:x'));
    // Not a usable id: the replay's own id.
    for (const replayof of ['', 7, true]) {
      expect(
        defaultIdempotencyKey('c', { source: '//shop', id: 'r', extensions: { replayof } }),
      ).toBe(previousKey('c', '//shop', 'r'));
    }
    expect(
      defaultIdempotencyKey('c', { source: '//shop', id: 'r', extensions: { tenantid: 'o-1' } }),
    ).toBe(previousKey('c', '//shop', 'r'));
  });
});
