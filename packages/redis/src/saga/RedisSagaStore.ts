import {
  FINISHED_SAGA_STATUSES,
  SagaConcurrencyError,
  SagaStatus,
  type SagaListQuery,
  type SagaPage,
  type SagaPruneOptions,
  type SagaRecord,
  type SagaStore,
  takeOverSagaRecord,
} from '@backtrack/core';
import { RedisStoreConfigError } from '../errors.js';
import { callRedis } from '../internal/call.js';
import type { RedisClient } from '../internal/cluster.js';
import { shardOf, shardSegments, type SagaKeyLayout } from './keyLayout.js';
import { adoptRecord, parsedCopy } from './recordText.js';
import { CREATE, GET_DOCS, LIST_MEMBERS, PRUNE, SWEEP, UPDATE, UPDATE_KNOWN } from './scripts.js';

/** Options of {@link RedisSagaStore}. Every field is validated once, at construction. */
export interface RedisSagaStoreOptions {
  /**
   * Prefix of every key the store writes. Give each service or environment its own. No hash tag
   * is needed on Redis Cluster: the default `keyLayout` puts its own tags after the prefix (a
   * `{tag}` in the prefix still works, but puts the whole store in one slot, on one master).
   * @default 'backtrack:saga:'
   */
  keyPrefix?: string;
  /**
   * The key layout. `'sharded'`: a saga's record and index entries under one of 16 hash-tagged
   * shards, so every script touches one slot and the sagas spread over a cluster's masters.
   * `'legacy'`: the keys versions before Redis Cluster support wrote (`<prefix>rec:<id>`,
   * `<prefix>idx:all`, ...); set it to keep reading sagas an older version stored. The two
   * layouts do not see each other's sagas: see the package README for the migration.
   * @default 'sharded'
   */
  keyLayout?: SagaKeyLayout;
  /**
   * Deadline of every store call, in ms. When Redis does not answer in time the call fails with
   * the retriable `StoreUnavailableError`. An `update` that timed out may still have been
   * applied: re-read the saga (its `revision` tells) before deciding again.
   * @default 2_000
   */
  commandTimeoutMs?: number;
  /**
   * Largest `limit` a `list` call may ask for (one Lua call reads the whole page).
   * @default 1_000
   */
  maxListLimit?: number;
  /**
   * Retention of finished sagas (completed, compensated, failed), in ms after the write that
   * finished them (their last write): that write gives the record a Redis TTL, in the same
   * script (still one round trip), and Redis deletes it by itself; the store trims the index
   * entries of expired sagas (see `sweepIntervalMs`). Running, compensating and stuck sagas never
   * expire, and a finished saga written again (a compensation requested later) loses its TTL
   * while it is not finished. `false`: keep finished sagas until pruned (`prune`,
   * `backtrack sagas prune`). Applies to writes from this version on: sagas finished before keep
   * no TTL; prune them once with `backtrack sagas prune --older-than 30d`.
   * @default 2_592_000_000 (30 days)
   */
  finishedRetentionMs?: number | false;
  /**
   * How often the store trims, by itself, the index entries of finished sagas Redis expired:
   * at most once per interval, started by a store call (never on a call's own round trip;
   * `sweep()` runs it now). Each pass reads every shard's `idx:exp` set for entries past their
   * expiry, in bounded batches.
   * @default 60_000
   */
  sweepIntervalMs?: number;
}

/** Collaborators of {@link RedisSagaStore}. */
export interface RedisSagaStoreDependencies {
  /**
   * The ioredis client: a single node (`Redis`) or a Redis Cluster (`Cluster`). The caller owns
   * it; see `createRedisClient` / `createRedisClusterClient`.
   */
  redis: RedisClient;
}

/** The defaults {@link RedisSagaStore} merges the caller's options over. */
export const DEFAULT_REDIS_SAGA_OPTIONS: Readonly<Required<RedisSagaStoreOptions>> = Object.freeze({
  keyPrefix: 'backtrack:saga:',
  keyLayout: 'sharded',
  commandTimeoutMs: 2_000,
  maxListLimit: 1_000,
  finishedRetentionMs: 30 * 24 * 60 * 60 * 1000,
  sweepIntervalMs: 60_000,
});

