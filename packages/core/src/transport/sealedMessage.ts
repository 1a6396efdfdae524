import { JSON_CONTENT_TYPE } from '../envelope/envelope.js';
import type { EncodedMessage, Envelope } from '../envelope/types.js';

/**
 * A message whose creator changes it no more and hands it to no one but the journal and the
 * transport (the journaling publisher's encoded messages). A class, not a set of marked objects:
 * `instanceof` costs nothing, and a spread copy (`{ ...message }`) is not sealed. Internal to
 * core: not exported.
 */
class SealedMessage implements EncodedMessage {
  /**
   * The `schemaversion` of the envelope these headers and body encode when they are exactly what
   * `encodeCheckedEnvelope` made of a checked envelope in binary mode with the JSON content type,
   * no `dataschema` and no extensions (see {@link sealMessage}); 0 otherwise. Private: a sealed
   * message still has only `headers` and `body` as its own properties.
   */
  readonly #checkedVersion: number;

  constructor(
    readonly headers: Record<string, string>,
    readonly body: Uint8Array,
    checkedVersion: number,
  ) {
    this.#checkedVersion = checkedVersion;
  }

  get checkedVersion(): number {
    return this.#checkedVersion;
  }
}

/**
 * The copy of a message an in-process transport hands a consumer (its own headers object and
 * body bytes), remembering the sealed message it was copied from: the consumer pipeline may then
 * read the envelope from the sealed headers, which the publisher checked, instead of decoding and
 * checking them again (see `decodeHandedOver` in `codec.ts`). The sealed message is private (not
 * an own enumerable property: a delivered message looks and serialises as before).
 */
class DeliveredMessage implements EncodedMessage {
  readonly #sealed: SealedMessage;
  // The copies handed out, to tell whether a middleware replaced them before decoding.
  readonly #headersGiven: Record<string, string>;
  readonly #bodyGiven: Uint8Array;
  headers: Record<string, string>;
  body: Uint8Array;

  constructor(sealed: SealedMessage) {
    this.headers = this.#headersGiven = { ...sealed.headers };
    this.body = this.#bodyGiven = Buffer.from(sealed.body);
    this.#sealed = sealed;
  }

  /**
   * The sealed message this copy was made of, while the copy still holds the headers object and
   * body it was given (a middleware that replaced either gets a full decode of what it put there).
   */
  static sealedOf(message: EncodedMessage): SealedMessage | undefined {
    if (!(message instanceof DeliveredMessage)) return undefined;
    return message.headers === message.#headersGiven && message.body === message.#bodyGiven
      ? message.#sealed
      : undefined;
  }
}

/**
 * `message` as a sealed message: a declaration that nothing will change its headers object or
 * body bytes from now on, so the in-process journal and transport may keep it as it is instead of
 * taking a copy. Only for a message its caller built itself and never hands out (the journaling
 * publisher's). Takes no copy.
 */
export function sealMessage(message: EncodedMessage, encoded?: Envelope<unknown>): EncodedMessage {
  if (message instanceof SealedMessage) return message;
  return new SealedMessage(message.headers, message.body, checkedVersionOf(encoded));
}

/**
 * `encoded.schemaversion` when a consumer may take the message's attributes from its headers as
 * they are: `encoded` is the checked envelope `encodeCheckedEnvelope` just encoded in binary mode
 * into this message, with the JSON content type (binary mode on decode), no `dataschema` (whose
 * version decode compares) and no extensions (decoded as strings), and a version decode reads
 * back (at most 15 digits). 0 when any of that does not hold: the consumer decodes as usual.
 */
function checkedVersionOf(encoded: Envelope<unknown> | undefined): number {
  if (
    encoded === undefined ||
    encoded.datacontenttype !== JSON_CONTENT_TYPE ||
    encoded.dataschema !== undefined ||
    encoded.extensions !== undefined ||
    !(encoded.schemaversion < 1e15)
  ) {
    return 0;
  }
  return encoded.schemaversion;
}

/**
 * The copy of a stored message a transport hands one delivery: its own headers object and body
 * bytes (in pooled memory: it lives as long as the delivery), so a consumer that changes them
 * changes nothing another consumer, a redelivery or the journal sees. A copy of a sealed message
 * the publisher checked (see {@link sealMessage}) also lets the consumer skip decoding its
 * headers ({@link handedOver}).
 */
export function deliveredCopy(message: EncodedMessage): EncodedMessage {
  if (message instanceof SealedMessage && message.checkedVersion > 0) {
    return new DeliveredMessage(message);
  }
  return { headers: { ...message.headers }, body: Buffer.from(message.body) };
}

/**
 * For a message {@link deliveredCopy} made of a checked sealed message: the sealed headers (the
 * publisher's, never changed), the delivery's body bytes and the envelope's `schemaversion`.
 * Undefined for any other message, and for a copy whose headers object or body was replaced.
 * A change made in place to the copy's headers object is not seen (its attributes are read from
 * the sealed headers); replace the object to have it decoded. Internal to core.
 */
export function handedOver(
  message: EncodedMessage,
): { headers: Record<string, string>; body: Uint8Array; checkedVersion: number } | undefined {
  const sealed = DeliveredMessage.sealedOf(message);
  // The delivery's own body (the same bytes unless a middleware changed them in place: then what
  // it changed is what is parsed, as on a broker); the attributes from the sealed headers.
  return sealed === undefined
    ? undefined
    : { headers: sealed.headers, body: message.body, checkedVersion: sealed.checkedVersion };
}

/**
 * The copy of `message` a store keeps (and never changes): `message` itself when sealed, otherwise
 * a copy of its headers and body bytes (in a buffer of their own: a store keeps it long).
 */
export function keptCopy(message: EncodedMessage): EncodedMessage {
  if (message instanceof SealedMessage) return message;
  return copyMessage(message);
}

/** A copy of the headers and body bytes of `message`, in a buffer of their own. */
export function copyMessage(message: EncodedMessage): EncodedMessage {
  return { headers: { ...message.headers }, body: new Uint8Array(message.body) };
}
