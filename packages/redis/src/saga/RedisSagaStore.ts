import {
  SagaConcurrencyError,
  SagaStatus,
  type SagaListQuery,
  type SagaPage,
  type SagaRecord,
  type SagaStore,
} from '@backtrack/core';
import type { Redis } from 'ioredis';
import { RedisStoreConfigError } from '../errors.js';
import { callRedis } from '../internal/call.js';
import { CREATE, LIST, UPDATE } from './scripts.js';

/** Options of {@link RedisSagaStore}. Every field is validated once, at construction. */
export interface RedisSagaStoreOptions {
  /**
   * Prefix of every key the store writes. Give each service or environment its own. In Redis
   * Cluster, put a hash tag in it (for example `'{orders}:saga:'`): the scripts touch a saga's
   * record and its index sets together, so they must share one slot.
   * @default 'backtrack:saga:'
   */
  keyPrefix?: string;
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
}

/** Collaborators of {@link RedisSagaStore}. */
export interface RedisSagaStoreDependencies {
  /** The ioredis client. The caller owns it; see `createRedisClient`. */
  redis: Redis;
}

/** The defaults {@link RedisSagaStore} merges the caller's options over. */
export const DEFAULT_REDIS_SAGA_OPTIONS: Readonly<Required<RedisSagaStoreOptions>> = Object.freeze({
  keyPrefix: 'backtrack:saga:',
  commandTimeoutMs: 2_000,
  maxListLimit: 1_000,
});

const DEFAULT_LIST_LIMIT = 100;
const STATUSES = new Set<string>(Object.values(SagaStatus));

/**
 * The saga log ({@link SagaStore}) on Redis.
 *
 * - A saga is a hash holding the record as JSON plus its `revision`, status and name.
 * - `create` is one Lua call: write only if absent, add to the indexes; an existing saga is
 *   returned untouched (idempotent on `sagaId`).
 * - `update` is one Lua call (one round trip per step transition): check `revision`, write the
 *   record with `revision + 1`, and move it between the status indexes. A stale revision throws
 *   `SagaConcurrencyError`, so two engines recovering the same saga cannot both advance it.
 * - `list` reads sorted-set indexes per status, per saga name and per both, never scanning every
 *   saga. Pages run oldest first (by `createdAt`, then `sagaId`) with an opaque cursor that stays
 *   valid while sagas change status.
 * - Redis down or slow: calls fail within `commandTimeoutMs` with the retriable
 *   `StoreUnavailableError`.
 *
 * Records are kept until you delete them (terminal sagas too): the saga log is the audit trail
 * `backtrack sagas` reads.
 *
 * @example
 * const store = new RedisSagaStore({ keyPrefix: 'orders:saga:' }, { redis: createRedisClient() });
 * const engine = createSagaEngine({ store, ... });
 */
export class RedisSagaStore implements SagaStore {
  readonly options: Readonly<Required<RedisSagaStoreOptions>>;
  readonly #redis: Redis;

  constructor(options: RedisSagaStoreOptions, dependencies: RedisSagaStoreDependencies) {
    this.options = validateOptions(options);
    if (!dependencies?.redis) {
      throw new RedisStoreConfigError(
        'dependencies.redis',
        dependencies?.redis,
        'an ioredis client is required',
      );
    }
    this.#redis = dependencies.redis;
  }

