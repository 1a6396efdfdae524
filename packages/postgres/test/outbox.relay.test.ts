import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JournalAppend, OutgoingMessage, Subscription, Transport } from '@backtrack/core';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { PostgresOutbox, PostgresOutboxRelay } from '@backtrack/postgres';
import { openTestDatabase, type TestDatabase } from './support.js';

const postgres = await probeService('postgres');

/** A transport that records every publish call; optionally slow or failing. */
class RecordingTransport implements Transport {
  readonly name = 'recording';
  readonly published: OutgoingMessage[] = [];
  failNext = 0;
  constructor(private readonly latencyMs = 0) {}
  async publish(messages: OutgoingMessage[]): Promise<void> {
    if (this.latencyMs > 0) await new Promise((r) => setTimeout(r, Math.random() * this.latencyMs));
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('broker unavailable');
    }
    this.published.push(...messages);
  }
  async subscribe(): Promise<Subscription> {
    throw new Error('not used');
  }
  async close(): Promise<void> {}
}

let counter = 0;
function record(overrides: Partial<JournalAppend> = {}): JournalAppend {
  counter++;
  const id = uniqueName(`evt${counter}`);
  return {
    id,
    type: 'order.placed',
    schemaVersion: 1,
    key: `order-${counter % 7}`,
    topic: 'orders',
    service: 'orders',
    version: '1.0.0',
    time: new Date().toISOString(),
    message: {
      headers: { id, type: 'order.placed' },
      body: new TextEncoder().encode(`{"n":${counter}}`),
    },
    ...overrides,
  };
}

const idOf = (m: OutgoingMessage) => m.message.headers.id!;

