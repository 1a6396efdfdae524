import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { journalContract } from '@backtrack/core/adapter';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { PostgresOutbox, dropSchema, migrate } from '@backtrack/postgres';

const postgres = await probeService('postgres');

describe.skipIf(!postgres.available)('PostgresOutbox as a Journal', () => {
  let pool: pg.Pool;
  beforeAll(() => {
    pool = new pg.Pool({ connectionString: postgres.url, max: 10 });
  });
  afterAll(async () => {
    await pool?.end();
  });

  // The contract wants an empty journal per test: a schema per test.
  journalContract(
    'PostgresOutbox',
    async ({ retentionMs }) => {
      const schema = uniqueName('bt_outbox_c');
      await migrate(pool, { schema });
      return {
        journal: new PostgresOutbox({ pool }, { schema, retentionMs }),
        cleanup: () => dropSchema(pool, schema),
      };
    },
    { describe, it, expect },
  );
});
