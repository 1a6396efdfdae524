import type { EncodedMessage } from '../envelope/types.js';

/** Whether the broker acknowledged a journaled message. */
export const PublishState = {
  /** Appended, not (yet) acknowledged by the broker. The outbox relay republishes these. */
  Pending: 'pending',
  /** The broker acknowledged the message. */
  Published: 'published',
} as const;
export type PublishState = (typeof PublishState)[keyof typeof PublishState];

/**
 * Bits of a journal sequence number below the millisecond: `seq = timeMs * 1024 + n`.
 * A sequence number is both the publish order and the journal's clock (see {@link Journal}).
 */
export const SEQ_PER_MS = 1024;

/** The millisecond time a sequence number stands for. */
export function seqToTimeMs(seq: number): number {
  return Math.floor(seq / SEQ_PER_MS);
}

/** The smallest sequence number of the millisecond `timeMs`. */
export function timeMsToSeq(timeMs: number): number {
  return Math.floor(timeMs) * SEQ_PER_MS;
}

/**
 * The next sequence number after `last` for a record whose time is `timeMs`: strictly increasing
 * (publish order is never reordered), and equal to `timeMs * 1024` whenever producer clocks move
 * forward, so time windows become sequence ranges. Shared by every Journal implementation.
 */
export function nextSeq(last: number, timeMs: number): number {
  return Math.max(last + 1, timeMsToSeq(timeMs));
}

/** What the publisher hands to {@link Journal.append}. */
export interface JournalAppend {
  /** The envelope id. Unique in the journal: appending an id twice returns the first record. */
  id: string;
  /** Event type, for example `order.placed`. */
  type: string;
  /** Schema version the message was encoded in. */
  schemaVersion: number;
  /** Ordering key (Kafka message key), if any. */
  key?: string;
  /** The transport destination the message was (or will be) published to. */
  topic: string;
  /** The producing service. */
  service: string;
  /** The producing service's deployed version (the deploy's version string). */
  version: string;
  /** RFC 3339 time of the event (the envelope's `time`). */
  time: string;
  /** The saga the event belongs to, if any. */
  sagaId?: string;
  /** The envelope's causation id, if any (a rollback's compensations point to their original). */
  causationId?: string;
  /** The encoded message exactly as handed to the transport: neutral headers and body bytes. */
  message: EncodedMessage;
}

/** One journaled publish. */
export interface JournalRecord extends JournalAppend {
  /**
   * Position in publish order: strictly increasing per journal, and `floor(seq / 1024)` is the
   * record's time in ms on the journal clock (see {@link nextSeq}).
   */
  seq: number;
  state: PublishState;
}

/** Filters of {@link Journal.query}. Every given filter must match (AND). */
export interface JournalQuery {
  service?: string;
  /** Producer version; usually given together with `service`. */
  version?: string;
  /** Inclusive lower bound on the journal time. */
  since?: Date | string | number;
  /** Inclusive upper bound on the journal time. */
  until?: Date | string | number;
  type?: string;
  sagaId?: string;
  /** `forward` = publish order (oldest first); `backward` = newest first. @default 'forward' */
  direction?: 'forward' | 'backward';
  /** Opaque cursor from a previous page of the same query. */
  cursor?: string;
  /** Maximum records per page. @default 100 (at most 1000) */
  limit?: number;
}

/** One page of a journal query. */
export interface JournalPage {
  items: JournalRecord[];
  /**
   * Present when more records may match: pass it as `cursor` to continue. A page may hold fewer
   * than `limit` records (even none) and still have a cursor, because an implementation bounds the
   * work of one call; stop only when `nextCursor` is absent.
   */
  nextCursor?: string;
}

/** Options of {@link Journal.unpublished}. */
export interface UnpublishedQuery {
  /** Only records appended at least this long ago (ms), so in-flight publishes are left alone. */
  olderThanMs: number;
  /** @default 100 */
  limit?: number;
  /** The current time in ms. @default Date.now() */
  now?: number;
}

