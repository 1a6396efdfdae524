/**
 * One way to construct: `createPostgresBackend` makes its stores with their constructors, and
 * checks the pool with the same function they do, so a missing pool or a bad schema fails the
 * factory and every constructor with the same `PostgresConfigError` code and field, at
 * construction (before any query).
 */
import type { Pool } from 'pg';
import { describe, expect, it } from 'vitest';
import { createPostgresBackend } from './backend.js';
import { POSTGRES_ERROR_CODES, PostgresConfigError } from './errors.js';
import { PostgresInbox } from './inbox/PostgresInbox.js';
import { PostgresOutbox } from './outbox/PostgresOutbox.js';
import { PostgresSagaStore } from './saga/PostgresSagaStore.js';

/** Never queried: every case below must fail before the first query. */
const pool = {
  query: () => Promise.reject(new Error('queried before the options were checked')),
} as unknown as Pool;

async function failureOf(fn: () => unknown): Promise<{ code: string; field: unknown }> {
  try {
    await fn();
  } catch (error) {
    expect(error).toBeInstanceOf(PostgresConfigError);
    const e = error as PostgresConfigError;
    return { code: e.code, field: e.details.field };
  }
  throw new Error('did not throw');
}

const makers = {
  createPostgresBackend: (p: Pool | undefined, schema?: string) =>
    createPostgresBackend({ pool: p as Pool }, { migrate: false, ...(schema ? { schema } : {}) }),
  'new PostgresSagaStore': (p: Pool | undefined, schema?: string) =>
    new PostgresSagaStore({ pool: p as Pool }, schema ? { schema } : {}),
  'new PostgresInbox': (p: Pool | undefined, schema?: string) =>
    new PostgresInbox({ pool: p as Pool }, { consumer: 'billing', ...(schema ? { schema } : {}) }),
  'new PostgresOutbox': (p: Pool | undefined, schema?: string) =>
    new PostgresOutbox({ pool: p as Pool }, schema ? { schema } : {}),
};

describe('PostgreSQL stores: the factory and the constructors check the same way', () => {
  it.each(Object.entries(makers))('%s rejects a missing pool naming `pool`', async (_, make) => {
    expect(await failureOf(() => make(undefined))).toEqual({
      code: POSTGRES_ERROR_CODES.CONFIG_INVALID,
      field: 'pool',
    });
  });

  it.each(Object.entries(makers))('%s rejects a bad schema naming `schema`', async (_, make) => {
    expect(await failureOf(() => make(pool, 'orders; drop table x'))).toEqual({
      code: POSTGRES_ERROR_CODES.CONFIG_INVALID,
      field: 'schema',
    });
  });
});
