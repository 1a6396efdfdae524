/**
 * A faster `ConfirmChannel.publish` for the messages Backtrack sends: the same frames, byte for
 * byte, as amqplib 2's encoder writes (`basic.publish`, the content header with its properties,
 * the body), made in one pass over a scratch buffer.
 *
 * Why: amqplib wraps the headers in `Object.create(headers)` (its CC/BCC handling), so its
 * `for...in` over the table takes V8's slow path, and it makes three string writes, two length
 * measurements and a closure per header; with the ten `cloudEvents_` headers of a CloudEvent
 * that was most of the client CPU of a publish. Here a header name's bytes are made once and
 * copied, and each value is written once (its length patched in after).
 *
 * Only what this encoder reproduces exactly takes the fast path: string header values (what
 * {@link toAmqpMessage} makes), no `CC`/`BCC`/`expiration`, integer `deliveryMode`, `priority`
 * and `timestamp`, every short string under 256 bytes, method and header frames under 2 KiB.
 * Anything else (a forwarded copy with numeric or array headers, an option amqplib would
 * reject) goes through amqplib's own `publish`, as does every publish on a channel or connection
 * amqplib has invalidated (closing or closed: it throws there as it always did), or when the
 * amqplib internals used here are not found.
 */
import type { ConfirmChannel, Options } from 'amqplib';
import {
  BASIC_CLASS,
  FRAME_BODY,
  FRAME_END,
  FRAME_HEADER,
  FRAME_METHOD,
} from '../connection/amqpFrames.js';

/** The amqplib internals the fast path writes to (amqplib 2.x `Channel` and `Connection`). */
interface ChannelInternals {
  ch: number;
  connection: ConnectionInternals;
  pushConfirmCallback(cb: unknown): void;
}

interface ConnectionInternals {
  channels: ({ buffer: { write(chunk: Buffer): boolean } } | null | undefined)[];
  sentSinceLastCheck: boolean;
  sendContent(channel: number, body: Buffer): boolean;
}

type ConfirmCallback = (error: Error | null) => void;

const BASIC_PUBLISH = (BASIC_CLASS << 16) | 40;
/** amqplib sends a message as one buffer below this many bytes (connection.js). */
const SINGLE_CHUNK_THRESHOLD = 2048;

/** Property flags of the content header, in the order the properties are written. */
const FLAG = {
  contentType: 0x8000,
  contentEncoding: 0x4000,
  headers: 0x2000,
  deliveryMode: 0x1000,
  priority: 0x0800,
  correlationId: 0x0400,
  replyTo: 0x0200,
  messageId: 0x0080,
  timestamp: 0x0040,
  type: 0x0020,
  userId: 0x0010,
  appId: 0x0008,
} as const;

const scratch = Buffer.allocUnsafe(SINGLE_CHUNK_THRESHOLD + 1024);
/**
 * Writes a string's UTF-8 bytes at an offset, returns their count. Node's `utf8Write` (what
 * `buffer.write(..., 'utf8')` calls after checking its arguments) when there.
 */
const writeUtf8: (value: string, offset: number) => number = (() => {
  const direct = (scratch as unknown as { utf8Write?: (value: string, offset: number) => number })
    .utf8Write;
  return typeof direct === 'function'
    ? (value, offset) => direct.call(scratch, value, offset)
    : (value, offset) => scratch.write(value, offset, 'utf8');
})();
/** Room to leave for one string: its UTF-8 form is at most 3 bytes per UTF-16 unit. */
const LIMIT = SINGLE_CHUNK_THRESHOLD;

/** Header name -> its table entry prefix (length byte, UTF-8 name, the `S` long-string tag). */
const names = new Map<string, Buffer>();
const MAX_REMEMBERED_NAMES = 1_024;

function nameEntry(key: string): Buffer | undefined {
  let entry = names.get(key);
  if (entry !== undefined) return entry;
  const bytes = Buffer.from(key, 'utf8');
  if (bytes.length > 255) return undefined;
  entry = Buffer.allocUnsafe(bytes.length + 2);
  entry[0] = bytes.length;
  bytes.copy(entry, 1);
  entry[bytes.length + 1] = 0x53; // 'S'
  if (names.size < MAX_REMEMBERED_NAMES) names.set(key, entry);
  return entry;
}

/** Writes a short string at `o` (length byte first); -1 when it does not fit or is too long. */
function shortString(o: number, value: string): number {
  if (o + 1 + value.length * 3 > LIMIT) return -1;
  const n = writeUtf8(value, o + 1);
  if (n > 255) return -1;
  scratch[o] = n;
  return o + 1 + n;
}

