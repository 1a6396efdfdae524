import { setTimeout as sleep } from 'node:timers/promises';
import type { PoolClient } from 'pg';
import {
  PublishFailedError,
  createDefaultLogger,
  type JournalRecord,
  type Logger,
  type Transport,
} from '@backtrack/core';
import { PostgresConfigError, toStoreError } from '../errors.js';
import {
  OUTBOX_COLUMNS,
  OUTBOX_NOTIFY_CHANNEL,
  toJournalRecord,
  type OutboxRow,
  type PostgresOutbox,
} from './PostgresOutbox.js';
import { timeMsToSeq } from '@backtrack/core/adapter';

/** Collaborators of {@link PostgresOutboxRelay}. */
export interface PostgresOutboxRelayDependencies {
  outbox: PostgresOutbox;
  /** Any Backtrack transport (Kafka, RabbitMQ, in-memory). The relay never closes it. */
  transport: Transport;
  /** @default createDefaultLogger() */
  logger?: Logger;
  /** @default Date.now */
  now?: () => number;
}

/** Options of {@link PostgresOutboxRelay}. */
export interface PostgresOutboxRelayOptions {
  /** Records locked and published per transaction (one transport call). @default 100 */
  batchSize?: number;
  /** How long `start()` sleeps when the outbox is empty, in ms. @default 500 */
  pollIntervalMs?: number;
  /**
   * Only records pending for at least this long are published, in ms (on the journal clock).
   * 0 suits the pure outbox pattern, where the relay is the only publisher. When the same outbox
   * also backs a publisher that publishes directly and marks records itself, set it above that
   * publisher's broker timeout so the relay does not race it.
   * @default 0
   */
  olderThanMs?: number;
  /**
   * One relay at a time publishes (a transaction-scoped advisory lock; the others wait their
   * turn and take over at once if it dies), so messages leave in exact `seq` order. With
   * `false`, relays publish disjoint batches in parallel (more throughput; order is kept within a
   * batch, not across relays).
   * @default true
   */
  exclusive?: boolean;
  /** First delay after a failed batch, doubled per consecutive failure, in ms. @default 1000 */
  retryDelayMs?: number;
  /** Cap of that delay, in ms. @default 30_000 */
  maxRetryDelayMs?: number;
  /** How often `start()` prunes records past retention, in ms; 0 disables. @default 3_600_000 */
  pruneIntervalMs?: number;
  /**
   * How long one transport call may take before the batch counts as failed, in ms. The batch's
   * rows stay locked (and its transaction open) while the transport works, so a broker that
   * hangs must not hold them forever. A publish that completes after the timeout is published
   * again later (at-least-once, same envelope ids).
   * @default 30_000
   */
  publishTimeoutMs?: number;
  /**
   * While `start()`ed, hold one pool connection that `LISTEN`s for the outbox's notifications
   * (see `PostgresOutbox` option `notify`) and run a pass as soon as a transaction with new
   * records commits, instead of at the next poll. Polling stays on as the fallback (a lost
   * listener is re-established at the next pass).
   * @default true
   */
  listen?: boolean;
  /**
   * A record the transport refused this many times, each time alone and for a reason that is not
   * an outage, moves to the dead-letter table (`PostgresOutbox.deadLetters`), so the records
   * behind it go on. An error counts unless the deepest error of its cause chain that says
   * whether it is retriable says `retriable: true` (a broker outage, a timeout): an outage never
   * dead-letters anything.
   * @default 10
   */
  maxAttempts?: number;
}

/** The defaults merged under {@link PostgresOutboxRelayOptions}. */
export const DEFAULT_POSTGRES_OUTBOX_RELAY_OPTIONS = {
  batchSize: 100,
  pollIntervalMs: 500,
  olderThanMs: 0,
  exclusive: true,
  retryDelayMs: 1000,
  maxRetryDelayMs: 30_000,
  pruneIntervalMs: 60 * 60 * 1000,
  publishTimeoutMs: 30_000,
  listen: true,
  maxAttempts: 10,
} as const satisfies Required<PostgresOutboxRelayOptions>;

