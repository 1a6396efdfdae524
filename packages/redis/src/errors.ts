import { BacktrackError } from '@backtrack/core';

/**
 * An option given to a Redis store's constructor (or an argument such as `list({ limit })`) is
 * invalid. Raised once, at construction for options; never retriable. `details.field` names the
 * offending field. Per-call arguments of the dedupe port (`leaseMs`, `ttlMs`, keys) raise core's
 * `DedupeConfigError` instead, exactly like the in-memory store.
 */
export class RedisStoreConfigError extends BacktrackError {
  constructor(field: string, value: unknown, expectation: string) {
    super('BT_ERR_REDIS_CONFIG_INVALID', `invalid Redis store option ${field}: ${expectation}`, {
      details: { field, value: printable(value), expectation },
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
  constructor(operation: string, cause: unknown) {
    super(
      'BT_ERR_REDIS_COMMAND_FAILED',
      `Redis rejected ${operation}: ${cause instanceof Error ? cause.message : String(cause)}`,
      { details: { operation }, cause },
    );
  }
}

function printable(value: unknown): unknown {
  return typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean'
    ? value
    : String(value);
}
