import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Pool } from 'pg';
import { createDefaultLogger, type Logger } from '@backtrack/core';
import { PostgresConfigError, PostgresMigrationError, toStoreError } from '../errors.js';
import { DEFAULT_SCHEMA, quoteSchema } from '../internal/sql.js';

/**
 * The SQL files shipped with the package. Resolved from this module's URL so the same code works
 * from `src/migrate/` (tests, tsx) and `dist/migrate/` (the published build): both sit two levels
 * under the package root, where `migrations/` lives.
 */
export const MIGRATIONS_DIRECTORY = fileURLToPath(new URL('../../migrations/', import.meta.url));

/** The table, inside the target schema, that records which migrations were applied. */
export const MIGRATIONS_TABLE = 'backtrack_migrations';

/** Options of {@link migrate}. */
export interface MigrateOptions {
  /**
   * The schema the tables go into; created when missing. Every Backtrack PostgreSQL component
   * takes the same option, so one database can hold several isolated sets of tables.
   * @default 'backtrack'
   */
  schema?: string;
  /** Only report what would be applied. @default false */
  dryRun?: boolean;
  /** Where the `*.sql` files are. @default the `migrations/` folder shipped with the package */
  directory?: string;
  /** @default createDefaultLogger() */
  logger?: Logger;
}

/** What {@link migrate} did. */
export interface MigrateResult {
  schema: string;
  /** Migrations applied by this call (or, with `dryRun`, that would be), in order. */
  applied: string[];
  /** Migrations that were already applied before this call. */
  alreadyApplied: string[];
}

/** One migration file. */
export interface Migration {
  /** The file name without `.sql`, for example `0001_sagas`. */
  id: string;
  sql: string;
  /** sha256 of the file, recorded when applied; a changed file is refused. */
  checksum: string;
}

/** Reads the migration files, sorted by name. */
export async function loadMigrations(
  directory: string = MIGRATIONS_DIRECTORY,
): Promise<Migration[]> {
  let files: string[];
  try {
    files = (await readdir(directory)).filter((f) => f.endsWith('.sql')).sort();
  } catch (cause) {
    throw new PostgresMigrationError(`cannot read the migrations directory ${directory}`, {
      cause,
      details: { directory },
    });
  }
  return Promise.all(
    files.map(async (file) => {
      const sql = await readFile(`${directory.replace(/\/?$/, '/')}${file}`, 'utf8');
      return {
        id: file.slice(0, -'.sql'.length),
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      };
    }),
  );
}

/**
 * Applies the Backtrack migrations to `schema`, idempotently: already-applied files are skipped,
 * and an applied file whose contents changed is refused (`BT_ERR_PG_MIGRATION_FAILED`,
 * `details.reason: 'checksum'`).
 *
 * Safe to call from every instance at start-up: a session advisory lock (keyed on the schema)
 * serialises concurrent calls, and each migration runs in its own transaction together with its
 * row in `backtrack_migrations`, so a crash leaves either the whole migration or none of it.
 *
 * @example
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
 * await migrate(pool, { schema: 'backtrack' });
 */
