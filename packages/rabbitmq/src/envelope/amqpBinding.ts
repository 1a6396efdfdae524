import type { EncodedMessage } from '@backtrack/core';
import type { Options } from 'amqplib';
import { RABBIT_ERROR_CODES, RabbitError } from '../errors.js';

/**
 * The header prefix of CloudEvents attributes, as the CloudEvents AMQP protocol binding prefers
 * (`cloudEvents_`, because JMS message selectors cannot use the `cloudEvents:` form). Decoding
 * accepts both.
 */
export const CLOUD_EVENTS_HEADER_PREFIX = 'cloudEvents_';
const ALTERNATIVE_PREFIX = 'cloudEvents:';

/**
 * AMQP headers Backtrack itself sets. They are not CloudEvents attributes and never appear in the
 * neutral {@link EncodedMessage} headers.
 */
export const BACKTRACK_HEADERS = {
  /** The attempt number of a message re-published for a retry (1 is the first delivery). */
  attempt: 'x-backtrack-attempt',
  /** Why a message was dead-lettered (the pipeline's reason text). */
  deadLetterReason: 'x-backtrack-dead-letter-reason',
  /** The stable error code of a dead-lettered message (for example `BT_ERR_SCHEMA_VERSION_UNKNOWN`). */
  deadLetterCode: 'x-backtrack-dead-letter-code',
  /** The error message behind a dead letter or a retry, if any. */
  error: 'x-backtrack-error',
  /** The queue a dead-lettered or retried message was consumed from. */
  queue: 'x-backtrack-queue',
  /** The exchange the message was originally published to. */
  originalExchange: 'x-backtrack-original-exchange',
  /** The routing key the message was originally published with. */
  originalRoutingKey: 'x-backtrack-original-routing-key',
  /** ISO time the message was dead-lettered. */
  deadLetteredAt: 'x-backtrack-dead-lettered-at',
  /** The retry delay that was asked for, in ms (the retry queue's TTL may round it up). */
  retryDelayMs: 'x-backtrack-retry-delay-ms',
} as const;

/** An AMQP message ready for `channel.publish`. */
export interface AmqpMessage {
  content: Buffer;
  options: Options.Publish;
}

/**
 * Maps a neutral message to AMQP 0-9-1 following the CloudEvents AMQP binding (binary mode):
 *
 * | CloudEvents attribute | AMQP |
 * | --- | --- |
 * | `id` | `messageId` property |
 * | `type` | `type` property |
 * | `content-type` (datacontenttype) | `contentType` property |
 * | `time` | `timestamp` property (seconds) **and** the `cloudEvents_time` header (the exact RFC 3339 string, so decoding is lossless) |
 * | every other attribute `x` | the `cloudEvents_x` header (string) |
 *
 * Messages are persistent (delivery mode 2) and `mandatory`, so an unroutable message is returned
 * instead of silently dropped.
 *
 * @throws {RabbitError} `BT_ERR_AMQP_MESSAGE_INVALID` when the `id` header is missing or empty
 *   (AMQP deduplication, returns and dead letters all key on it).
 */
export function toAmqpMessage(message: EncodedMessage): AmqpMessage {
  const id = message.headers['id'];
  if (typeof id !== 'string' || id.length === 0) {
    throw new RabbitError(
      RABBIT_ERROR_CODES.MESSAGE_INVALID,
      'message has no "id" header: encode it with encodeEnvelope (every CloudEvent has an id)',
      { details: { headers: Object.keys(message.headers) } },
    );
  }
  const headers: Record<string, string> = {};
  const options: Options.Publish = {
    messageId: id,
    persistent: true,
    mandatory: true,
    headers,
  };
  for (const [name, value] of Object.entries(message.headers)) {
    switch (name) {
      case 'id':
        break;
      case 'type':
        options.type = value;
        break;
      case 'content-type':
        options.contentType = value;
        break;
      case 'time': {
        headers[CLOUD_EVENTS_HEADER_PREFIX + name] = value;
        const ms = Date.parse(value);
        if (Number.isFinite(ms)) options.timestamp = Math.floor(ms / 1000);
        break;
      }
      default:
        headers[CLOUD_EVENTS_HEADER_PREFIX + name] = value;
    }
  }
  const body = message.body;
  const content = Buffer.isBuffer(body)
    ? body
    : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return { content, options };
}

/** The parts of an amqplib message that {@link fromAmqpMessage} reads. */
export interface AmqpMessageLike {
  content: Buffer;
  properties: {
    messageId?: unknown;
    type?: unknown;
    contentType?: unknown;
    timestamp?: unknown;
    headers?: Record<string, unknown> | undefined;
  };
}

/**
 * Maps a received AMQP message back to the neutral {@link EncodedMessage}: the inverse of
 * {@link toAmqpMessage}. It never throws: a header that cannot be read is left out, and the core
 * codec then reports what is missing, so the message is dead-lettered with a reason instead of
 * crashing the consumer.
 *
 * `time` comes from the `cloudEvents_time` header when present (exact string), else from the
 * `timestamp` property (as an ISO string). Non-string header values become strings. Headers
 * without the CloudEvents prefix (`x-death`, `x-delivery-count`, Backtrack's own `x-backtrack-*`)
 * are not envelope attributes and are left out.
 */
export function fromAmqpMessage(message: AmqpMessageLike): EncodedMessage {
  const headers: Record<string, string> = {};
  const raw = message.properties.headers ?? {};
  for (const [key, value] of Object.entries(raw)) {
    let name: string | undefined;
    if (key.startsWith(CLOUD_EVENTS_HEADER_PREFIX))
      name = key.slice(CLOUD_EVENTS_HEADER_PREFIX.length);
    else if (key.startsWith(ALTERNATIVE_PREFIX)) name = key.slice(ALTERNATIVE_PREFIX.length);
    if (name === undefined || name.length === 0) continue;
    const text = headerToString(value);
    if (text !== undefined && !(name in headers)) headers[name] = text;
  }
  const { messageId, type, contentType, timestamp } = message.properties;
  if (typeof messageId === 'string' && messageId.length > 0) headers['id'] = messageId;
  if (typeof type === 'string' && type.length > 0) headers['type'] = type;
  if (typeof contentType === 'string' && contentType.length > 0) {
    headers['content-type'] = contentType;
  }
  if (
    headers['time'] === undefined &&
    typeof timestamp === 'number' &&
    Number.isFinite(timestamp)
  ) {
    headers['time'] = new Date(timestamp * 1000).toISOString();
  }
  return {
    headers,
    body: new Uint8Array(
      message.content.buffer,
      message.content.byteOffset,
      message.content.byteLength,
    ),
  };
}

/** Reads an AMQP header value as a string; undefined for values that have no string form. */
export function headerToString(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') {
    return String(value);
  }
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (value instanceof Date) return value.toISOString();
  return undefined;
}

/** Reads an AMQP header value as a positive integer; undefined when it is not one. */
export function headerToPositiveInt(value: unknown): number | undefined {
  const n =
    typeof value === 'number'
      ? value
      : typeof value === 'bigint'
        ? Number(value)
        : typeof value === 'string' && /^\d+$/.test(value)
          ? Number(value)
          : NaN;
  return Number.isSafeInteger(n) && n >= 1 ? n : undefined;
}
