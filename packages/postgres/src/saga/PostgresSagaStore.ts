import type { Pool } from 'pg';
import {
  FINISHED_SAGA_STATUSES,
  SagaConcurrencyError,
  type SagaListQuery,
  type SagaPage,
  type SagaPruneOptions,
  type SagaRecord,
  type SagaStore,
} from '@backtrack/core';
import { PostgresConfigError, PostgresCursorError, toStoreError } from '../errors.js';
import { DEFAULT_SCHEMA, quoteSchema, stripUndefined } from '../internal/sql.js';
import { assertPool } from '../internal/pool.js';

/** Collaborators of {@link PostgresSagaStore}. */
export interface PostgresSagaStoreDependencies {
  /** The pool the store queries through. The store never ends it. */
  pool: Pool;
}

/** Options of {@link PostgresSagaStore}. */
export interface PostgresSagaStoreOptions {
  /** The schema {@link migrate} created the tables in. @default 'backtrack' */
  schema?: string;
  /** Page size of `list` when the query gives none. @default 100 */
  defaultPageSize?: number;
  /** The largest page `list` returns, whatever the query asks. @default 1000 */
  maxPageSize?: number;
  /**
   * Retention of finished sagas (completed, compensated, failed), in ms after their last write
   * (the row's `updated_at`, the database's clock). The store deletes them by itself: a pruning
   * pass, started by a store call at most once per `retentionIntervalMs` (never on the call's
   * own path), deletes them oldest first in bounded batches (`FOR UPDATE SKIP LOCKED`, so passes
   * of several instances do not wait on each other). Running, compensating and stuck sagas
   * never expire. `false`: keep finished sagas until pruned (`prune`, `backtrack sagas prune`).
   * @default 2_592_000_000 (30 days)
   */
  finishedRetentionMs?: number | false;
  /** How often the pruning pass of `finishedRetentionMs` may run, in ms. @default 60_000 */
  retentionIntervalMs?: number;
}

/** The defaults merged under {@link PostgresSagaStoreOptions}. */
export const DEFAULT_POSTGRES_SAGA_STORE_OPTIONS = {
  schema: DEFAULT_SCHEMA,
  defaultPageSize: 100,
  maxPageSize: 1000,
  finishedRetentionMs: 30 * 24 * 60 * 60 * 1000,
  retentionIntervalMs: 60_000,
} as const satisfies Required<PostgresSagaStoreOptions>;

interface SagaRow {
  record: SagaRecord;
  revision: number;
  /** ISO string of created_at at microsecond precision (the cursor's first half). */
  created: string;
}

/** Rows one statement of the retention pass deletes; a pass runs statements until one deletes fewer. */
const RETENTION_BATCH = 1000;

const COLUMNS = `record, revision, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created`;

/**
 * The {@link SagaStore} on PostgreSQL: one row per saga in `<schema>.sagas`, the record as JSONB.
 *
 * - `create` is one `INSERT ... ON CONFLICT (saga_id) DO NOTHING`: atomic and idempotent; the
 *   existing record is returned untouched.
 * - `update` is `UPDATE ... WHERE saga_id = $1 AND revision = $2`: exactly one of two engines
 *   that advance the same saga from the same revision wins; the other gets
 *   `SagaConcurrencyError` (`BT_ERR_SAGA_CONCURRENT_UPDATE`).
 * - `list` filters by status and name through indexes (`(status, created_at, saga_id)`) and pages
 *   oldest first, ties by saga id, with an opaque keyset cursor, so paging neither skips nor
 *   repeats sagas while others are added or change status.
 * - Retention: finished sagas are deleted `finishedRetentionMs` (30 days) after their last
 *   write by the store's own pruning pass (see the option); `prune` deletes before a cut now.
 * - A lost connection throws a retriable `StoreUnavailableError`; missing tables throw
 *   `PostgresNotMigratedError`.
 *
 * @example
 * await migrate(pool);
 * const store = new PostgresSagaStore({ pool });
 * const engine = createSagaEngine({ store, transport });
 */
export class PostgresSagaStore implements SagaStore {
  readonly #pool: Pool;
  readonly #schema: string;
  readonly #table: string;
  readonly #defaultPageSize: number;
  readonly #maxPageSize: number;
  readonly #retentionMs: number | false;
  readonly #retentionIntervalMs: number;
  #lastExpiry = Date.now();
  #expiring: Promise<number> | undefined;

