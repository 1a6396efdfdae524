import { randomUUID } from 'node:crypto';
import type { ClientBase, Pool, PoolClient, QueryResult } from 'pg';
import {
  createDefaultLogger,
  DedupeConfigError,
  type ClaimOptions,
  type ClaimResult,
  type CompleteEntry,
  type CompleteManyOptions,
  type CompleteOptions,
  type DedupeStore,
  type Logger,
} from '@backtrack/core';
import { PostgresConfigError, toStoreError } from '../errors.js';
import { DEFAULT_SCHEMA, quoteSchema, stripUndefined } from '../internal/sql.js';
import { assertPool } from '../internal/pool.js';

/** Collaborators of {@link PostgresInbox}. */
export interface PostgresInboxDependencies {
  /** The pool the inbox queries and opens transactions through. The inbox never ends it. */
  pool: Pool;
  /** @default createDefaultLogger() */
  logger?: Logger;
}

/** Options of {@link PostgresInbox}. */
export interface PostgresInboxOptions {
  /** The schema {@link migrate} created the tables in. @default 'backtrack' */
  schema?: string;
  /**
   * The consumer the marks belong to (first half of the primary key). Two consumers (for example
   * two services, or two handlers of one event) each process a message once.
   * @default 'default'
   */
  consumer?: string;
  /**
   * How long a transactional done mark is kept, in ms: a redelivery later than this runs the
   * handler again. Keep it longer than the broker's longest redelivery or replay window.
   * @default 604_800_000 (7 days)
   */
  retentionMs?: number;
  /**
   * How long a transactional claim waits for another transaction that holds the same key
   * (a concurrent delivery of the same message) before answering `in-progress`, in ms.
   * @default 5000
   */
  lockTimeoutMs?: number;
  /** Rows deleted per statement by {@link PostgresInbox.cleanup}. @default 1000 */
  cleanupBatchSize?: number;
}

/** The defaults merged under {@link PostgresInboxOptions}. */
export const DEFAULT_POSTGRES_INBOX_OPTIONS = {
  schema: DEFAULT_SCHEMA,
  consumer: 'default',
  retentionMs: 7 * 24 * 60 * 60 * 1000,
  lockTimeoutMs: 5000,
  cleanupBatchSize: 1000,
} as const satisfies Required<PostgresInboxOptions>;

/** What the handler of {@link PostgresInbox.transaction} receives besides the transaction client. */
export interface InboxTransactionInfo {
  consumer: string;
  messageKey: string;
}

/** Options of one {@link PostgresInbox.transaction} call. */
export interface InboxTransactionOptions<T> {
  /**
   * A small value stored with the mark and returned to later duplicates as `result` (for
   * example the id of the row the handler created). Computed from the handler's return value.
   */
  result?: (value: T) => string | undefined;
  /** Overrides the inbox's `retentionMs` for this mark. */
  retentionMs?: number;
}

/** The outcome of {@link PostgresInbox.transaction}. Expected outcomes are values, not exceptions. */
export type InboxTransactionResult<T> =
  /** The handler ran and its transaction, with the mark, committed. */
  | { status: 'handled'; value: T }
  /** The key was already processed (committed mark): the handler did not run. */
  | { status: 'duplicate'; result?: string }
  /**
   * Another delivery of the same key holds it (an open transaction past `lockTimeoutMs`, or a
   * live DedupeStore lease): the handler did not run; redeliver later.
   */
  | { status: 'in-progress' };

interface ClaimRow {
  key: string;
  claimed_token: string | null;
  state: 'claimed' | 'done' | null;
  result: string | null;
}

/**
 * The inbox on PostgreSQL: a row per (consumer, message key) in `<schema>.inbox`.
 *
 * **Transactional mode** ({@link PostgresInbox.transaction}, {@link transactionalHandler}): the
 * claim is an `INSERT` of a `done` mark inside a transaction that the handler also writes through.
 * COMMIT makes the handler's effect and the mark durable together; ROLLBACK (a thrown handler, a
 * crash, a lost connection) undoes both, so the next delivery runs the handler again. A duplicate
 * is detected by the primary key and acknowledged without running the handler. A second delivery
 * that arrives while the first is still inside its transaction waits on the row lock (up to
 * `lockTimeoutMs`) and then sees `duplicate`, or runs if the first rolled back. This is the exactly-
 * once effect that a separate dedupe store (Redis) cannot give: there, a crash between the effect
 * and the mark repeats the effect.
 *
 * **DedupeStore mode** (`claim`/`complete`/`release`/`extend`/`claimMany`): the lease protocol
 * of the core port, for handlers whose effects are not in this database. Same guarantees as every
 * DedupeStore: atomic claims, tokens, every row has an expiry.
 *
 * Rows past their expiry are ignored at once and deleted by {@link PostgresInbox.cleanup}.
 *
 * @example
 * const inbox = new PostgresInbox({ pool }, { consumer: 'payments' });
 * const outcome = await inbox.transaction(envelope.id, async (tx) => {
 *   await tx.query('INSERT INTO payments (order_id, amount) VALUES ($1, $2)', [orderId, amount]);
 * });
 * // outcome.status: 'handled' | 'duplicate' | 'in-progress'
 */
