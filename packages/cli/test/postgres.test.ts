/** `backtrack postgres migrate`, run in process through `main()` against the real PostgreSQL. */
import pg from 'pg';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from '@backtrack/cli';
import { probeService, uniqueName } from '../../../test/support/services.js';

const postgres = await probeService('postgres');

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const code = await main(args);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

describe.skipIf(!postgres.available)('backtrack postgres migrate', () => {
  const schema = uniqueName('bt_cli_pg');
  const pool = new pg.Pool({ connectionString: postgres.url, max: 1 });
  afterAll(async () => {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
  });

  it('without --database-url or DATABASE_URL: a usage error that says how to give one', async () => {
    const saved = process.env.DATABASE_URL;
    delete process.env.DATABASE_URL;
    try {
      const r = await run(['postgres', 'migrate', '--schema', schema]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('no PostgreSQL connection string');
      expect(r.stderr).toContain('pass --database-url or set DATABASE_URL');
      const exists = await pool.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
      expect(exists.rowCount).toBe(0);
    } finally {
      if (saved !== undefined) process.env.DATABASE_URL = saved;
    }
  });

  it('lists pending migrations with --dry-run and changes nothing', async () => {
    const r = await run([
      'postgres',
      'migrate',
      '--database-url',
      postgres.url,
      '--schema',
      schema,
      '--dry-run',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout) as { applied: string[]; dryRun: boolean };
    expect(body.dryRun).toBe(true);
    expect(body.applied).toContain('0001_sagas');
    const exists = await pool.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
    expect(exists.rowCount).toBe(0);
  });

  it('applies the migrations, then reports the schema up to date', async () => {
    const first = await run([
      'postgres',
      'migrate',
      '--database-url',
      postgres.url,
      '--schema',
      schema,
    ]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/0003_outbox\s+applied/);
    const second = await run([
      'postgres',
      'migrate',
      '--database-url',
      postgres.url,
      '--schema',
      schema,
    ]);
    expect(second.stdout).toMatch(/is up to date/);
  });

  it('exits with the usage code on a bad schema name and names the error code', async () => {
    const r = await run([
      'postgres',
      'migrate',
      '--database-url',
      postgres.url,
      '--schema',
      'bad name;',
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/BT_ERR_PG_CONFIG_INVALID/);
  });

  it('exits 1 with a store error when the server is unreachable', async () => {
    const r = await run([
      'postgres',
      'migrate',
      '--database-url',
      'postgres://postgres@127.0.0.1:1/test',
      '--json',
    ]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ error: { code: 'BT_ERR_STORE_UNAVAILABLE' } });
  });
});
