import {
  deadLetterReasonOf,
  isDeadLetterReason,
  type DeadLetterReason,
  type EncodedMessage,
} from '@backtrack/core';
import type { ConsumedRecord, KafkaHeaderValue, ProducerRecord } from '../client/KafkaClient.js';
import {
  BACKTRACK_HEADERS,
  fromKafkaRecord,
  headerToPositiveInt,
  headerToString,
} from './kafkaBinding.js';
import { DEAD_LETTER_REASON_HEADER } from '@backtrack/core/adapter';

/**
 * Names the headers of the original record whose value was null (a header with no value), as
 * JSON `{ "<name>": [<position>, ...] }` (position among that name's values, 0 for a single one).
 *
 * Kafka can carry a header with no value, but kafkajs cannot write one. A dead-letter or retry
 * record therefore carries such a header with an empty value and names it here; the consumer
 * runner, `readDeadLetter` and `redriveDeadLetters` read it back as null. An empty header that is
 * not named here was empty on the original record.
 */
export const NULL_HEADERS_HEADER = 'x-backtrack-null-headers';

/** The text header Kafka dead letters carried before `x-backtrack-reason` became the machine reason. */
const LEGACY_REASON_TEXT = DEAD_LETTER_REASON_HEADER;

/** A header value as {@link DeadLetter} gives it back: bytes, or null for a header with no value. */
export type DeadLetterHeaderValue = Buffer | string | null | (Buffer | string | null)[];

/** A record read from a dead-letter topic, with why it is there. */
export interface DeadLetter {
  /** The original message: its CloudEvents headers and the original bytes, unchanged. */
  message: EncodedMessage;
  /** The original Kafka key as UTF-8 text (see `keyBytes` for the exact bytes). */
  key: string | null;
  /** The original key bytes. */
  keyBytes: Buffer | null;
  /** The original value bytes; null for a tombstone. */
  value: Buffer | null;
  /** Every header of the original record (not only CloudEvents ones), null values restored. */
  headers: Record<string, DeadLetterHeaderValue>;
  /** Why it was dead-lettered (the pipeline's reason text). */
  reason: string;
  /**
   * The machine-readable reason (`x-backtrack-reason`), one of core's `DEAD_LETTER_REASONS`;
   * derived from `code` for dead letters written before the header existed.
   */
  reasonCode: DeadLetterReason;
  /** The stable code (`BT_ERR_*`). */
  code: string;
  /** The error message behind it, if any. */
  error?: string;
  /** The topic it was first consumed from. */
  originalTopic?: string;
  originalPartition?: number;
  originalOffset?: string;
  /** The consumer group that dead-lettered it. */
  group?: string;
  /** The attempt on which it was dead-lettered. */
  attempt: number;
  /** ISO time it was dead-lettered. */
  deadLetteredAt?: string;
  /** Where it is in the dead-letter topic. */
  partition: number;
  offset: string;
}

/**
 * The headers of a received record with the values {@link NULL_HEADERS_HEADER} names set back to
 * null, and that marker removed. Returns the same object when there is no marker. Never throws (a
 * marker that is not the expected JSON is dropped and nothing is restored).
 */
export function restoreNullHeaders(
  headers: Record<string, KafkaHeaderValue>,
): Record<string, KafkaHeaderValue> {
  if (!Object.prototype.hasOwnProperty.call(headers, NULL_HEADERS_HEADER)) return headers;
  // Null-prototype: a header may be named `toString` or `__proto__`.
  const out: Record<string, KafkaHeaderValue> = Object.assign(Object.create(null), headers);
  delete out[NULL_HEADERS_HEADER];
  let named: unknown;
  try {
    named = JSON.parse(headerToString(headers[NULL_HEADERS_HEADER]) ?? 'null');
  } catch {
    return out;
  }
  if (typeof named !== 'object' || named === null || Array.isArray(named)) return out;
  for (const [name, positions] of Object.entries(named as Record<string, unknown>)) {
    const value = out[name];
    if (!Array.isArray(positions) || value === undefined) continue;
    if (!Array.isArray(value)) {
      if (positions.includes(0) && isEmpty(value)) out[name] = null;
      continue;
    }
    out[name] = value.map((v, i) => (positions.includes(i) && isEmpty(v) ? null : v));
  }
  return out;
}