  async create(
    record: SagaRecord,
  ): Promise<{ created: true; record: SagaRecord } | { created: false; record: SagaRecord }> {
    assertRecord(record);
    const doc = JSON.stringify(record);
    const answer = (await this.#call('create', () =>
      CREATE.run(this.#redis, this.#keysFor(record), [
        doc,
        String(record.revision),
        record.status,
        record.sagaName,
        member(record),
      ]),
    )) as [number, string?];
    if (answer[0] === 1) return { created: true, record: JSON.parse(doc) as SagaRecord };
    return { created: false, record: JSON.parse(answer[1]!) as SagaRecord };
  }

  async get(sagaId: string): Promise<SagaRecord | undefined> {
    assertString('sagaId', sagaId);
    const doc = await this.#call('get', () => this.#redis.hget(this.#recordKey(sagaId), 'doc'));
    return doc === null ? undefined : (JSON.parse(doc) as SagaRecord);
  }

  async update(record: SagaRecord, expectedRevision: number): Promise<SagaRecord> {
    assertRecord(record);
    if (!Number.isSafeInteger(expectedRevision) || expectedRevision < 0) {
      throw new RedisStoreConfigError(
        'expectedRevision',
        expectedRevision,
        'must be a non-negative integer',
      );
    }
    const next: SagaRecord = { ...record, revision: expectedRevision + 1 };
    const doc = JSON.stringify(next);
    const answer = (await this.#call('update', () =>
      UPDATE.run(this.#redis, this.#keysFor(next), [
        this.options.keyPrefix,
        String(expectedRevision),
        doc,
        String(next.revision),
        next.status,
        next.sagaName,
        member(next),
      ]),
    )) as [number, string?];
    if (answer[0] !== 1) {
      throw new SagaConcurrencyError(record.sagaId, expectedRevision, {
        details: { actualRevision: answer[0] === 0 ? Number(answer[1]) : null },
      });
    }
    return JSON.parse(doc) as SagaRecord;
  }

  async list(query: SagaListQuery = {}): Promise<SagaPage> {
    const limit = query.limit ?? DEFAULT_LIST_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > this.options.maxListLimit) {
      throw new RedisStoreConfigError(
        'limit',
        limit,
        `must be an integer from 1 to maxListLimit (${this.options.maxListLimit})`,
      );
    }
    const statuses =
      query.status === undefined
        ? undefined
        : [...new Set(typeof query.status === 'string' ? [query.status] : query.status)];
    statuses?.forEach((s) => assertStatus('status', s));
    if (query.sagaName !== undefined) assertString('sagaName', query.sagaName);
    if (statuses?.length === 0) return { items: [] };

    const p = this.options.keyPrefix;
    const name = query.sagaName;
    const keys =
      statuses === undefined
        ? [name === undefined ? `${p}idx:all` : `${p}idx:n:${name}`]
        : statuses.map((s) => (name === undefined ? `${p}idx:s:${s}` : `${p}idx:ns:${s}:${name}`));
    const min = query.cursor === undefined ? '-' : `(${decodeCursor(query.cursor)}`;

    const answer = (await this.#call('list', () =>
      LIST.run(this.#redis, keys, [`${p}rec:`, min, limit]),
    )) as [number, string, ...string[]];
    const [hasMore, last, ...docs] = answer;
    const items = docs.map((d) => JSON.parse(d) as SagaRecord);
    return hasMore === 1 && last !== '' ? { items, nextCursor: encodeCursor(last) } : { items };
  }

  #recordKey(sagaId: string): string {
    return `${this.options.keyPrefix}rec:${sagaId}`;
  }

  #keysFor(record: SagaRecord): string[] {
    const p = this.options.keyPrefix;
    return [
      this.#recordKey(record.sagaId),
      `${p}idx:all`,
      `${p}idx:s:${record.status}`,
      `${p}idx:n:${record.sagaName}`,
      `${p}idx:ns:${record.status}:${record.sagaName}`,
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
  throw new RedisStoreConfigError('cursor', cursor, 'must be a nextCursor returned by list()');
}

function assertRecord(record: SagaRecord): void {
  if (typeof record !== 'object' || record === null) {
    throw new RedisStoreConfigError('record', record, 'must be a SagaRecord object');
  }
  assertString('record.sagaId', record.sagaId);
  assertString('record.sagaName', record.sagaName);
  assertString('record.createdAt', record.createdAt);
  assertStatus('record.status', record.status);
  if (!Number.isSafeInteger(record.revision) || record.revision < 0) {
    throw new RedisStoreConfigError(
      'record.revision',
      record.revision,
      'must be a non-negative integer',
    );
  }
  if (record.createdAt.includes('\0') || record.sagaId.includes('\0')) {
    throw new RedisStoreConfigError(
      'record.sagaId',
      record.sagaId,
      'must not contain NUL characters',
    );
  }
}

function assertString(field: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new RedisStoreConfigError(field, value, 'must be a non-empty string');
  }
}

function assertStatus(field: string, value: unknown): void {
  if (typeof value !== 'string' || !STATUSES.has(value)) {
    throw new RedisStoreConfigError(field, value, `must be one of ${[...STATUSES].join(', ')}`);
  }
}

function validateOptions(
  options: RedisSagaStoreOptions | undefined,
): Readonly<Required<RedisSagaStoreOptions>> {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new RedisStoreConfigError('options', options, 'must be an object');
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
      merged.keyPrefix,
      'must be a string of 1 to 256 characters',
    );
  }
  if (!Number.isSafeInteger(merged.commandTimeoutMs) || merged.commandTimeoutMs <= 0) {
    throw new RedisStoreConfigError(
      'commandTimeoutMs',
      merged.commandTimeoutMs,
      'must be a positive integer number of ms',
    );
  }
  if (!Number.isSafeInteger(merged.maxListLimit) || merged.maxListLimit < 1) {
    throw new RedisStoreConfigError(
      'maxListLimit',
      merged.maxListLimit,
      'must be a positive integer',
    );
  }
  return Object.freeze(merged);
}
