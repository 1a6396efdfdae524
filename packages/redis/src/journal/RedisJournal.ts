import {
  DEFAULT_JOURNAL_OPTIONS,
  PublishState,
  type Journal,
  type JournalAppend,
  type JournalOptions,
  type JournalPage,
  type JournalQuery,
  type JournalRecord,
  type UnpublishedQuery,
} from '@backtrack/core';
import { isUtf8 } from 'node:buffer';
import type { Redis } from 'ioredis';
import { RedisStoreConfigError } from '../errors.js';
import { callRedis } from '../internal/call.js';
import { LuaScript } from '../internal/LuaScript.js';
import { APPEND_MANY_SCRIPT } from './appendManyScript.js';
import { MARK_PUBLISHED_SCRIPT, PRUNE_SCRIPT, READ_MANY_SCRIPT } from './scripts.js';
import {
  assertValidAppend,
  encodeCursor,
  matchesFilters,
  normalizeQuery,
  seqToTimeMs,
  timeMsToSeq,
  type NormalizedJournalQuery,
} from '@backtrack/core/adapter';

const MARK_PUBLISHED = new LuaScript('journal.markPublished', MARK_PUBLISHED_SCRIPT);
const PRUNE = new LuaScript('journal.prune', PRUNE_SCRIPT);
const APPEND_MANY = new LuaScript('journal.appendMany', APPEND_MANY_SCRIPT);
const READ_MANY = new LuaScript('journal.readMany', READ_MANY_SCRIPT);

/** Once caught up, a writer prunes at most this often (see `pruneOnAppend`). */
const PRUNE_INTERVAL_MS = 100;
/** The most records one append call prunes (the budget of skipped calls adds up to this). */
const PRUNE_BUDGET_CAP = 250;

/** Options of {@link RedisJournal}. */
export interface RedisJournalOptions extends JournalOptions {
  /**
   * Prefix of every key. It is wrapped in a `{…}` hash tag so a journal lives in one Redis
   * Cluster slot (its scripts touch several keys).
   * @default 'backtrack:journal'
   */
  keyPrefix?: string;
  /**
   * How many expired records the appends delete on the way, per append call: up to this many,
   * or as many as the call appends when that is more, so deletion keeps up with the append rate
   * (amortised retention: the store keeps itself inside its window without a separate job).
   * The pruning is amortised: a writer that has learnt that nothing has expired yet (the oldest
   * record is inside the retention) does not look, and once it has caught up it prunes at most
   * every 100 ms, with the budget of the calls it skipped (at most 250 records, or this option
   * when larger, in one call). `0` turns it off (`prune()` then does it all).
   * @default 10
   */
  pruneOnAppend?: number;
  /**
   * How many index entries one query call reads at most before it returns a (possibly short)
   * page with a cursor: bounds the work of a selective filter over a large index.
   * @default 2000
   */
  maxScanPerQuery?: number;
  /**
   * Deadline of every store call, in ms; past it the call fails with the retriable
   * `StoreUnavailableError` (the publisher then does not publish: nothing unjournaled leaves).
   * @default 5_000
   */
  commandTimeoutMs?: number;
  /**
   * How new records are written. `'json'`: one JSON object with the body in base64 (field `j`),
   * the format every version of this journal reads. `'fields'`: the fields as a JSON array (`m`)
   * and the body bytes as they are (`b`): no base64, about 30 % less CPU per record read, but a
   * reader older than `@backtrack/redis` 0.2 does not see such records (its relay would not
   * republish them, its rollback would not reverse them). Both formats are always read. Switch to
   * `'fields'` once every service, relay and CLI on this journal runs a version that reads it, and
   * do not roll a writer back past that version (see the package README, "Record formats").
   * @default 'json'
   */
  recordFormat?: 'json' | 'fields';
  /**
   * Which indexes new records go in. `'all'`: `i:all`, `i:pending` and one sorted set per
   * service, service and version, type and saga, so a query by any of them reads only its
   * matches. `'minimal'`: `i:all`, `i:pending` and the service-and-version index (what a
   * rollback plan of a deployed version reads) only: about a third less Redis CPU per record
   * written, and less memory; a query by saga, by type or by service alone walks `i:all`
   * instead, with its filters (at most `maxScanPerQuery` entries per call, then a short page
   * with a cursor). A 'minimal' writer marks the journal (`P:indexes`), and every journal of
   * this version then queries that way whatever its own option; a reader older than this
   * option does not, and misses such records in those queries (a rollback of a whole service
   * without a version, a saga's records in `backtrack journal`). Switch once every service,
   * relay and CLI on this journal runs this version (see the package README, "Indexes").
   * @default 'all'
   */
  indexes?: 'all' | 'minimal';
}

