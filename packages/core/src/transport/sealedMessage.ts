import type { EncodedMessage } from '../envelope/types.js';

/**
 * A message whose creator changes it no more and hands it to no one but the journal and the
 * transport (the journaling publisher's encoded messages). A class, not a set of marked objects:
 * `instanceof` costs nothing, and a spread copy (`{ ...message }`) is not sealed. Internal to
 * core: not exported.
 */
class SealedMessage implements EncodedMessage {
  constructor(
    readonly headers: Record<string, string>,
    readonly body: Uint8Array,
  ) {}
}

/**
 * `message` as a sealed message: a declaration that nothing will change its headers object or
 * body bytes from now on, so the in-process journal and transport may keep it as it is instead of
 * taking a copy. Only for a message its caller built itself and never hands out (the journaling
 * publisher's). Takes no copy.
 */
export function sealMessage(message: EncodedMessage): EncodedMessage {
  return message instanceof SealedMessage
    ? message
    : new SealedMessage(message.headers, message.body);
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
