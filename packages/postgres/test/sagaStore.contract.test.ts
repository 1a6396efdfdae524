import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sagaStoreContract } from '@backtrack/core/adapter';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { PostgresSagaStore, dropSchema, migrate } from '@backtrack/postgres';

const postgres = await probeService('postgres');

describe.skipIf(!postgres.available)('PostgresSagaStore', () => {
  let pool: pg.Pool;
  // The peer store goes through a second pool: creates and updates race across connections.
  let peerPool: pg.Pool;
  beforeAll(() => {
    pool = new pg.Pool({ connectionString: postgres.url, max: 10 });
    peerPool = new pg.Pool({ connectionString: postgres.url, max: 10 });
  });
  afterAll(async () => {
    await peerPool?.end();
    await pool?.end();
  });

  // The contract wants an empty store per test and uses fixed saga ids: a schema per test.
  sagaStoreContract(
    'PostgresSagaStore',
    async ({ finishedRetentionMs }) => {
      const schema = uniqueName('bt_saga_c');
      await migrate(pool, { schema });
      // Retention cases: the store's own pruning pass, due every 50 ms.
      const options = { schema, finishedRetentionMs, retentionIntervalMs: 50 };
      return {
        store: new PostgresSagaStore({ pool }, options),
        peer: new PostgresSagaStore({ pool: peerPool }, options),
        cleanup: () => dropSchema(pool, schema),
      };
    },
    { describe, it, expect },
  );
});
