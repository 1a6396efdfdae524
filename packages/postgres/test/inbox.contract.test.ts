import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { dedupeStoreContract } from '@backtrack/core/adapter';
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

  it('completeMany writes a batch of 500 done marks in one statement, fenced per entry', async () => {
    const consumer = uniqueName('c');
    const store = new PostgresInbox({ pool: db.pool }, { schema: db.schema, consumer });
    try {
      const keys = Array.from({ length: 500 }, (_, i) => `k${i}`);
      const claims = await store.claimMany(keys, { leaseMs: 30_000 });
      const entries = claims.map((c, i) => {
        if (c.status !== 'claimed') throw new Error('expected claim');
        // Every 50th entry carries a wrong token: fenced out, in place.
        return { key: keys[i]!, token: i % 50 === 0 ? 'stolen' : c.token, result: `r${i}` };
      });
      const spy = vi.spyOn(db.pool, 'query');
      let answers: boolean[];
      try {
        answers = await store.completeMany(entries, { ttlMs: 60_000 });
        expect(spy).toHaveBeenCalledTimes(1);
      } finally {
        spy.mockRestore();
      }
      expect(answers).toEqual(keys.map((_, i) => i % 50 !== 0));
      expect(await store.claimMany(['k0', 'k1', 'k499'], { leaseMs: 30_000 })).toEqual([
        { status: 'in-progress' },
        { status: 'done', result: 'r1' },
        { status: 'done', result: 'r499' },
      ]);
    } finally {
      await db.pool.query(`DELETE FROM "${db.schema}".inbox WHERE consumer = $1`, [consumer]);
    }
  });

  it('completeMany batches racing on the same keys in opposite orders: no deadlock, each key completed once', async () => {
    const consumer = uniqueName('c');
    const store = new PostgresInbox({ pool: db.pool }, { schema: db.schema, consumer });
    const peer = new PostgresInbox({ pool: peerPool }, { schema: db.schema, consumer });
    try {
      const keys = Array.from({ length: 300 }, (_, i) => `k${i}`);
      const claims = await store.claimMany(keys, { leaseMs: 30_000 });
      const entries = claims.map((c, i) => {
        if (c.status !== 'claimed') throw new Error('expected claim');
        return { key: keys[i]!, token: c.token };
      });
      for (let round = 0; round < 5; round++) {
        const slice = entries.slice(round * 60, round * 60 + 60);
        const results = await Promise.all([
          store.completeMany(slice, { ttlMs: 60_000 }),
          peer.completeMany([...slice].reverse(), { ttlMs: 60_000 }),
          store.completeMany(
            slice.filter((_, i) => i % 2 === 0),
            { ttlMs: 60_000 },
          ),
        ]);
        const wins = new Map<string, number>();
        const batches = [slice, [...slice].reverse(), slice.filter((_, i) => i % 2 === 0)];
        batches.forEach((batch, b) =>
          batch.forEach((e, i) => {
            if (results[b]![i]) wins.set(e.key, (wins.get(e.key) ?? 0) + 1);
          }),
        );
        expect(slice.map((e) => wins.get(e.key) ?? 0)).toEqual(slice.map(() => 1));
      }
    } finally {
      await db.pool.query(`DELETE FROM "${db.schema}".inbox WHERE consumer = $1`, [consumer]);
    }
  });

  dedupeStoreContract(
    'PostgresInbox',
    async () => {
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
    },
    { describe, it, expect },
  );
});
