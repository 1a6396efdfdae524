import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { PostgresInbox } from '@backtrack/postgres';
import { openTestDatabase, type TestDatabase } from './support.js';

const postgres = await probeService('postgres');

describe.skipIf(!postgres.available)('PostgresInbox transactional mode', () => {
  let db: TestDatabase;
  let effects: string;

  beforeAll(async () => {
    db = await openTestDatabase(postgres.url, 'bt_inbox_tx');
    effects = `"${db.schema}".effects`;
    await db.pool.query(`CREATE TABLE ${effects} (message_key text NOT NULL, note text)`);
  });
  afterAll(async () => {
    await db?.close();
  });

  const inboxFor = (options: ConstructorParameters<typeof PostgresInbox>[1] = {}) =>
    new PostgresInbox(
      { pool: db.pool },
      { schema: db.schema, consumer: uniqueName('c'), ...options },
    );

  const effectCount = async (key: string) =>
    Number(
      (
        await db.pool.query<{ n: string }>(
          `SELECT count(*) AS n FROM ${effects} WHERE message_key = $1`,
          [key],
        )
      ).rows[0]!.n,
    );

  it('commits the effect and the mark together, then acknowledges a duplicate without running', async () => {
    const inbox = inboxFor();
    const key = uniqueName('m');
    let calls = 0;
    const handle = () =>
      inbox.transaction(key, async (tx, info) => {
        calls++;
        expect(info).toEqual({ consumer: inbox.consumer, messageKey: key });
        await tx.query(`INSERT INTO ${effects} (message_key) VALUES ($1)`, [key]);
        return 'ok';
      });
    expect(await handle()).toEqual({ status: 'handled', value: 'ok' });
    expect(await handle()).toEqual({ status: 'duplicate' });
    expect(calls).toBe(1);
    expect(await effectCount(key)).toBe(1);
    expect(await inbox.isProcessed(key)).toBe(true);
  });

  it('rolls back effect and mark when the handler throws, and rethrows its error unchanged', async () => {
    const inbox = inboxFor();
    const key = uniqueName('m');
    const boom = new Error('handler failed after its write');
    await expect(
      inbox.transaction(key, async (tx) => {
        await tx.query(`INSERT INTO ${effects} (message_key) VALUES ($1)`, [key]);
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await effectCount(key)).toBe(0);
    expect(await inbox.isProcessed(key)).toBe(false);
    // The redelivery runs the handler again, and this time it sticks.
    const again = await inbox.transaction(key, async (tx) => {
      await tx.query(`INSERT INTO ${effects} (message_key) VALUES ($1)`, [key]);
    });
    expect(again.status).toBe('handled');
    expect(await effectCount(key)).toBe(1);
  });

  it('runs the effect once when many deliveries of one message race', async () => {
    const inbox = inboxFor();
    const key = uniqueName('m');
    let calls = 0;
    const outcomes = await Promise.all(
      Array.from({ length: 8 }, () =>
        inbox.transaction(key, async (tx) => {
          calls++;
          await tx.query(`INSERT INTO ${effects} (message_key) VALUES ($1)`, [key]);
          await new Promise((resolve) => setTimeout(resolve, 30));
        }),
      ),
    );
    expect(calls).toBe(1);
    expect(outcomes.filter((o) => o.status === 'handled')).toHaveLength(1);
    // The others waited on the row lock and then saw the committed mark.
    expect(outcomes.filter((o) => o.status === 'duplicate')).toHaveLength(7);
    expect(await effectCount(key)).toBe(1);
  });

  it('answers in-progress when a concurrent delivery holds the key past lockTimeoutMs', async () => {
    const inbox = inboxFor({ lockTimeoutMs: 150 });
    const key = uniqueName('m');
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const first = inbox.transaction(key, async (tx) => {
      await tx.query(`INSERT INTO ${effects} (message_key) VALUES ($1)`, [key]);
      started();
      await held;
    });
    await running;
    let ran = false;
    expect(
      await inbox.transaction(key, async () => {
        ran = true;
      }),
    ).toEqual({ status: 'in-progress' });
    expect(ran).toBe(false);
    release();
    expect((await first).status).toBe('handled');
    expect((await inbox.transaction(key, async () => undefined)).status).toBe('duplicate');
  });

  it('keeps the handler free of the claim lock timeout', async () => {
    const inbox = inboxFor({ lockTimeoutMs: 100 });
    const result = await inbox.transaction(uniqueName('m'), async (tx) => {
      return (await tx.query<{ lock_timeout: string }>('SHOW lock_timeout')).rows[0]!.lock_timeout;
    });
    expect(result).toEqual({ status: 'handled', value: '0' });
  });

  it('stores a result computed from the handler value and returns it to duplicates', async () => {
    const inbox = inboxFor();
    const key = uniqueName('m');
    const first = await inbox.transaction(key, async () => ({ paymentId: 'pay-7' }), {
      result: (v) => v.paymentId,
    });
    expect(first).toEqual({ status: 'handled', value: { paymentId: 'pay-7' } });
    expect(await inbox.transaction(key, async () => ({ paymentId: 'other' }))).toEqual({
      status: 'duplicate',
      result: 'pay-7',
    });
  });

  it('keeps consumers apart: each consumer processes the same message once', async () => {
    const key = uniqueName('m');
    const a = inboxFor();
    const b = inboxFor();
    expect((await a.transaction(key, async () => 1)).status).toBe('handled');
    expect((await b.transaction(key, async () => 2)).status).toBe('handled');
    expect((await a.transaction(key, async () => 3)).status).toBe('duplicate');
  });

  it('defers to a live DedupeStore lease on the same key, and takes over an expired one', async () => {
    const consumer = uniqueName('c');
    const inbox = inboxFor({ consumer });
    const key = uniqueName('m');
    const claim = await inbox.claim(key, { leaseMs: 150 });
    expect(claim.status).toBe('claimed');
    expect(await inbox.transaction(key, async () => 'x')).toEqual({ status: 'in-progress' });
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(await inbox.transaction(key, async () => 'x')).toEqual({
      status: 'handled',
      value: 'x',
    });
    // The stale lease holder cannot overwrite the transactional mark.
    expect(await inbox.complete(key, (claim as { token: string }).token, { ttlMs: 1000 })).toBe(
      false,
    );
  });

  it('forgets marks after retentionMs and cleanup deletes expired rows', async () => {
    const consumer = uniqueName('c');
    const inbox = inboxFor({ consumer, retentionMs: 100 });
    const keys = [uniqueName('m'), uniqueName('m'), uniqueName('m')];
    for (const key of keys) await inbox.transaction(key, async () => undefined);
    const keep = inboxFor({ consumer, retentionMs: 60_000 });
    const kept = uniqueName('m');
    await keep.transaction(kept, async () => undefined);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await inbox.isProcessed(keys[0]!)).toBe(false);
    expect(await inbox.cleanup()).toBeGreaterThanOrEqual(3);
    const rows = await db.pool.query(
      `SELECT message_key FROM "${db.schema}".inbox WHERE consumer = $1`,
      [consumer],
    );
    expect(rows.rows).toEqual([{ message_key: kept }]);
    // An expired mark no longer deduplicates: the message runs again.
    expect((await inbox.transaction(keys[1]!, async () => undefined)).status).toBe('handled');
  });

  it('cleans up in batches smaller than the expired set', async () => {
    const consumer = uniqueName('c');
    const inbox = inboxFor({ consumer, retentionMs: 50, cleanupBatchSize: 2 });
    for (let i = 0; i < 5; i++) await inbox.transaction(`k${i}`, async () => undefined);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await inbox.cleanup();
    const rows = await db.pool.query(`SELECT 1 FROM "${db.schema}".inbox WHERE consumer = $1`, [
      consumer,
    ]);
    expect(rows.rowCount).toBe(0);
  });

  it('validates its options and arguments with coded errors', async () => {
    expect(() => inboxFor({ retentionMs: 0 })).toThrow(
      expect.objectContaining({ code: 'BT_ERR_PG_CONFIG_INVALID' }),
    );
    expect(() => inboxFor({ consumer: '' })).toThrow(
      expect.objectContaining({ code: 'BT_ERR_PG_CONFIG_INVALID' }),
    );
    await expect(inboxFor().transaction('', async () => 1)).rejects.toMatchObject({
      code: 'BT_ERR_DEDUPE_CONFIG_INVALID',
    });
  });

  it('throws a retriable store error when the database is unreachable', async () => {
    const pg = (await import('pg')).default;
    const dead = new pg.Pool({
      connectionString: 'postgres://postgres@127.0.0.1:1/test',
      connectionTimeoutMillis: 500,
    });
    const inbox = new PostgresInbox({ pool: dead }, { schema: db.schema });
    await expect(inbox.transaction('k', async () => 1)).rejects.toMatchObject({
      code: 'BT_ERR_STORE_UNAVAILABLE',
      retriable: true,
    });
    await expect(inbox.claim('k', { leaseMs: 1000 })).rejects.toMatchObject({
      code: 'BT_ERR_STORE_UNAVAILABLE',
      retriable: true,
    });
    await dead.end();
  });
});

describe.skipIf(!postgres.available)(
  'PostgresInbox.claimIn (a transaction the caller owns)',
  () => {
    let db: TestDatabase;
    beforeAll(async () => {
      db = await openTestDatabase(postgres.url, 'bt_inbox_in');
      await db.pool.query(`CREATE TABLE "${db.schema}".effects (message_key text NOT NULL)`);
    });
    afterAll(async () => {
      await db?.close();
    });

    it('claims inside the caller transaction: durable on its COMMIT, gone on its ROLLBACK', async () => {
      const inbox = new PostgresInbox(
        { pool: db.pool },
        { schema: db.schema, consumer: uniqueName('c') },
      );
      const key = uniqueName('m');
      const tx = await db.pool.connect();
      try {
        await tx.query('BEGIN');
        expect(await inbox.claimIn(tx, key)).toEqual({ status: 'claimed' });
        await tx.query('ROLLBACK');
        expect(await inbox.isProcessed(key)).toBe(false);

        await tx.query('BEGIN');
        await tx.query("SET LOCAL lock_timeout = '1234ms'");
        expect(await inbox.claimIn(tx, key)).toEqual({ status: 'claimed' });
        // The caller's own setting survives the claim.
        expect((await tx.query('SHOW lock_timeout')).rows[0]).toEqual({ lock_timeout: '1234ms' });
        await tx.query(`INSERT INTO "${db.schema}".effects VALUES ($1)`, [key]);
        await tx.query('COMMIT');
        await tx.query('BEGIN');
        expect(await inbox.claimIn(tx, key)).toEqual({ status: 'duplicate' });
        await tx.query('ROLLBACK');
      } finally {
        tx.release();
      }
      expect(await inbox.isProcessed(key)).toBe(true);
    });

    it('answers in-progress past the lock timeout and leaves the caller transaction usable', async () => {
      const consumer = uniqueName('c');
      const holder = new PostgresInbox({ pool: db.pool }, { schema: db.schema, consumer });
      const waiter = new PostgresInbox(
        { pool: db.pool },
        { schema: db.schema, consumer, lockTimeoutMs: 100 },
      );
      const key = uniqueName('m');
      const a = await db.pool.connect();
      const b = await db.pool.connect();
      try {
        await a.query('BEGIN');
        expect(await holder.claimIn(a, key)).toEqual({ status: 'claimed' });
        await b.query('BEGIN');
        expect(await waiter.claimIn(b, key)).toEqual({ status: 'in-progress' });
        // b's transaction is not aborted: it can still write and commit.
        await b.query(`INSERT INTO "${db.schema}".effects VALUES ($1)`, [`other-${key}`]);
        await b.query('COMMIT');
        await a.query('COMMIT');
      } finally {
        a.release();
        b.release();
      }
      const rows = await db.pool.query(
        `SELECT 1 FROM "${db.schema}".effects WHERE message_key = $1`,
        [`other-${key}`],
      );
      expect(rows.rowCount).toBe(1);
    });
  },
);
