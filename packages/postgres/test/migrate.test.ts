import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeService, uniqueName } from '../../../test/support/services.js';
import {
  MIGRATIONS_DIRECTORY,
  PostgresSagaStore,
  dropSchema,
  loadMigrations,
  migrate,
  migrateDatabase,
} from '@backtrack/postgres';
import { mkdtemp, writeFile, cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

const postgres = await probeService('postgres');

describe.skipIf(!postgres.available)('migrate (PostgreSQL)', () => {
  let pool: pg.Pool;
  const schemas: string[] = [];
  const fresh = () => {
    const s = uniqueName('bt_mig');
    schemas.push(s);
    return s;
  };

  beforeAll(() => {
    pool = new pg.Pool({ connectionString: postgres.url, max: 12 });
  });
  afterAll(async () => {
    for (const s of schemas) await dropSchema(pool, s);
    await pool.end();
  });

  it('finds the SQL files shipped with the package', async () => {
    const migrations = await loadMigrations();
    expect(MIGRATIONS_DIRECTORY).toMatch(/packages\/postgres\/migrations\/$/);
    expect(migrations.map((m) => m.id)).toEqual([...migrations.map((m) => m.id)].sort());
    expect(migrations.length).toBeGreaterThanOrEqual(2);
    for (const m of migrations) expect(m.checksum).toMatch(/^[0-9a-f]{64}$/);
  });

  it('creates the schema and tables, then applies nothing the second time', async () => {
    const schema = fresh();
    const all = (await loadMigrations()).map((m) => m.id);
    const first = await migrate(pool, { schema });
    expect(first).toEqual({ schema, applied: all, alreadyApplied: [] });
    const second = await migrate(pool, { schema });
    expect(second).toEqual({ schema, applied: [], alreadyApplied: all });
    const tables = await pool.query<{ table_name: string }>(
      'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1',
      [schema],
    );
    expect(tables.rows.map((r) => r.table_name)).toEqual(
      expect.arrayContaining(['backtrack_migrations', 'inbox', 'sagas']),
    );
  });

  it('applies each migration once when many instances migrate at the same time', async () => {
    const schema = fresh();
    const results = await Promise.all(Array.from({ length: 8 }, () => migrate(pool, { schema })));
    const all = (await loadMigrations()).map((m) => m.id);
    // Exactly one caller applied each migration; the others found it applied.
    for (const id of all) {
      expect(results.filter((r) => r.applied.includes(id))).toHaveLength(1);
    }
    const rows = await pool.query(`SELECT id FROM "${schema}".backtrack_migrations`);
    expect(rows.rowCount).toBe(all.length);
  });

  it('reports pending migrations without applying them in dry-run mode', async () => {
    const schema = fresh();
    const all = (await loadMigrations()).map((m) => m.id);
    expect(await migrate(pool, { schema, dryRun: true })).toEqual({
      schema,
      applied: all,
      alreadyApplied: [],
    });
    const exists = await pool.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
    expect(exists.rowCount).toBe(0);
  });

  it('refuses an applied migration whose file changed', async () => {
    const schema = fresh();
    const dir = await mkdtemp(path.join(tmpdir(), 'bt-mig-'));
    await cp(MIGRATIONS_DIRECTORY, dir, { recursive: true });
    await migrate(pool, { schema, directory: dir });
    await writeFile(path.join(dir, '0001_sagas.sql'), '-- edited\nSELECT 1;');
    await expect(migrate(pool, { schema, directory: dir })).rejects.toMatchObject({
      code: 'BT_ERR_PG_MIGRATION_FAILED',
      details: { reason: 'checksum', migration: '0001_sagas' },
    });
  });

  it('rolls back a failing migration entirely and names it', async () => {
    const schema = fresh();
    const dir = await mkdtemp(path.join(tmpdir(), 'bt-mig-'));
    await writeFile(path.join(dir, '0001_ok.sql'), 'CREATE TABLE ok (id int);');
    await writeFile(
      path.join(dir, '0002_bad.sql'),
      'CREATE TABLE half (id int);\nSELECT no_such_function();',
    );
    await expect(migrate(pool, { schema, directory: dir })).rejects.toMatchObject({
      code: 'BT_ERR_PG_MIGRATION_FAILED',
      details: { migration: '0002_bad', reason: 'sql' },
    });
    const tables = await pool.query<{ table_name: string }>(
      'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1',
      [schema],
    );
    expect(tables.rows.map((r) => r.table_name)).toEqual(['backtrack_migrations', 'ok']);
  });

  it('rejects a schema name that is not a plain identifier', async () => {
    await expect(migrate(pool, { schema: 'x"; DROP TABLE y; --' })).rejects.toMatchObject({
      code: 'BT_ERR_PG_CONFIG_INVALID',
      details: { field: 'schema' },
    });
  });

  it('tells the user to migrate when the tables are missing', async () => {
    const store = new PostgresSagaStore({ pool }, { schema: fresh() });
    await expect(store.get('x')).rejects.toMatchObject({
      code: 'BT_ERR_PG_NOT_MIGRATED',
      retriable: false,
    });
  });
});

describe.skipIf(!postgres.available)('migrateDatabase (the CLI entry)', () => {
  it('opens its own connection from a URL, migrates, and closes it', async () => {
    const schema = uniqueName('bt_mig_url');
    const pool = new pg.Pool({ connectionString: postgres.url, max: 1 });
    try {
      const result = await migrateDatabase({ url: postgres.url, schema });
      expect(result.applied.length).toBeGreaterThan(0);
      expect((await migrateDatabase({ url: postgres.url, schema })).applied).toEqual([]);
    } finally {
      await dropSchema(pool, schema);
      await pool.end();
    }
  });

  it('fails with a retriable store error when the server is unreachable', async () => {
    await expect(
      migrateDatabase({ url: 'postgres://postgres@127.0.0.1:1/test', connectTimeoutMs: 500 }),
    ).rejects.toMatchObject({ code: 'BT_ERR_STORE_UNAVAILABLE', retriable: true });
  });
});
