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
  crypto as { hash?: (algorithm: string, data: Buffer, encoding: 'buffer') => Buffer }
).hash;

function sha1(data: Buffer): Buffer {
  return oneShotHash !== undefined
    ? oneShotHash('sha1', data, 'buffer')
    : crypto.createHash('sha1').update(data).digest();
}

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
  const hash = sha1(scratch.subarray(0, NAMESPACE_BYTES + written));
  hash[6] = (hash[6]! & 0x0f) | 0x50; // version 5
  hash[8] = (hash[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const hex = hash.toString('hex', 0, 16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
