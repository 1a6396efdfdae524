import { BacktrackError } from '../../errors/BacktrackError.js';
import { CORE_ERROR_CODES } from '../../errors/codes.js';

/**
 * Another consumer holds a live lease on this message's dedupe key. Retriable: the message must
 * be redelivered (not acknowledged, not dropped); it is either finished by the lease holder (and
 * then acknowledged as a duplicate) or the lease expires and this consumer takes over.
 */
export class LeaseHeldError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.LeaseHeldError';
  constructor(key: string) {
    super(CORE_ERROR_CODES.DEDUPE_LEASE_HELD, `dedupe key ${key} is leased by another consumer`, {
      details: { key },
      retriable: true,
    });
  }
}

/** The `key` function of `idempotent()` threw or returned an empty value. Never retriable. */
export class IdempotencyKeyError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.IdempotencyKeyError';
  constructor(message: string, cause?: unknown) {
    super(CORE_ERROR_CODES.IDEMPOTENCY_KEY_INVALID, message, { cause });
  }
}