/** Defaults of {@link RedisJournalOptions}. */
export const DEFAULT_REDIS_JOURNAL_OPTIONS = {
  ...DEFAULT_JOURNAL_OPTIONS,
  keyPrefix: 'backtrack:journal',
  pruneOnAppend: 10,
  maxScanPerQuery: 2000,
  commandTimeoutMs: 5_000,
  recordFormat: 'json',
  indexes: 'all',
} as const satisfies Required<RedisJournalOptions>;

/** Collaborators of {@link RedisJournal}. */
export interface RedisJournalDependencies {
  /** A connected ioredis client. The journal never closes it. */
  redis: Redis;
  /** Clock for retention, in ms. @default Date.now */
  now?: () => number;
}

/** A record in the 'json' format (`j`): everything in one JSON object, the body in base64. */
interface StoredJson {
  id: string;
  type: string;
  schemaVersion: number;
  key?: string;
  topic: string;
  service: string;
  version: string;
  time: string;
  sagaId?: string;
  causationId?: string;
  headers: Record<string, string>;
  /** base64 */
  body: string;
}

/**
 * The `m` field of a record in the 'fields' format: its fields in a fixed order (absent optional
 * fields as null), the headers last but three; the body is in `b`, raw.
 */
type StoredMeta = [
  id: string,
  type: string,
  schemaVersion: number,
  topic: string,
  service: string,
  version: string,
  time: string,
  headers: Record<string, string>,
  key: string | null,
  sagaId: string | null,
  causationId: string | null,
];

/** A record's fields as a script returns them: q, s, then j ('json' format) or m and b ('fields'). */
type StoredFields = [
  q: Buffer | null,
  s: Buffer | null,
  j: Buffer | null,
  m: Buffer | null,
  b: Buffer | null,
];

/**
 * The {@link Journal} on Redis.
 *
 * Layout, under one hash-tagged prefix `P`:
 * - `P:seq` the last assigned seq; `P:r:<id>` a hash per record (`q` seq, `s` state, `ix` the
 *   index keys it is in, and either `j`, one JSON object with the body in base64 — the
 *   `recordFormat: 'json'` default, which every version reads — or `m`, a JSON array of its
 *   fields and headers, and `b`, the body bytes as they are — `'fields'`, which readers before
 *   that option do not see). Both are read side by side, so no migration step is needed;
 * - sorted sets scored by seq: `P:i:all`, `P:i:pending`, `P:i:s:<service>`,
 *   `P:i:sv:<service>:<version>`, `P:i:t:<type>`, `P:i:g:<sagaId>` (with `indexes: 'minimal'`:
 *   `i:all`, `i:pending` and `i:sv` only, and `P:indexes` = `minimal`, the mark readers go by).
 *
 * Appends run in one Lua script (seq assignment, record, indexes: atomic; one ZADD per index per
 * batch), which also applies the marks a batching writer sends along and deletes a few expired
 * records, so retention is enforced by the store itself; `prune()` deletes the rest.
 * A query walks the most selective index by seq range (a time window is a seq range, see
 * `nextSeq`) and reads records in chunks, so memory per call is bounded by `limit` and
 * `maxScanPerQuery`.
 */
