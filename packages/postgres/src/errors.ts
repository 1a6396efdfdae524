import { BacktrackError, StoreUnavailableError, type BacktrackErrorOptions } from '@backtrack/core';
import { classifyPostgresError, POSTGRES_ACCESS_ERROR_CODES } from './connectionErrors.js';
import { configDetails } from '@backtrack/core/adapter';

/**
 * Stable codes of the errors `@backtrack/postgres` throws (listed, each with a fix, in docs/errors.md;
 * never reused). Branch on these, not on messages.
 */
export const POSTGRES_ERROR_CODES = {
  // Bad credentials, missing rights, certificates that do not verify (never retriable).
  ...POSTGRES_ACCESS_ERROR_CODES,
  CONFIG_INVALID: 'BT_ERR_PG_CONFIG_INVALID',
  NOT_MIGRATED: 'BT_ERR_PG_NOT_MIGRATED',
  QUERY_FAILED: 'BT_ERR_PG_QUERY_FAILED',
  MIGRATION_FAILED: 'BT_ERR_PG_MIGRATION_FAILED',
  CURSOR_INVALID: 'BT_ERR_PG_CURSOR_INVALID',
} as const;

/** One of {@link POSTGRES_ERROR_CODES}. */
export type PostgresErrorCode = (typeof POSTGRES_ERROR_CODES)[keyof typeof POSTGRES_ERROR_CODES];

/**
 * An option given to a PostgreSQL component is invalid (a schema name that is not a plain
 * identifier, a non-positive interval). Raised at construction, never retriable.
 * Code `BT_ERR_PG_CONFIG_INVALID`; `details.field` names the option.
 */
export class PostgresConfigError extends BacktrackError {
  static override readonly brand: string = '@backtrack/postgres.PostgresConfigError';
  constructor(field: string, expectation: string, value?: unknown) {
    super(POSTGRES_ERROR_CODES.CONFIG_INVALID, `invalid postgres option ${field}: ${expectation}`, {
      details: configDetails(field, expectation, value),
    });
  }
}

/**
 * The Backtrack tables are missing from the schema: `migrate()` (or `backtrack postgres migrate`)
 * was not run against it. Never retriable: retrying cannot create the tables.
 * Code `BT_ERR_PG_NOT_MIGRATED`.
 */
export class PostgresNotMigratedError extends BacktrackError {
  static override readonly brand: string = '@backtrack/postgres.PostgresNotMigratedError';
  constructor(schema: string, operation: string, cause: unknown) {
    super(
      POSTGRES_ERROR_CODES.NOT_MIGRATED,
      `the Backtrack tables are missing from schema "${schema}" (${operation}); run migrate(pool, { schema: '${schema}' }) or \`backtrack postgres migrate --schema ${schema}\``,
      { details: { schema, operation }, cause },
    );
  }
}

/**
 * PostgreSQL rejected a query for a reason that is neither a lost connection nor missing tables
 * (a data error, a constraint, a permission). `details.sqlState` carries the SQLSTATE;
 * `retriable` is true for transient classes (serialization failure, deadlock, lock timeout,
 * insufficient resources). Code `BT_ERR_PG_QUERY_FAILED`.
 */
export class PostgresQueryError extends BacktrackError {
  static override readonly brand: string = '@backtrack/postgres.PostgresQueryError';
  constructor(operation: string, sqlState: string | undefined, cause: unknown, retriable: boolean) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(POSTGRES_ERROR_CODES.QUERY_FAILED, `postgres ${operation} failed: ${reason}`, {
      details: { operation, sqlState },
      cause,
      retriable,
    });
  }
}

/**
 * Applying a migration failed, or a migration already applied to the schema no longer matches
 * the file shipped with this version of the package (`details.reason: 'checksum'`). Nothing of the
 * failing migration is kept (each migration runs in its own transaction).
 * Code `BT_ERR_PG_MIGRATION_FAILED`.
 */
export class PostgresMigrationError extends BacktrackError {
  static override readonly brand: string = '@backtrack/postgres.PostgresMigrationError';
  constructor(message: string, options: BacktrackErrorOptions) {
    super(POSTGRES_ERROR_CODES.MIGRATION_FAILED, message, options);
  }
}

/**
 * A paging cursor given to `list` or a journal query was not produced by this store.
 * Code `BT_ERR_PG_CURSOR_INVALID`.
 */
export class PostgresCursorError extends BacktrackError {
  static override readonly brand: string = '@backtrack/postgres.PostgresCursorError';
  constructor(cursor: string) {
    super(POSTGRES_ERROR_CODES.CURSOR_INVALID, `invalid paging cursor: ${cursor}`, {
      details: { cursor },
    });
  }
}

// SQLSTATE classes (https://www.postgresql.org/docs/15/errcodes-appendix.html).
const CONNECTION_CLASSES = ['08', '57', '53', '58'];
const TRANSIENT_STATES = new Set(['40001', '40P01', '55P03', '55006']);
const NODE_CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
]);

/**
 * Maps a `pg` failure to a Backtrack error: a lost or refused connection becomes
 * {@link StoreUnavailableError} (retriable, so consumers pause instead of processing without a
 * guarantee), a missing table {@link PostgresNotMigratedError}, anything else
 * {@link PostgresQueryError}. Backtrack errors pass through unchanged.
 * @internal
 */
export function toStoreError(error: unknown, schema: string, operation: string): BacktrackError {
  if (error instanceof BacktrackError) return error;
  const denied = classifyPostgresError(error);
  if (denied) return denied;
  const code = (error as { code?: unknown } | null)?.code;
  const sqlState = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
  if (sqlState === '42P01' || sqlState === '3F000') {
    return new PostgresNotMigratedError(schema, operation, error);
  }
  const message = error instanceof Error ? error.message : String(error);
  const lostConnection =
    (sqlState !== undefined && CONNECTION_CLASSES.includes(sqlState.slice(0, 2))) ||
    (typeof code === 'string' && NODE_CONNECTION_CODES.has(code)) ||
    /Connection terminated|connection timeout|Client has encountered a connection error|not queryable/i.test(
      message,
    );
  if (lostConnection) {
    return new StoreUnavailableError(
      'postgres',
      operation,
      `postgres is unavailable (${operation}): ${message}`,
      {
        cause: error,
        details: { schema, sqlState },
      },
    );
  }
  return new PostgresQueryError(
    operation,
    sqlState,
    error,
    sqlState !== undefined && TRANSIENT_STATES.has(sqlState),
  );
}
