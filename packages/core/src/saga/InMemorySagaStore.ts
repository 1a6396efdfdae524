import { cloneRecord } from './clone.js';
import { SagaConcurrencyError, SagaEngineConfigError } from './errors.js';
import {
  FINISHED_SAGA_STATUSES,
  type SagaListQuery,
  type SagaPage,
  type SagaPruneOptions,
  type SagaRecord,
  type SagaStatus,
  type SagaStore,
} from './SagaStore.js';

/** Options of {@link InMemorySagaStore}. */
export interface InMemorySagaStoreOptions {
  /**
   * Retention of finished sagas (completed, compensated, failed), in ms after their last write;
   * `false` keeps them. Running, compensating and stuck sagas never expire.
   * @default 2_592_000_000 (30 days, as the Redis and PostgreSQL stores)
   */
  finishedRetentionMs?: number | false;
  /** The clock retention is measured against, in ms. @default Date.now */
  now?: () => number;
}

const FINISHED = new Set<SagaStatus>(FINISHED_SAGA_STATUSES);

/**
 * The default SagaStore: a Map in this process. Records are deep-copied in and out so callers
 * can never change stored state by accident, exactly as with a remote store. Nothing survives
 * the process: use `@backtrack/redis` or `@backtrack/postgres` for sagas that must outlive it.
 */
export class InMemorySagaStore implements SagaStore {
  readonly #records = new Map<string, SagaRecord>();
  readonly #retentionMs: number | false;
  readonly #now: () => number;
  /** Finished sagas by the time of their last write, oldest first: what retention expires. */
  readonly #finished = new Map<string, number>();

  constructor(options: InMemorySagaStoreOptions = {}) {
    const ms = options.finishedRetentionMs ?? 30 * 24 * 60 * 60 * 1000;
    if (ms !== false && !(Number.isFinite(ms) && ms > 0)) {
      throw new SagaEngineConfigError(
        'finishedRetentionMs',
        'a positive number of ms, or false',
        ms,
      );
    }
    this.#retentionMs = ms;
    this.#now = options.now ?? Date.now;
  }

  async create(record: SagaRecord): ReturnType<SagaStore['create']> {
    this.#expire();
    const existing = this.#records.get(record.sagaId);
    if (existing) return { created: false, record: cloneRecord(existing) };
    const stored = cloneRecord(record);
    this.#records.set(record.sagaId, stored);
    this.#written(stored);
    return { created: true, record: cloneRecord(stored) };
  }

  async get(sagaId: string): Promise<SagaRecord | undefined> {
    this.#expire();
    const r = this.#records.get(sagaId);
    return r ? cloneRecord(r) : undefined;
  }

  async update(record: SagaRecord, expectedRevision: number): Promise<SagaRecord> {
    this.#expire();
    const current = this.#records.get(record.sagaId);
    if (!current || current.revision !== expectedRevision) {
      throw new SagaConcurrencyError(record.sagaId, expectedRevision, {
        details: { actualRevision: current?.revision ?? null },
      });
    }
    const stored = cloneRecord(record);
    stored.revision = expectedRevision + 1;
    this.#records.set(record.sagaId, stored);
    this.#written(stored);
    // The caller's record with the new revision: it shares nothing with the stored copy, so no
    // second deep copy is needed.
    return { ...record, revision: stored.revision };
  }

  async list(query: SagaListQuery = {}): Promise<SagaPage> {
    this.#expire();
    const statuses =
      query.status === undefined
        ? undefined
        : new Set<SagaStatus>(typeof query.status === 'string' ? [query.status] : query.status);
    const limit = query.limit ?? 100;
    // Order: creation time, then id, so a cursor (the last id returned) stays valid as sagas change state.
    const all = [...this.#records.values()]
      .filter((r) => (statuses ? statuses.has(r.status) : true))
      .filter((r) => (query.sagaName ? r.sagaName === query.sagaName : true))
      .sort((a, b) =>
        a.createdAt === b.createdAt ? cmp(a.sagaId, b.sagaId) : cmp(a.createdAt, b.createdAt),
      );
    let start = 0;
    if (query.cursor) {
      const [createdAt, sagaId] = JSON.parse(Buffer.from(query.cursor, 'base64url').toString()) as [
        string,
        string,
      ];
      start = all.findIndex(
        (r) => r.createdAt > createdAt || (r.createdAt === createdAt && r.sagaId > sagaId),
      );
      if (start < 0) start = all.length;
    }
    const items = all.slice(start, start + limit);
    const last = items[items.length - 1];
    const more = start + limit < all.length;
    return {
      items: items.map((r) => cloneRecord(r)),
      ...(more && last
        ? {
            nextCursor: Buffer.from(JSON.stringify([last.createdAt, last.sagaId])).toString(
              'base64url',
            ),
          }
        : {}),
    };
  }

  async prune(options: SagaPruneOptions): Promise<number> {
    const statuses = new Set<SagaStatus>(options.statuses ?? FINISHED_SAGA_STATUSES);
    const before = options.updatedBefore.toISOString();
    let left = options.limit ?? 1000;
    let deleted = 0;
    for (const [id, r] of this.#records) {
      if (left <= 0) break;
      if (!statuses.has(r.status) || !(r.updatedAt < before)) continue;
      this.#records.delete(id);
      this.#finished.delete(id);
      deleted++;
      left--;
    }
    return deleted;
  }

  /** Retention: remembers when a finished saga was last written (a saga not finished never expires). */
  #written(record: SagaRecord): void {
    if (this.#retentionMs === false) return;
    this.#finished.delete(record.sagaId);
    if (FINISHED.has(record.status)) this.#finished.set(record.sagaId, this.#now());
  }

  /** Deletes the finished sagas past retention: the oldest first, stopping at the first kept. */
  #expire(): void {
    if (this.#retentionMs === false || this.#finished.size === 0) return;
    const cut = this.#now() - this.#retentionMs;
    for (const [id, at] of this.#finished) {
      if (at > cut) break;
      this.#finished.delete(id);
      this.#records.delete(id);
    }
  }

  /** Number of stored sagas (for tests and diagnostics). */
  get size(): number {
    return this.#records.size;
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
