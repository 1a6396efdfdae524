import { randomUUID } from 'node:crypto';
import {
  RollbackLeaseLostError,
  RollbackRunConflictError,
  RunStatus,
  type ItemProgress,
  type ItemUpdate,
  type LeaseResult,
  type RollbackPlanSummary,
  type RollbackProgressStore,
  type RollbackRunRecord,
  type RollbackSummary,
  type RunCheckpoint,
} from '@backtrack/core';
import { RedisStoreConfigError } from '../errors.js';
import { callRedis } from '../internal/call.js';
import { globEscape, scanKeys, unlinkKeys, type RedisClient } from '../internal/cluster.js';
import { LuaScript } from '../internal/LuaScript.js';
import {
  ACQUIRE,
  CREATE_RUN,
  FINISH,
  RELEASE,
  RENEW,
  SET_CHECKPOINT,
  SET_ITEMS,
} from './scripts.js';
import { summaryOf, totalItems } from '@backtrack/core/adapter';

const SCRIPTS = {
  create: new LuaScript('rollback.createRun', CREATE_RUN),
  acquire: new LuaScript('rollback.acquireLease', ACQUIRE),
  renew: new LuaScript('rollback.renewLease', RENEW),
  release: new LuaScript('rollback.releaseLease', RELEASE),
  setItems: new LuaScript('rollback.setItems', SET_ITEMS),
  setCheckpoint: new LuaScript('rollback.setCheckpoint', SET_CHECKPOINT),
  finish: new LuaScript('rollback.finishRun', FINISH),
};

/** Options of {@link RedisRollbackProgressStore}. */
export interface RedisRollbackProgressStoreOptions {
  /**
   * Key prefix, wrapped in a `{…}` hash tag: a store's keys share one slot (on Redis Cluster, one
   * master; rollback runs are few and small). @default 'backtrack:rollback'
   */
  keyPrefix?: string;
  /** How long a run's plan and progress are kept after its last write, in ms. @default 2_592_000_000 (30 days) */
  runTtlMs?: number;
  /** Deadline of every store call, in ms. @default 5_000 */
  commandTimeoutMs?: number;
}

export const DEFAULT_REDIS_ROLLBACK_PROGRESS_OPTIONS = {
  keyPrefix: 'backtrack:rollback',
  runTtlMs: 30 * 24 * 60 * 60 * 1000,
  commandTimeoutMs: 5_000,
} as const satisfies Required<RedisRollbackProgressStoreOptions>;

export interface RedisRollbackProgressStoreDependencies {
  /** The ioredis client, single node (`Redis`) or `Cluster`; the caller owns it. */
  redis: RedisClient;
}

/**
 * The {@link RollbackProgressStore} on Redis: what makes a rollback run resumable after its
 * process is killed. The lease is `SET NX PX` (it expires by itself when the runner dies); every
 * progress write is a Lua script that first checks the caller's token still holds the lease
 * (fencing), so a runner that lost its lease cannot overwrite the one that took over.
 */
export class RedisRollbackProgressStore implements RollbackProgressStore {
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #ttlMs: number;
  readonly #timeoutMs: number;

  constructor(
    options: RedisRollbackProgressStoreOptions,
    dependencies: RedisRollbackProgressStoreDependencies,
  ) {
    const o = { ...DEFAULT_REDIS_ROLLBACK_PROGRESS_OPTIONS };
    for (const [k, v] of Object.entries(options ?? {}))
      if (v !== undefined) (o as Record<string, unknown>)[k] = v;
    if (typeof o.keyPrefix !== 'string' || o.keyPrefix.length === 0) {
      throw new RedisStoreConfigError('keyPrefix', 'a non-empty string', o.keyPrefix);
    }
    for (const field of ['runTtlMs', 'commandTimeoutMs'] as const) {
      if (!Number.isSafeInteger(o[field]) || o[field] < 1) {
        throw new RedisStoreConfigError(field, 'a positive integer of ms', o[field]);
      }
    }
    if (!dependencies?.redis) {
      throw new RedisStoreConfigError('redis', 'an ioredis client in the dependencies', undefined);
    }
    this.#redis = dependencies.redis;
    this.#prefix = o.keyPrefix.includes('{') ? o.keyPrefix : `{${o.keyPrefix}}`;
    this.#ttlMs = o.runTtlMs;
    this.#timeoutMs = o.commandTimeoutMs;
  }

  get keyPrefix(): string {
    return this.#prefix;
  }

