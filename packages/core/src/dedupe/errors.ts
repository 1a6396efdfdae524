import { ConfigError, type ConfigErrorOptions } from '../errors/ConfigError.js';
import { CORE_ERROR_CODES } from '../errors/codes.js';

/**
 * A dedupe store option or call argument is invalid (a non-positive lease, an empty key, a
 * retention outside the allowed range). Raised at construction for options, at the call for
 * arguments; never retriable. `details.field` names the offending field.
 */
export class DedupeConfigError extends ConfigError {
  static override readonly brand: string = '@backtrack/core.DedupeConfigError';
  constructor(field: string, expectation: string, value?: unknown, options?: ConfigErrorOptions) {
    super(CORE_ERROR_CODES.DEDUPE_CONFIG_INVALID, 'dedupe', field, expectation, value, options);
  }
}

/** Throws {@link DedupeConfigError} unless `value` is a positive safe integer (milliseconds). */
export function assertPositiveMs(field: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new DedupeConfigError(field, 'must be a positive integer number of milliseconds', value);
  }
}

/** Throws {@link DedupeConfigError} unless `key` is a non-empty string. */
export function assertKey(field: string, key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new DedupeConfigError(field, 'must be a non-empty string', key);
  }
}
