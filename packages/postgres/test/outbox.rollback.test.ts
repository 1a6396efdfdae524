/**
 * The rollback planner reads the PostgreSQL outbox exactly as it reads the Redis journal: a bad
 * deploy's effects, written transactionally, are found by service and version and planned.
 */
import pg from 'pg';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EventRegistry,
  defineCompensations,
  defineEvent,
  deterministicId,
  emit,
  planRollback,
} from '@backtrack/core';
import { probeService, uniqueName } from '../../../test/support/services.js';
import {
  createOutboxWriter,
  createPostgresBackend,
  type PostgresBackend,
} from '@backtrack/postgres';

const postgres = await probeService('postgres');

const StockReserved = defineEvent('stock.reserved').version(
  1,
  z.object({ sku: z.string(), quantity: z.int() }),
);
const StockReleased = defineEvent('stock.released').version(
  1,
  z.object({ sku: z.string(), quantity: z.int(), reason: z.string() }),
);
const registry = new EventRegistry([StockReserved, StockReleased]);
const compensations = defineCompensations().reversible(StockReserved, (d) =>
  emit(StockReleased, { sku: d.sku, quantity: d.quantity, reason: 'rollback' }),
);

describe.skipIf(!postgres.available)('planRollback over PostgresOutbox', () => {
  let pool: pg.Pool;
  let backend: PostgresBackend;
  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: postgres.url, max: 4 });
    backend = await createPostgresBackend({ pool }, { schema: uniqueName('bt_rb') });
  });
  afterAll(async () => {
    await pool.query(`DROP SCHEMA IF EXISTS "${backend.schema}" CASCADE`);
    await pool.end();
  });

  it('plans the compensation of exactly the bad version, newest first, skipping rolled-back writes', async () => {
    const write = async (version: string, sku: string, commit = true) => {
      const writer = createOutboxWriter(
        { service: 'inventory', version },
        { outbox: backend.journal, registry },
      );
      const tx = await pool.connect();
      try {
        await tx.query('BEGIN');
        const envelope = await writer.write(tx, StockReserved, { sku, quantity: 2 }, { key: sku });
        await tx.query(commit ? 'COMMIT' : 'ROLLBACK');
        return envelope.id;
      } finally {
        tx.release();
      }
    };
    await write('1.0.0', 'good-1');
    const bad1 = await write('2.0.0', 'bad-1');
    await write('2.0.0', 'never-committed', false);
    const bad2 = await write('2.0.0', 'bad-2');
    await write('1.0.0', 'good-2');

    const plan = await planRollback(
      { service: 'inventory', version: '2.0.0', strategy: 'compensate' },
      { journal: backend.journal, registry, compensations },
    );
    expect(plan.items.map((i) => i.original.id)).toEqual([bad2, bad1]);
    expect(plan.items[0]!.messages[0]).toMatchObject({
      id: deterministicId(bad2, 'compensate', '0'),
      type: 'stock.released',
      data: { sku: 'bad-2', quantity: 2, reason: 'rollback' },
      key: 'bad-2',
      topic: 'inventory',
    });
    expect(plan.needsPerson).toEqual([]);
  });
});
