import type { ClientBase, Pool, PoolClient } from 'pg';
import type { PublishState } from '@backtrack/core';
import {
  DEFAULT_JOURNAL_OPTIONS,
  JournalConfigError,
  type Journal,
  type JournalAppend,
  type JournalOptions,
  type JournalPage,
  type JournalQuery,
  type JournalRecord,
  type UnpublishedQuery,
} from '@backtrack/core';
import { toStoreError } from '../errors.js';
import { DEFAULT_SCHEMA, quoteSchema } from '../internal/sql.js';
import { assertPool } from '../internal/pool.js';
import {
  assertValidAppend,
  encodeCursor,
  normalizeQuery,
  timeMsToSeq,
} from '@backtrack/core/adapter';

/** Collaborators of {@link PostgresOutbox}. */
export interface PostgresOutboxDependencies {
  /** The pool used when a call gives no `client`. The outbox never ends it. */
  pool: Pool;
  /** The clock retention is measured against, in ms. @default Date.now */
  now?: () => number;
}

/** Options of {@link PostgresOutbox}. */
export interface PostgresOutboxOptions extends JournalOptions {
  /** The schema {@link migrate} created the tables in. @default 'backtrack' */
  schema?: string;
  /** Rows deleted per statement by `prune`. @default 5000 */
  pruneBatchSize?: number;
  /**
   * Send a `NOTIFY` on channel {@link OUTBOX_NOTIFY_CHANNEL} (payload: the schema) with every new
   * record, delivered when its transaction commits, so a listening relay publishes at once
   * instead of at its next poll.
   * @default true
   */
  notify?: boolean;
}

/** The channel `PostgresOutbox` notifies and `PostgresOutboxRelay` listens on. */
export const OUTBOX_NOTIFY_CHANNEL = 'backtrack_outbox';

/** The defaults merged under {@link PostgresOutboxOptions}. */
export const DEFAULT_POSTGRES_OUTBOX_OPTIONS = {
  schema: DEFAULT_SCHEMA,
  retentionMs: DEFAULT_JOURNAL_OPTIONS.retentionMs,
  pruneBatchSize: 5000,
  notify: true,
} as const satisfies Required<PostgresOutboxOptions>;

/** Per-call options of {@link PostgresOutbox.append}. */
export interface OutboxAppendOptions {
  /**
   * The client of an open transaction: the record is written in it, so it commits (and becomes
   * visible to the relay) exactly when the caller's business writes commit, and vanishes if they
   * roll back. Without it, the record is written through the pool and is durable on return.
   */
  client?: ClientBase;
}

/** A row of `<schema>.outbox` as pg returns it. @internal */
export interface OutboxRow {
  seq: string;
  id: string;
  type: string;
  schema_version: number;
  message_key: string | null;
  topic: string;
  service: string;
  version: string;
  time: string;
  saga_id: string | null;
  causation_id: string | null;
  headers: Record<string, string>;
  body: Buffer;
  state: PublishState;
}

/** One record the relay moved out of the outbox (see `PostgresOutboxRelay` option `maxAttempts`). */
export interface OutboxDeadLetter {
  /** The record as it was in the outbox (state `pending`: it was never published). */
  record: JournalRecord;
  /** Failed attempts that counted toward `maxAttempts` (outages do not count). */
  failedAttempts: number;
  /** Every attempt, including those an outage failed. */
  publishAttempts: number;
  /** The transport's error of the last attempt. */
  lastError: string | null;
  /** When the relay moved it. */
  deadLetteredAt: Date;
}

/** Options of {@link PostgresOutbox.deadLetters}. */
export interface OutboxDeadLetterQuery {
  /** @default 100 */
  limit?: number;
  /** Only records with a larger seq (paging: pass the last seq of the previous page). */
  afterSeq?: number;
}

/** The columns {@link OutboxRow} reads. @internal */
export const OUTBOX_COLUMNS =
  'seq, id, type, schema_version, message_key, topic, service, version, time, saga_id, causation_id, headers, body, state';

/**
 * The {@link Journal} port on PostgreSQL, which makes it a transactional outbox.
 *
 * Write outgoing events in the same transaction as the business data:
 * `outbox.append(record, { client: tx })`. The record commits or rolls back with the business
 * writes, so an event is published if and only if the state change that caused it happened. A
 * {@link PostgresOutboxRelay} then publishes pending records through any Transport and marks them
 * published; several relays are safe at once (`FOR UPDATE SKIP LOCKED`).
 *
 * The same table is the effect journal the rollback planner reads: `query` filters by service and
 * version, time window, type and saga id, in publish order, paged with an opaque cursor.
 *
 * Ordering: `seq` comes from one counter row that an append locks until its transaction ends. So
 * seqs are strictly increasing AND commit in seq order (a reader paging by seq never misses a
 * record that commits later), at the price that concurrent transactions appending to one outbox
 * serialise from their append to their commit. Append late in the transaction (just before
 * COMMIT) to keep that window short.
 *
 * @example
 * const outbox = new PostgresOutbox({ pool });
 * const tx = await pool.connect();
 * await tx.query('BEGIN');
 * await tx.query('INSERT INTO orders ...');
 * await outbox.append(journalRecordFor(envelope), { client: tx });
 * await tx.query('COMMIT');
 * tx.release();
 */