export class RedisJournal implements Journal {
  readonly #redis: Redis;
  readonly #now: () => number;
  readonly #prefix: string;
  readonly #retentionMs: number;
  readonly #pruneOnAppend: number;
  readonly #maxScan: number;
  readonly #timeoutMs: number;
  /** `recordFormat: 'fields'`: new records as `m` + `b`, else as `j` (readable by every version). */
  readonly #fieldsFormat: boolean;
  /** `indexes: 'minimal'`: new records go in i:all, i:pending and i:sv only. */
  readonly #minimalWriter: boolean;
  /** Queries walk i:all for saga, type and service-only filters (own option, or the mark seen). */
  #minimalReader: boolean;
  /** The `P:indexes` mark written (once per instance, before the first minimal append). */
  #marked: Promise<unknown> | undefined;
  /** Amortised pruning (see `#pruneMax`): the budget the skipped calls gave. */
  #pruneBudget = 0;
  /** The last pruning used its whole budget: more may be expired, prune on the next call. */
  #pruneBacklog = false;
  /** When the last pruning ran (ms, the journal's clock). */
  #prunedAt = Number.NEGATIVE_INFINITY;
  /** The oldest seq in `i:all` the last pruning saw: nothing older exists (seqs only grow). */
  #oldestSeq: number | undefined;
  readonly #indexKeyCache = new Map<string, { readonly keys: readonly string[]; json: string }>();
  #lastIndexKeys:
    | {
        service: string;
        version: string;
        type: string;
        entry: { readonly keys: readonly string[]; readonly json: string };
      }
    | undefined;

  constructor(options: RedisJournalOptions, dependencies: RedisJournalDependencies) {
    const o = { ...DEFAULT_REDIS_JOURNAL_OPTIONS, ...stripUndefined(options ?? {}) };
    if (!Number.isFinite(o.retentionMs) || o.retentionMs <= 0) {
      throw new RedisStoreConfigError('retentionMs', 'a positive number of ms', o.retentionMs);
    }
    if (typeof o.keyPrefix !== 'string' || o.keyPrefix.length === 0) {
      throw new RedisStoreConfigError('keyPrefix', 'a non-empty string', o.keyPrefix);
    }
    for (const field of ['pruneOnAppend', 'maxScanPerQuery', 'commandTimeoutMs'] as const) {
      const value = o[field];
      const min = field === 'pruneOnAppend' ? 0 : 1;
      if (!Number.isSafeInteger(value) || value < min) {
        throw new RedisStoreConfigError(field, `an integer >= ${min}`, value);
      }
    }
    if (o.indexes !== 'all' && o.indexes !== 'minimal') {
      throw new RedisStoreConfigError('indexes', "'all' or 'minimal'", o.indexes);
    }
    if (o.recordFormat !== 'json' && o.recordFormat !== 'fields') {
      throw new RedisStoreConfigError('recordFormat', "'json' or 'fields'", o.recordFormat);
    }
    if (!dependencies?.redis) {
      throw new RedisStoreConfigError('redis', 'an ioredis client in the dependencies', undefined);
    }
    this.#redis = dependencies.redis;
    this.#now = dependencies.now ?? Date.now;
    this.#prefix = o.keyPrefix.includes('{') ? o.keyPrefix : `{${o.keyPrefix}}`;
    this.#retentionMs = o.retentionMs;
    this.#pruneOnAppend = o.pruneOnAppend;
    this.#maxScan = o.maxScanPerQuery;
    this.#timeoutMs = o.commandTimeoutMs;
    this.#fieldsFormat = o.recordFormat === 'fields';
    this.#minimalWriter = o.indexes === 'minimal';
    this.#minimalReader = this.#minimalWriter;
  }

  /** The hash-tagged key prefix this journal writes under. */
  get keyPrefix(): string {
    return this.#prefix;
  }

