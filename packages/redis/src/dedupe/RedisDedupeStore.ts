import { randomUUID } from 'node:crypto';
import {
  DedupeConfigError,
  createDefaultLogger,
  type ClaimOptions,
  type ClaimResult,
  type CompleteEntry,
  type CompleteManyOptions,
  type CompleteOptions,
  type DedupeStore,
  type Logger,
} from '@backtrack/core';
import { RedisStoreConfigError } from '../errors.js';
import { callRedis } from '../internal/call.js';
import { groupBySlot, isCluster, type RedisClient } from '../internal/cluster.js';
import type { LuaScript } from '../internal/LuaScript.js';
import {
  CLAIM,
  COMPLETE,
  COMPLETE_MANY,
  COMPLETE_MANY_SHARED,
  EXTEND,
  RELEASE,
} from './scripts.js';

/** Options of {@link RedisDedupeStore}. Every field is validated once, at construction. */
export interface RedisDedupeStoreOptions {
  /**
   * Prefix of every key the store writes (`<keyPrefix><dedupe key>`). Give each service or
   * environment its own. On Redis Cluster leave hash tags out of it: each dedupe key then hashes
   * to its own slot, and batch calls are split by slot so the load spreads over every master.
   * (A `{tag}` in the prefix still works, but puts the whole store on one master.)
   * @default 'backtrack:dedupe:'
   */
  keyPrefix?: string;
  /**
   * Retention of a done mark when `complete` is called without `ttlMs` (JavaScript callers, or
   * a `ttlMs` of `undefined`), in ms. The idempotent middleware always passes its own.
   * Must be between 1 second and 30 days.
   * @default 86_400_000 (24 hours: inside the 30 minutes .. 7 days other systems use)
   */
  defaultRetentionMs?: number;
  /**
   * Deadline of every store call, in ms. When Redis does not answer in time (down, unreachable,
   * overloaded) the call fails with the retriable `StoreUnavailableError`, so consumers pause
   * instead of hanging. A claim that timed out may still have been written: its lease then
   * simply expires.
   * @default 2_000
   */
  commandTimeoutMs?: number;
  /**
   * Largest `result` `complete` accepts, in bytes (UTF-8). Results are meant to be small (a
   * response id); this keeps a mistake from filling Redis.
   * @default 16_384
   */
  maxResultBytes?: number;
}

/** Collaborators of {@link RedisDedupeStore}. */
export interface RedisDedupeStoreDependencies {
  /**
   * The ioredis client: a single node (`Redis`) or a Redis Cluster (`Cluster`). The caller owns
   * it (connects, quits); see `createRedisClient` / `createRedisClusterClient` for settings that
   * fail fast while Redis is away.
   */
  redis: RedisClient;
  /** @default createDefaultLogger() */
  logger?: Logger;
}

/** The defaults {@link RedisDedupeStore} merges the caller's options over. */
export const DEFAULT_REDIS_DEDUPE_OPTIONS: Readonly<Required<RedisDedupeStoreOptions>> =
  Object.freeze({
    keyPrefix: 'backtrack:dedupe:',
    defaultRetentionMs: 24 * 60 * 60 * 1000,
    commandTimeoutMs: 2_000,
    maxResultBytes: 16_384,
  });

const MIN_RETENTION_MS = 1_000;
const MAX_RETENTION_MS = 30 * 24 * 60 * 60 * 1000;

/**
 * A {@link DedupeStore} on Redis (ioredis), shared by every instance of a consumer.
 *
 * - `claim` is `SET key 'p:<random token>' NX PX leaseMs`: atomic, so of two consumers that
 *   receive the same message only one runs the handler. (Never GET, then handle, then SETEX:
 *   two consumers can both pass the GET.)
 * - `complete`, `release` and `extend` are Lua scripts that act only while the key still holds
 *   the caller's token, so a consumer whose lease expired cannot overwrite the new owner.
 * - `claimMany` claims a whole batch and `completeMany` writes a whole batch of done marks (each
 *   fenced by its own token) in ONE round trip (one script). On Redis Cluster a batch is split by
 *   hash slot, one script call per slot, sent concurrently (pipelined per master).
 * - Every key has an expiry: a lease `leaseMs`, a done mark `ttlMs`.
 * - Redis down or slow: every call fails within `commandTimeoutMs` with the retriable
 *   `StoreUnavailableError` (code `BT_ERR_STORE_UNAVAILABLE`).
 *
 * It is NOT atomic with the handler's own database writes: a crash after the handler's effect
 * and before `complete` runs the handler again once the lease expires. The handler's own
 * idempotency key is the defence there. See the package README.
 *
 * @example
 * const redis = createRedisClient();
 * const store = new RedisDedupeStore({ keyPrefix: 'orders:dedupe:' }, { redis });
 */
export class RedisDedupeStore implements DedupeStore {
  readonly options: Readonly<Required<RedisDedupeStoreOptions>>;
  readonly #redis: RedisClient;