/** What one relay pass did. */
export interface PostgresRelayResult {
  /** Records published and marked in this pass. */
  published: number;
  /** Records of a batch the transport rejected (they stay pending, their attempt count grows). */
  failed: number;
  /** True when another relay held the exclusive lock, so this pass did nothing. */
  skipped: boolean;
  /** Records moved to the dead-letter table in this pass (see `maxAttempts`). */
  deadLettered: number;
  /** The envelope id of the first record the transport rejected. */
  firstFailedId?: string;
  /** Why the transport rejected the batch. */
  lastError?: unknown;
}

/**
 * Publishes the pending records of a {@link PostgresOutbox} through a Transport.
 *
 * Each pass is one transaction: `SELECT ... FOR UPDATE SKIP LOCKED` takes up to `batchSize`
 * pending records in `seq` order, the transport publishes them (resolving only after the broker
 * acknowledged), and an `UPDATE` marks them published before COMMIT. Several relays (one per
 * service instance) are safe at once: a record locked by one relay is skipped by the others, so
 * the relays never publish a record twice between them. A relay that crashes after the broker
 * acknowledged but before COMMIT leaves its records pending and they go out again (at-least-once;
 * consumers deduplicate on the envelope id, for example with {@link PostgresInbox}).
 *
 * A failed publish rolls nothing forward: the batch stays pending, its attempt count and last
 * error are recorded, and the relay backs off exponentially.
 *
 * @example
 * const relay = new PostgresOutboxRelay({ outbox, transport });
 * relay.start();
 * // on shutdown
 * await relay.stop();
 */
export class PostgresOutboxRelay {
  readonly #outbox: PostgresOutbox;
  readonly #transport: Transport;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #o: Required<PostgresOutboxRelayOptions>;
  #loop: Promise<void> | undefined;
  #stopping: AbortController | undefined;
  #consecutiveFailures = 0;
  #listener: PoolClient | undefined;
  /** Ends the current idle sleep early (a notification arrived). */
  #wake: (() => void) | undefined;
  /** A notification arrived while a pass ran: skip the next sleep. */
  #woken = false;
  #lastPruneMs = 0;

