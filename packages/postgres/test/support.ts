/**
 * Shared set-up for the PostgreSQL integration tests: a pool on DATABASE_URL and a fresh,
 * migrated schema per test file (dropped after), so parallel files never collide.
 */
import pg from 'pg';
import { uniqueName } from '../../../test/support/services.js';
import { dropSchema, migrate } from '@backtrack/postgres';

export interface TestDatabase {
  pool: pg.Pool;
  schema: string;
  /** Drops the schema and ends the pool. */
  close(): Promise<void>;
}

/** Opens a pool and migrates a schema unique to this test file. */
export async function openTestDatabase(url: string, prefix = 'bt_pg'): Promise<TestDatabase> {
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  const schema = uniqueName(prefix);
  await migrate(pool, { schema });
  return {
    pool,
    schema,
    async close() {
      await dropSchema(pool, schema);
      await pool.end();
    },
  };
}
