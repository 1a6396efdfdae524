import pgDriver from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { checkUntilConsistent } from './checker.js';
import { runExample } from './example.js';
import { createRuntime, postgresSchemaFor, type Runtime } from './infra/runtime.js';
import { placeOrders } from './load.js';
import { recordingStory } from './story.js';
import { startShop } from './system.js';

const pg = await probeService('postgres');

describe.skipIf(!pg.available)('order-saga with --store postgres (memory transport)', () => {
  let admin: pgDriver.Pool;
  beforeAll(() => {
    admin = new pgDriver.Pool({ connectionString: pg.url, max: 2 });
  });
  afterAll(async () => {
    await admin.end();
  });

  const count = async (schema: string, table: string): Promise<number> => {
    const { rows } = await admin.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM "${schema}".${table}`,
    );
    return Number(rows[0]?.n);
  };
  const schemaExists = async (schema: string): Promise<boolean> => {
    const { rowCount } = await admin.query(
      'SELECT 1 FROM information_schema.schemata WHERE schema_name = $1',
      [schema],
    );
    return rowCount === 1;
  };

  it('places 20 orders: consistent, and sagas, journal and inbox rows are in PostgreSQL', async () => {
    const prefix = uniqueName('pgstore');
    const runtime: Runtime = await createRuntime({
      transport: 'memory',
      store: 'postgres',
      prefix,
      databaseUrl: pg.url,
    });
    const schema = postgresSchemaFor(prefix);
    expect(runtime.store).toBe('postgres');
    expect(runtime.postgres?.schema).toBe(schema);
    const shop = await startShop(runtime, { stockFor: 20 });
    try {
      const result = await placeOrders(shop.orders, { count: 20, concurrency: 8 });
      expect(result.surprises).toEqual([]);
      expect(result.placed).toBe(20);
      const report = await checkUntilConsistent(runtime.states, { timeoutMs: 10_000 });
      expect(report.inconsistent).toEqual([]);
      expect(report.ok).toBe(true);

      // Every order's saga is in the sagas table, in a final state, and listed by the store.
      const { rows } = await admin.query<{ status: string; n: string }>(
        `SELECT status, count(*)::text AS n FROM "${schema}".sagas GROUP BY status`,
      );
      const byStatus = Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
      expect(Object.values(byStatus).reduce((a, b) => a + b, 0)).toBe(20);
      expect(Object.keys(byStatus).every((s) => ['completed', 'compensated'].includes(s))).toBe(
        true,
      );
      // Journal records (the steps' effects) and inbox claims landed in PostgreSQL too.
      expect(await count(schema, 'outbox')).toBeGreaterThan(0);
      expect(await count(schema, 'inbox')).toBeGreaterThan(0);
    } finally {
      await shop.stop();
      await runtime.destroy();
      await runtime.close();
    }
    expect(await schemaExists(schema)).toBe(false);
  }, 60_000);

  it('tells the README story with the PostgreSQL store and drops its schema afterwards', async () => {
    const story = recordingStory();
    const output: string[] = [];
    const prefix = uniqueName('pgstory');
    const report = await runExample({
      story,
      write: (l) => output.push(l),
      store: 'postgres',
      prefix,
    });
    expect(report.ok).toBe(true);
    expect(report.byStatus).toEqual({ confirmed: 2, cancelled: 3 });
    expect(output[0]).toMatch(/PostgreSQL store/);
    expect(await schemaExists(postgresSchemaFor(prefix))).toBe(false);
  }, 60_000);
});
