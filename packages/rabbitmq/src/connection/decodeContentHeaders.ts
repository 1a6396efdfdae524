/**
 * A faster decoder of the content-header frames (`basic` class: the message properties and the
 * headers table) and the `basic.deliver` frames amqplib receives on a connection, producing the
 * very objects amqplib 2's `decodeBasicProperties`, `decodeFields` and `decodeBasicDeliver` produce.
 *
 * Why: every delivery has one, and a CloudEvent's has a dozen `cloudEvents_` headers; amqplib
 * decodes each header name and value with `Buffer#toString` (a call into C++ per string), which
 * made its header decoding the largest part of a delivery's client CPU. Here the header names,
 * the short-string properties and the header values are compared byte for byte with the ones
 * decoded at the same place of the previous header on this connection (a header's name and
 * many of its values, such as `cloudEvents_source` or `specversion`, repeat from message to
 * message) and the same string is reused when they are equal; the rest is decoded as amqplib does.
 *
 * Only what this decoder reproduces exactly takes the fast path: a complete `basic.deliver` or
 * `basic` content-header frame already in amqplib's receive buffer, header values of the scalar kinds (strings,
 * integers, floats, booleans, void). Anything else (a table or array value, a decimal, a
 * timestamp, a byte array, a frame that runs past its end or is malformed) goes through
 * amqplib's own `recvFrame`, which decodes it (or fails on it) as it always did.
 *
 * This reaches into amqplib's `Connection` (`recvFrame`, `rest`, `maxFrameSize`); when they are
 * not there (another amqplib version), nothing is changed.
 */
import { BASIC_CLASS, FRAME_END, FRAME_HEADER, FRAME_METHOD } from './amqpFrames.js';

/** The amqplib internals used here (amqplib 2.x `Connection`). */
interface ConnectionInternals {
  rest: Buffer;
  maxFrameSize: number;
  recvFrame(this: ConnectionInternals): unknown;
  [FAST_HEADERS]?: true;
}

/** What amqplib's `decodeFrame` returns for a content-header frame. */
export interface ContentHeaderFrame {
  id: number;
  channel: number;
  size: number;
  fields: Record<string, unknown>;
}

/** What amqplib's `decodeFrame` returns for a `basic.deliver` method frame. */
export interface DeliverFrame {
  id: number;
  channel: number;
  fields: {
    consumerTag: string;
    deliveryTag: number;
    redelivered: boolean;
    exchange: string;
    routingKey: string;
  };
}

const FAST_HEADERS = Symbol('backtrack.fastContentHeaders');
const BASIC_DELIVER = (BASIC_CLASS << 16) | 60;
/** Strings up to this many bytes are remembered for reuse. */
const MAX_REMEMBERED_BYTES = 96;
/** Header table positions remembered (names and values). */
const MAX_REMEMBERED_ENTRIES = 64;
/** After this many misses in a row a place stops comparing, until it is tried again. */
const MISSES_BEFORE_REST = 2;
/** Decodes a resting place sits out before it compares again. */
const REST_DECODES = 32;

const utf8Slice: (buffer: Buffer, start: number, end: number) => string = (() => {
  const direct = (Buffer.prototype as unknown as { utf8Slice?: unknown }).utf8Slice;
  return typeof direct === 'function'
    ? (buffer, start, end) => (direct as (s: number, e: number) => string).call(buffer, start, end)
    : (buffer, start, end) => buffer.toString('utf8', start, end);
})();

/** One remembered string: its UTF-8 bytes and its text. */
class Remembered {
  bytes = new Uint8Array(MAX_REMEMBERED_BYTES);
  length = -1;
  text = '';
  misses = 0;
  resting = 0;

  /** The text of `buffer[start, end)`: the remembered one when the bytes are the same. */
  read(buffer: Buffer, start: number, end: number): string {
    const length = end - start;
    if (this.resting > 0) {
      this.resting -= 1;
      return utf8Slice(buffer, start, end);
    }
    if (length === this.length) {
      const bytes = this.bytes;
      let i = 0;
      while (i < length && bytes[i] === buffer[start + i]) i++;
      if (i === length) {
        this.misses = 0;
        return this.text;
      }
    }
    const text = utf8Slice(buffer, start, end);
    if (length <= MAX_REMEMBERED_BYTES) {
      const bytes = this.bytes;
      for (let i = 0; i < length; i++) bytes[i] = buffer[start + i]!;
      this.length = length;
      this.text = text;
    }
    if (++this.misses >= MISSES_BEFORE_REST) {
      this.misses = 0;
      this.resting = REST_DECODES;
    }
    return text;
  }
}

