import * as crypto from 'node:crypto';

/** The UUID namespace of Backtrack's deterministic ids (a random v4 UUID, fixed forever). */
export const BACKTRACK_ID_NAMESPACE = '5b1f3c9e-8a2d-4c7b-9e61-2f0d4a8b7c35';

function uuidBytes(uuid: string): Buffer {
  return Buffer.from(uuid.replace(/-/g, ''), 'hex');
}

/** The namespace's 16 bytes, then the name: written in place for each id (no concatenation). */
let scratch = Buffer.alloc(256);
uuidBytes(BACKTRACK_ID_NAMESPACE).copy(scratch, 0);
const NAMESPACE_BYTES = 16;

/** `crypto.hash` (Node >= 20.12: one call, no Hash object), else a Hash object. */
const oneShotHash = (
  crypto as { hash?: (algorithm: string, data: Buffer, encoding: 'hex') => string }
).hash;

/**
 * The SHA-1 of `data` as 40 lower-case hex digits. Hex, not a Buffer: the digest as a string
 * costs one string, where a Buffer result costs a new ArrayBuffer per id (measured: 3.3 µs a
 * `'buffer'` digest against 1 µs a `'hex'` one, bench/README.md "Envelope CPU (session 7)").
 */
function sha1Hex(data: Buffer): string {
  return oneShotHash !== undefined
    ? oneShotHash('sha1', data, 'hex')
    : crypto.createHash('sha1').update(data).digest('hex');
}

/**
 * The hex digit of a UUID's variant nibble (RFC 4122: `10xx`) for each hex digit of the hash
 * nibble it replaces: the low two bits are kept, the high two become `10`.
 */
const VARIANT_DIGIT: Readonly<Record<string, string>> = Object.fromEntries(
  [...'0123456789abcdef'].map((digit) => [digit, '89ab'[parseInt(digit, 16) & 3]!]),
);

/**
 * A name-based UUID (RFC 9562 version 5: SHA-1 of namespace + name): the same inputs always give
 * the same id. Rollbacks use it so a compensation or replay published twice (a crash between
 * the broker's acknowledgement and the progress write) carries the same envelope id both times,
 * and consumers' dedupe drops the second copy. Use it in handlers too: an event published
 * in reaction to message `m` with id `deterministicId(m.id, 'order.confirmed')` stays one event
 * however often the handler is retried.
 *
 * @param parts joined with a NUL separator (so `('a:b', 'c')` and `('a', 'b:c')` differ).
 */
export function deterministicId(...parts: readonly string[]): string {
  const name = parts.length === 1 ? parts[0]! : parts.join('\u0000');
  // At most 3 UTF-8 bytes per UTF-16 code unit.
  const most = NAMESPACE_BYTES + name.length * 3;
  if (most > scratch.length) {
    const larger = Buffer.alloc(Math.max(most, scratch.length * 2));
    scratch.copy(larger, 0, 0, NAMESPACE_BYTES);
    scratch = larger;
  }
  const written = scratch.write(name, NAMESPACE_BYTES, 'utf8');
  const hex = sha1Hex(scratch.subarray(0, NAMESPACE_BYTES + written));
  // The first 16 bytes of the hash, with the version (5) in the high nibble of byte 6 (digit
  // 12) and the variant in the high two bits of byte 8 (digit 16).
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${VARIANT_DIGIT[hex[16]!]!}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