  async createRun(runId: string, plan: RollbackPlanSummary) {
    const now = Date.now();
    const meta = {
      runId,
      planId: plan.planId,
      service: plan.service,
      version: plan.version,
      strategy: plan.strategy,
      createdAt: new Date(now).toISOString(),
      totalItems: totalItems(plan),
    };
    const [created, planId] = (await this.#call('createRun', () =>
      SCRIPTS.create.run(
        this.#redis,
        [this.#run(runId), `${this.#prefix}:runs`],
        [
          runId,
          plan.planId,
          JSON.stringify(meta),
          // The summary only: a run reads its items page by page, the store never holds them.
          JSON.stringify(summaryOf(plan)),
          now,
          meta.createdAt,
          this.#ttlMs,
        ],
      ),
    )) as [number, string];
    if (created === 0 && planId !== plan.planId)
      throw new RollbackRunConflictError(runId, planId, plan.planId);
    // Retention of the run list: runs Redis expired leave their id in `P:runs`; a new run (rare,
    // never on a rollback's hot path) trims the ids of runs created over runTtlMs ago that are gone.
    if (created === 1) this.#trimRuns(now).catch(() => undefined);
    return { created: created === 1, run: (await this.getRun(runId))! };
  }

  async getRun(runId: string): Promise<RollbackRunRecord | undefined> {
    const [fields, lease] = await this.#call('getRun', async () => {
      const results = await this.#redis
        .multi()
        .hmget(this.#run(runId), 'meta', 'status', 'updatedAt', 'summary')
        .get(this.#lease(runId))
        .pttl(this.#lease(runId))
        .exec();
      const [[, f], [, l], [, ttl]] = results as [
        [null, (string | null)[]],
        [null, string | null],
        [null, number],
      ];
      return [f, l ? { value: l, ttl } : undefined] as const;
    });
    const [meta, status, updatedAt, summary] = fields;
    if (!meta) return undefined;
    const record: RollbackRunRecord = {
      ...(JSON.parse(meta) as Omit<RollbackRunRecord, 'status' | 'updatedAt'>),
      status: (status ?? RunStatus.Running) as RunStatus,
      updatedAt: updatedAt ?? '',
    };
    if (summary) record.summary = JSON.parse(summary) as RollbackSummary;
    if (lease && lease.ttl > 0) {
      record.lease = {
        owner: lease.value.slice(lease.value.indexOf('\n') + 1),
        expiresAt: Date.now() + lease.ttl,
      };
    }
    return record;
  }

  async getPlan(runId: string): Promise<RollbackPlanSummary | undefined> {
    const plan = await this.#call('getPlan', () => this.#redis.hget(this.#run(runId), 'plan'));
    return plan ? summaryOf(JSON.parse(plan) as RollbackPlanSummary) : undefined;
  }

  async listRuns(options: { limit?: number } = {}): Promise<RollbackRunRecord[]> {
    const ids = await this.#call('listRuns', () =>
      this.#redis.zrevrange(`${this.#prefix}:runs`, 0, (options.limit ?? 100) - 1),
    );
    const runs = await Promise.all(ids.map((id) => this.getRun(id)));
    return runs.filter((r): r is RollbackRunRecord => r !== undefined);
  }