/** An optional short-string property: the new offset, or -1 (not encodable here). */
function optionalString(o: number, value: unknown): number {
  return typeof value === 'string' ? shortString(o, value) : -1;
}

function isOctet(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 255;
}

/**
 * The method and content-header frames of a publish, written to the scratch buffer; their
 * length, or -1 when this encoder does not take the message (amqplib's publish does).
 */
export function encodePublishHead(
  channel: number,
  exchange: string,
  routingKey: string,
  bodySize: number,
  options: Options.Publish,
): number {
  const o0 = options as Options.Publish & Record<string, unknown>;
  if (o0.CC !== undefined || o0.BCC !== undefined || o0.expiration !== undefined) return -1;
  // basic.publish: ticket 0, exchange, routing key, mandatory bit (immediate is never set).
  scratch[0] = FRAME_METHOD;
  scratch.writeUInt16BE(channel, 1);
  scratch.writeUInt32BE(BASIC_PUBLISH, 7);
  scratch.writeUInt16BE(0, 11);
  let o = optionalString(13, exchange);
  if (o < 0) return -1;
  o = optionalString(o, routingKey);
  if (o < 0) return -1;
  scratch[o] = options.mandatory ? 1 : 0;
  scratch[o + 1] = FRAME_END;
  scratch.writeUInt32BE(o + 1 - 7, 3);
  // The content header: class, weight 0, body size, flags (patched in), properties.
  const h = o + 2;
  scratch[h] = FRAME_HEADER;
  scratch.writeUInt16BE(channel, h + 1);
  scratch.writeUInt16BE(BASIC_CLASS, h + 7);
  scratch.writeUInt16BE(0, h + 9);
  scratch.writeUInt32BE(Math.floor(bodySize / 0x1_0000_0000), h + 11);
  scratch.writeUInt32BE(bodySize >>> 0, h + 15);
  o = h + 21;
  let flags = FLAG.headers;
  if (options.contentType != null) {
    flags |= FLAG.contentType;
    if ((o = optionalString(o, options.contentType)) < 0) return -1;
  }
  if (options.contentEncoding != null) {
    flags |= FLAG.contentEncoding;
    if ((o = optionalString(o, options.contentEncoding)) < 0) return -1;
  }
  // The header table (always there: amqplib always passes a table, empty without headers).
  const table = o;
  o += 4;
  const headers = options.headers as Record<string, unknown> | undefined;
  if (headers != null) {
    if (typeof headers !== 'object') return -1;
    for (const key in headers) {
      const value = headers[key];
      if (value === undefined) continue;
      if (typeof value !== 'string') return -1;
      const entry = nameEntry(key);
      if (entry === undefined || o + entry.length + 4 + value.length * 3 > LIMIT) return -1;
      for (let i = 0; i < entry.length; i++) scratch[o + i] = entry[i]!;
      o += entry.length;
      const n = writeUtf8(value, o + 4);
      scratch.writeUInt32BE(n, o);
      o += 4 + n;
    }
  }
  scratch.writeUInt32BE(o - table - 4, table);
  const deliveryMode =
    options.persistent !== undefined
      ? options.persistent
        ? 2
        : 1
      : typeof options.deliveryMode === 'number'
        ? options.deliveryMode
        : options.deliveryMode
          ? 2
          : undefined;
  if (deliveryMode !== undefined) {
    if (!isOctet(deliveryMode)) return -1;
    flags |= FLAG.deliveryMode;
    scratch[o++] = deliveryMode;
  }
  if (options.priority != null) {
    if (!isOctet(options.priority)) return -1;
    flags |= FLAG.priority;
    scratch[o++] = options.priority;
  }
  if (options.correlationId != null) {
    flags |= FLAG.correlationId;
    if ((o = optionalString(o, options.correlationId)) < 0) return -1;
  }
  if (options.replyTo != null) {
    flags |= FLAG.replyTo;
    if ((o = optionalString(o, options.replyTo)) < 0) return -1;
  }
  if (options.messageId != null) {
    flags |= FLAG.messageId;
    if ((o = optionalString(o, options.messageId)) < 0) return -1;
  }
  if (options.timestamp != null) {
    const t = options.timestamp;
    if (!Number.isSafeInteger(t) || t < 0) return -1;
    flags |= FLAG.timestamp;
    scratch.writeUInt32BE(Math.floor(t / 0x1_0000_0000), o);
    scratch.writeUInt32BE(t >>> 0, o + 4);
    o += 8;
  }
  if (options.type != null) {
    flags |= FLAG.type;
    if ((o = optionalString(o, options.type)) < 0) return -1;
  }
  if (options.userId != null) {
    flags |= FLAG.userId;
    if ((o = optionalString(o, options.userId)) < 0) return -1;
  }
  if (options.appId != null) {
    flags |= FLAG.appId;
    if ((o = optionalString(o, options.appId)) < 0) return -1;
  }
  if (o + 1 > LIMIT) return -1;
  scratch.writeUInt16BE(flags, h + 19);
  scratch[o] = FRAME_END;
  scratch.writeUInt32BE(o - h - 7, h + 3);
  return o + 1;
}