  constructor(options: RedisDedupeStoreOptions, dependencies: RedisDedupeStoreDependencies) {
    this.options = validateOptions(options);
    if (!dependencies?.redis) {
      throw new RedisStoreConfigError(
        'dependencies.redis',
        'an ioredis client is required',
        dependencies?.redis,
      );
    }
    this.#redis = dependencies.redis;
    warnAboutUnboundedQueue(this.#redis, dependencies.logger);
  }

  async claim(key: string, options: ClaimOptions): Promise<ClaimResult> {
    assertKey('key', key);
    assertPositiveMs('leaseMs', options?.leaseMs);
    const [result] = await this.#claim([key], options.leaseMs, 'claim');
    return result!;
  }

  async claimMany(keys: readonly string[], options: ClaimOptions): Promise<ClaimResult[]> {
    keys.forEach((key, i) => assertKey(`keys[${i}]`, key));
    assertPositiveMs('leaseMs', options?.leaseMs);
    if (keys.length === 0) return [];
    return this.#claim(keys, options.leaseMs, 'claimMany');
  }

  async complete(key: string, token: string, options: CompleteOptions): Promise<boolean> {
    assertKey('key', key);
    const ttlMs = options?.ttlMs ?? this.options.defaultRetentionMs;
    assertPositiveMs('ttlMs', ttlMs);
    const done = this.#doneValue('result', options?.result);
    const answer = await this.#call('complete', () =>
      COMPLETE.run(this.#redis, [this.#key(key)], [String(token), done, ttlMs]),
    );
    return answer === 1;
  }

  async completeMany(
    entries: readonly CompleteEntry[],
    options: CompleteManyOptions,
  ): Promise<boolean[]> {
    if (!Array.isArray(entries)) {
      throw new DedupeConfigError('entries', 'must be an array of { key, token }', entries);
    }
    const ttlMs = options?.ttlMs ?? this.options.defaultRetentionMs;
    assertPositiveMs('ttlMs', ttlMs);
    // Every entry is checked before anything is sent: a rejected batch writes nothing.
    const count = entries.length;
    const keys = new Array<string>(count);
    const tokens = new Array<string>(count);
    const done = new Array<string>(count);
    let shared = true;
    for (let i = 0; i < count; i++) {
      const entry = entries[i];
      if (typeof entry !== 'object' || entry === null) {
        throw new DedupeConfigError(`entries[${i}]`, 'must be a { key, token } object', entry);
      }
      assertKey(`entries[${i}].key`, entry.key);
      keys[i] = this.#key(entry.key);
      tokens[i] = String(entry.token);
      done[i] = this.#doneValue(`entries[${i}].result`, entry.result);
      if (i > 0 && done[i] !== done[0]) shared = false;
    }
    if (count === 0) return [];
    // One done value for the whole batch (no results, the common case): it goes once, then a
    // token per key; else a token and a done value per key.
    const answers = shared
      ? await this.#batch(
          'completeMany',
          COMPLETE_MANY_SHARED,
          keys,
          [ttlMs, done[0]!],
          (i, args) => {
            args.push(tokens[i]!);
          },
        )
      : await this.#batch('completeMany', COMPLETE_MANY, keys, [ttlMs], (i, args) => {
          args.push(tokens[i]!, done[i]!);
        });
    const out = new Array<boolean>(count);
    for (let i = 0; i < count; i++) out[i] = answers[i] === 1;
    return out;
  }

  async release(key: string, token: string): Promise<boolean> {
    assertKey('key', key);
    const answer = await this.#call('release', () =>
      RELEASE.run(this.#redis, [this.#key(key)], [String(token)]),
    );
    return answer === 1;
  }

  async extend(key: string, token: string, leaseMs: number): Promise<boolean> {
    assertKey('key', key);
    assertPositiveMs('leaseMs', leaseMs);
    const answer = await this.#call('extend', () =>
      EXTEND.run(this.#redis, [this.#key(key)], [String(token), leaseMs]),
    );
    return answer === 1;
  }

  /** The Redis key a dedupe key is stored under (for diagnostics and tests). */
  redisKey(key: string): string {
    return this.#key(key);
  }

  async #claim(
    keys: readonly string[],
    leaseMs: number,
    operation: string,
  ): Promise<ClaimResult[]> {
    // Each key its own token (distinct, unguessable): one random part per call, then the key's
    // position, instead of a random UUID per key.
    const base = randomUUID();
    const count = keys.length;
    const redisKeys = new Array<string>(count);
    const tokens = new Array<string>(count);
    for (let i = 0; i < count; i++) {
      redisKeys[i] = this.#key(keys[i]!);
      tokens[i] = `${base}.${i}`;
    }
    const raw = (await this.#batch(operation, CLAIM, redisKeys, [leaseMs], (i, args) => {
      args.push(tokens[i]!);
    })) as string[];
    const out = new Array<ClaimResult>(raw.length);
    for (let i = 0; i < raw.length; i++) {
      const answer = raw[i]!;
      out[i] =
        answer === 'c'
          ? { status: 'claimed', token: tokens[i]! }
          : answer === 'i'
            ? { status: 'in-progress' }
            : answer.length > 1
              ? { status: 'done', result: answer.slice(2) }
              : { status: 'done' };
    }
    return out;
  }

  /**
   * Runs a per-key batch script: `KEYS = redisKeys`, `ARGV = head, then what `argsOf` adds for
   * each key` (nothing when it is not given), answering one value per key in input order. On a
   * single node that is one call (one round trip). On Redis Cluster a script may only touch one
   * slot, so the keys are grouped by slot and each group is one call, all sent at once (ioredis
   * pipelines them on each master's connection), so a batch costs one round trip per master and
   * its load spreads over the masters.
   */
  async #batch(
    operation: string,
    script: LuaScript,
    redisKeys: readonly string[],
    head: readonly (string | number)[],
    argsOf?: (i: number, args: (string | number)[]) => void,
  ): Promise<unknown[]> {
    const argsFor = (positions: readonly number[] | undefined): (string | number)[] => {
      if (argsOf === undefined) return head as (string | number)[];
      const args = head.slice();
      if (positions === undefined) for (let i = 0; i < redisKeys.length; i++) argsOf(i, args);
      else for (const i of positions) argsOf(i, args);
      return args;
    };
    if (!isCluster(this.#redis)) {
      const args = argsFor(undefined);
      return this.#call(
        operation,
        () => script.run(this.#redis, redisKeys, args) as Promise<unknown[]>,
      );
    }
    const groups = groupBySlot(redisKeys);
    const run = (positions: readonly number[]) =>
      script.run(
        this.#redis,
        positions.map((i) => redisKeys[i]!),
        argsFor(positions),
      ) as Promise<unknown[]>;
    return this.#call(operation, async () => {
      const answers = await Promise.all(groups.map(run));
      const out = new Array<unknown>(redisKeys.length);
      groups.forEach((positions, g) => positions.forEach((pos, j) => (out[pos] = answers[g]![j])));
      return out;
    });
  }

  /** The stored done value: 'd', or 'd:' .. result after checking the result's type and size. */
  #doneValue(field: string, result: unknown): string {
    if (result === undefined) return 'd';
    if (typeof result !== 'string') {
      throw new DedupeConfigError(field, 'must be a string when given', result);
    }
    if (Buffer.byteLength(result) > this.options.maxResultBytes) {
      throw new DedupeConfigError(
        field,
        `must be at most maxResultBytes (${this.options.maxResultBytes}) bytes`,
        `${Buffer.byteLength(result)} bytes`,
      );
    }
    return `d:${result}`;
  }

  #key(key: string): string {
    return this.options.keyPrefix + key;
  }

  #call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return callRedis('redis-dedupe', operation, this.options.commandTimeoutMs, fn, this.#redis);
  }
}