  /** Removes from `P:runs` up to 100 ids of runs created over runTtlMs ago whose record expired. */
  async #trimRuns(now: number): Promise<void> {
    const runs = `${this.#prefix}:runs`;
    const old = await this.#call('trimRuns', () =>
      this.#redis.zrangebyscore(runs, '-inf', `(${now - this.#ttlMs}`, 'LIMIT', 0, 100),
    );
    if (old.length === 0) return;
    const exists = await Promise.all(
      old.map((id) => this.#call('trimRuns', () => this.#redis.exists(this.#run(id)))),
    );
    const gone = old.filter((_, i) => exists[i] === 0);
    if (gone.length > 0) await this.#call('trimRuns', () => this.#redis.zrem(runs, ...gone));
  }

  async acquireLease(runId: string, owner: string, leaseMs: number): Promise<LeaseResult> {
    const token = randomUUID();
    const result = (await this.#call('acquireLease', () =>
      SCRIPTS.acquire.run(this.#redis, [this.#lease(runId)], [token, owner, leaseMs]),
    )) as [number, string, number?];
    if (result[0] === 1) return { acquired: true, token, expiresAt: Date.now() + leaseMs };
    const lease: LeaseResult = { acquired: false, owner: result[1] };
    if (typeof result[2] === 'number' && result[2] > 0) lease.expiresAt = Date.now() + result[2];
    return lease;
  }

  async renewLease(runId: string, token: string, leaseMs: number): Promise<void> {
    const ok = await this.#call('renewLease', () =>
      SCRIPTS.renew.run(this.#redis, [this.#lease(runId)], [token, leaseMs]),
    );
    if (ok !== 1) throw new RollbackLeaseLostError(runId);
  }

  async releaseLease(runId: string, token: string): Promise<void> {
    await this.#call('releaseLease', () =>
      SCRIPTS.release.run(this.#redis, [this.#lease(runId)], [token]),
    );
  }

  async setItems(runId: string, token: string, updates: readonly ItemUpdate[]): Promise<void> {
    if (updates.length === 0) return;
    const at = new Date().toISOString();
    const args: (string | number)[] = [token, at, this.#ttlMs];
    // An entry without an error is the same text for every item in its state: built once.
    const plain = new Map<string, string>();
    for (const u of updates) {
      let value: string | undefined;
      if (u.error) value = `${u.state}\t${at}\t${u.error}`;
      else {
        value = plain.get(u.state);
        if (value === undefined) plain.set(u.state, (value = `${u.state}\t${at}\t`));
      }
      args.push(u.itemId, value);
    }
    const ok = await this.#call('setItems', () =>
      SCRIPTS.setItems.run(
        this.#redis,
        [this.#lease(runId), this.#items(runId), this.#run(runId), this.#attempts(runId)],
        args,
      ),
    );
    if (ok !== 1) throw new RollbackLeaseLostError(runId);
  }

  async getItems(runId: string): Promise<Record<string, ItemProgress>> {
    const [raw, attempts] = await this.#call('getItems', async () => {
      const results = (await this.#redis
        .multi()
        .hgetall(this.#items(runId))
        .hgetall(this.#attempts(runId))
        .exec()) as [[null, Record<string, string>], [null, Record<string, string>]];
      return [results[0][1], results[1][1]] as const;
    });
    const out: Record<string, ItemProgress> = {};
    for (const [itemId, value] of Object.entries(raw)) {
      const [state, updatedAt, ...error] = value.split('\t');
      const progress: ItemProgress = {
        state: state as ItemProgress['state'],
        attempts: Number(attempts[itemId] ?? 0),
        updatedAt: updatedAt ?? '',
      };
      if (error.length > 0 && error.join('\t') !== '') progress.error = error.join('\t');
      out[itemId] = progress;
    }
    return out;
  }

  async getCheckpoint(runId: string): Promise<RunCheckpoint | undefined> {
    const raw = await this.#call('getCheckpoint', () =>
      this.#redis.hget(this.#run(runId), 'checkpoint'),
    );
    return raw ? (JSON.parse(raw) as RunCheckpoint) : undefined;
  }

  async setCheckpoint(
    runId: string,
    token: string,
    checkpoint: RunCheckpoint,
    forget: readonly string[],
  ): Promise<void> {
    const ok = await this.#call('setCheckpoint', () =>
      SCRIPTS.setCheckpoint.run(
        this.#redis,
        [this.#lease(runId), this.#items(runId), this.#run(runId), this.#attempts(runId)],
        [token, new Date().toISOString(), this.#ttlMs, JSON.stringify(checkpoint), ...forget],
      ),
    );
    if (ok !== 1) throw new RollbackLeaseLostError(runId);
  }

  async finishRun(
    runId: string,
    token: string,
    status: RunStatus,
    summary: RollbackSummary,
  ): Promise<void> {
    const ok = await this.#call('finishRun', () =>
      SCRIPTS.finish.run(
        this.#redis,
        [this.#lease(runId), this.#run(runId), this.#items(runId), this.#attempts(runId)],
        [token, status, JSON.stringify(summary), new Date().toISOString(), this.#ttlMs],
      ),
    );
    if (ok !== 1) throw new RollbackLeaseLostError(runId);
  }

  /** Deletes every key of this store (tests and teardown). Uses SCAN, never KEYS. */
  async destroy(): Promise<void> {
    await unlinkKeys(this.#redis, await scanKeys(this.#redis, `${globEscape(this.#prefix)}:*`));
  }

  #run(runId: string) {
    return `${this.#prefix}:run:${runId}`;
  }
  #items(runId: string) {
    return `${this.#prefix}:run:${runId}:items`;
  }
  #attempts(runId: string) {
    return `${this.#prefix}:run:${runId}:attempts`;
  }
  #lease(runId: string) {
    return `${this.#prefix}:run:${runId}:lease`;
  }

  #call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return callRedis('redis', `rollback.${operation}`, this.#timeoutMs, fn, this.#redis);
  }
}
