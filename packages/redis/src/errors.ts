import { BacktrackError } from '@backtrack/core';
import { REDIS_ACCESS_ERROR_CODES } from './connectionErrors.js';
import { configDetails } from '@backtrack/core/adapter';

/**
 * Stable codes of the errors `@backtrack/redis` throws (listed, each with a fix, in docs/errors.md;
 * never reused). Branch on these, not on messages.
 */
export const REDIS_ERROR_CODES = {
  // Bad credentials, missing rights, certificates that do not verify (never retriable).
  ...REDIS_ACCESS_ERROR_CODES,
  CONFIG_INVALID: 'BT_ERR_REDIS_CONFIG_INVALID',
  COMMAND_FAILED: 'BT_ERR_REDIS_COMMAND_FAILED',
} as const;

/** One of {@link REDIS_ERROR_CODES}. */
export type RedisErrorCode = (typeof REDIS_ERROR_CODES)[keyof typeof REDIS_ERROR_CODES];

/**
 * An option given to a Redis store's constructor (or an argument such as `list({ limit })`) is
 * invalid. Raised once, at construction for options; never retriable. `details.field` names the
 * offending field. Per-call arguments of the dedupe port (`leaseMs`, `ttlMs`, keys) raise core's
 * `DedupeConfigError` instead, exactly like the in-memory store.
 */
export class RedisStoreConfigError extends BacktrackError {
  static override readonly brand: string = '@backtrack/redis.RedisStoreConfigError';
  constructor(field: string, expectation: string, value?: unknown) {
    super(REDIS_ERROR_CODES.CONFIG_INVALID, `invalid Redis store option ${field}: ${expectation}`, {
      details: configDetails(field, expectation, value),
    });
  }
}

/**
 * Redis answered a command with an error that retrying will not fix (for example `WRONGTYPE`:
 * another application wrote a different type under the store's key prefix). Not retriable.
 * Transient answers (`LOADING`, `BUSY`, `READONLY`, `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`,
 * `OOM`) become the retriable `StoreUnavailableError` instead.
 */
export class RedisCommandError extends BacktrackError {
  static override readonly brand: string = '@backtrack/redis.RedisCommandError';
  constructor(operation: string, cause: unknown) {
    super(
      REDIS_ERROR_CODES.COMMAND_FAILED,
      `Redis rejected ${operation}: ${cause instanceof Error ? cause.message : String(cause)}`,
      { details: { operation }, cause },
    );
  }
}