  constructor(dependencies: PostgresSagaStoreDependencies, options: PostgresSagaStoreOptions = {}) {
    const o = { ...DEFAULT_POSTGRES_SAGA_STORE_OPTIONS, ...stripUndefined(options) };
    this.#pool = assertPool(dependencies?.pool);
    this.#schema = o.schema;
    this.#table = `${quoteSchema(o.schema)}.sagas`;
    for (const field of ['defaultPageSize', 'maxPageSize'] as const) {
      if (!Number.isSafeInteger(o[field]) || o[field] <= 0) {
        throw new PostgresConfigError(field, 'must be a positive integer', o[field]);
      }
    }
    this.#defaultPageSize = o.defaultPageSize;
    this.#maxPageSize = o.maxPageSize;
    const retention = o.finishedRetentionMs as number | false;
    if (retention !== false && (!Number.isSafeInteger(retention) || retention <= 0)) {
      throw new PostgresConfigError(
        'finishedRetentionMs',
        'must be a positive integer number of ms, or false to keep finished sagas',
        retention,
      );
    }
    if (!Number.isSafeInteger(o.retentionIntervalMs) || o.retentionIntervalMs <= 0) {
      throw new PostgresConfigError(
        'retentionIntervalMs',
        'must be a positive integer number of ms',
        o.retentionIntervalMs,
      );
    }
    this.#retentionMs = retention;
    this.#retentionIntervalMs = o.retentionIntervalMs;
  }

  /**
   * The retention pass: deletes finished sagas whose last write (`updated_at`) is more than
   * `finishedRetentionMs` ago, oldest first, 1000 rows per statement, until a statement deletes
   * fewer. The store runs it by itself at most once per `retentionIntervalMs`; call it to run it
   * now. Resolves with how many it deleted (0 when retention is off). One pass at a time per
   * store: a call while one runs joins it.
   */
  expireFinished(): Promise<number> {
    if (this.#retentionMs === false) return Promise.resolve(0);
    if (this.#expiring !== undefined) return this.#expiring;
    this.#lastExpiry = Date.now();
    const retentionMs = this.#retentionMs;
    const run = (async () => {
      let deleted = 0;
      for (;;) {
        const rows = await this.#query<{ saga_id: string }>(
          'expire',
          // The literal status list matches the partial index sagas_finished_updated_idx.
          `WITH victims AS MATERIALIZED (
             SELECT saga_id FROM ${this.#table}
              WHERE status IN ('completed', 'compensated', 'failed')
                AND updated_at < now() - $1 * interval '1 millisecond'
              ORDER BY updated_at
              LIMIT $2
              FOR UPDATE SKIP LOCKED)
           DELETE FROM ${this.#table} AS s
            USING victims
            WHERE s.saga_id = victims.saga_id
              AND s.status IN ('completed', 'compensated', 'failed')
              AND s.updated_at < now() - $1 * interval '1 millisecond'
            RETURNING s.saga_id`,
          [retentionMs, RETENTION_BATCH],
        );
        deleted += rows.length;
        if (rows.length < RETENTION_BATCH) return deleted;
      }
    })().finally(() => {
      this.#expiring = undefined;
    });
    this.#expiring = run;
    return run;
  }

  /** Starts a retention pass when one is due (off the caller's path; a failed one waits for the next interval). */
  #maybeExpire(): void {
    if (this.#retentionMs === false || this.#expiring !== undefined) return;
    if (Date.now() - this.#lastExpiry < this.#retentionIntervalMs) return;
    this.expireFinished().catch(() => undefined);
  }

  async create(
    record: SagaRecord,
  ): Promise<{ created: true; record: SagaRecord } | { created: false; record: SagaRecord }> {
    this.#maybeExpire();
    const inserted = await this.#query<SagaRow>(
      'create',
      `INSERT INTO ${this.#table} (saga_id, saga_name, status, revision, record, created_at)
       VALUES ($1, $2, $3, $4, $5::jsonb, $6::timestamptz)
       ON CONFLICT (saga_id) DO NOTHING
       RETURNING ${COLUMNS}`,
      [
        record.sagaId,
        record.sagaName,
        record.status,
        record.revision,
        JSON.stringify(record),
        record.createdAt,
      ],
    );
    const row = inserted[0];
    if (row !== undefined) return { created: true, record: toRecord(row) };
    const existing = await this.get(record.sagaId);
    if (existing === undefined) {
      // Only possible if the row was deleted between the two statements (a prune of a finished
      // saga): try again rather than report a saga that does not exist.
      return this.create(record);
    }
    return { created: false, record: existing };
  }

  async get(sagaId: string): Promise<SagaRecord | undefined> {
    this.#maybeExpire();
    const rows = await this.#query<SagaRow>(
      'get',
      `SELECT ${COLUMNS} FROM ${this.#table} WHERE saga_id = $1`,
      [sagaId],
    );
    return rows[0] === undefined ? undefined : toRecord(rows[0]);
  }