export async function migrate(pool: Pool, options: MigrateOptions = {}): Promise<MigrateResult> {
  const schema = options.schema ?? DEFAULT_SCHEMA;
  const s = quoteSchema(schema);
  const log = (options.logger ?? createDefaultLogger()).child({
    component: 'postgres-migrate',
    schema,
  });
  const migrations = await loadMigrations(options.directory);

  let client;
  try {
    client = await pool.connect();
  } catch (error) {
    throw toStoreError(error, schema, 'migrate');
  }
  let locked = false;
  try {
    await client.query('SELECT pg_advisory_lock(hashtext($1), hashtext($2))', [
      'backtrack.migrate',
      schema,
    ]);
    locked = true;
    if (!options.dryRun) {
      // Only when missing: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when
      // the schema exists, which a least-privilege role that owns just its schema lacks.
      const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
      if (exists.rowCount === 0) await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${s}.${MIGRATIONS_TABLE} (
           id text PRIMARY KEY,
           checksum text NOT NULL,
           applied_at timestamptz NOT NULL DEFAULT now())`,
      );
    }
    const applied = await appliedMigrations(client, schema);
    const result: MigrateResult = { schema, applied: [], alreadyApplied: [] };
    for (const migration of migrations) {
      const checksum = applied.get(migration.id);
      if (checksum !== undefined) {
        if (checksum !== migration.checksum) {
          throw new PostgresMigrationError(
            `migration ${migration.id} was applied to schema "${schema}" with different contents; migrations are append-only: never edit an applied file`,
            { details: { schema, migration: migration.id, reason: 'checksum' } },
          );
        }
        result.alreadyApplied.push(migration.id);
        continue;
      }
      result.applied.push(migration.id);
      if (options.dryRun) continue;
      try {
        await client.query('BEGIN');
        // Files use unqualified names; the search path puts them into the target schema.
        await client.query(`SET LOCAL search_path TO ${s}`);
        await client.query(migration.sql);
        await client.query(`INSERT INTO ${s}.${MIGRATIONS_TABLE} (id, checksum) VALUES ($1, $2)`, [
          migration.id,
          migration.checksum,
        ]);
        await client.query('COMMIT');
        log.info({ migration: migration.id }, 'applied migration');
      } catch (cause) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw new PostgresMigrationError(
          `migration ${migration.id} failed on schema "${schema}": ${cause instanceof Error ? cause.message : String(cause)}`,
          { cause, details: { schema, migration: migration.id, reason: 'sql' } },
        );
      }
    }
    return result;
  } catch (error) {
    if (error instanceof PostgresMigrationError) throw error;
    throw toStoreError(error, schema, 'migrate');
  } finally {
    // A session lock that could not be released must not go back to the pool with the client:
    // destroying the connection releases it.
    let destroy: Error | undefined;
    if (locked) {
      await client
        .query('SELECT pg_advisory_unlock(hashtext($1), hashtext($2))', [
          'backtrack.migrate',
          schema,
        ])
        .catch((error: unknown) => {
          destroy = error instanceof Error ? error : new Error(String(error));
        });
    }
    client.release(destroy);
  }
}

async function appliedMigrations(
  client: { query: Pool['query'] },
  schema: string,
): Promise<Map<string, string>> {
  const exists = await client.query<{ present: boolean }>(
    `SELECT to_regclass($1) IS NOT NULL AS present`,
    [`${quoteSchema(schema)}.${MIGRATIONS_TABLE}`],
  );
  if (!exists.rows[0]?.present) return new Map();
  const rows = await client.query<{ id: string; checksum: string }>(
    `SELECT id, checksum FROM ${quoteSchema(schema)}.${MIGRATIONS_TABLE}`,
  );
  return new Map(rows.rows.map((r) => [r.id, r.checksum]));
}

/** Drops a schema and everything in it. For tests that isolate themselves in their own schema. */
export async function dropSchema(pool: Pool, schema: string): Promise<void> {
  await pool.query(`DROP SCHEMA IF EXISTS ${quoteSchema(schema)} CASCADE`);
}

/** Options of {@link migrateDatabase}. */
export interface MigrateDatabaseOptions extends MigrateOptions {
  /**
   * The connection string.
   * @default process.env.DATABASE_URL
   */
  url?: string;
  /** Give up connecting after this long, in ms. @default 10_000 */
  connectTimeoutMs?: number;
}

/**
 * Opens a short-lived connection, runs {@link migrate}, and closes it: what
 * `backtrack postgres migrate` runs. For deploy scripts and CLIs that hold no pool of their own.
 *
 * @example
 * await migrateDatabase({ url: process.env.DATABASE_URL, schema: 'backtrack' });
 */
export async function migrateDatabase(
  options: MigrateDatabaseOptions = {},
): Promise<MigrateResult> {
  const url = options.url ?? process.env.DATABASE_URL;
  if (url === undefined || url.length === 0) {
    throw new PostgresConfigError('url', 'give a connection string or set DATABASE_URL', url);
  }
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({
    connectionString: url,
    max: 1,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
  });
  // An idle client's error (the server going away) must not crash the process.
  pool.on('error', () => undefined);
  try {
    const { url: _url, connectTimeoutMs: _timeout, ...migrateOptions } = options;
    return await migrate(pool, migrateOptions);
  } finally {
    await pool.end();
  }
}