  async append(record: JournalAppend): Promise<JournalRecord> {
    const times = [assertValidAppend(record)];
    // The batch script with one record: the same seq rule, idempotency and pruning.
    const [reply] = (await this.#appendBatch('append', [record], times, [])).appended;
    return Buffer.isBuffer(reply)
      ? appended(record, reply)
      : this.#parse(reply![0], reply![1], reply![2], reply![3], reply![4])!;
  }

  /**
   * Appends a batch in one round trip: one script call, which declares every key it touches
   * and also does the amortised pruning an `append` does.
   */
  async appendMany(records: readonly JournalAppend[]): Promise<JournalRecord[]> {
    const times = validTimes(records);
    if (records.length === 0) return [];
    const result = await this.#appendBatch('appendMany', records, times, []);
    const replies = result.appended;
    const out = new Array<JournalRecord>(replies.length);
    for (let i = 0; i < replies.length; i++) {
      const reply = replies[i]!;
      out[i] = Buffer.isBuffer(reply)
        ? appended(records[i]!, reply)
        : this.#parse(reply[0], reply[1], reply[2], reply[3], reply[4])!;
    }
    return out;
  }

  /**
   * `appendMany(records)` and `markPublished(published)` in ONE script call (one command, one
   * round trip): a batching writer marks the previous batch with the next batch's append. The
   * stored records are not built (nor their bodies copied) for the caller.
   */
  async appendAndMarkPublished(
    records: readonly JournalAppend[],
    published: readonly string[],
  ): Promise<number> {
    const times = validTimes(records);
    if (records.length === 0) return this.markPublished(published);
    return (await this.#appendBatch('appendMany', records, times, published)).marked;
  }

  async #appendBatch(
    operation: string,
    records: readonly JournalAppend[],
    times: readonly number[],
    published: readonly string[],
  ): Promise<{ appended: (Buffer | StoredFields)[]; marked: number }> {
    if (this.#minimalWriter) {
      // Before any record without the saga, type and service indexes exists, every reader of
      // this version learns (from the mark) to query without them. Retried after a failure.
      this.#marked ??= this.#call('markIndexes', () =>
        this.#redis.set(`${this.#prefix}:indexes`, 'minimal'),
      ).catch((error: unknown) => {
        this.#marked = undefined;
        throw error;
      });
      await this.#marked;
    }
    // A batch repeats a few index-key sets (the service, version and type of its records, their
    // saga): each set and each key travels once, and a record names its set by number.
    const keys = [`${this.#prefix}:seq`, `${this.#prefix}:i:all`, `${this.#prefix}:i:pending`];
    const recordKeys: string[] = [];
    const setNumbers = new Map<string, string>();
    const setArgs: string[] = [];
    const keyPositions = new Map<string, string>();
    const recordArgs: (string | Buffer)[] = [];
    let lastTimeMs = Number.NaN;
    let lastSeqText = '';
    for (let r = 0; r < records.length; r++) {
      const record = records[r]!;
      const { meta, body, indexKeys, indexJson } = this.#toStored(record);
      recordKeys.push(`${this.#prefix}:r:${record.id}`);
      let set = setNumbers.get(indexJson);
      if (set === undefined) {
        set = String(setNumbers.size + 1);
        setNumbers.set(indexJson, set);
        setArgs.push(indexJson, String(indexKeys.length));
        for (const key of indexKeys) {
          let position = keyPositions.get(key);
          if (position === undefined) {
            keys.push(key);
            position = String(keys.length);
            keyPositions.set(key, position);
          }
          setArgs.push(position);
        }
      }
      // The time validation parsed (a batch's records mostly share one: its seq text is reused).
      const timeMs = times[r]!;
      if (timeMs !== lastTimeMs) {
        lastTimeMs = timeMs;
        lastSeqText = String(timeMsToSeq(timeMs));
      }
      recordArgs.push(record.id, lastSeqText, meta, body, set);
    }
    const now = this.#now();
    const cutSeq = this.#cutSeq(now);
    const pruneMax = this.#pruneMax(records.length, cutSeq, now);
    const args: (string | Buffer)[] = [
      String(records.length),
      String(setNumbers.size),
      String(keys.length + 1),
      String(published.length),
      this.#prefix,
      String(cutSeq),
      String(pruneMax),
      ...setArgs,
      ...recordArgs,
      ...published,
    ];
    keys.push(...recordKeys);
    for (const id of published) keys.push(`${this.#prefix}:r:${id}`);
    // One command: the append, then the marks (an id of this batch is marked too), then the
    // pruning. Refused (NOSCRIPT) it wrote nothing, and runs again as EVAL.
    const [appendedReplies, marked, pruned, oldest] = (await this.#call(operation, () =>
      runBuffer(this.#redis, APPEND_MANY, keys, args),
    )) as [(Buffer | StoredFields)[], number, number, Buffer | null];
    if (pruneMax > 0) {
      this.#pruneBudget = 0;
      this.#pruneBacklog = pruned >= pruneMax;
      this.#prunedAt = now;
      this.#oldestSeq = oldest === null ? undefined : Number(oldest.toString('latin1'));
    }
    return { appended: appendedReplies, marked };
  }