/** Remembered names and values of one connection's content headers, by place. */
export class ContentHeaderDecoder {
  /** The short-string properties (0-13) and the deliver fields (16-18), by place. */
  readonly #properties: Remembered[] = Array.from({ length: 19 }, () => new Remembered());
  readonly #names: Remembered[] = [];
  readonly #values: Remembered[] = [];

  /**
   * The content-header frame at the start of `buffer` decoded as amqplib does, and the offset
   * after it; undefined when it is not a complete `basic` header frame this decoder reproduces.
   */
  frame(buffer: Buffer, maxFrameSize: number): [ContentHeaderFrame, number] | undefined {
    if (buffer.length < 8 || buffer[0] !== FRAME_HEADER) return undefined;
    const size = buffer.readUInt32BE(3);
    if (maxFrameSize > 0 && size > maxFrameSize) return undefined;
    const total = 8 + size;
    if (buffer.length < total || buffer[7 + size] !== FRAME_END || size < 14) return undefined;
    const id = buffer.readUInt16BE(7);
    if (id !== BASIC_CLASS) return undefined;
    const high = buffer.readInt32BE(11);
    // The body size as amqplib's Number(readBigInt64BE) gives it; exact below 2^53.
    if (high >= 0x200000 || high < -0x200000) return undefined;
    const bodySize = high * 0x100000000 + buffer.readUInt32BE(15);
    const fields = this.properties(buffer, 19, 7 + size);
    if (fields === undefined) return undefined;
    return [{ id, channel: buffer.readUInt16BE(1), size: bodySize, fields }, total];
  }