/** Sagas whose stored revision and status a store remembers (see `#known`). */
const KNOWN_LIMIT = 10_000;

/** Expired `idx:exp` entries one sweep call handles (per shard, per call). */
const SWEEP_BATCH = 500;

const DEFAULT_LIST_LIMIT = 100;
const STATUS_LIST: readonly string[] = Object.values(SagaStatus);
const STATUSES = new Set<string>(STATUS_LIST);
const FINISHED = new Set<string>(FINISHED_SAGA_STATUSES);
/** The expiry arguments of a write that sets no TTL. */
const NO_EXPIRY: readonly [string, string] = Object.freeze(['0', '0'] as [string, string]);

/**
 * What the store remembers of a saga it last created or updated (see `#known`): the stored
 * revision and status, and what every update of it repeats (its keys, member and shard).
 */
interface KnownSaga {
  revision: number;
  status: string;
  readonly createdAt: string;
  readonly member: string;
  readonly segment: string;
  /** KEYS of an update that keeps the status: the record and `idx:exp`. */
  readonly keys: readonly string[];
  /** The record last handed out by create or update: whose parts the next record shares. */
  last: SagaRecord | undefined;
}

/**
 * The saga log ({@link SagaStore}) on Redis.
 *
 * - A saga is a hash holding the record as JSON plus its `revision`, status and name.
 * - `create` and `update` hand out the record written, deep-frozen (a change throws in strict-mode
 *   code); `get` and `list` hand out copies parsed anew. A record the engine built from one this
 *   store handed out is serialised from the parts it changed (the text of the others is
 *   remembered) and handed back itself, frozen: no `JSON.parse` per transition. The stored text is
 *   exactly `JSON.stringify(record)`, as before.
 * - `create` is one Lua call: write only if absent, add to the indexes; an existing saga is
 *   returned untouched (idempotent on `sagaId`).
 * - `update` is one Lua call (one round trip per step transition): check `revision`, write the
 *   record with `revision + 1`, and move it between the status indexes. A stale revision throws
 *   `SagaConcurrencyError`, so two engines recovering the same saga cannot both advance it.
 * - `list` reads sorted-set indexes per status, per saga name and per both, never scanning every
 *   saga. Pages run oldest first (by `createdAt`, then `sagaId`) with an opaque cursor that stays
 *   valid while sagas change status. In the sharded layout a page reads every shard (one call
 *   per shard, sent at once), then the page's records (one call per shard that has some).
 * - Redis Cluster: every script declares every key it touches and touches one slot (a saga's
 *   record and its index entries share its shard's hash tag); sagas spread over the masters.
 * - Redis down or slow: calls fail within `commandTimeoutMs` with the retriable
 *   `StoreUnavailableError`.
 *
 * Retention: a finished saga's record expires `finishedRetentionMs` (30 days) after its last
 * write (a Redis TTL set by that write), and the store trims the index entries of expired
 * sagas by itself, so `list` never returns one; `prune` (or `backtrack sagas prune`) deletes
 * finished sagas older than a cut now. Running, compensating and stuck ones never expire.
 *
 * @example
 * const store = new RedisSagaStore({ keyPrefix: 'orders:saga:' }, { redis: createRedisClient() });
 * const engine = createSagaEngine({ store, ... });
 */
export class RedisSagaStore implements SagaStore {
  readonly options: Readonly<Required<RedisSagaStoreOptions>>;
  readonly #redis: RedisClient;
  readonly #segments: readonly string[];
  #lastSweep = Date.now();
  #sweeping: Promise<number> | undefined;
  /**
   * The revision and status of sagas this store last created or updated (at most KNOWN_LIMIT,
   * oldest forgotten first). An update at a revision found here declares only the keys it
   * touches (UPDATE_KNOWN: 2 keys, 6 on a status change, instead of 16 and the status list); the
   * script checks the stored status and falls back to the full UPDATE when it differs. A hint
   * only: it never decides anything the script does not check.
   */
  readonly #known = new Map<string, KnownSaga>();

  constructor(options: RedisSagaStoreOptions, dependencies: RedisSagaStoreDependencies) {
    this.options = validateOptions(options);
    if (!dependencies?.redis) {
      throw new RedisStoreConfigError(
        'dependencies.redis',
        'an ioredis client is required',
        dependencies?.redis,
      );
    }
    this.#redis = dependencies.redis;
    this.#segments = shardSegments(this.options.keyLayout);
  }