  async update(record: SagaRecord, expectedRevision: number): Promise<SagaRecord> {
    this.#maybeExpire();
    const next: SagaRecord = { ...record, revision: expectedRevision + 1 };
    const rows = await this.#query<SagaRow>(
      'update',
      `UPDATE ${this.#table}
          SET record = $3::jsonb, revision = $2 + 1, status = $4, saga_name = $5, updated_at = now()
        WHERE saga_id = $1 AND revision = $2
        RETURNING ${COLUMNS}`,
      [record.sagaId, expectedRevision, JSON.stringify(next), next.status, next.sagaName],
    );
    if (rows[0] !== undefined) return toRecord(rows[0]);
    const current = await this.#query<{ revision: number }>(
      'update',
      `SELECT revision FROM ${this.#table} WHERE saga_id = $1`,
      [record.sagaId],
    );
    // The port reports a missing saga as a concurrency conflict too (someone else's view of
    // the saga is not ours); `details.actualRevision` tells the two apart.
    throw new SagaConcurrencyError(record.sagaId, expectedRevision, {
      details: { actualRevision: current[0]?.revision ?? null },
    });
  }

  /**
   * Deletes finished sagas whose record was last written (its `updatedAt`) before the cut, at
   * most `limit`, in one statement; a row updated meanwhile no longer matches and is kept.
   */
  async prune(options: SagaPruneOptions): Promise<number> {
    const limit = options.limit ?? 1000;
    if (!Number.isSafeInteger(limit) || limit <= 0) {
      throw new PostgresConfigError('limit', 'must be a positive integer', options.limit);
    }
    const statuses = [...(options.statuses ?? FINISHED_SAGA_STATUSES)];
    const rows = await this.#query<{ saga_id: string }>(
      'prune',
      // The victims are chosen once (a materialized CTE): a LIMIT subquery under IN may be run
      // again per row by the planner, and with SKIP LOCKED then returns other rows each time.
      `WITH victims AS MATERIALIZED (
         SELECT saga_id FROM ${this.#table}
          WHERE status = ANY($1::text[]) AND (record->>'updatedAt')::timestamptz < $2::timestamptz
          LIMIT $3
          FOR UPDATE SKIP LOCKED)
       DELETE FROM ${this.#table} AS s
        USING victims
        WHERE s.saga_id = victims.saga_id
          AND s.status = ANY($1::text[]) AND (s.record->>'updatedAt')::timestamptz < $2::timestamptz
        RETURNING s.saga_id`,
      [statuses, options.updatedBefore.toISOString(), limit],
    );
    return rows.length;
  }

  async list(query: SagaListQuery = {}): Promise<SagaPage> {
    this.#maybeExpire();
    const limit = Math.min(query.limit ?? this.#defaultPageSize, this.#maxPageSize);
    if (!Number.isSafeInteger(limit) || limit <= 0) {
      throw new PostgresConfigError('limit', 'must be a positive integer', query.limit);
    }
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.status !== undefined) {
      const statuses = typeof query.status === 'string' ? [query.status] : [...query.status];
      params.push(statuses);
      where.push(`status = ANY($${params.length}::text[])`);
    }
    if (query.sagaName !== undefined) {
      params.push(query.sagaName);
      where.push(`saga_name = $${params.length}`);
    }
    if (query.cursor !== undefined) {
      const [created, sagaId] = decodeCursor(query.cursor);
      params.push(created, sagaId);
      where.push(`(created_at, saga_id) > ($${params.length - 1}::timestamptz, $${params.length})`);
    }
    params.push(limit + 1);
    const rows = await this.#query<SagaRow>(
      'list',
      `SELECT ${COLUMNS} FROM ${this.#table}
        ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY created_at, saga_id
        LIMIT $${params.length}`,
      params,
    );
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    const result: SagaPage = { items: page.map(toRecord) };
    if (rows.length > limit && last !== undefined)
      result.nextCursor = encodeCursor(last.created, last.record.sagaId);
    return result;
  }

  async #query<R extends object>(operation: string, sql: string, params: unknown[]): Promise<R[]> {
    try {
      return (await this.#pool.query<R>(sql, params)).rows;
    } catch (error) {
      throw toStoreError(error, this.#schema, `saga.${operation}`);
    }
  }
}

function toRecord(row: SagaRow): SagaRecord {
  // The column is the authority on the revision (it is what `update` compares against).
  return { ...row.record, revision: row.revision };
}

function encodeCursor(created: string, sagaId: string): string {
  return Buffer.from(JSON.stringify({ v: 1, c: created, s: sagaId })).toString('base64url');
}

function decodeCursor(cursor: string): [string, string] {
  let body: { v?: unknown; c?: unknown; s?: unknown } | undefined;
  try {
    body = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as typeof body;
  } catch {
    body = undefined;
  }
  if (
    body?.v !== 1 ||
    typeof body.c !== 'string' ||
    !Number.isFinite(Date.parse(body.c)) ||
    typeof body.s !== 'string'
  ) {
    throw new PostgresCursorError(cursor);
  }
  return [body.c, body.s];
}