/** What {@link encodePublish} makes: the frames, and whether the body frame is among them. */
export interface PublishFrames {
  readonly bytes: Buffer;
  /** False for a body too big for one chunk: amqplib's `sendContent` frames it after `bytes`. */
  readonly complete: boolean;
}

/**
 * The bytes {@link publishOn} hands to the channel for a message, or undefined when it leaves the
 * message to amqplib (tests compare them with amqplib's encoder). Chunked as amqplib does: one
 * buffer below 2 KiB, else the method and header frames, then the body.
 */
export function encodePublish(
  channel: number,
  exchange: string,
  routingKey: string,
  content: Buffer,
  options: Options.Publish,
): PublishFrames | undefined {
  const head = encodePublishHead(channel, exchange, routingKey, content.length, options);
  if (head < 0) return undefined;
  const all = head + (content.length > 0 ? content.length + 8 : 0);
  if (all >= SINGLE_CHUNK_THRESHOLD) {
    return { bytes: Buffer.from(scratch.subarray(0, head)), complete: false };
  }
  const bytes = Buffer.allocUnsafe(all);
  scratch.copy(bytes, 0, 0, head);
  if (content.length > 0) {
    bytes[head] = FRAME_BODY;
    bytes.writeUInt16BE(channel, head + 1);
    bytes.writeUInt32BE(content.length, head + 3);
    content.copy(bytes, head + 7);
    bytes[all - 1] = FRAME_END;
  }
  return { bytes, complete: true };
}

/** Whether amqplib's internals the fast path needs are there (checked once per channel). */
const usable = new WeakMap<object, boolean>();

function internalsOf(channel: ConfirmChannel): ChannelInternals | undefined {
  const c = channel as unknown as ChannelInternals;
  let ok = usable.get(channel);
  if (ok === undefined) {
    const connection = c.connection as Partial<ConnectionInternals> | undefined;
    ok =
      typeof c.ch === 'number' &&
      typeof c.pushConfirmCallback === 'function' &&
      typeof connection === 'object' &&
      connection !== null &&
      Array.isArray(connection.channels) &&
      typeof connection.sendContent === 'function' &&
      typeof connection.sentSinceLastCheck === 'boolean';
    usable.set(channel, ok);
  }
  return ok ? c : undefined;
}

/**
 * `channel.publish(exchange, routingKey, content, options, confirmed)`, with the frames made by
 * {@link encodePublish} when it takes the message. Returns what amqplib's would (false: the
 * channel's buffer is full, wait for `'drain'`) and throws where amqplib's would.
 */
export function publishOn(
  channel: ConfirmChannel,
  exchange: string,
  routingKey: string,
  content: Buffer,
  options: Options.Publish,
  confirmed: ConfirmCallback,
): boolean {
  const c = internalsOf(channel);
  // amqplib marks a closing or closed channel (or connection) by replacing its send methods on
  // the instance; then its own publish throws as it should.
  if (
    c === undefined ||
    Object.hasOwn(c, 'sendMessage') ||
    Object.hasOwn(c.connection, 'sendMessage') ||
    !Buffer.isBuffer(content)
  ) {
    return channel.publish(exchange, routingKey, content, options, confirmed);
  }
  const connection = c.connection;
  const slot = connection.channels[c.ch];
  if (!slot) return channel.publish(exchange, routingKey, content, options, confirmed);
  const frames = encodePublish(c.ch, exchange, routingKey, content, options);
  if (frames === undefined) {
    return channel.publish(exchange, routingKey, content, options, confirmed);
  }
  connection.sentSinceLastCheck = true;
  let writable = slot.buffer.write(frames.bytes);
  if (!frames.complete) writable = connection.sendContent(c.ch, content);
  c.pushConfirmCallback(confirmed);
  return writable;
}