  async create(
    record: SagaRecord,
  ): Promise<{ created: true; record: SagaRecord } | { created: false; record: SagaRecord }> {
    // Before any await: the engine's mark is for this call only (see takeOverSagaRecord).
    const adopted = takeOverSagaRecord(record);
    assertRecord(record);
    const own = adopted && adoptRecord(record, undefined);
    const doc = JSON.stringify(record);
    const answer = (await this.#call('create', () =>
      CREATE.run(this.#redis, this.#keysFor(record), [
        doc,
        String(record.revision),
        record.status,
        record.sagaName,
        member(record),
        ...this.#expiryArgs(record.status),
      ]),
    )) as [number, string?];
    this.#maybeSweep();
    if (answer[0] !== 1) {
      const existing = parsedCopy<SagaRecord>(answer[1]!);
      this.#remember(existing);
      return { created: false, record: existing };
    }
    // The record written, frozen: itself when adopted, else a parsed copy of its text.
    const stored = own ? record : parsedCopy<SagaRecord>(doc);
    this.#remember(stored);
    return { created: true, record: stored };
  }

  async get(sagaId: string): Promise<SagaRecord | undefined> {
    assertString('sagaId', sagaId);
    const doc = await this.#call('get', () => this.#redis.hget(this.#recordKey(sagaId), 'doc'));
    return doc === null ? undefined : (JSON.parse(doc) as SagaRecord);
  }

  async update(record: SagaRecord, expectedRevision: number): Promise<SagaRecord> {
    // Before any await: the engine's mark is for this call only (see takeOverSagaRecord).
    const adopted = takeOverSagaRecord(record) && !Object.isFrozen(record);
    assertRecord(record);
    if (!Number.isSafeInteger(expectedRevision) || expectedRevision < 0) {
      throw new RedisStoreConfigError(
        'expectedRevision',
        'must be a non-negative integer',
        expectedRevision,
      );
    }
    const revision = expectedRevision + 1;
    const known = this.#known.get(record.sagaId);
    let next: SagaRecord;
    let own = false;
    if (adopted) {
      // Given away by the engine: written and handed back itself, frozen (see adoptRecord).
      record.revision = revision;
      next = record;
      own = adoptRecord(record, known?.last);
    } else {
      next = { ...record, revision };
    }
    const doc = JSON.stringify(next);
    const [ttl, expiresAt] = this.#expiryArgs(next.status);
    let answer: [number, string?] | undefined;
    if (known !== undefined && known.revision === expectedRevision) {
      const args = [
        String(expectedRevision),
        doc,
        String(revision),
        next.status,
        next.sagaName,
        next.createdAt === known.createdAt ? known.member : member(next),
        known.status,
        ttl,
        expiresAt,
      ];
      const keys =
        known.status === next.status
          ? known.keys
          : this.#movingKeys(known, known.status, next.status, next.sagaName);
      answer = (await this.#call('update', () => UPDATE_KNOWN.run(this.#redis, keys, args))) as [
        number,
        string?,
      ];
      // The stored saga is not the one remembered: send the write every key declared.
      if (answer[0] === -3) answer = undefined;
    }
    if (answer === undefined) {
      this.#known.delete(next.sagaId);
      answer = (await this.#call('update', () =>
        UPDATE.run(this.#redis, this.#updateKeysFor(next), [
          String(expectedRevision),
          doc,
          String(revision),
          next.status,
          next.sagaName,
          member(next),
          STATUS_LIST.length,
          ...STATUS_LIST,
          ttl,
          expiresAt,
        ]),
      )) as [number, string?];
    }
    this.#maybeSweep();
    if (answer[0] === -2) {
      throw new RedisStoreConfigError(
        'record.sagaName',
        `must not change (the stored saga is named ${JSON.stringify(answer[1])})`,
        record.sagaName,
      );
    }
    if (answer[0] !== 1) {
      this.#known.delete(next.sagaId);
      throw new SagaConcurrencyError(record.sagaId, expectedRevision, {
        details: { actualRevision: answer[0] === 0 ? Number(answer[1]) : null },
      });
    }
    // The record written, frozen: itself when adopted, else a parsed copy of its text.
    const stored = own ? next : parsedCopy<SagaRecord>(doc);
    this.#remember(stored);
    return stored;
  }

  async list(query: SagaListQuery = {}): Promise<SagaPage> {
    const limit = query.limit ?? DEFAULT_LIST_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > this.options.maxListLimit) {
      throw new RedisStoreConfigError(
        'limit',
        `must be an integer from 1 to maxListLimit (${this.options.maxListLimit})`,
        limit,
      );
    }
    const statuses =
      query.status === undefined
        ? undefined
        : [...new Set(typeof query.status === 'string' ? [query.status] : query.status)];
    statuses?.forEach((s) => assertStatus('status', s));
    if (query.sagaName !== undefined) assertString('sagaName', query.sagaName);
    if (statuses?.length === 0) return { items: [] };

    const name = query.sagaName;
    const indexes = (segment: string) =>
      statuses === undefined
        ? [this.#index(segment, name === undefined ? 'all' : `n:${name}`)]
        : statuses.map((st) =>
            this.#index(segment, name === undefined ? `s:${st}` : `ns:${st}:${name}`),
          );
    const min = query.cursor === undefined ? '-' : `(${decodeCursor(query.cursor)}`;

    return this.#call('list', async () => {
      const items: SagaRecord[] = [];
      let from = min;
      // A page left short by index entries whose record is gone (expired, not yet swept) or
      // moved reads on past them, so a page is full unless it is the last.
      for (;;) {
        const want = limit - items.length;
        // 1. The first want + 1 members of every index set of every shard, merged in byte order
        //    (the order ZRANGEBYLEX uses; JavaScript's own string order differs above U+FFFF).
        const perShard = await Promise.all(
          this.#segments.map(
            (segment) =>
              LIST_MEMBERS.run(this.#redis, indexes(segment), [from, want + 1]) as Promise<
                string[]
              >,
          ),
        );
        const merged = [...new Set(perShard.flat())]
          .map((m) => ({ m, bytes: Buffer.from(m) }))
          .sort((x, y) => Buffer.compare(x.bytes, y.bytes))
          .map((x) => x.m);
        const page = merged.slice(0, want);
        // 2. Their records, one call per shard that holds some, in page order.
        const byShard = new Map<number, number[]>();
        page.forEach((m, i) => {
          const shard = shardOf(sagaIdOf(m), this.#segments.length);
          const positions = byShard.get(shard);
          if (positions === undefined) byShard.set(shard, [i]);
          else positions.push(i);
        });
        const docs = new Array<string | null>(page.length).fill(null);
        await Promise.all(
          [...byShard].map(async ([, positions]) => {
            const found = (await GET_DOCS.run(
              this.#redis,
              positions.map((i) => this.#recordKey(sagaIdOf(page[i]!))),
              [],
            )) as (string | null)[];
            positions.forEach((pos, j) => (docs[pos] = found[j] ?? null));
          }),
        );
        // A saga that changed status or was removed between the two reads is left out (the
        // cursor still moves past it): a page never shows a record the query excludes. So is
        // an index entry whose record expired (the sweep has not trimmed it yet) or whose id
        // now holds a newer saga (its own entry lists it).
        docs.forEach((d, i) => {
          if (typeof d !== 'string') return;
          const r = JSON.parse(d) as SagaRecord;
          if (
            member(r) === page[i] &&
            (statuses === undefined || statuses.includes(r.status)) &&
            (name === undefined || r.sagaName === name)
          ) {
            items.push(r);
          }
        });
        this.#maybeSweep();
        const last = page[page.length - 1];
        if (merged.length <= want || last === undefined) return { items };
        if (items.length === limit) return { items, nextCursor: encodeCursor(last) };
        from = `(${last}`;
      }
    });
  }

  /**
   * Retention: deletes finished sagas last written before `updatedBefore`, at most `limit`.
   * Per shard it pages through the finished-status indexes (oldest first), reads the records,
   * and deletes those past the cut in one script call per page; a saga written between the read
   * and the delete (another revision) is kept.
   */
  async prune(options: SagaPruneOptions): Promise<number> {
    const limit = options.limit ?? 1000;
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new RedisStoreConfigError('limit', 'must be a positive integer', options.limit);
    }
    const statuses = [...new Set(options.statuses ?? FINISHED_SAGA_STATUSES)];
    for (const st of statuses) {
      if (!(FINISHED_SAGA_STATUSES as readonly string[]).includes(st)) {
        throw new RedisStoreConfigError(
          'statuses',
          `must be finished statuses (${FINISHED_SAGA_STATUSES.join(', ')})`,
          st,
        );
      }
    }
    const cut = options.updatedBefore.toISOString();
    const page = Math.min(limit, this.options.maxListLimit);
    let deleted = 0;
    return this.#call('prune', async () => {
      for (const segment of this.#segments) {
        for (const status of statuses) {
          let min = '-';
          while (deleted < limit) {
            const members = (await LIST_MEMBERS.run(
              this.#redis,
              [this.#index(segment, `s:${status}`)],
              [min, page],
            )) as string[];
            if (members.length === 0) break;
            const docs = (await GET_DOCS.run(
              this.#redis,
              members.map((m) => this.#recordKey(sagaIdOf(m))),
              [],
            )) as (string | null)[];
            const keys: string[] = [this.#index(segment, 'exp')];
            const args: string[] = [];
            for (const doc of docs) {
              if (typeof doc !== 'string' || (keys.length - 1) / 5 >= limit - deleted) continue;
              const r = JSON.parse(doc) as SagaRecord;
              if (r.status !== status || !(r.updatedAt < cut)) continue;
              keys.push(
                this.#recordKey(r.sagaId),
                this.#index(segment, 'all'),
                this.#index(segment, `s:${r.status}`),
                this.#index(segment, `n:${r.sagaName}`),
                this.#index(segment, `ns:${r.status}:${r.sagaName}`),
              );
              args.push(String(r.revision), r.status, member(r), r.sagaName);
            }
            if (keys.length > 1) deleted += Number(await PRUNE.run(this.#redis, keys, args));
            if (members.length < page) break;
            min = `(${members[members.length - 1]!}`;
          }
        }
        if (deleted >= limit) break;
      }
      return deleted;
    });
  }

  /**
   * The retention sweep: trims, in every shard, the index entries of finished sagas whose record
   * Redis expired (`finishedRetentionMs`), in batches of 500 per call. The store runs it by
   * itself at most once per `sweepIntervalMs`; call it to trim now (tests, benchmarks, after a
   * bulk expiry). Resolves with how many sagas' entries it removed. One sweep at a time: a call
   * while one runs joins it.
   */
  sweep(): Promise<number> {
    if (this.#sweeping !== undefined) return this.#sweeping;
    this.#lastSweep = Date.now();
    const run = (async () => {
      let removed = 0;
      for (const segment of this.#segments) {
        const exp = this.#index(segment, 'exp');
        for (;;) {
          const entries = await this.#call('sweep', () =>
            this.#redis.zrangebyscore(exp, '-inf', Date.now(), 'LIMIT', 0, SWEEP_BATCH),
          );
          if (entries.length === 0) break;
          const keys = [exp];
          const args: string[] = [];
          for (const entry of entries) {
            // `<status>\0<createdAt>\0<sagaId>\0<sagaName>`: neither status, createdAt nor the
            // id holds a NUL (create refuses them), the name may.
            const [status, createdAt, sagaId] = entry.split('\0', 3) as [string, string, string];
            const name = entry.slice(status.length + createdAt.length + sagaId.length + 3);
            const m = `${createdAt}\0${sagaId}`;
            keys.push(
              this.#recordKey(sagaId),
              this.#index(segment, 'all'),
              this.#index(segment, `s:${status}`),
              this.#index(segment, `n:${name}`),
              this.#index(segment, `ns:${status}:${name}`),
            );
            args.push(entry, m);
          }
          const n = Number(await this.#call('sweep', () => SWEEP.run(this.#redis, keys, args)));
          removed += n;
          // n = 0: a whole batch of records still there (clocks apart): leave them for later.
          if (entries.length < SWEEP_BATCH || n === 0) break;
        }
      }
      return removed;
    })().finally(() => {
      this.#sweeping = undefined;
    });
    this.#sweeping = run;
    return run;
  }

  /** Remembers a saga's stored revision and status (see `#known`); finished ones are dropped. */
  #remember(record: SagaRecord): void {
    const known = this.#known.get(record.sagaId);
    if (known !== undefined) this.#known.delete(record.sagaId);
    if (FINISHED.has(record.status)) return;
    if (this.#known.size >= KNOWN_LIMIT) {
      this.#known.delete(this.#known.keys().next().value as string);
    }
    if (known !== undefined && known.createdAt === record.createdAt) {
      known.revision = record.revision;
      known.status = record.status;
      known.last = record;
      this.#known.set(record.sagaId, known);
      return;
    }
    const segment = this.#segmentOf(record.sagaId);
    this.#known.set(record.sagaId, {
      revision: record.revision,
      status: record.status,
      createdAt: record.createdAt,
      member: member(record),
      segment,
      keys: Object.freeze([
        `${this.options.keyPrefix}${segment}rec:${record.sagaId}`,
        this.#index(segment, 'exp'),
      ]),
      last: record,
    });
  }

  /** Starts a sweep when retention is on and the last one began `sweepIntervalMs` ago or more. */
  #maybeSweep(): void {
    if (this.options.finishedRetentionMs === false || this.#sweeping !== undefined) return;
    if (Date.now() - this.#lastSweep < this.options.sweepIntervalMs) return;
    // Off the caller's path: a failed sweep (Redis down) is tried again at the next interval.
    this.sweep().catch(() => undefined);
  }

  /** CREATE / UPDATE arguments: the record's TTL ('0': none) and its expiry time, in ms. */
  #expiryArgs(status: string): readonly [string, string] {
    const ttl = this.options.finishedRetentionMs;
    if (ttl === false || !FINISHED.has(status)) return NO_EXPIRY;
    return [String(ttl), String(Date.now() + ttl)];
  }

  #segmentOf(sagaId: string): string {
    return this.#segments[shardOf(sagaId, this.#segments.length)]!;
  }

  #index(segment: string, name: string): string {
    return `${this.options.keyPrefix}${segment}idx:${name}`;
  }

  #recordKey(sagaId: string): string {
    return `${this.options.keyPrefix}${this.#segmentOf(sagaId)}rec:${sagaId}`;
  }

  /** KEYS of CREATE: the record and the four index sets it joins, all in the saga's shard. */
  #keysFor(record: SagaRecord): string[] {
    const seg = this.#segmentOf(record.sagaId);
    return [
      this.#recordKey(record.sagaId),
      this.#index(seg, 'all'),
      this.#index(seg, `s:${record.status}`),
      this.#index(seg, `n:${record.sagaName}`),
      this.#index(seg, `ns:${record.status}:${record.sagaName}`),
      this.#index(seg, 'exp'),
    ];
  }

  /** KEYS of UPDATE_KNOWN on a status change: record, idx:exp, the old and the new status sets. */
  #movingKeys(known: KnownSaga, from: string, to: string, name: string): string[] {
    const seg = known.segment;
    return [
      known.keys[0]!,
      known.keys[1]!,
      this.#index(seg, `s:${from}`),
      this.#index(seg, `ns:${from}:${name}`),
      this.#index(seg, `s:${to}`),
      this.#index(seg, `ns:${to}:${name}`),
    ];
  }

  /** KEYS of UPDATE: record, idx:all, idx:n, then idx:s and idx:ns of every status, idx:exp. */
  #updateKeysFor(record: SagaRecord): string[] {
    const seg = this.#segmentOf(record.sagaId);
    return [
      this.#recordKey(record.sagaId),
      this.#index(seg, 'all'),
      this.#index(seg, `n:${record.sagaName}`),
      ...STATUS_LIST.map((st) => this.#index(seg, `s:${st}`)),
      ...STATUS_LIST.map((st) => this.#index(seg, `ns:${st}:${record.sagaName}`)),
      this.#index(seg, 'exp'),
    ];
  }

  #call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return callRedis('redis-saga', operation, this.options.commandTimeoutMs, fn, this.#redis);
  }
}