export class PostgresOutbox implements Journal {
  readonly #pool: Pool;
  readonly #now: () => number;
  readonly #schema: string;
  readonly #table: string;
  readonly #seqTable: string;
  readonly #deadLetterTable: string;
  readonly #retentionMs: number;
  readonly #pruneBatchSize: number;
  readonly #notify: boolean;

  constructor(dependencies: PostgresOutboxDependencies, options: PostgresOutboxOptions = {}) {
    this.#pool = assertPool(dependencies?.pool);
    this.#now = dependencies.now ?? Date.now;
    this.#schema = options.schema ?? DEFAULT_POSTGRES_OUTBOX_OPTIONS.schema;
    const s = quoteSchema(this.#schema);
    this.#table = `${s}.outbox`;
    this.#seqTable = `${s}.outbox_seq`;
    this.#deadLetterTable = `${s}.outbox_dead_letter`;
    const retentionMs = options.retentionMs ?? DEFAULT_POSTGRES_OUTBOX_OPTIONS.retentionMs;
    if (!Number.isSafeInteger(retentionMs) || retentionMs <= 0) {
      throw new JournalConfigError('retentionMs', 'must be a positive number of ms', retentionMs);
    }
    this.#retentionMs = retentionMs;
    const pruneBatchSize = options.pruneBatchSize ?? DEFAULT_POSTGRES_OUTBOX_OPTIONS.pruneBatchSize;
    if (!Number.isSafeInteger(pruneBatchSize) || pruneBatchSize <= 0) {
      throw new JournalConfigError('pruneBatchSize', 'must be a positive integer', pruneBatchSize);
    }
    this.#pruneBatchSize = pruneBatchSize;
    this.#notify = options.notify ?? DEFAULT_POSTGRES_OUTBOX_OPTIONS.notify;
  }

  /** The schema this outbox reads and writes. */
  get schema(): string {
    return this.#schema;
  }

  /** @internal The pool, for the relay. */
  get pool(): Pool {
    return this.#pool;
  }

  /** @internal The quoted table name, for the relay. */
  get table(): string {
    return this.#table;
  }

  /** @internal The oldest seq inside the retention window at the outbox clock's now. */
  oldestLiveSeq(now: number = this.#now()): number {
    return timeMsToSeq(now - this.#retentionMs);
  }

  /**
   * Appends a record (state `pending`), idempotently on `id`. With `options.client`, the write
   * happens in the caller's open transaction and commits with it; see {@link OutboxAppendOptions}.
   */
  async append(record: JournalAppend, options: OutboxAppendOptions = {}): Promise<JournalRecord> {
    assertValidAppend(record);
    const runner = options.client ?? this.#pool;
    const timeSeq = timeMsToSeq(Date.parse(record.time));
    const params = [
      record.id,
      record.type,
      record.schemaVersion,
      record.key ?? null,
      record.topic,
      record.service,
      record.version,
      record.time,
      record.sagaId ?? null,
      record.causationId ?? null,
      JSON.stringify(record.message.headers),
      toBuffer(record.message.body),
      timeSeq,
      ...(this.#notify ? [this.#schema] : []),
    ];
    try {
      // The counter is only bumped when the id is new; a concurrent append of the same id may
      // still bump it (its insert then conflicts), which leaves a harmless gap in seqs.
      const inserted = await runner.query<OutboxRow>(
        `WITH bump AS (
           UPDATE ${this.#seqTable} SET last = GREATEST(last + 1, $13::bigint)
            WHERE NOT EXISTS (SELECT 1 FROM ${this.#table} WHERE id = $1)
           RETURNING last
         )
         , ins AS (
           INSERT INTO ${this.#table}
                  (seq, id, type, schema_version, message_key, topic, service, version, time,
                   saga_id, causation_id, headers, body)
           SELECT last, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12 FROM bump
           ON CONFLICT (id) DO NOTHING
           RETURNING ${OUTBOX_COLUMNS}
         )
         SELECT ${OUTBOX_COLUMNS}${
           // Delivered to listeners only when the surrounding transaction commits.
           this.#notify
             ? `, pg_notify('${OUTBOX_NOTIFY_CHANNEL}', $14::text)::text AS notified`
             : ''
         } FROM ins`,
        params,
      );
      const row =
        inserted.rows[0] ??
        (
          await runner.query<OutboxRow>(
            `SELECT ${OUTBOX_COLUMNS} FROM ${this.#table} WHERE id = $1`,
            [record.id],
          )
        ).rows[0];
      if (row === undefined) {
        // Possible only if the existing record was pruned between the two statements.
        return this.append(record, options);
      }
      return toJournalRecord(row);
    } catch (error) {
      throw toStoreError(error, this.#schema, 'outbox.append');
    }
  }

  /**
   * Appends a batch in one transaction (the caller's with `options.client`, else its own), in the
   * order given; see {@link append}.
   */
  async appendMany(
    records: readonly JournalAppend[],
    options: OutboxAppendOptions = {},
  ): Promise<JournalRecord[]> {
    for (const record of records) assertValidAppend(record);
    if (records.length === 0) return [];
    return this.#inTransaction('outbox.appendMany', options, async (client) => {
      const out: JournalRecord[] = [];
      for (const record of records) out.push(await this.append(record, { client }));
      return out;
    });
  }

  /**
   * `appendMany(records)` then `markPublished(published)` in one transaction (the caller's with
   * `options.client`, else its own). Resolves with how many of `published` changed state.
   */
  async appendAndMarkPublished(
    records: readonly JournalAppend[],
    published: readonly string[],
    options: OutboxAppendOptions = {},
  ): Promise<number> {
    for (const record of records) assertValidAppend(record);
    if (records.length === 0) return this.markPublished(published, options);
    return this.#inTransaction('outbox.appendMany', options, async (client) => {
      for (const record of records) await this.append(record, { client });
      return this.markPublished(published, { client });
    });
  }