  /**
   * How many expired records this append call prunes (0: none, the script does not look).
   * Each call adds `max(pruneOnAppend, records appended)` to a budget (capped); the budget is
   * spent when something may have expired: on the first call, while the last pruning used its
   * whole budget (a backlog), or, once caught up, at most every PRUNE_INTERVAL_MS and only when
   * the retention cut-off has passed the oldest record the last pruning saw. Seqs only grow, so
   * no record older than that one can appear (a new record's seq is above every stored one).
   */
  #pruneMax(appending: number, cutSeq: number, now: number): number {
    if (this.#pruneOnAppend === 0) return 0;
    const cap = Math.max(this.#pruneOnAppend, PRUNE_BUDGET_CAP);
    this.#pruneBudget = Math.min(cap, this.#pruneBudget + Math.max(this.#pruneOnAppend, appending));
    const oldest = this.#oldestSeq;
    const due =
      oldest === undefined ||
      (cutSeq > oldest && (this.#pruneBacklog || now - this.#prunedAt >= PRUNE_INTERVAL_MS));
    return due ? this.#pruneBudget : 0;
  }

  async markPublished(ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0;
    return (await this.#call('markPublished', () =>
      MARK_PUBLISHED.run(this.#redis, this.#markKeys(ids), ids),
    )) as number;
  }

  async unpublished(query: UnpublishedQuery): Promise<JournalRecord[]> {
    const now = query.now ?? this.#now();
    const limit = query.limit ?? 100;
    const ids = await this.#call('unpublished', () =>
      this.#redis.zrangebyscore(
        `${this.#prefix}:i:pending`,
        this.#cutSeq(now),
        timeMsToSeq(now - query.olderThanMs),
        'LIMIT',
        0,
        limit,
      ),
    );
    const records = await this.#load(ids);
    return records.filter((r): r is JournalRecord => r?.state === PublishState.Pending);
  }

  async query(query: JournalQuery = {}): Promise<JournalPage> {
    const q = normalizeQuery(query, this.#now() - this.#retentionMs);
    if (!this.#minimalReader && this.#needsMark(q)) {
      // Some writer may write 'minimal' records: asked until seen (the mark is never removed).
      const mark = await this.#call('query', () => this.#redis.get(`${this.#prefix}:indexes`));
      if (mark === 'minimal') this.#minimalReader = true;
    }
    const index = this.#indexFor(q);
    const forward = q.direction === 'forward';
    const items: JournalRecord[] = [];
    let min = q.minSeq;
    let max = q.maxSeq;
    let scanned = 0;
    let lastSeq: number | undefined;
    // An index-only query (no filter left to apply) reads exactly `limit + 1` entries; a filtered
    // one reads in chunks until the page is full or the scan budget is spent.
    const exact = this.#indexCovers(q);
    while (items.length < q.limit && scanned < this.#maxScan && min <= max) {
      const chunk = exact
        ? q.limit - items.length
        : Math.min(Math.max(q.limit, 200), this.#maxScan);
      const raw = await this.#call('query', () =>
        forward
          ? this.#redis.zrangebyscore(index, min, max, 'WITHSCORES', 'LIMIT', 0, chunk)
          : this.#redis.zrevrangebyscore(index, max, min, 'WITHSCORES', 'LIMIT', 0, chunk),
      );
      const ids: string[] = [];
      for (let i = 0; i < raw.length; i += 2) ids.push(raw[i]!);
      if (ids.length === 0) {
        lastSeq = undefined;
        break;
      }
      scanned += ids.length;
      const records = await this.#load(ids);
      let i = 0;
      for (; i < records.length && items.length < q.limit; i++) {
        const record = records[i];
        lastSeq = Number(raw[i * 2 + 1]);
        if (record && matchesFilters(record, q)) items.push(record);
      }
      if (forward) min = lastSeq! + 1;
      else max = lastSeq! - 1;
      if (ids.length < chunk && i === records.length) {
        lastSeq = undefined; // the index is exhausted
        break;
      }
    }
    if (lastSeq === undefined || min > max) return { items };
    // Peek: is anything left in range? Saves the caller an empty last page for plain queries.
    const left = await this.#call('query', () =>
      forward
        ? this.#redis.zrangebyscore(index, min, max, 'LIMIT', 0, 1)
        : this.#redis.zrevrangebyscore(index, max, min, 'LIMIT', 0, 1),
    );
    return left.length === 0
      ? { items }
      : { items, nextCursor: encodeCursor(lastSeq, q.direction) };
  }

  async get(id: string): Promise<JournalRecord | undefined> {
    const [record] = await this.#load([id]);
    if (!record || seqToTimeMs(record.seq) < this.#now() - this.#retentionMs) return undefined;
    return record;
  }

  async prune(now: number = this.#now()): Promise<number> {
    let total = 0;
    for (;;) {
      const removed = (await this.#call('prune', () =>
        PRUNE.run(
          this.#redis,
          [`${this.#prefix}:i:all`, `${this.#prefix}:i:pending`],
          [this.#prefix, String(this.#cutSeq(now)), '500'],
        ),
      )) as number;
      total += removed;
      if (removed < 500) return total;
    }
  }

  /** Deletes every key of this journal (tests and teardown). Uses SCAN, never KEYS. */
  async destroy(): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = await this.#redis.scan(
        cursor,
        'MATCH',
        `${escapeGlob(this.#prefix)}:*`,
        'COUNT',
        500,
      );
      if (keys.length > 0) await this.#redis.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
  }

