import { copyMessage, keptCopy } from '../transport/sealedMessage.js';
import { JournalConfigError } from './errors.js';
import {
  DEFAULT_JOURNAL_OPTIONS,
  PublishState,
  nextSeq,
  seqToTimeMs,
  timeMsToSeq,
  type Journal,
  type JournalAppend,
  type JournalOptions,
  type JournalPage,
  type JournalQuery,
  type JournalRecord,
  type UnpublishedQuery,
} from './Journal.js';
import { assertValidAppend, encodeCursor, matchesFilters, normalizeQuery } from './query.js';

/** Options of {@link InMemoryJournal}. */
export interface InMemoryJournalOptions extends JournalOptions {
  /** The clock retention is measured against, in ms. @default Date.now */
  now?: () => number;
}

/**
 * A {@link Journal} in process memory, for tests and single-process demos. Records are lost when
 * the process exits, so it is no outbox in production. Stored records are copies: callers cannot
 * change them after `append`.
 */
export class InMemoryJournal implements Journal {
  readonly #records: JournalRecord[] = [];
  readonly #byId = new Map<string, JournalRecord>();
  readonly #retentionMs: number;
  readonly #now: () => number;
  #lastSeq = 0;
  #lastPrune: number;

  constructor(options: InMemoryJournalOptions = {}) {
    const retentionMs = options.retentionMs ?? DEFAULT_JOURNAL_OPTIONS.retentionMs;
    if (!Number.isFinite(retentionMs) || retentionMs <= 0) {
      throw new JournalConfigError('retentionMs', 'must be a positive number of ms', retentionMs);
    }
    this.#retentionMs = retentionMs;
    this.#now = options.now ?? Date.now;
    this.#lastPrune = this.#now();
  }

  async append(record: JournalAppend): Promise<JournalRecord> {
    return this.#append(record, assertValidAppend(record));
  }

  async appendMany(records: readonly JournalAppend[]): Promise<JournalRecord[]> {
    // Every record is checked before any is stored: an invalid one fails the whole batch.
    const times = records.map((record) => assertValidAppend(record));
    return records.map((record, i) => this.#append(record, times[i]!));
  }

  /** `appendMany` then `markPublished`, without building the stored records for the caller. */
  async appendAndMarkPublished(
    records: readonly JournalAppend[],
    published: readonly string[],
  ): Promise<number> {
    // Every record is checked before any is stored. One record (the common batch): no array.
    if (records.length === 1) this.#store(records[0]!, assertValidAppend(records[0]!));
    else {
      const times = new Array<number>(records.length);
      for (let i = 0; i < records.length; i++) times[i] = assertValidAppend(records[i]!);
      for (let i = 0; i < records.length; i++) this.#store(records[i]!, times[i]!);
    }
    return this.#markPublished(published);
  }

  /**
   * Stores one valid record (`timeMs`: its parsed `time`). The store keeps its own copy of the
   * message (one copy of the headers and the body bytes, none of a message the journaling
   * publisher sealed: no one changes it); the caller gets back a record holding its own message,
   * so neither side can change the other's.
   */
  #append(record: JournalAppend, timeMs: number): JournalRecord {
    const existing = this.#byId.get(record.id);
    if (existing) return copy(existing);
    const stored = this.#store(record, timeMs);
    const returned: JournalRecord = { ...stored };
    returned.message = record.message;
    return returned;
  }

  /** Stores one valid record unless its id is stored already; returns the stored record. */
  #store(record: JournalAppend, timeMs: number): JournalRecord {
    const existing = this.#byId.get(record.id);
    if (existing) return existing;
    const seq = nextSeq(this.#lastSeq, timeMs);
    this.#lastSeq = seq;
    // Field by field, not a spread: the records callers build (optional fields present or not)
    // have many shapes, and spreading them takes V8's slow path.
    const stored: JournalRecord = {
      id: record.id,
      type: record.type,
      schemaVersion: record.schemaVersion,
      topic: record.topic,
      service: record.service,
      version: record.version,
      time: record.time,
      message: keptCopy(record.message),
      seq,
      state: PublishState.Pending,
    };
    if (record.key !== undefined) stored.key = record.key;
    if (record.sagaId !== undefined) stored.sagaId = record.sagaId;
    if (record.causationId !== undefined) stored.causationId = record.causationId;
    this.#records.push(stored);
    this.#byId.set(stored.id, stored);
    // Retention kept by the journal itself: appends delete the expired records, at most once a
    // minute (or once per retention window, if shorter), so the array is cut in one splice.
    const now = this.#now();
    if (now - this.#lastPrune >= Math.min(60_000, this.#retentionMs)) {
      this.#lastPrune = now;
      void this.prune(now);
    }
    return stored;
  }

  async markPublished(ids: readonly string[]): Promise<number> {
    return this.#markPublished(ids);
  }

  #markPublished(ids: readonly string[]): number {
    let changed = 0;
    for (const id of ids) {
      const record = this.#byId.get(id);
      if (record && record.state !== PublishState.Published) {
        record.state = PublishState.Published;
        changed++;
      }
    }
    return changed;
  }

  async unpublished(query: UnpublishedQuery): Promise<JournalRecord[]> {
    const now = query.now ?? this.#now();
    const limit = query.limit ?? 100;
    const maxSeq = timeMsToSeq(now - query.olderThanMs);
    const minSeq = timeMsToSeq(now - this.#retentionMs);
    const out: JournalRecord[] = [];
    for (const record of this.#records) {
      if (record.seq > maxSeq || out.length >= limit) break;
      if (record.seq >= minSeq && record.state === PublishState.Pending) out.push(copy(record));
    }
    return out;
  }

  async query(query: JournalQuery = {}): Promise<JournalPage> {
    const q = normalizeQuery(query, this.#now() - this.#retentionMs);
    const items: JournalRecord[] = [];
    const records = this.#records;
    const forward = q.direction === 'forward';
    // Binary search for the first record inside the range, then walk in the query's direction.
    let i = forward ? lowerBound(records, q.minSeq) : lowerBound(records, q.maxSeq + 1) - 1;
    let more = false;
    for (; forward ? i < records.length : i >= 0; i += forward ? 1 : -1) {
      const record = records[i]!;
      if (record.seq < q.minSeq || record.seq > q.maxSeq) break;
      if (!matchesFilters(record, q)) continue;
      if (items.length === q.limit) {
        more = true;
        break;
      }
      items.push(copy(record));
    }
    const last = items.at(-1);
    return more && last ? { items, nextCursor: encodeCursor(last.seq, q.direction) } : { items };
  }

  async get(id: string): Promise<JournalRecord | undefined> {
    const record = this.#byId.get(id);
    if (!record || seqToTimeMs(record.seq) < this.#now() - this.#retentionMs) return undefined;
    return copy(record);
  }

  async prune(now: number = this.#now()): Promise<number> {
    const cut = lowerBound(this.#records, timeMsToSeq(now - this.#retentionMs));
    const removed = this.#records.splice(0, cut);
    for (const record of removed) this.#byId.delete(record.id);
    return removed.length;
  }

  /** Number of records held (pruned records excluded). For tests. */
  get size(): number {
    return this.#records.length;
  }
}

function lowerBound(records: readonly JournalRecord[], seq: number): number {
  let lo = 0;
  let hi = records.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (records[mid]!.seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function copy(record: JournalRecord): JournalRecord {
  return { ...record, message: copyMessage(record.message) };
}