  constructor(
    dependencies: PostgresOutboxRelayDependencies,
    options: PostgresOutboxRelayOptions = {},
  ) {
    if (!dependencies?.outbox || !dependencies.transport) {
      throw new PostgresConfigError(
        'dependencies',
        'the relay needs an outbox and a transport',
        'missing',
      );
    }
    const o = { ...DEFAULT_POSTGRES_OUTBOX_RELAY_OPTIONS };
    for (const [field, value] of Object.entries(options)) {
      if (value === undefined) continue;
      if (field === 'exclusive' || field === 'listen') {
        if (typeof value !== 'boolean')
          throw new PostgresConfigError(field, 'must be a boolean', value);
      } else {
        const min = field === 'olderThanMs' || field === 'pruneIntervalMs' ? 0 : 1;
        if (!Number.isSafeInteger(value) || (value as number) < min) {
          throw new PostgresConfigError(field, `must be an integer >= ${min}`, value);
        }
      }
      (o as Record<string, unknown>)[field] = value;
    }
    this.#o = o;
    this.#outbox = dependencies.outbox;
    this.#transport = dependencies.transport;
    this.#now = dependencies.now ?? Date.now;
    this.#log = (dependencies.logger ?? createDefaultLogger()).child({
      component: 'postgres-outbox-relay',
      schema: this.#outbox.schema,
      transport: this.#transport.name,
    });
  }

  /** True while the relay holds a LISTEN connection (only while started, with `listen`). */
  get listening(): boolean {
    return this.#listener !== undefined;
  }

  /** True between `start()` and the end of `stop()`. */
  get running(): boolean {
    return this.#loop !== undefined;
  }

  /**
   * Publishes one batch. Resolves with what it did; store failures throw a retriable
   * `StoreUnavailableError`; a transport failure is recorded on the records and reported in
   * `failed` (not thrown), so a scheduler calling this keeps going.
   */
  async runOnce(): Promise<PostgresRelayResult> {
    let client: PoolClient;
    try {
      client = await this.#outbox.pool.connect();
    } catch (error) {
      throw toStoreError(error, this.#outbox.schema, 'relay.connect');
    }
    let destroy: Error | undefined;
    try {
      await client.query('BEGIN');
      if (this.#o.exclusive) {
        const lock = await client.query<{ locked: boolean }>(
          'SELECT pg_try_advisory_xact_lock(hashtext($1), hashtext($2)) AS locked',
          ['backtrack.outbox-relay', this.#outbox.schema],
        );
        if (!lock.rows[0]?.locked) {
          await client.query('COMMIT');
          return { published: 0, failed: 0, deadLettered: 0, skipped: true };
        }
      }
      const now = this.#now();
      const rows = (
        await client.query<OutboxRow>(
          `SELECT ${OUTBOX_COLUMNS} FROM ${this.#outbox.table}
            WHERE state = 'pending' AND seq >= $1 AND seq <= $2
            ORDER BY seq
            LIMIT $3
            FOR UPDATE SKIP LOCKED`,
          [
            this.#outbox.oldestLiveSeq(now),
            // With olderThanMs 0 (the relay is the only publisher) there is no upper bound: a
            // producer whose clock runs ahead pushes seqs into the future (seq = max(last + 1,
            // time)), and those records must not wait for the relay's clock to catch up.
            this.#o.olderThanMs === 0
              ? Number.MAX_SAFE_INTEGER
              : timeMsToSeq(now - this.#o.olderThanMs),
            this.#o.batchSize,
          ],
        )
      ).rows;
      if (rows.length === 0) {
        await client.query('COMMIT');
        return { published: 0, failed: 0, deadLettered: 0, skipped: false };
      }
      const records = rows.map(toJournalRecord);
      const result = await this.#publishRows(client, rows, records);
      await client.query('COMMIT');
      if (result.published > 0) {
        this.#log.debug(
          { count: result.published, lastSeq: records.at(-1)?.seq },
          'outbox relay published',
        );
      }
      return result;
    } catch (error) {
      destroy = error instanceof Error ? error : new Error(String(error));
      await client.query('ROLLBACK').catch(() => undefined);
      throw toStoreError(error, this.#outbox.schema, 'relay.runOnce');
    } finally {
      client.release(destroy);
    }
  }

  /**
   * Publishes the locked rows: the whole batch in one transport call; when that fails for a reason
   * other than an outage, one by one in seq order up to the first that fails, so a poisoned
   * record holds back nothing but itself and, after `maxAttempts`, not even that.
   */
  async #publishRows(
    client: PoolClient,
    rows: OutboxRow[],
    records: JournalRecord[],
  ): Promise<PostgresRelayResult> {
    const table = this.#outbox.table;
    const result: PostgresRelayResult = {
      published: 0,
      failed: 0,
      deadLettered: 0,
      skipped: false,
    };
    const markPublished = async (seqs: string[]) => {
      await client.query(
        `UPDATE ${table}
            SET state = 'published', published_at = clock_timestamp(),
                publish_attempts = publish_attempts + 1, last_error = NULL
          WHERE seq = ANY($1::bigint[])`,
        [seqs],
      );
      result.published += seqs.length;
    };
    const batchError = await this.#publish(records);
    if (batchError === undefined) {
      await markPublished(rows.map((r) => r.seq));
      return result;
    }
    if (isTransient(batchError) || records.length === 1) {
      const counts = !isTransient(batchError);
      await this.#recordFailure(
        client,
        rows.map((r) => r.seq),
        batchError,
        counts,
      );
      result.failed = records.length;
      result.firstFailedId = records[0]!.id;
      result.lastError = batchError;
      this.#log.warn(
        { err: batchError, count: records.length, firstSeq: records[0]?.seq },
        'outbox relay: transport rejected a batch; it stays pending',
      );
      if (counts) result.deadLettered = await this.#deadLetterExhausted(client, [rows[0]!.seq]);
      return result;
    }
    // Something in the batch is refused: find it, keeping seq order.
    for (let i = 0; i < records.length; i++) {
      const error = await this.#publish([records[i]!]);
      if (error === undefined) {
        await markPublished([rows[i]!.seq]);
        continue;
      }
      const counts = !isTransient(error);
      await this.#recordFailure(client, [rows[i]!.seq], error, counts);
      result.failed = 1;
      result.firstFailedId = records[i]!.id;
      result.lastError = error;
      this.#log.warn(
        { err: error, seq: records[i]!.seq, id: records[i]!.id },
        'outbox relay: transport rejected a record; it and the records after it stay pending',
      );
      const dead = counts ? await this.#deadLetterExhausted(client, [rows[i]!.seq]) : 0;
      result.deadLettered += dead;
      if (dead === 0) return result;
      this.#log.warn(
        { err: error, seq: records[i]!.seq, id: records[i]!.id },
        'outbox relay: record moved to the dead-letter table after maxAttempts',
      );
    }
    return result;
  }

  async #publish(records: JournalRecord[]): Promise<unknown> {
    if (records.length === 0) return undefined;
    try {
      await withTimeout(
        this.#transport.publish(
          records.map((r) =>
            r.key === undefined
              ? { topic: r.topic, message: r.message }
              : { topic: r.topic, key: r.key, message: r.message },
          ),
        ),
        this.#o.publishTimeoutMs,
      );
      return undefined;
    } catch (error) {
      return error ?? new Error('publish failed');
    }
  }

  async #recordFailure(
    client: PoolClient,
    seqs: string[],
    error: unknown,
    counts: boolean,
  ): Promise<void> {
    await client.query(
      `UPDATE ${this.#outbox.table}
          SET publish_attempts = publish_attempts + 1, last_error = $2,
              failed_attempts = failed_attempts + $3
        WHERE seq = ANY($1::bigint[])`,
      [
        seqs,
        error instanceof Error ? error.message.slice(0, 2000) : String(error).slice(0, 2000),
        counts ? 1 : 0,
      ],
    );
  }

  /** Moves the given rows that reached `maxAttempts` to the dead-letter table. */
  async #deadLetterExhausted(client: PoolClient, seqs: string[]): Promise<number> {
    const moved = await client.query<{ n: number }>(
      `WITH moved AS (
         DELETE FROM ${this.#outbox.table}
          WHERE seq = ANY($1::bigint[]) AND state = 'pending' AND failed_attempts >= $2
         RETURNING *
       ), ins AS (
         INSERT INTO ${this.#outbox.deadLetterTable}
                (seq, id, type, schema_version, message_key, topic, service, version, time,
                 saga_id, causation_id, headers, body, appended_at, publish_attempts,
                 failed_attempts, last_error)
         SELECT seq, id, type, schema_version, message_key, topic, service, version, time,
                saga_id, causation_id, headers, body, appended_at, publish_attempts,
                failed_attempts, last_error FROM moved
         RETURNING 1
       )
       SELECT count(*)::int AS n FROM ins`,
      [seqs, this.#o.maxAttempts],
    );
    return moved.rows[0]?.n ?? 0;
  }

  /**
   * Publishes until the outbox is drained (a pass publishes less than a full batch). Resolves with
   * the number published; rejects with `PublishFailedError` (`details.id`: the first record of
   * the rejected batch) when the transport fails. For tests, scripts and shutdown hooks.
   */
  async drain(): Promise<number> {
    let total = 0;
    for (;;) {
      const r = await this.runOnce();
      total += r.published;
      if (r.failed > 0) {
        // The batch stays pending; a later pass (or `start()`) delivers it.
        throw new PublishFailedError(r.firstFailedId ?? 'unknown', 'outbox batch', r.lastError);
      }
      if (r.skipped) {
        await sleep(this.#o.pollIntervalMs);
        continue;
      }
      if (r.published < this.#o.batchSize) return total;
    }
  }

  /**
   * Runs passes in the background until {@link PostgresOutboxRelay.stop}: back to back while
   * batches come full, `pollIntervalMs` apart when idle, with exponential backoff after failures.
   * Errors are logged, never thrown. Idempotent.
   */
  start(): void {
    if (this.#loop) return;
    const stopping = new AbortController();
    this.#stopping = stopping;
    this.#loop = this.#run(stopping.signal).finally(() => {
      this.#loop = undefined;
    });
  }

  /** Stops the loop after the batch in flight (if any) commits. */
  async stop(): Promise<void> {
    this.#stopping?.abort();
    await this.#loop;
    this.#dropListener();
  }

  async #run(signal: AbortSignal): Promise<void> {
    this.#log.info(
      { exclusive: this.#o.exclusive, batchSize: this.#o.batchSize },
      'outbox relay started',
    );
    while (!signal.aborted) {
      let delayMs = this.#o.pollIntervalMs;
      await this.#ensureListener();
      this.#woken = false;
      try {
        const r = await this.runOnce();
        if (r.failed > 0) {
          delayMs = this.#backoff();
        } else {
          this.#consecutiveFailures = 0;
          if (r.published === this.#o.batchSize) delayMs = 0;
        }
        await this.#maybePrune();
      } catch (error) {
        delayMs = this.#backoff();
        this.#log.warn({ err: error, delayMs }, 'outbox relay pass failed');
      }
      if (delayMs > 0 && !this.#woken && !signal.aborted) await this.#idle(delayMs, signal);
    }
    this.#log.info('outbox relay stopped');
  }

  #idle(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.#wake = done;
    });
  }

  async #ensureListener(): Promise<void> {
    if (!this.#o.listen || this.#listener !== undefined) return;
    let client: PoolClient | undefined;
    try {
      client = await this.#outbox.pool.connect();
      const schema = this.#outbox.schema;
      client.on('notification', (message) => {
        if (message.channel !== OUTBOX_NOTIFY_CHANNEL || message.payload !== schema) return;
        if (this.#wake) this.#wake();
        else this.#woken = true;
      });
      const own = client;
      // Stays attached after the client is dropped, so a late error never goes unhandled.
      client.on('error', (error) => {
        if (this.#listener !== own) return;
        this.#log.warn({ err: error }, 'outbox relay listener lost; polling until it is back');
        this.#dropListener(error);
      });
      await client.query(`LISTEN ${OUTBOX_NOTIFY_CHANNEL}`);
      this.#listener = client;
    } catch (error) {
      client?.release(error instanceof Error ? error : true);
      this.#log.warn({ err: error }, 'outbox relay could not LISTEN; polling');
    }
  }

  #dropListener(error?: Error): void {
    const client = this.#listener;
    this.#listener = undefined;
    if (client === undefined) return;
    client.removeAllListeners('notification');
    // A LISTENing connection must not go back to the pool: destroy it.
    client.release(error ?? true);
  }

  #backoff(): number {
    this.#consecutiveFailures++;
    return Math.min(
      this.#o.retryDelayMs * 2 ** (this.#consecutiveFailures - 1),
      this.#o.maxRetryDelayMs,
    );
  }

  async #maybePrune(): Promise<void> {
    if (this.#o.pruneIntervalMs === 0) return;
    const now = this.#now();
    if (now - this.#lastPruneMs < this.#o.pruneIntervalMs) return;
    this.#lastPruneMs = now;
    const deleted = await this.#outbox.prune(now);
    if (deleted > 0) this.#log.info({ deleted }, 'outbox relay pruned records past retention');
  }
}

class PublishTimeoutError extends Error {
  readonly retriable = true;
  constructor(ms: number) {
    super(`the transport did not acknowledge the batch within ${ms} ms`);
    this.name = 'PublishTimeoutError';
  }
}

/**
 * True when the failure is an outage rather than a refusal: the deepest error of the cause chain
 * that says whether it is retriable says `retriable: true`. Errors that say nothing are refusals.
 */
export function isTransient(error: unknown): boolean {
  let verdict: boolean | undefined;
  let current: unknown = error;
  for (let depth = 0; depth < 10 && current !== null && typeof current === 'object'; depth++) {
    const retriable = (current as { retriable?: unknown }).retriable;
    if (typeof retriable === 'boolean') verdict = retriable;
    current = (current as { cause?: unknown }).cause;
  }
  return verdict === true;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PublishTimeoutError(ms)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