/** The index member: creation time, then id (NUL-separated, so byte order is tuple order). */
function member(record: SagaRecord): string {
  return `${record.createdAt}\0${record.sagaId}`;
}

/** The saga id of an index member. */
function sagaIdOf(member: string): string {
  return member.slice(member.indexOf('\0') + 1);
}

/** Cursors use the same shape as InMemorySagaStore's: base64url of `[createdAt, sagaId]`. */
function encodeCursor(lastMember: string): string {
  const sep = lastMember.indexOf('\0');
  const pair = [lastMember.slice(0, sep), lastMember.slice(sep + 1)];
  return Buffer.from(JSON.stringify(pair)).toString('base64url');
}

function decodeCursor(cursor: string): string {
  try {
    const pair: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString());
    if (
      Array.isArray(pair) &&
      pair.length === 2 &&
      typeof pair[0] === 'string' &&
      typeof pair[1] === 'string'
    ) {
      return `${pair[0]}\0${pair[1]}`;
    }
  } catch {
    // fall through to the coded error
  }
  throw new RedisStoreConfigError('cursor', 'must be a nextCursor returned by list()', cursor);
}

function assertRecord(record: SagaRecord): void {
  if (typeof record !== 'object' || record === null) {
    throw new RedisStoreConfigError('record', 'must be a SagaRecord object', record);
  }
  assertString('record.sagaId', record.sagaId);
  assertString('record.sagaName', record.sagaName);
  assertString('record.createdAt', record.createdAt);
  assertStatus('record.status', record.status);
  if (!Number.isSafeInteger(record.revision) || record.revision < 0) {
    throw new RedisStoreConfigError(
      'record.revision',
      'must be a non-negative integer',
      record.revision,
    );
  }
  if (record.createdAt.includes('\0') || record.sagaId.includes('\0')) {
    throw new RedisStoreConfigError(
      'record.sagaId',
      'must not contain NUL characters',
      record.sagaId,
    );
  }
}

