import { PostgresConfigError } from '../errors.js';

/** The schema every component uses when the caller names none. */
export const DEFAULT_SCHEMA = 'backtrack';

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/**
 * Validates a schema name and returns it double-quoted, safe to splice into SQL. Names are
 * restricted to letters, digits, `_` and `-` (at most 63 bytes, PostgreSQL's limit) so a typo
 * fails at construction instead of creating a surprising schema.
 * @internal
 */
export function quoteSchema(schema: unknown, field = 'schema'): string {
  if (typeof schema !== 'string' || !IDENTIFIER.test(schema) || Buffer.byteLength(schema) > 63) {
    throw new PostgresConfigError(
      field,
      'must be 1-63 characters of letters, digits, _ or -, starting with a letter or _',
      schema,
    );
  }
  return `"${schema}"`;
}

/** @internal */
export function assertPositiveInt(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new PostgresConfigError(field, 'must be a positive integer', value);
  }
  return value;
}

/** Drops `undefined` fields so `{ ...DEFAULTS, ...stripUndefined(options) }` keeps defaults. @internal */
export function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
