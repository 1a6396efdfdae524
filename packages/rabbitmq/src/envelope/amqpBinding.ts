import { MALFORMED_REASONS, MalformedMessageError } from '@backtrack/core';
import type { ContentMode, EncodedMessage } from '@backtrack/core';
import type { Options } from 'amqplib';
import { RABBIT_ERROR_CODES, RabbitError } from '../errors.js';
import { toStructuredMessage } from '@backtrack/core/adapter';

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
 * Maps a neutral message to AMQP 0-9-1 following the CloudEvents AMQP protocol binding.
 *
 * Binary content mode (the default):
 *
 * | CloudEvents attribute | AMQP |
 * | --- | --- |
 * | `datacontenttype` | `contentType` property |
 * | every other attribute `x` (`id`, `source`, `type`, `specversion`, `time`, extensions, ...) | the `cloudEvents_x` application property (header), as its canonical string |
 * | `id` | also the `messageId` property (returns and tooling key on it) |
 * | `type` | also the `type` property |
 * | `time` | also the `timestamp` property (seconds) |
 *
 * Structured content mode (`mode: 'structured'`, or a message already in it): the event in the
 * CloudEvents JSON format as the body and `contentType: application/cloudevents+json`, with the
 * `messageId` and `type` properties set from the event; no `cloudEvents_` properties.
 *
 * Messages are persistent (delivery mode 2) and `mandatory`, so an unroutable message is returned
 * instead of silently dropped.
 *
 * @throws {RabbitError} `BT_ERR_AMQP_MESSAGE_INVALID` when a binary-mode message has no `id`
 *   header (AMQP deduplication, returns and dead letters all key on it).
 * @throws {MalformedMessageError} when `mode` is `'structured'` and a binary message cannot be
 *   decoded (it was not made by `encodeEnvelope`).
 */
export function toAmqpMessage(message: EncodedMessage, mode: ContentMode = 'binary'): AmqpMessage {
  if (mode === 'structured') message = toStructuredMessage(message);
  const source = message.headers;
  // One pass: the properties, the `cloudEvents_` headers (dropped at the end in structured mode),
  // and the content type that decides the mode (core's `contentModeOf`: the last header named
  // `content-type` in any case).
  let headers: Record<string, string> = {};
  const options: Options.Publish = { persistent: true, mandatory: true, headers };
  let contentType: unknown;
  for (const name in source) {
    if (!Object.hasOwn(source, name)) continue;
    const value = source[name]!;
    if (name.length === CONTENT_TYPE.length && name.toLowerCase() === CONTENT_TYPE) {
      contentType = value;
    }
    switch (name) {
      case CONTENT_TYPE:
        options.contentType = value;
        continue;
      case 'type':
        options.type = value;
        break;
      case 'time': {
        const ms = Date.parse(value);
        if (Number.isFinite(ms)) options.timestamp = Math.floor(ms / 1000);
        break;
      }
    }
    headers[headerNameOf(name)] = value;
  }
  const structured =
    typeof contentType === 'string' &&
    contentType.trim().toLowerCase().startsWith('application/cloudevents');
  const id = source['id'];
  if (!structured && (typeof id !== 'string' || id.length === 0)) {
    throw new RabbitError(
      RABBIT_ERROR_CODES.MESSAGE_INVALID,
      'message has no "id" header: encode it with encodeEnvelope (every CloudEvent has an id)',
      { details: { headers: Object.keys(source) } },
    );
  }
  if (structured) options.headers = headers = {};
  if (typeof id === 'string' && id.length > 0) options.messageId = id;
  return { content: toBuffer(message.body), options };
}

const CONTENT_TYPE = 'content-type';

/**
 * Attribute name -> its `cloudEvents_` header name, remembered (bounded) for the names seen: no
 * string made per header and message.
 */
const headerNames = new Map<string, string>();

function headerNameOf(name: string): string {
  let header = headerNames.get(name);
  if (header === undefined) {
    header = CLOUD_EVENTS_HEADER_PREFIX + name;
    if (headerNames.size < MAX_REMEMBERED_NAMES) headerNames.set(name, header);
  }
  return header;
}