/**
 * The effect journal port: every message published through Backtrack, with who published it.
 * It is also the outbox: a record is appended BEFORE the message goes to the transport and
 * marked published after the broker acknowledged it, so a crash in between leaves a `pending`
 * record that the {@link OutboxRelay} publishes again (at worst twice; consumers deduplicate on
 * the envelope id).
 *
 * Implementations:
 * - `append` MUST be durable when it resolves, MUST assign `seq` with {@link nextSeq} from the
 *   last assigned seq (strictly increasing, atomically: two concurrent appends never share a
 *   seq), and MUST be idempotent on `id` (a second append of one id changes nothing and returns
 *   the stored record).
 * - `appendMany` MUST behave exactly like `append` called on each record in array order (seqs
 *   increasing in that order, an id already stored or repeated in the batch returns the stored
 *   record), and SHOULD cost one round trip; it validates every record before writing any, so a
 *   malformed record rejects the whole call with nothing written.
 * - `markPublished` MUST be idempotent and MUST ignore unknown ids; it takes the ids of a whole
 *   batch and SHOULD cost one round trip (it is the `markPublishedMany` of the batching publisher).
 * - `appendAndMarkPublished` (optional) MUST behave exactly like `appendMany(records)` followed
 *   by `markPublished(published)` (an id of `records` may be in `published`), and SHOULD cost one
 *   round trip. A caller without it calls the two (see {@link appendAndMarkPublished}).
 * - `query` MUST return records in `seq` order (ascending, or descending for `backward`), MUST
 *   page with an opaque cursor, and MUST NOT load more than a bounded number of records per call
 *   (a million matching records never load into memory at once). Records added after a cursor
 *   was issued MAY appear on later pages of a forward query.
 * - Time windows (`since`, `until`) MUST be evaluated on the journal clock, `floor(seq / 1024)`.
 * - Retention: records older than the configured window MUST NOT be returned by any query, and
 *   the store MUST eventually delete them (`prune` deletes them now).
 * - Store failures MUST throw a retriable `BacktrackError` (`StoreUnavailableError`).
 */
export interface Journal {
  /** Records a message about to be published. Resolves with the stored record (state `pending` for a new one). */
  append(record: JournalAppend): Promise<JournalRecord>;
  /**
   * Records a batch of messages about to be published (one round trip where the store allows).
   * Resolves with the stored records in the order given.
   */
  appendMany(records: readonly JournalAppend[]): Promise<JournalRecord[]>;
  /** Marks records published after the broker acknowledged them. Resolves with how many changed state. */
  markPublished(ids: readonly string[]): Promise<number>;
  /**
   * Optional: `appendMany(records)` then `markPublished(published)` in one call (one round trip
   * where the store allows), for a writer that marks a batch published with its next batch's
   * append. Resolves with how many of `published` changed state; the stored records are not
   * returned. Callers go through {@link appendAndMarkPublished}, which falls back to the two calls.
   */
  appendAndMarkPublished?(
    records: readonly JournalAppend[],
    published: readonly string[],
  ): Promise<number>;
  /** Pending records appended more than `olderThanMs` ago, oldest first: the relay's work list. */
  unpublished(query: UnpublishedQuery): Promise<JournalRecord[]>;
  /** Records matching every given filter, in publish order, paged. */
  query(query?: JournalQuery): Promise<JournalPage>;
  /** One record by envelope id. */
  get(id: string): Promise<JournalRecord | undefined>;
  /** Deletes records older than the retention window at `now` (ms). Resolves with how many were deleted. */
  prune(now?: number): Promise<number>;
}

/** Options every Journal implementation accepts. */
export interface JournalOptions {
  /**
   * How long records are kept, in ms. Rollbacks can only reach effects inside this window.
   * @default 604_800_000 (7 days)
   */
  retentionMs?: number;
}

/** Defaults of {@link JournalOptions}. */
export const DEFAULT_JOURNAL_OPTIONS = {
  retentionMs: 7 * 24 * 60 * 60 * 1000,
} as const satisfies Required<JournalOptions>;

/** Default and maximum page size of {@link Journal.query}. */
export const JOURNAL_PAGE_LIMITS = { default: 100, max: 1000 } as const;

/**
 * `journal.appendMany(records)` then `journal.markPublished(published)`: in one call when the
 * journal has {@link Journal.appendAndMarkPublished}, otherwise the append and then the marks.
 * Resolves with how many of `published` changed state.
 */
export async function appendAndMarkPublished(
  journal: Journal,
  records: readonly JournalAppend[],
  published: readonly string[],
): Promise<number> {
  if (journal.appendAndMarkPublished) return journal.appendAndMarkPublished(records, published);
  if (records.length > 0) await journal.appendMany(records);
  return published.length === 0 ? 0 : journal.markPublished(published);
}
