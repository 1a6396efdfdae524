import { JournalQueryError, JournalRecordError } from './errors.js';
import {
  JOURNAL_PAGE_LIMITS,
  SEQ_PER_MS,
  timeMsToSeq,
  type JournalQuery,
  type JournalRecord,
} from './Journal.js';

/** A query after validation: bounds as an inclusive seq range, the cursor decoded. */
export interface NormalizedJournalQuery {
  service?: string;
  version?: string;
  type?: string;
  sagaId?: string;
  direction: 'forward' | 'backward';
  limit: number;
  /** Inclusive seq bounds from the time window, the retention window and the cursor. */
  minSeq: number;
  maxSeq: number;
}

/** Parses a time bound (Date, RFC 3339 string, or ms number) into ms. */
export function toTimeMs(value: Date | string | number, field: string): number {
  const ms =
    value instanceof Date ? value.getTime() : typeof value === 'number' ? value : Date.parse(value);
  if (!Number.isFinite(ms)) {
    throw new JournalQueryError(`journal query "${field}" is not a valid time: ${String(value)}`, {
      details: { field, value: String(value) },
    });
  }
  return ms;
}

interface CursorBody {
  v: 1;
  /** Last seq returned (or scanned). */
  s: number;
  d: 'f' | 'b';
}

/** Encodes an opaque cursor: the next page starts after `seq` in `direction`. */
export function encodeCursor(seq: number, direction: 'forward' | 'backward'): string {
  const body: CursorBody = { v: 1, s: seq, d: direction === 'forward' ? 'f' : 'b' };
  return Buffer.from(JSON.stringify(body)).toString('base64url');
}

function decodeCursor(cursor: string, direction: 'forward' | 'backward'): number {
  let body: Partial<CursorBody> | undefined;
  try {
    body = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Partial<CursorBody>;
  } catch {
    body = undefined;
  }
  if (
    !body ||
    body.v !== 1 ||
    typeof body.s !== 'number' ||
    !Number.isSafeInteger(body.s) ||
    body.d !== (direction === 'forward' ? 'f' : 'b')
  ) {
    throw new JournalQueryError('journal cursor is not valid for this query', {
      details: { cursor, direction },
    });
  }
  return body.s;
}

/**
 * Validates a query and turns its time window, the retention window (`oldestMs`) and its cursor
 * into one inclusive seq range. Shared by every Journal implementation so they agree exactly.
 */
export function normalizeQuery(query: JournalQuery, oldestMs: number): NormalizedJournalQuery {
  const direction = query.direction ?? 'forward';
  if (direction !== 'forward' && direction !== 'backward') {
    throw new JournalQueryError(`journal query "direction" must be forward or backward`, {
      details: { direction },
    });
  }
  const limit = query.limit ?? JOURNAL_PAGE_LIMITS.default;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > JOURNAL_PAGE_LIMITS.max) {
    throw new JournalQueryError(
      `journal query "limit" must be an integer from 1 to ${JOURNAL_PAGE_LIMITS.max}`,
      { details: { limit } },
    );
  }
  let minSeq = timeMsToSeq(oldestMs);
  let maxSeq = Number.MAX_SAFE_INTEGER;
  if (query.since !== undefined)
    minSeq = Math.max(minSeq, timeMsToSeq(toTimeMs(query.since, 'since')));
  if (query.until !== undefined) {
    maxSeq = Math.min(maxSeq, timeMsToSeq(toTimeMs(query.until, 'until')) + SEQ_PER_MS - 1);
  }
  if (query.cursor !== undefined) {
    const after = decodeCursor(query.cursor, direction);
    if (direction === 'forward') minSeq = Math.max(minSeq, after + 1);
    else maxSeq = Math.min(maxSeq, after - 1);
  }
  const normalized: NormalizedJournalQuery = { direction, limit, minSeq, maxSeq };
  for (const name of ['service', 'version', 'type', 'sagaId'] as const) {
    const value = query[name];
    if (value !== undefined) {
      if (typeof value !== 'string' || value.length === 0) {
        throw new JournalQueryError(`journal query "${name}" must be a non-empty string`, {
          details: { field: name },
        });
      }
      normalized[name] = value;
    }
  }
  return normalized;
}

/** True when `record` passes the query's equality filters (the seq range is checked by the caller). */
export function matchesFilters(record: JournalRecord, query: NormalizedJournalQuery): boolean {
  return (
    (query.service === undefined || record.service === query.service) &&
    (query.version === undefined || record.version === query.version) &&
    (query.type === undefined || record.type === query.type) &&
    (query.sagaId === undefined || record.sagaId === query.sagaId)
  );
}

/** Checks an append before it is stored; returns its `time` in epoch ms (parsed once). */
export function assertValidAppend(record: {
  id: unknown;
  type: unknown;
  topic: unknown;
  service: unknown;
  version: unknown;
  time: unknown;
  schemaVersion: unknown;
}): number {
  for (const name of APPEND_STRING_FIELDS) {
    const value = record[name];
    if (typeof value !== 'string' || value.length === 0) {
      throw new JournalRecordError(`journal record "${name}" must be a non-empty string`, {
        details: { field: name, id: record.id },
      });
    }
  }
  if (!Number.isSafeInteger(record.schemaVersion) || (record.schemaVersion as number) < 1) {
    throw new JournalRecordError('journal record "schemaVersion" must be a positive integer', {
      details: { field: 'schemaVersion', id: record.id },
    });
  }
  const time = record.time as string;
  // The records of one publisher share their time within a millisecond (the same text):
  // `Date.parse` (~0.2 µs) once per distinct text, not once per record.
  if (time === lastTime) return lastTimeMs;
  const timeMs = Date.parse(time);
  if (!Number.isFinite(timeMs)) {
    throw new JournalRecordError('journal record "time" must be an RFC 3339 timestamp', {
      details: { field: 'time', id: record.id },
    });
  }
  lastTime = time;
  lastTimeMs = timeMs;
  return timeMs;
}

/** The last valid `time` text {@link assertValidAppend} parsed, and its epoch ms. */
let lastTime: string | undefined;
let lastTimeMs = 0;

const APPEND_STRING_FIELDS = ['id', 'type', 'topic', 'service', 'version', 'time'] as const;