export class PostgresInbox implements DedupeStore {
  readonly #pool: Pool;
  readonly #log: Logger;
  readonly #schema: string;
  readonly #table: string;
  readonly #consumer: string;
  readonly #retentionMs: number;
  readonly #lockTimeoutMs: number;
  readonly #cleanupBatchSize: number;

  constructor(dependencies: PostgresInboxDependencies, options: PostgresInboxOptions = {}) {
    const o = { ...DEFAULT_POSTGRES_INBOX_OPTIONS, ...stripUndefined(options) };
    this.#pool = assertPool(dependencies?.pool);
    this.#schema = o.schema;
    this.#table = `${quoteSchema(o.schema)}.inbox`;
    if (typeof o.consumer !== 'string' || o.consumer.length === 0) {
      throw new PostgresConfigError('consumer', 'must be a non-empty string', o.consumer);
    }
    this.#consumer = o.consumer;
    for (const field of ['retentionMs', 'lockTimeoutMs', 'cleanupBatchSize'] as const) {
      if (!Number.isSafeInteger(o[field]) || o[field] <= 0) {
        throw new PostgresConfigError(field, 'must be a positive integer', o[field]);
      }
    }
    this.#retentionMs = o.retentionMs;
    this.#lockTimeoutMs = o.lockTimeoutMs;
    this.#cleanupBatchSize = o.cleanupBatchSize;
    this.#log = (dependencies.logger ?? createDefaultLogger()).child({
      component: 'postgres-inbox',
      consumer: this.#consumer,
    });
  }

  /** The consumer this inbox marks messages for. */
  get consumer(): string {
    return this.#consumer;
  }

  /** The schema this inbox reads and writes. */
  get schema(): string {
    return this.#schema;
  }

  // --- transactional mode -----------------------------------------------------------------

  /**
   * Runs `handler` at most once per `messageKey` with effects that commit together with the mark.
   *
   * Opens a transaction, inserts the mark (primary key `(consumer, messageKey)`), and, when the
   * key is new, calls `handler(tx)`. The handler MUST do its database writes through `tx` (not
   * through the pool) for them to share the guarantee. When the handler resolves, the transaction
   * commits; when it throws, the transaction rolls back and the error is rethrown unchanged (the
   * caller's retry policy decides). Effects outside this database (HTTP calls, other stores) are
   * not covered: make them idempotent on `messageKey`, or write them to the outbox
   * (`PostgresOutbox.append(record, { client: tx })`).
   *
   * Store failures throw a retriable `StoreUnavailableError`; a COMMIT whose outcome is unknown
   * (connection lost mid-COMMIT) also throws it, and the redelivery then finds the mark or not.
   */
  async transaction<T>(
    messageKey: string,
    handler: (tx: PoolClient, info: InboxTransactionInfo) => Promise<T>,
    options: InboxTransactionOptions<T> = {},
  ): Promise<InboxTransactionResult<T>> {
    assertKey('messageKey', messageKey);
    const retentionMs = options.retentionMs ?? this.#retentionMs;
    assertPositiveMs('retentionMs', retentionMs);
    const client = await this.#connect('inbox.transaction');
    // Set when the client's transaction state is unknown: it is destroyed, not reused.
    let destroy: Error | undefined;
    const rollback = async (): Promise<void> => {
      try {
        await client.query('ROLLBACK');
      } catch (error) {
        destroy = error instanceof Error ? error : new Error(String(error));
        this.#log.warn({ err: error, messageKey }, 'rollback failed');
      }
    };
    try {
      let claimed: boolean;
      let row: { state: string; result: string | null } | undefined;
      try {
        // The claim is ONE round trip (a multi-statement simple query, so values are inlined as
        // literals escaped by the driver): open the transaction, bound the wait on a concurrent
        // delivery that holds the key in its own transaction, insert the mark, read the row
        // (for the duplicate's stored result), and hand the handler the default lock timeout.
        const results = (await client.query(
          `BEGIN;
           SET LOCAL lock_timeout = ${this.#lockTimeoutMs};
           ${this.#markDoneSql(client, messageKey, retentionMs)}
           SET LOCAL lock_timeout TO DEFAULT;`,
        )) as unknown as QueryResult[];
        claimed = results[2]?.rowCount === 1;
        row = results[3]?.rows[0] as typeof row;
      } catch (error) {
        await rollback();
        if ((error as { code?: string }).code === '55P03') {
          this.#log.debug({ messageKey }, 'key held by a concurrent transaction: in-progress');
          return { status: 'in-progress' };
        }
        throw toStoreError(error, this.#schema, 'inbox.transaction');
      }

      if (!claimed) {
        // The SELECT ran after the INSERT waited out any concurrent holder, so it sees the
        // committed mark of a finished delivery.
        await rollback();
        if (row?.state === 'done') {
          this.#log.debug({ messageKey }, 'duplicate: already processed');
          return row.result === null
            ? { status: 'duplicate' }
            : { status: 'duplicate', result: row.result };
        }
        return { status: 'in-progress' };
      }

      let value: T;
      try {
        value = await handler(client, { consumer: this.#consumer, messageKey });
      } catch (error) {
        await rollback();
        throw error;
      }
      try {
        const result = options.result?.(value);
        if (result !== undefined) {
          await client.query(
            `UPDATE ${this.#table} SET result = $3 WHERE consumer = $1 AND message_key = $2`,
            [this.#consumer, messageKey, result],
          );
        }
        await client.query('COMMIT');
      } catch (error) {
        // COMMIT failed or never ran: roll back if the connection still answers; if it does
        // not, the server aborts the transaction when the connection closes. Either way the
        // outcome is safe to retry: the redelivery finds the mark or not.
        await rollback();
        throw toStoreError(error, this.#schema, 'inbox.commit');
      }
      return { status: 'handled', value };
    } finally {
      client.release(destroy);
    }
  }

  /**
   * Inserts the mark for `messageKey` into a transaction the CALLER opened and will commit (for
   * code that already manages its own transaction, or wants several inbox marks and outbox writes
   * in one). `claimed`: go on, and commit; the mark becomes durable with your writes. `duplicate`:
   * the message was processed; skip the work (and roll back or commit, nothing was written).
   * `in-progress`: another open transaction holds the key past `lockTimeoutMs`; your transaction
   * stays usable (the attempt ran inside a savepoint), redeliver the message later.
   *
   * The caller's own `lock_timeout` is restored afterwards. Outside a transaction block it fails
   * with `BT_ERR_PG_QUERY_FAILED` (SQLSTATE 25P01): call `BEGIN` first.
   */
  async claimIn(
    tx: ClientBase,
    messageKey: string,
    options: { retentionMs?: number } = {},
  ): Promise<
    { status: 'claimed' } | { status: 'duplicate'; result?: string } | { status: 'in-progress' }
  > {
    assertKey('messageKey', messageKey);
    const retentionMs = options.retentionMs ?? this.#retentionMs;
    assertPositiveMs('retentionMs', retentionMs);
    let results: QueryResult[];
    try {
      results = (await tx.query(
        `SAVEPOINT backtrack_inbox_claim;
         SELECT set_config('backtrack.saved_lock_timeout', current_setting('lock_timeout'), true);
         SET LOCAL lock_timeout = ${this.#lockTimeoutMs};
         ${this.#markDoneSql(tx, messageKey, retentionMs)}
         SELECT set_config('lock_timeout', current_setting('backtrack.saved_lock_timeout'), true);
         RELEASE SAVEPOINT backtrack_inbox_claim;`,
      )) as unknown as QueryResult[];
    } catch (error) {
      if ((error as { code?: string }).code === '55P03') {
        try {
          await tx.query(
            'ROLLBACK TO SAVEPOINT backtrack_inbox_claim; RELEASE SAVEPOINT backtrack_inbox_claim',
          );
        } catch (rollbackError) {
          throw toStoreError(rollbackError, this.#schema, 'inbox.claimIn');
        }
        return { status: 'in-progress' };
      }
      throw toStoreError(error, this.#schema, 'inbox.claimIn');
    }
    if (results[3]?.rowCount === 1) return { status: 'claimed' };
    const row = results[4]?.rows[0] as { state: string; result: string | null } | undefined;
    if (row?.state === 'done') {
      return row.result === null
        ? { status: 'duplicate' }
        : { status: 'duplicate', result: row.result };
    }
    return { status: 'in-progress' };
  }

  /**
   * True when `messageKey` has a live done mark for this consumer (committed, within retention).
   */
  async isProcessed(messageKey: string): Promise<boolean> {
    assertKey('messageKey', messageKey);
    const rows = await this.#query<{ done: boolean }>(
      'inbox.isProcessed',
      `SELECT true AS done FROM ${this.#table}
        WHERE consumer = $1 AND message_key = $2 AND state = 'done' AND expires_at > clock_timestamp()`,
      [this.#consumer, messageKey],
    );
    return rows.length > 0;
  }

  // --- DedupeStore mode --------------------------------------------------------------------

  async claim(key: string, options: ClaimOptions): Promise<ClaimResult> {
    assertKey('key', key);
    const [result] = await this.claimMany([key], options);
    return result!;
  }

  async claimMany(keys: readonly string[], options: ClaimOptions): Promise<ClaimResult[]> {
    keys.forEach((key, i) => assertKey(`keys[${i}]`, key));
    assertPositiveMs('leaseMs', options.leaseMs);
    if (keys.length === 0) return [];
    // Sorted, distinct keys: concurrent batches lock rows in one order (no deadlock), and
    // ON CONFLICT cannot touch a row twice in one statement.
    const unique = [...new Set(keys)].sort();
    const tokens = unique.map(() => randomUUID());
    const rows = await this.#query<ClaimRow>(
      'inbox.claim',
      `WITH input AS (
         SELECT k, t FROM unnest($2::text[], $3::text[]) AS u(k, t)
       ), ins AS (
         INSERT INTO ${this.#table} AS i (consumer, message_key, state, token, lease_expires_at, expires_at)
         SELECT $1, k, 'claimed', t,
                clock_timestamp() + $4::double precision * interval '1 millisecond',
                clock_timestamp() + $4::double precision * interval '1 millisecond'
           FROM input ORDER BY k
         ON CONFLICT (consumer, message_key) DO UPDATE
            SET state = 'claimed', token = EXCLUDED.token,
                lease_expires_at = EXCLUDED.lease_expires_at, expires_at = EXCLUDED.expires_at,
                result = NULL, processed_at = NULL, claimed_at = clock_timestamp()
          WHERE (i.state = 'claimed' AND i.lease_expires_at <= clock_timestamp())
             OR (i.state = 'done' AND i.expires_at <= clock_timestamp())
         RETURNING i.message_key, i.token
       )
       SELECT input.k AS key, ins.token AS claimed_token, cur.state, cur.result
         FROM input
         LEFT JOIN ins ON ins.message_key = input.k
         LEFT JOIN ${this.#table} cur ON cur.consumer = $1 AND cur.message_key = input.k`,
      [this.#consumer, unique, tokens, options.leaseMs],
    );
    const byKey = new Map<string, ClaimResult>();
    for (const row of rows) {
      if (row.claimed_token !== null) {
        byKey.set(row.key, { status: 'claimed', token: row.claimed_token });
      } else if (row.state === 'done') {
        // The statement's snapshot predates the upsert: a 'done' row seen here was not taken
        // over, so it is live (an expired one would have been claimed above).
        byKey.set(
          row.key,
          row.result === null ? { status: 'done' } : { status: 'done', result: row.result },
        );
      } else {
        // A live lease, or a row committed by a concurrent claim after this statement's snapshot.
        byKey.set(row.key, { status: 'in-progress' });
      }
    }
    // A key repeated in one batch is claimed by its first occurrence; the later ones see
    // `in-progress`, exactly as two separate consumers would.
    const seen = new Set<string>();
    return keys.map((key) => {
      const result = byKey.get(key) ?? { status: 'in-progress' };
      if (seen.has(key) && result.status === 'claimed') return { status: 'in-progress' };
      seen.add(key);
      return result;
    });
  }

  async complete(key: string, token: string, options: CompleteOptions): Promise<boolean> {
    assertKey('key', key);
    assertPositiveMs('ttlMs', options.ttlMs);
    const rows = await this.#query(
      'inbox.complete',
      `UPDATE ${this.#table}
          SET state = 'done', token = NULL, lease_expires_at = NULL, result = $4,
              processed_at = clock_timestamp(),
              expires_at = clock_timestamp() + $5::double precision * interval '1 millisecond'
        WHERE consumer = $1 AND message_key = $2 AND token = $3
          AND state = 'claimed' AND lease_expires_at > clock_timestamp()
        RETURNING 1`,
      [this.#consumer, key, token, options.result ?? null, options.ttlMs],
    );
    return rows.length === 1;
  }

  /**
   * Marks a batch done in ONE statement: each row only while its own token still holds a live
   * lease (the same fence as `complete`). Answers in input order. A key repeated in the batch is
   * completed by its first entry; the later ones answer false, as a second `complete` would.
   */
  async completeMany(
    entries: readonly CompleteEntry[],
    options: CompleteManyOptions,
  ): Promise<boolean[]> {
    if (!Array.isArray(entries)) {
      throw new DedupeConfigError('entries', 'must be an array of { key, token }', entries);
    }
    assertPositiveMs('ttlMs', options?.ttlMs);
    entries.forEach((entry, i) => {
      if (typeof entry !== 'object' || entry === null) {
        throw new DedupeConfigError(`entries[${i}]`, 'must be a { key, token } object', entry);
      }
      assertKey(`entries[${i}].key`, entry.key);
      if (entry.result !== undefined && typeof entry.result !== 'string') {
        throw new DedupeConfigError(`entries[${i}].result`, 'must be a string', entry.result);
      }
    });
    if (entries.length === 0) return [];
    // The first entry of each key is the one applied (an UPDATE changes a row at most once).
    // The CTE locks the rows in key order (FOR UPDATE above the sort, re-checking the fence on
    // a row another transaction changed meanwhile), so concurrent batches cannot deadlock.
    const first = new Map<string, number>();
    entries.forEach((entry, i) => {
      if (!first.has(entry.key)) first.set(entry.key, i);
    });
    const picked = [...first.values()];
    const rows = await this.#query<{ message_key: string }>(
      'inbox.completeMany',
      `WITH locked AS (
         SELECT i.message_key, u.r
           FROM ${this.#table} AS i
           JOIN unnest($2::text[], $3::text[], $4::text[]) AS u(k, t, r)
             ON i.consumer = $1 AND i.message_key = u.k
          WHERE i.token = u.t AND i.state = 'claimed' AND i.lease_expires_at > clock_timestamp()
          ORDER BY i.message_key
            FOR UPDATE OF i
       )
       UPDATE ${this.#table} AS i
          SET state = 'done', token = NULL, lease_expires_at = NULL, result = locked.r,
              processed_at = clock_timestamp(),
              expires_at = clock_timestamp() + $5::double precision * interval '1 millisecond'
         FROM locked
        WHERE i.consumer = $1 AND i.message_key = locked.message_key
        RETURNING i.message_key`,
      [
        this.#consumer,
        picked.map((i) => entries[i]!.key),
        picked.map((i) => String(entries[i]!.token)),
        picked.map((i) => entries[i]!.result ?? null),
        options.ttlMs,
      ],
    );
    const done = new Set(rows.map((r) => r.message_key));
    return entries.map((entry, i) => first.get(entry.key) === i && done.has(entry.key));
  }

  async release(key: string, token: string): Promise<boolean> {
    assertKey('key', key);
    const rows = await this.#query(
      'inbox.release',
      `DELETE FROM ${this.#table}
        WHERE consumer = $1 AND message_key = $2 AND token = $3
          AND state = 'claimed' AND lease_expires_at > clock_timestamp()
        RETURNING 1`,
      [this.#consumer, key, token],
    );
    return rows.length === 1;
  }

  async extend(key: string, token: string, leaseMs: number): Promise<boolean> {
    assertKey('key', key);
    assertPositiveMs('leaseMs', leaseMs);
    const rows = await this.#query(
      'inbox.extend',
      `UPDATE ${this.#table}
          SET lease_expires_at = clock_timestamp() + $4::double precision * interval '1 millisecond',
              expires_at = clock_timestamp() + $4::double precision * interval '1 millisecond'
        WHERE consumer = $1 AND message_key = $2 AND token = $3
          AND state = 'claimed' AND lease_expires_at > clock_timestamp()
        RETURNING 1`,
      [this.#consumer, key, token, leaseMs],
    );
    return rows.length === 1;
  }

  /**
   * The remaining time to live of `key` in ms (lease or retention), or `undefined` when it has no
   * live row. For tests and diagnostics.
   */
  async ttlOf(key: string): Promise<number | undefined> {
    const rows = await this.#query<{ ms: number }>(
      'inbox.ttlOf',
      `SELECT (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::float8 AS ms
         FROM ${this.#table}
        WHERE consumer = $1 AND message_key = $2 AND expires_at > clock_timestamp()`,
      [this.#consumer, key],
    );
    return rows[0]?.ms;
  }

  // --- retention ---------------------------------------------------------------------------

  /**
   * Deletes expired rows (done marks past their retention, abandoned leases) of EVERY consumer in
   * the schema, in batches of `cleanupBatchSize` with `SKIP LOCKED` so it never waits on live
   * traffic. Safe to run from several instances at once. Resolves with how many rows it deleted.
   */
  async cleanup(): Promise<number> {
    let total = 0;
    for (;;) {
      const rows = await this.#query<{ n: number }>(
        'inbox.cleanup',
        `WITH doomed AS (
           SELECT consumer, message_key FROM ${this.#table}
            WHERE expires_at <= clock_timestamp()
            ORDER BY expires_at
            LIMIT $1
            FOR UPDATE SKIP LOCKED
         ), deleted AS (
           DELETE FROM ${this.#table} i USING doomed d
            WHERE i.consumer = d.consumer AND i.message_key = d.message_key
           RETURNING 1
         )
         SELECT count(*)::int AS n FROM deleted`,
        [this.#cleanupBatchSize],
      );
      const n = rows[0]?.n ?? 0;
      total += n;
      if (n < this.#cleanupBatchSize) break;
    }
    if (total > 0) this.#log.info({ deleted: total }, 'inbox cleanup deleted expired rows');
    return total;
  }

  /**
   * Runs {@link PostgresInbox.cleanup} every `intervalMs` until the returned function is called.
   * A failed run is logged and retried at the next interval. The timer does not keep the process
   * alive.
   */
  startCleanup(intervalMs = 60 * 60 * 1000): () => void {
    if (!Number.isSafeInteger(intervalMs) || intervalMs <= 0) {
      throw new PostgresConfigError('intervalMs', 'must be a positive integer', intervalMs);
    }
    const timer = setInterval(() => {
      this.cleanup().catch((error: unknown) =>
        this.#log.warn({ err: error }, 'inbox cleanup failed'),
      );
    }, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  /**
   * The two statements both transactional claims share: insert the `done` mark (or take over an
   * expired lease or an expired mark), then read the row so a duplicate sees its stored result.
   * Values are inlined as literals escaped by the driver (the callers send one multi-statement
   * simple query, one round trip).
   */
  #markDoneSql(client: ClientBase, messageKey: string, retentionMs: number): string {
    const lit = (value: string) => client.escapeLiteral(value);
    return `INSERT INTO ${this.#table} AS i
                (consumer, message_key, state, processed_at, expires_at)
         VALUES (${lit(this.#consumer)}, ${lit(messageKey)}, 'done', clock_timestamp(),
                 clock_timestamp() + ${retentionMs} * interval '1 millisecond')
         ON CONFLICT (consumer, message_key) DO UPDATE
            SET state = 'done', token = NULL, lease_expires_at = NULL, result = NULL,
                claimed_at = clock_timestamp(), processed_at = clock_timestamp(),
                expires_at = EXCLUDED.expires_at
          WHERE (i.state = 'claimed' AND i.lease_expires_at <= clock_timestamp())
             OR (i.state = 'done' AND i.expires_at <= clock_timestamp())
         RETURNING 1;
         SELECT state, result FROM ${this.#table}
          WHERE consumer = ${lit(this.#consumer)} AND message_key = ${lit(messageKey)};`;
  }

  async #connect(operation: string): Promise<PoolClient> {
    try {
      return await this.#pool.connect();
    } catch (error) {
      throw toStoreError(error, this.#schema, operation);
    }
  }

  async #query<R extends object = object>(
    operation: string,
    sql: string,
    params: unknown[],
  ): Promise<R[]> {
    try {
      return (await this.#pool.query<R>(sql, params)).rows;
    } catch (error) {
      throw toStoreError(error, this.#schema, operation);
    }
  }
}

function assertKey(field: string, key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new DedupeConfigError(field, 'must be a non-empty string', key);
  }
}

function assertPositiveMs(field: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new DedupeConfigError(field, 'must be a positive integer number of milliseconds', value);
  }
}