/**
 * Headers for a record Backtrack writes from a received one (retry, dead letter, redrive): the
 * original headers except Backtrack's own `x-backtrack-*`, byte for byte; null values written
 * empty and named in {@link NULL_HEADERS_HEADER}. Values of a type a client should not deliver
 * (neither bytes nor text) are written as their text. Never throws.
 */
export function writableHeaders(
  headers: Record<string, KafkaHeaderValue>,
): ProducerRecord['headers'] {
  // Null-prototype: a header may be named `toString` or `__proto__`.
  const out: NonNullable<ProducerRecord['headers']> = Object.create(null);
  const nulls: Record<string, number[]> = Object.create(null);
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || name.startsWith('x-backtrack-')) continue;
    if (Array.isArray(value)) {
      out[name] = value.map((v, i) => {
        if (v === null || v === undefined) (nulls[name] ??= []).push(i);
        return writable(v);
      });
    } else {
      if (value === null) nulls[name] = [0];
      out[name] = writable(value);
    }
  }
  if (Object.keys(nulls).length > 0) out[NULL_HEADERS_HEADER] = JSON.stringify(nulls);
  return out;
}

function writable(value: unknown): Buffer | string {
  if (value === null || value === undefined) return Buffer.alloc(0);
  if (Buffer.isBuffer(value) || typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value);
  return String(value);
}

function isEmpty(value: Buffer | string | null | undefined): boolean {
  return value === null || value === undefined || value.length === 0;
}

/** Reads a dead-letter record written by the Kafka transport. Never throws. */
export function readDeadLetter(record: ConsumedRecord, partition: number): DeadLetter {
  const h = record.headers;
  const originalPartition = headerToString(h[BACKTRACK_HEADERS.originalPartition]);
  const code = headerToString(h[BACKTRACK_HEADERS.deadLetterCode]) ?? 'unknown';
  const machine = headerToString(h[DEAD_LETTER_REASON_HEADER]);
  const text =
    headerToString(h[BACKTRACK_HEADERS.reason]) ??
    (isDeadLetterReason(machine) ? undefined : headerToString(h[LEGACY_REASON_TEXT]));
  const original = restoreNullHeaders(h);
  const headers: Record<string, DeadLetterHeaderValue> = Object.create(null);
  for (const [name, value] of Object.entries(original)) {
    if (value !== undefined && !name.startsWith('x-backtrack-')) headers[name] = value;
  }
  const dl: DeadLetter = {
    message: fromKafkaRecord({ headers: original, value: record.value }),
    key: record.key === null ? null : record.key.toString('utf8'),
    keyBytes: record.key,
    value: record.value,
    headers,
    reason: text ?? 'unknown',
    reasonCode: isDeadLetterReason(machine) ? machine : deadLetterReasonOf(code),
    code,
    attempt: headerToPositiveInt(h[BACKTRACK_HEADERS.attempt]) ?? 1,
    partition,
    offset: record.offset,
  };
  const error = headerToString(h[BACKTRACK_HEADERS.error]);
  if (error !== undefined) dl.error = error;
  const originalTopic = headerToString(h[BACKTRACK_HEADERS.originalTopic]);
  if (originalTopic !== undefined) dl.originalTopic = originalTopic;
  if (originalPartition !== undefined && /^\d+$/.test(originalPartition))
    dl.originalPartition = Number(originalPartition);
  const originalOffset = headerToString(h[BACKTRACK_HEADERS.originalOffset]);
  if (originalOffset !== undefined) dl.originalOffset = originalOffset;
  const group = headerToString(h[BACKTRACK_HEADERS.group]);
  if (group !== undefined) dl.group = group;
  const at = headerToString(h[BACKTRACK_HEADERS.deadLetteredAt]);
  if (at !== undefined) dl.deadLetteredAt = at;
  return dl;
}