function toBuffer(body: Uint8Array): Buffer {
  return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
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
 * {@link toAmqpMessage}, and the reader of any producer that follows the CloudEvents AMQP
 * binding. It never throws: a header that cannot be read is left out, and the core codec then
 * reports what is missing, so the message is dead-lettered with a reason instead of crashing the
 * consumer.
 *
 * - Attributes come from the `cloudEvents_x` application properties first, then from the
 *   `cloudEvents:x` ones (the binding's other prefix), so a transport `messageId` never
 *   overrides `cloudEvents_id`.
 * - Only when the binding's property is absent do the AMQP properties fill in (messages written
 *   by Backtrack before it wrote every attribute as a property): `messageId` → `id`, `type` →
 *   `type`, `timestamp` (seconds) → `time`. `contentType` always gives `datacontenttype` (or,
 *   with `application/cloudevents+json`, announces structured mode).
 * - Native AMQP types are read as the binding's canonical strings: a timestamp as RFC 3339,
 *   integers and booleans as text, a byte array as UTF-8 text for Backtrack's string attributes
 *   and as base64 (the canonical form of `Binary`) for other extensions.
 *
 * Headers without a CloudEvents prefix (`x-death`, `x-delivery-count`, Backtrack's own
 * `x-backtrack-*`) are not envelope attributes and are left out.
 *
 * @throws {MalformedMessageError} (`invalid-attribute`) when an attribute the envelope reads
 *   (`id`, `time`, `schemaversion`, ...) is an AMQP array or table; the subscription
 *   dead-letters such a delivery as it came. Unknown extensions of that shape are left out.
 */
export function fromAmqpMessage(message: AmqpMessageLike): EncodedMessage {
  const headers: Record<string, string> = {};
  const raw = message.properties.headers ?? {};
  // One pass; names under the alternative prefix are read after, so `cloudEvents_` wins.
  let alternates: string[] | undefined;
  for (const key in raw) {
    if (!Object.hasOwn(raw, key)) continue;
    const attribute = attributeOf(key);
    if (attribute === null) continue;
    const name = attribute.name;
    if (attribute.alternate) {
      (alternates ??= []).push(key);
      continue;
    }
    const value = raw[key];
    // The common case first: a string attribute, under a name seen before (no copy of the name,
    // no duplicate possible within the `cloudEvents_` names of one table).
    if (typeof value === 'string') headers[name] = value;
    else readAttribute(headers, key, name, value, message);
  }
  if (alternates !== undefined) {
    for (const key of alternates) {
      readAttribute(headers, key, attributeOf(key)!.name, raw[key], message);
    }
  }
  const { messageId, type, contentType, timestamp } = message.properties;
  if (headers['id'] === undefined && typeof messageId === 'string' && messageId.length > 0) {
    headers['id'] = messageId;
  }
  if (headers['type'] === undefined && typeof type === 'string' && type.length > 0) {
    headers['type'] = type;
  }
  // datacontenttype maps to the content-type property; a stray cloudEvents_datacontenttype
  // header is only a fallback, and never kept under its own name.
  const headerContentType = headers['datacontenttype'];
  // (only when there: a delete turns the object into a slow dictionary)
  if (headerContentType !== undefined) delete headers['datacontenttype'];
  if (typeof contentType === 'string' && contentType.length > 0) {
    headers['content-type'] = contentType;
  } else if (headerContentType !== undefined) {
    headers['content-type'] = headerContentType;
  }
  if (headers['time'] === undefined) {
    const seconds = timestampSeconds(timestamp);
    if (seconds !== undefined) headers['time'] = new Date(seconds * 1000).toISOString();
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

/** The attribute a header name carries, and whether under the alternative prefix. */
interface Attribute {
  readonly name: string;
  readonly alternate: boolean;
}

/**
 * Header name -> its attribute (null for a header of no CloudEvents prefix, or one that can
 * never be an attribute), remembered for the names seen: a service sees few distinct header
 * names, so this replaces two prefix tests and a substring per header and message. Bounded: past
 * its size, names are worked out each time.
 */
const attributes = new Map<string, Attribute | null>();
const MAX_REMEMBERED_NAMES = 1_024;

function attributeOf(key: string): Attribute | null {
  let attribute = attributes.get(key);
  if (attribute !== undefined) return attribute;
  const alternate = key.startsWith(ALTERNATIVE_PREFIX);
  const name =
    alternate || key.startsWith(CLOUD_EVENTS_HEADER_PREFIX)
      ? key.slice(CLOUD_EVENTS_HEADER_PREFIX.length) // both prefixes have the same length
      : '';
  // An empty name, or one that would write the prototype, is never an attribute.
  attribute = name.length === 0 || name === '__proto__' ? null : { name, alternate };
  if (attributes.size < MAX_REMEMBERED_NAMES) attributes.set(key, attribute);
  return attribute;
}

/** Reads one `cloudEvents_` header into `headers` under its attribute name (first one wins). */
function readAttribute(
  headers: Record<string, string>,
  key: string,
  name: string,
  value: unknown,
  message: AmqpMessageLike,
): void {
  if (name.length === 0 || name === '__proto__' || Object.hasOwn(headers, name)) return;
  const text =
    Buffer.isBuffer(value) && !STRING_ATTRIBUTES.has(name)
      ? value.toString('base64')
      : headerToString(value);
  if (text !== undefined) headers[name] = text;
  else if (
    value !== undefined &&
    value !== null &&
    (STRING_ATTRIBUTES.has(name) || name === 'time')
  ) {
    // A list or a table has no CloudEvents string form. For an attribute the envelope reads
    // that makes the event invalid, not the attribute absent (dropping it would accept an
    // event whose `time`, say, is garbage); an unknown extension of that shape is left out.
    throw new MalformedMessageError(
      MALFORMED_REASONS.INVALID_ATTRIBUTE,
      `attribute "${name}" (header "${key}") is an AMQP ${Array.isArray(value) ? 'array' : 'table'}, which has no CloudEvents string form`,
      { headers: {}, body: message.content },
      { details: { attribute: name } },
    );
  }
}

// Attributes whose values are strings in Backtrack's envelope: a byte array there is UTF-8 text.
const STRING_ATTRIBUTES: ReadonlySet<string> = new Set([
  'id',
  'source',
  'type',
  'specversion',
  'subject',
  'dataschema',
  'schemaversion',
  'sagaid',
  'causationid',
  'correlationid',
  'producerservice',
  'producerversion',
  'partitionkey',
]);

/** Seconds since the epoch of an AMQP timestamp as amqplib hands it over, else undefined. */
function timestampSeconds(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'bigint') return Number(value);
  return undefined;
}

/**
 * Reads an AMQP header value as a string; undefined for values that have no string form.
 * An AMQP timestamp (amqplib: `{ '!': 'timestamp', value: seconds }`, or a `Date`) becomes an
 * RFC 3339 string.
 */
export function headerToString(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') {
    return String(value);
  }
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (value instanceof Date) {
    return Number.isNaN(value.getTime()) ? undefined : value.toISOString();
  }
  if (
    typeof value === 'object' &&
    value !== null &&
    (value as { '!'?: unknown })['!'] === 'timestamp'
  ) {
    const seconds = timestampSeconds((value as { value?: unknown }).value);
    if (seconds === undefined) return undefined;
    const date = new Date(seconds * 1000);
    return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
  }
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
