import { adoptRecord, frozenRecord, takeOver } from './clone.js';
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
 * The default SagaStore: a Map in this process. Nothing survives the process: use
 * `@backtrack/redis` or `@backtrack/postgres` for sagas that must outlive it.
 *
 * It keeps a deep-frozen copy of every record it is given and hands out those frozen records
 * themselves (no copy per read or write): no caller can change stored state, by accident or
 * otherwise, and a change attempt throws in strict-mode code. Copies are structural: a part of an
 * incoming record that is the stored record's own (frozen) part at the same place, because the
 * caller built its record from one this store handed out, as the engine does, is kept as it is;
 * everything else is deep-copied. A transition costs a copy of what it changed. A record the
 * engine marked as given away (`handOver` in `clone.ts`: built from the stored record, its own
 * parts never used again, a step's result already copied) is not copied: it is frozen in place.
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

  // Not `async`: a resolved promise per call, no async function frame (this store answers on
  // every transition of an in-memory engine).
  create(record: SagaRecord): ReturnType<SagaStore['create']> {
    try {
      this.#expire();
      const existing = this.#records.get(record.sagaId);
      if (existing) return Promise.resolve({ created: false, record: existing });
      const stored = takeOver(record)
        ? adoptRecord(record, undefined, record.revision)
        : frozenRecord(record, undefined, record.revision);
      this.#records.set(record.sagaId, stored);
      this.#written(stored, undefined);
      return Promise.resolve({ created: true, record: stored });
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  get(sagaId: string): Promise<SagaRecord | undefined> {
    this.#expire();
    return Promise.resolve(this.#records.get(sagaId));
  }

  update(record: SagaRecord, expectedRevision: number): Promise<SagaRecord> {
    try {
      this.#expire();
      const current = this.#records.get(record.sagaId);
      if (!current || current.revision !== expectedRevision) {
        throw new SagaConcurrencyError(record.sagaId, expectedRevision, {
          details: { actualRevision: current?.revision ?? null },
        });
      }
      // A record the engine gave away (built from `current`, nothing in it used again) is frozen
      // in place: no copy per transition.
      const stored = takeOver(record)
        ? adoptRecord(record, current, expectedRevision + 1)
        : frozenRecord(record, current, expectedRevision + 1);
      this.#records.set(record.sagaId, stored);
      this.#written(stored, current);
      return Promise.resolve(stored);
    } catch (error) {
      return Promise.reject(error as Error);
    }
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
      items,
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

  /**
   * Retention: remembers when a finished saga was last written (a saga not finished never
   * expires). Only a write that finishes a saga, or changes a finished one, touches the index.
   */
  #written(record: SagaRecord, previous: SagaRecord | undefined): void {
    if (this.#retentionMs === false) return;
    const finished = FINISHED.has(record.status);
    if (previous !== undefined && FINISHED.has(previous.status)) {
      this.#finished.delete(record.sagaId);
    }
    if (finished) {
      const at = this.#now();
      if (this.#finished.size === 0) this.#oldestAt = at;
      this.#finished.set(record.sagaId, at);
    }
  }

  /** When the oldest finished saga in the index was written (nothing to expire before it expires). */
  #oldestAt = Number.POSITIVE_INFINITY;

  /** Deletes the finished sagas past retention: the oldest first, stopping at the first kept. */
  #expire(): void {
    if (this.#retentionMs === false || this.#finished.size === 0) return;
    const cut = this.#now() - this.#retentionMs;
    // One comparison on the hot path: no iterator unless the oldest entry expired.
    if (this.#oldestAt > cut) return;
    this.#oldestAt = Number.POSITIVE_INFINITY;
    for (const [id, at] of this.#finished) {
      if (at > cut) {
        this.#oldestAt = at;
        break;
      }
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