function validateOptions(
  options: RedisDedupeStoreOptions | undefined,
): Readonly<Required<RedisDedupeStoreOptions>> {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new RedisStoreConfigError('options', 'must be an object', options);
  }
  const merged = { ...DEFAULT_REDIS_DEDUPE_OPTIONS, ...stripUndefined(options ?? {}) };
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
  if (
    !Number.isSafeInteger(merged.defaultRetentionMs) ||
    merged.defaultRetentionMs < MIN_RETENTION_MS ||
    merged.defaultRetentionMs > MAX_RETENTION_MS
  ) {
    throw new RedisStoreConfigError(
      'defaultRetentionMs',
      `must be an integer number of ms between ${MIN_RETENTION_MS} (1 s) and ${MAX_RETENTION_MS} (30 days)`,
      merged.defaultRetentionMs,
    );
  }
  if (!Number.isSafeInteger(merged.commandTimeoutMs) || merged.commandTimeoutMs <= 0) {
    throw new RedisStoreConfigError(
      'commandTimeoutMs',
      'must be a positive integer number of ms',
      merged.commandTimeoutMs,
    );
  }
  if (!Number.isSafeInteger(merged.maxResultBytes) || merged.maxResultBytes < 0) {
    throw new RedisStoreConfigError(
      'maxResultBytes',
      'must be a non-negative integer',
      merged.maxResultBytes,
    );
  }
  return Object.freeze(merged);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function assertPositiveMs(field: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new DedupeConfigError(field, 'must be a positive integer number of milliseconds', value);
  }
}

function assertKey(field: string, key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new DedupeConfigError(field, 'must be a non-empty string', key);
  }
}

function warnAboutUnboundedQueue(redis: RedisClient, logger: Logger | undefined): void {
  // A Cluster keeps the per-node settings under `redisOptions`, its offline queue at the top.
  const opts = (
    isCluster(redis)
      ? { ...redis.options.redisOptions, enableOfflineQueue: redis.options.enableOfflineQueue }
      : redis.options
  ) as {
    maxRetriesPerRequest?: number | null;
    enableOfflineQueue?: boolean;
  };
  if (opts.enableOfflineQueue !== false && opts.maxRetriesPerRequest === null) {
    (logger ?? createDefaultLogger()).warn(
      { component: 'RedisDedupeStore' },
      'ioredis client has maxRetriesPerRequest: null: commands queue without bound while Redis is away; ' +
        'calls still fail after commandTimeoutMs, but use createRedisClient() or set maxRetriesPerRequest',
    );
  }
}