  /** MARK_PUBLISHED's KEYS: i:pending, then the record key of each id. */
  #markKeys(ids: readonly string[]): string[] {
    const keys = [`${this.#prefix}:i:pending`];
    for (const id of ids) keys.push(`${this.#prefix}:r:${id}`);
    return keys;
  }

  /**
   * A record in the journal's format. 'json': `j` (body in base64). 'fields': `m`, its fields
   * and headers as one JSON array (no key names, no body), and `b`, the body bytes as they are
   * (a view, no copy, no base64).
   */
  #toStored(record: JournalAppend): {
    meta: string;
    body: string | Buffer;
    indexKeys: readonly string[];
    indexJson: string;
  } {
    const b = record.message.body;
    const { keys, json } = this.#indexKeysOf(record.service, record.version, record.type);
    // `keys` is shared (cached): a copy when the saga's key is added.
    let indexKeys = keys;
    const sagaIndexed = record.sagaId !== undefined && !this.#minimalWriter;
    if (sagaIndexed) indexKeys = [...keys, this.#key('g', record.sagaId!)];
    // JSON of the cached keys plus the saga's key: the text `JSON.stringify(indexKeys)` gives.
    const indexJson = !sagaIndexed
      ? json
      : `${json.slice(0, -1)},${JSON.stringify(indexKeys[indexKeys.length - 1])}]`;
    if (!this.#fieldsFormat) {
      // The format every version reads: `j` alone; the body argument is empty and not stored
      // (the scripts tell the formats apart by the JSON's first character: '{' here, '[' for `m`).
      const stored: StoredJson = {
        id: record.id,
        type: record.type,
        schemaVersion: record.schemaVersion,
        topic: record.topic,
        service: record.service,
        version: record.version,
        time: record.time,
        headers: record.message.headers,
        body: Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64'),
      };
      if (record.key !== undefined) stored.key = record.key;
      if (record.sagaId !== undefined) stored.sagaId = record.sagaId;
      if (record.causationId !== undefined) stored.causationId = record.causationId;
      return { meta: JSON.stringify(stored), body: '', indexKeys, indexJson };
    }
    const stored: StoredMeta = [
      record.id,
      record.type,
      record.schemaVersion,
      record.topic,
      record.service,
      record.version,
      record.time,
      // Serialised at once: no copy of the headers is needed.
      record.message.headers,
      record.key ?? null,
      record.sagaId ?? null,
      record.causationId ?? null,
    ];
    const meta = JSON.stringify(stored);
    const bytes = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    // The same bytes on the wire either way. A UTF-8 body (a JSON one: nearly all) goes as a
    // string, so the command stays a string: one Buffer argument turns ioredis' whole command
    // (every key and argument of the batch) into per-argument Buffer writes and a copy.
    const body = isUtf8(bytes) ? bytes.toString('utf8') : bytes;
    return { meta, body, indexKeys, indexJson };
  }

  /**
   * The service, service-version and type index keys of a record (and their JSON), remembered
   * per combination: a batch (a rollback's, a publisher's) repeats the same few.
   */
  #indexKeysOf(
    service: string,
    version: string,
    type: string,
  ): { readonly keys: readonly string[]; readonly json: string } {
    // A batch repeats one combination: the last one is checked first, with no key text built.
    const last = this.#lastIndexKeys;
    if (
      last !== undefined &&
      last.service === service &&
      last.version === version &&
      last.type === type
    ) {
      return last.entry;
    }
    const id = `${service}\u0000${version}\u0000${type}`;
    let entry = this.#indexKeyCache.get(id);
    if (entry === undefined) {
      const keys = this.#minimalWriter
        ? [this.#key('sv', service, version)]
        : [this.#key('s', service), this.#key('sv', service, version), this.#key('t', type)];
      entry = { keys, json: JSON.stringify(keys) };
      if (this.#indexKeyCache.size >= 1_000) this.#indexKeyCache.clear();
      this.#indexKeyCache.set(id, entry);
    }
    this.#lastIndexKeys = { service, version, type, entry };
    return entry;
  }

  #cutSeq(now: number): number {
    return timeMsToSeq(now - this.#retentionMs);
  }

  #key(kind: 's' | 'sv' | 't' | 'g', ...parts: string[]): string {
    return `${this.#prefix}:i:${kind}:${parts.map(encodeURIComponent).join(':')}`;
  }

  /** True when the query would use an index that 'minimal' records are not in. */
  #needsMark(q: NormalizedJournalQuery): boolean {
    if (q.sagaId !== undefined || q.type !== undefined) return true;
    return q.service !== undefined && q.version === undefined;
  }

  /** The most selective index for a query. */
  #indexFor(q: NormalizedJournalQuery): string {
    if (this.#minimalReader) {
      return q.service !== undefined && q.version !== undefined
        ? this.#key('sv', q.service, q.version)
        : `${this.#prefix}:i:all`;
    }
    if (q.sagaId !== undefined) return this.#key('g', q.sagaId);
    if (q.service !== undefined && q.version !== undefined)
      return this.#key('sv', q.service, q.version);
    if (q.type !== undefined) return this.#key('t', q.type);
    if (q.service !== undefined) return this.#key('s', q.service);
    return `${this.#prefix}:i:all`;
  }

  /** True when the chosen index alone decides membership (no filter left to check). */
  #indexCovers(q: NormalizedJournalQuery): boolean {
    const given = [q.sagaId, q.service, q.version, q.type].filter((v) => v !== undefined).length;
    if (given === 0) return true;
    if (this.#minimalReader)
      return given === 2 && q.service !== undefined && q.version !== undefined;
    if (given === 1) return q.version === undefined;
    return given === 2 && q.service !== undefined && q.version !== undefined;
  }

  async #load(ids: readonly string[]): Promise<(JournalRecord | undefined)[]> {
    if (ids.length === 0) return [];
    // One script call for the whole chunk: one command and one reply to build and parse, where a
    // pipeline of one HMGET per record cost a command object (and its promise) per record.
    // Buffer replies: a body comes back as the bytes stored, viewed without a copy.
    const keys = ids.map((id) => `${this.#prefix}:r:${id}`);
    const results = (await this.#call('read', () =>
      runBuffer(this.#redis, READ_MANY, keys, []),
    )) as (StoredFields | null)[];
    return results.map((v) => (v ? this.#parse(v[0], v[1], v[2], v[3], v[4]) : undefined));
  }

  /** A stored record, in the 'fields' format (`m` and `b`) or the 'json' one (`j`). */
  #parse(
    q: Buffer | null,
    s: Buffer | null,
    j: Buffer | null,
    m: Buffer | null,
    b: Buffer | null,
  ): JournalRecord | undefined {
    if (!q || !s) return undefined;
    const seq = Number(q.toString('latin1'));
    const state = s.toString('latin1') as JournalRecord['state'];
    if (m && b) {
      const [id, type, schemaVersion, topic, service, version, time, headers, key, sagaId, cause] =
        JSON.parse(m.toString('utf8')) as StoredMeta;
      const record: JournalRecord = {
        id,
        type,
        schemaVersion,
        topic,
        service,
        version,
        time,
        message: {
          headers,
          // A view of the reply's bytes: no copy.
          body: new Uint8Array(b.buffer, b.byteOffset, b.byteLength),
        },
        seq,
        state,
      };
      if (key !== null) record.key = key;
      if (sagaId !== null) record.sagaId = sagaId;
      if (cause !== null) record.causationId = cause;
      return record;
    }
    if (!j) return undefined;
    // The 'json' format: one JSON object, the body in base64.
    const { headers, body, ...rest } = JSON.parse(j.toString('utf8')) as StoredJson;
    const bytes = Buffer.from(body, 'base64');
    return {
      ...rest,
      message: {
        headers,
        body: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      },
      seq,
      state,
    };
  }

  #call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    // Watched, not given as the client (a journal call waits for a reconnect): access failures
    // still surface, and its commands leave with the others of this tick in one socket write.
    return callRedis('redis', `journal.${operation}`, this.#timeoutMs, fn, undefined, this.#redis);
  }
}