function assertString(field: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new RedisStoreConfigError(field, 'must be a non-empty string', value);
  }
}

function assertStatus(field: string, value: unknown): void {
  if (typeof value !== 'string' || !STATUSES.has(value)) {
    throw new RedisStoreConfigError(field, `must be one of ${[...STATUSES].join(', ')}`, value);
  }
}

function validateOptions(
  options: RedisSagaStoreOptions | undefined,
): Readonly<Required<RedisSagaStoreOptions>> {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new RedisStoreConfigError('options', 'must be an object', options);
  }
  const defined = Object.fromEntries(
    Object.entries(options ?? {}).filter(([, v]) => v !== undefined),
  ) as RedisSagaStoreOptions;
  const merged = { ...DEFAULT_REDIS_SAGA_OPTIONS, ...defined };
  if (
    typeof merged.keyPrefix !== 'string' ||
    merged.keyPrefix.length === 0 ||
    merged.keyPrefix.length > 256
  ) {
    throw new RedisStoreConfigError(
      'keyPrefix',
      'must be a string of 1 to 256 characters',
      merged.keyPrefix,
    );
  }
  if (merged.keyLayout !== 'sharded' && merged.keyLayout !== 'legacy') {
    throw new RedisStoreConfigError('keyLayout', "must be 'sharded' or 'legacy'", merged.keyLayout);
  }
  if (!Number.isSafeInteger(merged.commandTimeoutMs) || merged.commandTimeoutMs <= 0) {
    throw new RedisStoreConfigError(
      'commandTimeoutMs',
      'must be a positive integer number of ms',
      merged.commandTimeoutMs,
    );
  }
  if (
    merged.finishedRetentionMs !== false &&
    (!Number.isSafeInteger(merged.finishedRetentionMs) || merged.finishedRetentionMs < 1)
  ) {
    throw new RedisStoreConfigError(
      'finishedRetentionMs',
      'must be a positive integer number of ms, or false to keep finished sagas',
      merged.finishedRetentionMs,
    );
  }
  if (!Number.isSafeInteger(merged.sweepIntervalMs) || merged.sweepIntervalMs < 1) {
    throw new RedisStoreConfigError(
      'sweepIntervalMs',
      'must be a positive integer number of ms',
      merged.sweepIntervalMs,
    );
  }
  if (!Number.isSafeInteger(merged.maxListLimit) || merged.maxListLimit < 1) {
    throw new RedisStoreConfigError(
      'maxListLimit',
      'must be a positive integer',
      merged.maxListLimit,
    );
  }
  return Object.freeze(merged);
}