describe.skipIf(!postgres.available)('PostgresOutbox + PostgresOutboxRelay', () => {
  let db: TestDatabase;
  const pools: pg.Pool[] = [];
  const newPool = () => {
    const p = new pg.Pool({ connectionString: postgres.url, max: 4 });
    pools.push(p);
    return p;
  };

  beforeAll(async () => {
    db = await openTestDatabase(postgres.url, 'bt_relay');
    await db.pool.query(`CREATE TABLE "${db.schema}".orders (id text PRIMARY KEY)`);
  });
  afterAll(async () => {
    for (const p of pools) await p.end();
    await db?.close();
  });

  /** Empties the outbox between tests (all tests share the file's schema). */
  async function freshOutbox(): Promise<PostgresOutbox> {
    await db.pool.query(`DELETE FROM "${db.schema}".outbox`);
    return new PostgresOutbox({ pool: db.pool }, { schema: db.schema });
  }

  it('publishes a record appended in a committed business transaction, and nothing of a rolled-back one', async () => {
    const outbox = await freshOutbox();
    const committed = record();
    const rolledBack = record();
    for (const [r, outcome] of [
      [committed, 'COMMIT'],
      [rolledBack, 'ROLLBACK'],
    ] as const) {
      const tx = await db.pool.connect();
      try {
        await tx.query('BEGIN');
        await tx.query(`INSERT INTO "${db.schema}".orders (id) VALUES ($1)`, [r.id]);
        const stored = await outbox.append(r, { client: tx });
        expect(stored.state).toBe('pending');
        // Not visible outside the transaction before it commits.
        expect(await outbox.get(r.id)).toBeUndefined();
        await tx.query(outcome);
      } finally {
        tx.release();
      }
    }
    expect((await outbox.get(committed.id))?.state).toBe('pending');
    expect(await outbox.get(rolledBack.id)).toBeUndefined();

    const transport = new RecordingTransport();
    const relay = new PostgresOutboxRelay({ outbox, transport });
    expect(await relay.runOnce()).toEqual({
      published: 1,
      failed: 0,
      deadLettered: 0,
      skipped: false,
    });
    expect(transport.published.map(idOf)).toEqual([committed.id]);
    expect(transport.published[0]).toMatchObject({ topic: 'orders', key: committed.key });
    expect(Array.from(transport.published[0]!.message.body)).toEqual(
      Array.from(committed.message.body),
    );
    expect((await outbox.get(committed.id))?.state).toBe('published');
    expect(await relay.runOnce()).toEqual({
      published: 0,
      failed: 0,
      deadLettered: 0,
      skipped: false,
    });
  });

  for (const exclusive of [false, true]) {
    it(`two relays${exclusive ? ' (exclusive)' : ' (parallel)'} draining one outbox never publish a message twice`, async () => {
      const outbox = await freshOutbox();
      const ids: string[] = [];
      for (let i = 0; i < 600; i += 100) {
        const batch = await Promise.all(Array.from({ length: 100 }, () => outbox.append(record())));
        ids.push(...batch.map((r) => r.id));
      }
      const transport = new RecordingTransport(15);
      // Each relay has its own pool, as two service instances would.
      const relays = [0, 1].map(
        () =>
          new PostgresOutboxRelay(
            { outbox: new PostgresOutbox({ pool: newPool() }, { schema: db.schema }), transport },
            { batchSize: 25, exclusive, pollIntervalMs: 5 },
          ),
      );
      const counts = await Promise.all(relays.map((r) => r.drain()));
      const published = transport.published.map(idOf);
      expect(published).toHaveLength(ids.length);
      expect(new Set(published).size).toBe(ids.length);
      expect(new Set(published)).toEqual(new Set(ids));
      expect(counts[0]! + counts[1]!).toBe(ids.length);
      if (exclusive) {
        // One relay at a time: messages left in exact seq (append) order.
        const seqs = await db.pool.query<{ id: string }>(
          `SELECT id FROM "${db.schema}".outbox ORDER BY seq`,
        );
        expect(published).toEqual(seqs.rows.map((r) => r.id));
      } else {
        // Both relays did real work side by side.
        expect(counts[0]).toBeGreaterThan(0);
        expect(counts[1]).toBeGreaterThan(0);
      }
      const pending = await db.pool.query(
        `SELECT 1 FROM "${db.schema}".outbox WHERE state = 'pending'`,
      );
      expect(pending.rowCount).toBe(0);
    });
  }

  it('publishes every record once while producers append in transactions and relays run', async () => {
    const outbox = await freshOutbox();
    const transport = new RecordingTransport(5);
    const relays = [0, 1, 2].map(
      (i) =>
        new PostgresOutboxRelay(
          { outbox: new PostgresOutbox({ pool: newPool() }, { schema: db.schema }), transport },
          { batchSize: 10, exclusive: i === 0, pollIntervalMs: 10, pruneIntervalMs: 0 },
        ),
    );
    relays.forEach((r) => r.start());
    const producer = async (n: number) => {
      const ids: string[] = [];
      for (let i = 0; i < n; i++) {
        const r = record();
        const tx = await db.pool.connect();
        try {
          await tx.query('BEGIN');
          await tx.query(`INSERT INTO "${db.schema}".orders (id) VALUES ($1)`, [r.id]);
          await outbox.append(r, { client: tx });
          // Some business transactions fail after appending: their events must never leave.
          if (i % 5 === 4) {
            await tx.query('ROLLBACK');
          } else {
            await tx.query('COMMIT');
            ids.push(r.id);
          }
        } finally {
          tx.release();
        }
      }
      return ids;
    };
    const committed = (await Promise.all([producer(60), producer(60), producer(60)])).flat();
    const deadline = Date.now() + 20_000;
    while (transport.published.length < committed.length && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await Promise.all(relays.map((r) => r.stop()));
    const published = transport.published.map(idOf);
    expect(new Set(published)).toEqual(new Set(committed));
    expect(published).toHaveLength(committed.length);
  });

  it('keeps a batch the transport rejected pending, records the attempt, and publishes it later', async () => {
    const outbox = await freshOutbox();
    const r = await outbox.append(record());
    const transport = new RecordingTransport();
    transport.failNext = 1;
    const relay = new PostgresOutboxRelay({ outbox, transport });
    expect(await relay.runOnce()).toMatchObject({
      published: 0,
      failed: 1,
      skipped: false,
      firstFailedId: r.id,
    });
    const row = await db.pool.query(
      `SELECT state, publish_attempts, last_error FROM "${db.schema}".outbox WHERE id = $1`,
      [r.id],
    );
    expect(row.rows[0]).toEqual({
      state: 'pending',
      publish_attempts: 1,
      last_error: 'broker unavailable',
    });
    expect(await relay.runOnce()).toEqual({
      published: 1,
      failed: 0,
      deadLettered: 0,
      skipped: false,
    });
    expect(transport.published.map(idOf)).toEqual([r.id]);
  });

  it('moves a poisoned record to the dead-letter table after maxAttempts and goes on with the rest, in order', async () => {
    const outbox = await freshOutbox();
    const before = await outbox.append(record());
    const poison = await outbox.append(record());
    const after = await outbox.appendMany([record(), record()]);
    const published: string[] = [];
    const picky: Transport = {
      name: 'picky',
      publish: async (messages) => {
        if (messages.some((m) => idOf(m) === poison.id)) throw new Error('NO_ROUTE: nobody bound');
        published.push(...messages.map(idOf));
      },
      subscribe: () => Promise.reject(new Error('not used')),
      close: async () => undefined,
    };
    const relay = new PostgresOutboxRelay({ outbox, transport: picky }, { maxAttempts: 3 });
    // First pass: the batch fails, the relay publishes one by one in seq order up to the poison.
    expect(await relay.runOnce()).toMatchObject({ published: 1, failed: 1, deadLettered: 0 });
    expect(published).toEqual([before.id]);
    expect(await relay.runOnce()).toMatchObject({ published: 0, failed: 1, deadLettered: 0 });
    // The third failed attempt moves it out of the way; the rest follow in the same pass.
    expect(await relay.runOnce()).toMatchObject({ published: 2, failed: 1, deadLettered: 1 });
    expect(published).toEqual([before.id, ...after.map((r) => r.id)]);
    const dead = await outbox.deadLetters();
    expect(dead.map((d) => d.record.id)).toEqual([poison.id]);
    expect(dead[0]).toMatchObject({
      failedAttempts: 3,
      lastError: 'NO_ROUTE: nobody bound',
      record: { seq: poison.seq, state: 'pending', topic: 'orders' },
    });
    expect(Array.from(dead[0]!.record.message.body)).toEqual(Array.from(poison.message.body));
    expect(await outbox.get(poison.id)).toBeUndefined();
    expect(await relay.runOnce()).toMatchObject({ published: 0, failed: 0 });
    // An operator fixes the cause and puts it back: the relay delivers it.
    expect(await outbox.requeueDeadLetters([poison.id])).toBe(1);
    expect(await outbox.deadLetters()).toEqual([]);
    const fixed = new RecordingTransport();
    expect(await new PostgresOutboxRelay({ outbox, transport: fixed }).drain()).toBe(1);
    expect(fixed.published.map(idOf)).toEqual([poison.id]);
  });

  it('never dead-letters a record while the transport is merely unavailable (retriable errors)', async () => {
    const outbox = await freshOutbox();
    const r = await outbox.append(record());
    const down: Transport = {
      name: 'down',
      publish: () =>
        Promise.reject(Object.assign(new Error('broker unavailable'), { retriable: true })),
      subscribe: () => Promise.reject(new Error('not used')),
      close: async () => undefined,
    };
    const relay = new PostgresOutboxRelay({ outbox, transport: down }, { maxAttempts: 2 });
    for (let i = 0; i < 4; i++) {
      expect(await relay.runOnce()).toMatchObject({ published: 0, failed: 1, deadLettered: 0 });
    }
    expect(await outbox.deadLetters()).toEqual([]);
    expect((await outbox.get(r.id))?.state).toBe('pending');
  });

  it('fails a batch the transport never acknowledges after publishTimeoutMs and unlocks it', async () => {
    const outbox = await freshOutbox();
    const r = await outbox.append(record());
    const hanging: Transport = {
      name: 'hanging',
      publish: () => new Promise<void>(() => undefined),
      subscribe: () => Promise.reject(new Error('not used')),
      close: async () => undefined,
    };
    const stuck = new PostgresOutboxRelay(
      { outbox, transport: hanging },
      { publishTimeoutMs: 100 },
    );
    await expect(stuck.drain()).rejects.toMatchObject({
      code: 'BT_ERR_PUBLISH_FAILED',
      details: { id: r.id },
    });
    const row = await db.pool.query(
      `SELECT state, last_error FROM "${db.schema}".outbox WHERE id = $1`,
      [r.id],
    );
    expect(row.rows[0]).toMatchObject({
      state: 'pending',
      last_error: expect.stringMatching(/within 100 ms/),
    });
    // The rows are not left locked: a healthy relay publishes them at once.
    const transport = new RecordingTransport();
    expect(await new PostgresOutboxRelay({ outbox, transport }).drain()).toBe(1);
  });

  it('leaves records younger than olderThanMs to the publisher that is still sending them', async () => {
    const outbox = await freshOutbox();
    await outbox.append(record());
    const transport = new RecordingTransport();
    const relay = new PostgresOutboxRelay({ outbox, transport }, { olderThanMs: 60_000 });
    expect((await relay.runOnce()).published).toBe(0);
    const later = new PostgresOutboxRelay(
      { outbox, transport, now: () => Date.now() + 61_000 },
      { olderThanMs: 60_000 },
    );
    expect((await later.runOnce()).published).toBe(1);
  });

  it('publishes a record whose producer clock runs ahead at once (olderThanMs 0)', async () => {
    const outbox = await freshOutbox();
    const ahead = await outbox.append(
      record({ time: new Date(Date.now() + 10 * 60_000).toISOString() }),
    );
    const transport = new RecordingTransport();
    expect((await new PostgresOutboxRelay({ outbox, transport }).runOnce()).published).toBe(1);
    expect(transport.published.map(idOf)).toEqual([ahead.id]);
  });

  it('validates relay options with coded errors', async () => {
    const outbox = await freshOutbox();
    const transport = new RecordingTransport();
    expect(() => new PostgresOutboxRelay({ outbox, transport }, { batchSize: 0 })).toThrow(
      expect.objectContaining({ code: 'BT_ERR_PG_CONFIG_INVALID' }),
    );
    expect(
      () => new PostgresOutboxRelay({ outbox, transport }, { exclusive: 'yes' as never }),
    ).toThrow(expect.objectContaining({ code: 'BT_ERR_PG_CONFIG_INVALID' }));
  });
});

describe.skipIf(!postgres.available)('PostgresOutboxRelay LISTEN/NOTIFY wake-up', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase(postgres.url, 'bt_relay_listen');
  });
  afterAll(async () => {
    await db?.close();
  });

  const until = async (predicate: () => boolean, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (!predicate() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return predicate();
  };

  it('publishes a committed record at once, not at the next poll, and never before COMMIT', async () => {
    const outbox = new PostgresOutbox({ pool: db.pool }, { schema: db.schema });
    const transport = new RecordingTransport();
    // A poll interval far longer than the test: only a notification can wake the relay.
    const relay = new PostgresOutboxRelay({ outbox, transport }, { pollIntervalMs: 60_000 });
    relay.start();
    try {
      expect(await until(() => relay.listening, 5_000)).toBe(true);
      // Let the first (empty) pass finish so the relay is asleep.
      await new Promise((r) => setTimeout(r, 200));

      const first = record();
      const t0 = Date.now();
      await outbox.append(first);
      expect(await until(() => transport.published.length === 1, 5_000)).toBe(true);
      const latencyMs = Date.now() - t0;
      expect(latencyMs).toBeLessThan(5_000);

      const second = record();
      const tx = await db.pool.connect();
      try {
        await tx.query('BEGIN');
        await outbox.append(second, { client: tx });
        await new Promise((r) => setTimeout(r, 300));
        expect(transport.published.map(idOf)).toEqual([first.id]);
        await tx.query('COMMIT');
      } finally {
        tx.release();
      }
      expect(await until(() => transport.published.length === 2, 5_000)).toBe(true);
      expect(transport.published.map(idOf)).toEqual([first.id, second.id]);
    } finally {
      await relay.stop();
    }
    expect(relay.listening).toBe(false);
  });

  it('falls back to polling when the outbox does not notify', async () => {
    const outbox = new PostgresOutbox({ pool: db.pool }, { schema: db.schema, notify: false });
    const transport = new RecordingTransport();
    const relay = new PostgresOutboxRelay({ outbox, transport }, { pollIntervalMs: 100 });
    relay.start();
    try {
      await outbox.append(record());
      expect(await until(() => transport.published.length === 1, 5_000)).toBe(true);
    } finally {
      await relay.stop();
    }
  });
});
