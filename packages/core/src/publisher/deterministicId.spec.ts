import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BACKTRACK_ID_NAMESPACE, deterministicId } from './deterministicId.js';

/** RFC 9562 version 5, spelled out: the SHA-1 digest as bytes, version and variant set on them. */
function referenceId(...parts: string[]): string {
  const hash = createHash('sha1')
    .update(Buffer.from(BACKTRACK_ID_NAMESPACE.replace(/-/g, ''), 'hex'))
    .update(parts.join('\u0000'), 'utf8')
    .digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.toString('hex', 0, 16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

describe('deterministicId', () => {
  it('is the RFC 9562 version 5 UUID of the joined parts, for any parts (every variant digit, lone surrogates, long names)', () => {
    const variants = new Set<string>();
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string({ maxLength: 400 })),
          {
            minLength: 1,
            maxLength: 4,
          },
        ),
        (parts) => {
          const id = deterministicId(...parts);
          expect(id).toBe(referenceId(...parts));
          variants.add(id[19]!);
        },
      ),
      { numRuns: 200 },
    );
    // The variant digit is computed from the hash digit: every one of its four values was seen.
    expect([...variants].sort()).toEqual(['8', '9', 'a', 'b']);
  }, 60_000);
});
