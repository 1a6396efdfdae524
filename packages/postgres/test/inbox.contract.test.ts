import pg from 'pg';
import { afterAll, beforeAll, describe } from 'vitest';
import { dedupeStoreContract } from '../../core/src/testing/contracts/dedupeStoreContract.js';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { PostgresInbox } from '@backtrack/postgres';
import { openTestDatabase, type TestDatabase } from './support.js';

const postgres = await probeService('postgres');

describe.skipIf(!postgres.available)('PostgresInbox as a DedupeStore', () => {
  let db: TestDatabase;
  // The peer store goes through a second pool: claims race across separate connections.
  let peerPool: pg.Pool;
  beforeAll(async () => {
    db = await openTestDatabase(postgres.url, 'bt_inbox_c');
    peerPool = new pg.Pool({ connectionString: postgres.url, max: 10 });
  });
  afterAll(async () => {
    await peerPool?.end();
    await db?.close();
  });

  dedupeStoreContract('PostgresInbox', async () => {
    // A consumer name per test isolates the keys; two instances share the table like two
    // processes would.
    const consumer = uniqueName('c');
    const store = new PostgresInbox({ pool: db.pool }, { schema: db.schema, consumer });
    const peer = new PostgresInbox({ pool: peerPool }, { schema: db.schema, consumer });
    return {
      store,
      peer,
      ttlOf: (key) => store.ttlOf(key),
      cleanup: async () => {
        await db.pool.query(`DELETE FROM "${db.schema}".inbox WHERE consumer = $1`, [consumer]);
      },
    };
  });
});
