import { BacktrackError } from '../errors/BacktrackError.js';

/**
 * A dedupe store option or call argument is invalid (a non-positive lease, an empty key, a
 * retention outside the allowed range). Raised at construction for options, at the call for
 * arguments; never retriable. `details.field` names the offending field.
 */
export class DedupeConfigError extends BacktrackError {
  constructor(field: string, value: unknown, expectation: string) {
    super('BT_ERR_DEDUPE_CONFIG_INVALID', `invalid dedupe ${field}: ${expectation}`, {
      details: { field, value: describe(value), expectation },
    });
  }
}

function describe(value: unknown): unknown {
  return typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean'
    ? value
    : String(value);
}

/** Throws {@link DedupeConfigError} unless `value` is a positive safe integer (milliseconds). */
export function assertPositiveMs(field: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new DedupeConfigError(field, value, 'must be a positive integer number of milliseconds');
  }
}

/** Throws {@link DedupeConfigError} unless `key` is a non-empty string. */
export function assertKey(field: string, key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new DedupeConfigError(field, key, 'must be a non-empty string');
  }
}
