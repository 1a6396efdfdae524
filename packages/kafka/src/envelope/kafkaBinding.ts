import type { ContentMode, EncodedMessage } from '@backtrack/core';
import type { KafkaHeaderValue, ProducerRecord } from '../client/KafkaClient.js';
import { contentModeOf, toStructuredMessage } from '@backtrack/core/adapter';

/**
 * The header prefix of CloudEvents attributes in the CloudEvents Kafka protocol binding (binary
 * content mode): attribute `x` travels as header `ce_x`; `datacontenttype` as `content-type`.
 */
export const CLOUD_EVENTS_HEADER_PREFIX = 'ce_';

/** The Kafka header of `datacontenttype` (CloudEvents Kafka binding, section 3.2.1). */
export const CONTENT_TYPE_HEADER = 'content-type';

/**
 * Kafka headers Backtrack itself sets on retry and dead-letter records. They are not CloudEvents
 * attributes and never appear in the neutral {@link EncodedMessage} headers. The names match the
 * RabbitMQ transport's, so tools read dead letters of either the same way.
 */
export const BACKTRACK_HEADERS = {
  /** The attempt number of a retried message (1 is the first delivery). */
  attempt: 'x-backtrack-attempt',
  /** When a retried message is due again, ms since the epoch. */
  retryDueAt: 'x-backtrack-retry-due-at',
  /** The retry delay that was asked for, in ms. */
  retryDelayMs: 'x-backtrack-retry-delay-ms',
  /**
   * Why the message is retried or dead-lettered (the pipeline's reason text), as on RabbitMQ.
   * The machine-readable reason of a dead letter is `x-backtrack-reason` (core's
   * `DEAD_LETTER_REASON_HEADER`).
   */
  reason: 'x-backtrack-dead-letter-reason',
  /** The stable code of a dead-lettered message (for example `BT_ERR_SCHEMA_VERSION_UNKNOWN`). */
  deadLetterCode: 'x-backtrack-dead-letter-code',
  /** The error message behind a dead letter or a retry, if any. */
  error: 'x-backtrack-error',
  /** ISO time the message was dead-lettered. */
  deadLetteredAt: 'x-backtrack-dead-lettered-at',
  /** The consumer group that retried or dead-lettered it. */
  group: 'x-backtrack-group',
  /** The topic the message was first consumed from. */
  originalTopic: 'x-backtrack-original-topic',
  /** Its partition there. */
  originalPartition: 'x-backtrack-original-partition',
  /** Its offset there. */
  originalOffset: 'x-backtrack-original-offset',
  /** Set by `redriveDeadLetters`: the dead-letter topic the message came back from. */
  redrivenFrom: 'x-backtrack-redriven-from',
} as const;

/**
 * Reads a Kafka header value as UTF-8 text; the last value wins for repeated headers. A header
 * with no value (`null`) reads as absent.
 */
export function headerToString(value: KafkaHeaderValue): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value)) {
    const last = value[value.length - 1];
    return headerToString(last);
  }
  if (typeof value === 'string') return value;
  // `toString()` without an encoding is Node's direct UTF-8 path (no encoding lookup). Anything
  // that is not a Buffer keeps the checked call (a number there throws: an undecodable record).
  return value instanceof Buffer ? value.toString() : value.toString('utf8');
}

/** Reads a header as a positive integer; undefined when it is not one. */
export function headerToPositiveInt(value: KafkaHeaderValue | null): number | undefined {
  const text = headerToString(value);
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) && n >= 1 ? n : undefined;
}

/** Maps neutral envelope headers to Kafka headers (`x` → `ce_x`, `content-type` unchanged). */
export function toKafkaHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in headers) {
    if (!Object.prototype.hasOwnProperty.call(headers, name)) continue;
    out[kafkaHeaderName(name)] = headers[name]!;
  }
  return out;
}

/**
 * Header names already mapped: a publisher repeats the same dozen attributes on every record, and
 * a fresh `'ce_' + name` per record is a new (cons) string the client flattens again to measure
 * and write it. Bounded: names beyond the first 256 distinct ones are mapped without caching.
 */
const kafkaHeaderNames = new Map<string, string>();