/**
 * Validates every record of a batch before any is written (as `assertValidAppend` on each) and
 * returns their times in ms.
 */
function validTimes(records: readonly JournalAppend[]): number[] {
  const times = new Array<number>(records.length);
  for (let i = 0; i < records.length; i++) times[i] = assertValidAppend(records[i]!);
  return times;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * The record an append just wrote: a copy of the append (see {@link copyAppend}) with its
 * sequence number, pending. The copy is completed in place (no second spread of it).
 */
function appended(record: JournalAppend, seq: Buffer | string | number): JournalRecord {
  const copy = copyAppend(record) as JournalAppend & { seq: number; state: PublishState };
  copy.seq = Number(String(seq));
  copy.state = PublishState.Pending;
  return copy;
}

/** A stored-record copy of an append, so the caller's later changes do not reach it. */
function copyAppend(record: JournalAppend): JournalAppend {
  const copy: JournalAppend = {
    ...record,
    message: {
      headers: { ...record.message.headers },
      body: new Uint8Array(record.message.body),
    },
  };
  return copy;
}

/**
 * ioredis' Buffer-reply script commands: present at run time on a client, a Cluster and a
 * pipeline (every command has a `…Buffer` twin), missing from its type declarations.
 */
interface BufferEval<R> {
  evalshaBuffer(sha: string, numKeys: number, ...args: (string | Buffer)[]): R;
  evalBuffer(script: string, numKeys: number, ...args: (string | Buffer)[]): R;
}

/**
 * A script run with replies as Buffers (a body is binary), falling back to EVAL once when the
 * server does not know it (first use, SCRIPT FLUSH, a restart).
 */
async function runBuffer(
  redis: Redis,
  script: LuaScript,
  keys: readonly string[],
  args: readonly (string | Buffer)[],
): Promise<unknown> {
  const client = redis as unknown as BufferEval<Promise<unknown>>;
  try {
    return await client.evalshaBuffer(script.sha, keys.length, ...keys, ...args);
  } catch (error) {
    if (!isNoScript(error)) throw error;
    return client.evalBuffer(script.source, keys.length, ...keys, ...args);
  }
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}

function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