  /**
   * The `basic.deliver` method frame at the start of `buffer` decoded as amqplib does
   * (`decodeFrame`, `decodeBasicDeliver`), and the offset after it; undefined when it is not
   * one, not complete, or not read exactly here. Its consumer tag, exchange and routing key
   * repeat from delivery to delivery.
   */
  deliver(buffer: Buffer, maxFrameSize: number): [DeliverFrame, number] | undefined {
    if (buffer.length < 8 || buffer[0] !== FRAME_METHOD) return undefined;
    const size = buffer.readUInt32BE(3);
    if (maxFrameSize > 0 && size > maxFrameSize) return undefined;
    const total = 8 + size;
    if (buffer.length < total || buffer[7 + size] !== FRAME_END || size < 4) return undefined;
    if (buffer.readUInt32BE(7) !== BASIC_DELIVER) return undefined;
    const end = 7 + size;
    let offset = this.#shortString(buffer, 11, end, 16);
    if (offset < 0 || offset + 9 > end) return undefined;
    const consumerTag = this.#text;
    const high = buffer.readUInt32BE(offset);
    // amqplib: Number(readBigUInt64BE), exact below 2^53.
    if (high >= 0x200000) return undefined;
    const deliveryTag = high * 0x100000000 + buffer.readUInt32BE(offset + 4);
    const redelivered = (buffer[offset + 8]! & 1) !== 0;
    if ((offset = this.#shortString(buffer, offset + 9, end, 17)) < 0) return undefined;
    const exchange = this.#text;
    if ((offset = this.#shortString(buffer, offset, end, 18)) < 0) return undefined;
    const fields = { consumerTag, deliveryTag, redelivered, exchange, routingKey: this.#text };
    return [{ id: BASIC_DELIVER, channel: buffer.readUInt16BE(1), fields }, total];
  }

  /**
   * The basic properties in `buffer[start, end)` (flags first) as amqplib's
   * `decodeBasicProperties` makes them, or undefined when they are not read exactly here.
   */
  properties(buffer: Buffer, start: number, end: number): Record<string, unknown> | undefined {
    if (end - start < 2) return undefined;
    const flags = buffer.readUInt16BE(start);
    if (flags === 0) return {};
    // Bit 0 (more flag words) is not read by amqplib either; such a header is left to it.
    if ((flags & 1) !== 0) return undefined;
    const fields: Record<string, unknown> = {
      contentType: undefined,
      contentEncoding: undefined,
      headers: undefined,
      deliveryMode: undefined,
      priority: undefined,
      correlationId: undefined,
      replyTo: undefined,
      expiration: undefined,
      messageId: undefined,
      timestamp: undefined,
      type: undefined,
      userId: undefined,
      appId: undefined,
      clusterId: undefined,
    };
    let offset = start + 2;
    // Short strings: a length byte, then the bytes; -1 when one runs past the end.
    if (flags & 0x8000) {
      if ((offset = this.#shortString(buffer, offset, end, 0)) < 0) return undefined;
      fields['contentType'] = this.#text;
    }
    if (flags & 0x4000) {
      if ((offset = this.#shortString(buffer, offset, end, 1)) < 0) return undefined;
      fields['contentEncoding'] = this.#text;
    }
    if (flags & 0x2000) {
      if (offset + 4 > end) return undefined;
      const length = buffer.readUInt32BE(offset);
      const from = offset + 4;
      offset = from + length;
      if (offset > end) return undefined;
      const headers = this.table(buffer, from, offset);
      if (headers === undefined) return undefined;
      fields['headers'] = headers;
    }
    if (flags & 0x1000) {
      if (offset >= end) return undefined;
      fields['deliveryMode'] = buffer[offset++];
    }
    if (flags & 0x0800) {
      if (offset >= end) return undefined;
      fields['priority'] = buffer[offset++];
    }
    if (flags & 0x0400) {
      if ((offset = this.#shortString(buffer, offset, end, 5)) < 0) return undefined;
      fields['correlationId'] = this.#text;
    }
    if (flags & 0x0200) {
      if ((offset = this.#shortString(buffer, offset, end, 6)) < 0) return undefined;
      fields['replyTo'] = this.#text;
    }
    if (flags & 0x0100) {
      if ((offset = this.#shortString(buffer, offset, end, 7)) < 0) return undefined;
      fields['expiration'] = this.#text;
    }
    if (flags & 0x0080) {
      if ((offset = this.#shortString(buffer, offset, end, 8)) < 0) return undefined;
      fields['messageId'] = this.#text;
    }
    if (flags & 0x0040) {
      if (offset + 8 > end) return undefined;
      const high = buffer.readUInt32BE(offset);
      // amqplib: Number(readBigUInt64BE), exact below 2^53.
      if (high >= 0x200000) return undefined;
      fields['timestamp'] = high * 0x100000000 + buffer.readUInt32BE(offset + 4);
      offset += 8;
    }
    if (flags & 0x0020) {
      if ((offset = this.#shortString(buffer, offset, end, 10)) < 0) return undefined;
      fields['type'] = this.#text;
    }
    if (flags & 0x0010) {
      if ((offset = this.#shortString(buffer, offset, end, 11)) < 0) return undefined;
      fields['userId'] = this.#text;
    }
    if (flags & 0x0008) {
      if ((offset = this.#shortString(buffer, offset, end, 12)) < 0) return undefined;
      fields['appId'] = this.#text;
    }
    if (flags & 0x0004) {
      if ((offset = this.#shortString(buffer, offset, end, 13)) < 0) return undefined;
      fields['clusterId'] = this.#text;
    }
    return fields;
  }

  /**
   * A field table in `buffer[start, end)` as amqplib's `decodeFields` makes it, or undefined
   * when it holds a value kind left to amqplib or does not end where it should.
   */
  table(buffer: Buffer, start: number, end: number): Record<string, unknown> | undefined {
    const fields: Record<string, unknown> = {};
    let offset = start;
    let place = 0;
    while (offset < end) {
      const nameLength = buffer[offset]!;
      const nameStart = offset + 1;
      offset = nameStart + nameLength;
      if (offset >= end) return undefined; // (the tag is missing too)
      const name =
        place < MAX_REMEMBERED_ENTRIES
          ? this.#remembered(this.#names, place).read(buffer, nameStart, offset)
          : utf8Slice(buffer, nameStart, offset);
      const tag = buffer[offset++];
      let value: unknown;
      switch (tag) {
        case 0x53: {
          // 'S' long string
          if (offset + 4 > end) return undefined;
          const length = buffer.readUInt32BE(offset);
          const from = offset + 4;
          offset = from + length;
          if (offset > end) return undefined;
          value =
            place < MAX_REMEMBERED_ENTRIES
              ? this.#remembered(this.#values, place).read(buffer, from, offset)
              : utf8Slice(buffer, from, offset);
          break;
        }
        case 0x62: // 'b'
          if (offset + 1 > end) return undefined;
          value = buffer.readInt8(offset);
          offset += 1;
          break;
        case 0x42: // 'B'
          if (offset + 1 > end) return undefined;
          value = buffer[offset];
          offset += 1;
          break;
        case 0x73: // 's'
          if (offset + 2 > end) return undefined;
          value = buffer.readInt16BE(offset);
          offset += 2;
          break;
        case 0x75: // 'u'
          if (offset + 2 > end) return undefined;
          value = buffer.readUInt16BE(offset);
          offset += 2;
          break;
        case 0x49: // 'I'
          if (offset + 4 > end) return undefined;
          value = buffer.readInt32BE(offset);
          offset += 4;
          break;
        case 0x69: // 'i'
          if (offset + 4 > end) return undefined;
          value = buffer.readUInt32BE(offset);
          offset += 4;
          break;
        case 0x6c: // 'l'
          if (offset + 8 > end) return undefined;
          value = Number(buffer.readBigInt64BE(offset));
          offset += 8;
          break;
        case 0x66: // 'f'
          if (offset + 4 > end) return undefined;
          value = buffer.readFloatBE(offset);
          offset += 4;
          break;
        case 0x64: // 'd'
          if (offset + 8 > end) return undefined;
          value = buffer.readDoubleBE(offset);
          offset += 8;
          break;
        case 0x74: // 't'
          if (offset + 1 > end) return undefined;
          value = buffer[offset] !== 0;
          offset += 1;
          break;
        case 0x56: // 'V'
          value = null;
          break;
        default:
          return undefined;
      }
      fields[name] = value;
      place += 1;
    }
    return offset === end ? fields : undefined;
  }

  /** The text of the last {@link #shortString}. */
  #text = '';

  /** Reads the short string at `offset` into {@link #text}; the offset after it, or -1. */
  #shortString(buffer: Buffer, offset: number, end: number, slot: number): number {
    if (offset >= end) return -1;
    const from = offset + 1;
    const to = from + buffer[offset]!;
    if (to > end) return -1;
    this.#text = this.#properties[slot]!.read(buffer, from, to);
    return to;
  }

  #remembered(list: Remembered[], place: number): Remembered {
    let slot = list[place];
    if (slot === undefined) {
      slot = new Remembered();
      list[place] = slot;
    }
    return slot;
  }
}

/**
 * Makes an amqplib connection (`ChannelModel.connection`) decode the `basic.deliver` frames
 * and the content headers of the `basic` class with {@link ContentHeaderDecoder}. Idempotent. Returns whether the connection
 * is (now or already) decoding them so.
 */
export function decodeContentHeadersFast(connection: unknown): boolean {
  if (!isConnection(connection)) return false;
  if (connection[FAST_HEADERS]) return true;
  const recvFrame = connection.recvFrame;
  const decoder = new ContentHeaderDecoder();
  connection.recvFrame = function (this: ConnectionInternals): unknown {
    const rest = this.rest;
    const decoded =
      rest[0] === FRAME_HEADER
        ? decoder.frame(rest, this.maxFrameSize)
        : rest[0] === FRAME_METHOD
          ? decoder.deliver(rest, this.maxFrameSize)
          : undefined;
    if (decoded !== undefined) {
      this.rest = rest.subarray(decoded[1]);
      return decoded[0];
    }
    // (amqplib's recvFrame reads more from the socket and calls this.recvFrame again.)
    return recvFrame.call(this);
  };
  connection[FAST_HEADERS] = true;
  return true;
}

function isConnection(value: unknown): value is ConnectionInternals {
  if (typeof value !== 'object' || value === null) return false;
  const c = value as Partial<ConnectionInternals>;
  return (
    typeof c.recvFrame === 'function' &&
    Buffer.isBuffer(c.rest) &&
    typeof c.maxFrameSize === 'number'
  );
}