function kafkaHeaderName(name: string): string {
  let mapped = kafkaHeaderNames.get(name);
  if (mapped === undefined) {
    mapped = name === CONTENT_TYPE_HEADER ? CONTENT_TYPE_HEADER : CLOUD_EVENTS_HEADER_PREFIX + name;
    if (kafkaHeaderNames.size < 256) {
      // Flattened once here (a template literal of a cons string), not on every record.
      mapped = Buffer.from(mapped).toString();
      kafkaHeaderNames.set(name, mapped);
    }
  }
  return mapped;
}

/**
 * Maps a neutral message to a Kafka record following the CloudEvents Kafka binding. The key is
 * `key`, else the `partitionkey` attribute, else the `sagaid` attribute, else none (the client
 * spreads keyless records over partitions).
 *
 * - Binary content mode (the default): every attribute a `ce_` header, `datacontenttype` the
 *   `content-type` header, `data` the value.
 * - Structured content mode (`mode: 'structured'`, or a message already in it): the event in the
 *   CloudEvents JSON format as the value and only the `content-type:
 *   application/cloudevents+json` header, as the binding's section 3.3 has it.
 *
 * @throws {MalformedMessageError} when `mode` is `'structured'` and a binary message cannot be
 *   decoded (it was not made by `encodeEnvelope`).
 */
export function toKafkaRecord(
  message: EncodedMessage,
  key?: string,
  mode: ContentMode = 'binary',
): ProducerRecord {
  if (mode === 'structured') message = toStructuredMessage(message);
  const recordKey = key ?? message.headers['partitionkey'] ?? message.headers['sagaid'] ?? null;
  if (contentModeOf(message.headers) !== 'binary') {
    return {
      key: recordKey,
      value: toBuffer(message.body),
      headers: { [CONTENT_TYPE_HEADER]: message.headers[CONTENT_TYPE_HEADER] as string },
    };
  }
  return {
    key: recordKey,
    value: toBuffer(message.body),
    headers: toKafkaHeaders(message.headers),
  };
}

function toBuffer(body: Uint8Array): Buffer {
  return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

/**
 * Maps received Kafka headers and value back to the neutral {@link EncodedMessage}: the inverse
 * of {@link toKafkaRecord}, for both content modes (in structured mode only `content-type` matters:
 * the core codec reads the event from the body). Never throws: headers that are not CloudEvents attributes
 * (`x-backtrack-*`, anything else) are left out, a missing value (a tombstone) becomes an empty
 * body, and the core codec then reports what is wrong, so the message is dead-lettered with a
 * reason instead of crashing the consumer. Header names are matched case-insensitively.
 */
export function fromKafkaRecord(record: {
  headers: Record<string, KafkaHeaderValue | null>;
  value: Buffer | null;
}): EncodedMessage {
  const headers: Record<string, string> = {};
  const raw = record.headers;
  const names = Object.keys(raw);
  for (let i = 0; i < names.length; i++) {
    const rawName = names[i]!;
    const attribute = attributeOf(rawName);
    if (attribute === '') continue;
    const text = headerToString(raw[rawName]!);
    if (text !== undefined) headers[attribute] = text;
  }
  const value = record.value ?? Buffer.alloc(0);
  return { headers, body: new Uint8Array(value.buffer, value.byteOffset, value.byteLength) };
}

/** Header name → CloudEvents attribute ('' for none), remembered: a topic uses a few names. */
const attributeNames = new Map<string, string>();

function attributeOf(rawName: string): string {
  const known = attributeNames.get(rawName);
  if (known !== undefined) return known;
  const name = rawName.toLowerCase();
  let attribute = '';
  if (name === CONTENT_TYPE_HEADER) attribute = CONTENT_TYPE_HEADER;
  else if (name.startsWith(CLOUD_EVENTS_HEADER_PREFIX))
    attribute = name.slice(CLOUD_EVENTS_HEADER_PREFIX.length);
  if (attribute === '__proto__') attribute = '';
  // Bounded: names from a hostile producer must not grow it without end.
  if (attributeNames.size < 1_024) attributeNames.set(rawName, attribute);
  return attribute;
}
