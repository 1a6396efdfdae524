import { describe, expect, it } from 'vitest';
import { BacktrackError, StoreUnavailableError } from '@backtrack/core';
import {
  PostgresConfigError,
  PostgresNotMigratedError,
  PostgresQueryError,
  toStoreError,
} from './errors.js';
import { quoteSchema } from './internal/sql.js';

const pgError = (code: string, message = 'boom') => Object.assign(new Error(message), { code });

describe('toStoreError', () => {
  it('maps a refused or lost connection to a retriable StoreUnavailableError', () => {
    for (const error of [
      pgError('ECONNREFUSED'),
      pgError('57P01', 'terminating connection due to administrator command'),
      pgError('08006'),
      new Error('Connection terminated unexpectedly'),
    ]) {
      const mapped = toStoreError(error, 's', 'op');
      expect(mapped).toBeInstanceOf(StoreUnavailableError);
      expect(mapped).toMatchObject({ code: 'BT_ERR_STORE_UNAVAILABLE', retriable: true });
      expect(mapped.cause).toBe(error);
    }
  });

  it('maps a missing table or schema to PostgresNotMigratedError naming the schema', () => {
    for (const code of ['42P01', '3F000']) {
      const mapped = toStoreError(pgError(code), 'shop', 'saga.get');
      expect(mapped).toBeInstanceOf(PostgresNotMigratedError);
      expect(mapped).toMatchObject({ retriable: false, details: { schema: 'shop' } });
      expect(mapped.message).toContain("migrate(pool, { schema: 'shop' })");
    }
  });

  it('marks serialization failures, deadlocks and lock timeouts retriable, data errors not', () => {
    for (const code of ['40001', '40P01', '55P03']) {
      expect(toStoreError(pgError(code), 's', 'op')).toMatchObject({
        code: 'BT_ERR_PG_QUERY_FAILED',
        retriable: true,
        details: { sqlState: code },
      });
    }
    const data = toStoreError(pgError('22P05'), 's', 'op');
    expect(data).toBeInstanceOf(PostgresQueryError);
    expect(data.retriable).toBe(false);
  });

  it('passes Backtrack errors through unchanged', () => {
    const own = new PostgresConfigError('schema', 'bad', 'x');
    expect(toStoreError(own, 's', 'op')).toBe(own);
    expect(toStoreError('a string', 's', 'op')).toBeInstanceOf(BacktrackError);
  });
});

describe('quoteSchema', () => {
  it('quotes a plain identifier', () => {
    expect(quoteSchema('backtrack')).toBe('"backtrack"');
    expect(quoteSchema('bt_test-123')).toBe('"bt_test-123"');
  });

  it('refuses anything that could break out of the quotes, and names longer than 63 bytes', () => {
    for (const bad of ['', 'a"b', 'x; DROP', '1abc', 'a'.repeat(64), 'é'.repeat(40), 42]) {
      expect(() => quoteSchema(bad)).toThrow(PostgresConfigError);
    }
  });
});