  /** Runs `fn` in the caller's transaction (`options.client`), else in one of its own. */
  async #inTransaction<T>(
    operation: string,
    options: OutboxAppendOptions,
    fn: (client: ClientBase) => Promise<T>,
  ): Promise<T> {
    if (options.client) return fn(options.client);
    let client: PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      throw toStoreError(error, this.#schema, operation);
    }
    try {
      await client.query('BEGIN');
      const out = await fn(client);
      await client.query('COMMIT');
      return out;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw toStoreError(error, this.#schema, operation);
    } finally {
      client.release();
    }
  }

  /** Records the relay dead-lettered, oldest first. */
  async deadLetters(query: OutboxDeadLetterQuery = {}): Promise<OutboxDeadLetter[]> {
    const limit = query.limit ?? 100;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) {
      throw new JournalConfigError('limit', 'must be an integer from 1 to 10000', limit);
    }
    const rows = await this.#query<
      OutboxRow & {
        failed_attempts: number;
        publish_attempts: number;
        last_error: string | null;
        dead_lettered_at: Date;
      }
    >(
      'outbox.deadLetters',
      `SELECT ${OUTBOX_COLUMNS.replace(', state', '')}, 'pending' AS state,
              failed_attempts, publish_attempts, last_error, dead_lettered_at
         FROM ${this.#deadLetterTable} WHERE seq > $1 ORDER BY seq LIMIT $2`,
      [query.afterSeq ?? -1, limit],
    );
    return rows.map((row) => ({
      record: toJournalRecord(row),
      failedAttempts: row.failed_attempts,
      publishAttempts: row.publish_attempts,
      lastError: row.last_error,
      deadLetteredAt: row.dead_lettered_at,
    }));
  }

  /**
   * Moves dead-lettered records back into the outbox as pending (same seq and id, attempt counts
   * reset), for the relay to publish again once the cause is fixed. Resolves with how many moved.
   */
  async requeueDeadLetters(ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const rows = await this.#query<{ n: number }>(
      'outbox.requeueDeadLetters',
      `WITH moved AS (
         DELETE FROM ${this.#deadLetterTable} d
          WHERE d.id = ANY($1::text[])
            AND NOT EXISTS (SELECT 1 FROM ${this.#table} o WHERE o.id = d.id OR o.seq = d.seq)
         RETURNING *
       ), ins AS (
         INSERT INTO ${this.#table}
                (seq, id, type, schema_version, message_key, topic, service, version, time,
                 saga_id, causation_id, headers, body, appended_at)
         SELECT seq, id, type, schema_version, message_key, topic, service, version, time,
                saga_id, causation_id, headers, body, appended_at FROM moved
         RETURNING 1
       )
       SELECT count(*)::int AS n FROM ins`,
      [[...new Set(ids)]],
    );
    return rows[0]?.n ?? 0;
  }

  /** @internal The quoted dead-letter table name, for the relay. */
  get deadLetterTable(): string {
    return this.#deadLetterTable;
  }

  async markPublished(ids: readonly string[], options: OutboxAppendOptions = {}): Promise<number> {
    if (ids.length === 0) return 0;
    const runner = options.client ?? this.#pool;
    try {
      const result = await runner.query(
        `UPDATE ${this.#table}
            SET state = 'published', published_at = clock_timestamp()
          WHERE id = ANY($1::text[]) AND state = 'pending'`,
        [[...new Set(ids)]],
      );
      return result.rowCount ?? 0;
    } catch (error) {
      throw toStoreError(error, this.#schema, 'outbox.markPublished');
    }
  }

  async unpublished(query: UnpublishedQuery): Promise<JournalRecord[]> {
    const now = query.now ?? this.#now();
    const limit = query.limit ?? 100;
    const rows = await this.#query<OutboxRow>(
      'outbox.unpublished',
      `SELECT ${OUTBOX_COLUMNS} FROM ${this.#table}
        WHERE state = 'pending' AND seq >= $1 AND seq <= $2
        ORDER BY seq LIMIT $3`,
      [this.oldestLiveSeq(now), timeMsToSeq(now - query.olderThanMs), limit],
    );
    return rows.map(toJournalRecord);
  }

  async query(query: JournalQuery = {}): Promise<JournalPage> {
    const q = normalizeQuery(query, this.#now() - this.#retentionMs);
    const where = ['seq >= $1', 'seq <= $2'];
    const params: unknown[] = [q.minSeq, q.maxSeq];
    const filters = {
      service: q.service,
      version: q.version,
      type: q.type,
      saga_id: q.sagaId,
    };
    for (const [column, value] of Object.entries(filters)) {
      if (value === undefined) continue;
      params.push(value);
      where.push(`${column} = $${params.length}`);
    }
    params.push(q.limit + 1);
    const rows = await this.#query<OutboxRow>(
      'outbox.query',
      `SELECT ${OUTBOX_COLUMNS} FROM ${this.#table}
        WHERE ${where.join(' AND ')}
        ORDER BY seq ${q.direction === 'forward' ? 'ASC' : 'DESC'}
        LIMIT $${params.length}`,
      params,
    );
    const items = rows.slice(0, q.limit).map(toJournalRecord);
    const last = items.at(-1);
    return rows.length > q.limit && last
      ? { items, nextCursor: encodeCursor(last.seq, q.direction) }
      : { items };
  }

  async get(id: string): Promise<JournalRecord | undefined> {
    const rows = await this.#query<OutboxRow>(
      'outbox.get',
      `SELECT ${OUTBOX_COLUMNS} FROM ${this.#table} WHERE id = $1 AND seq >= $2`,
      [id, this.oldestLiveSeq()],
    );
    return rows[0] === undefined ? undefined : toJournalRecord(rows[0]);
  }

  /**
   * Deletes records older than the retention window at `now`, published or not, in batches of
   * `pruneBatchSize`. Run it from a scheduler (or {@link PostgresOutboxRelay}'s `pruneIntervalMs`).
   */
  async prune(now: number = this.#now()): Promise<number> {
    const cut = this.oldestLiveSeq(now);
    let total = 0;
    for (;;) {
      const rows = await this.#query<{ n: number }>(
        'outbox.prune',
        `WITH doomed AS (
           SELECT seq FROM ${this.#table} WHERE seq < $1 ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED
         ), deleted AS (
           DELETE FROM ${this.#table} o USING doomed d WHERE o.seq = d.seq RETURNING 1
         )
         SELECT count(*)::int AS n FROM deleted`,
        [cut, this.#pruneBatchSize],
      );
      const n = rows[0]?.n ?? 0;
      total += n;
      if (n < this.#pruneBatchSize) return total;
    }
  }

  async #query<R extends object>(operation: string, sql: string, params: unknown[]): Promise<R[]> {
    try {
      return (await this.#pool.query<R>(sql, params)).rows;
    } catch (error) {
      throw toStoreError(error, this.#schema, operation);
    }
  }
}

function toBuffer(body: Uint8Array): Buffer {
  return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

/** @internal */
export function toJournalRecord(row: OutboxRow): JournalRecord {
  const record: JournalRecord = {
    id: row.id,
    type: row.type,
    schemaVersion: row.schema_version,
    topic: row.topic,
    service: row.service,
    version: row.version,
    time: row.time,
    message: { headers: row.headers, body: new Uint8Array(row.body) },
    seq: Number(row.seq),
    state: row.state,
  };
  if (row.message_key !== null) record.key = row.message_key;
  if (row.saga_id !== null) record.sagaId = row.saga_id;
  if (row.causation_id !== null) record.causationId = row.causation_id;
  return record;
}
