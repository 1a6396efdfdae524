import type { EncodedMessage } from '../envelope/types.js';

/**
 * Messages whose creator changes them no more and hands them to no one but the journal and the
 * transport (the journaling publisher's encoded messages). Internal to core: not exported.
 */
const sealed = new WeakSet<EncodedMessage>();

/**
 * Declares that nothing will change `message` (its headers object and body bytes) from now on, so
 * the in-process journal and transport may keep it as it is instead of taking a copy. Only for a
 * message its caller built itself and never hands out (the journaling publisher's).
 */
export function sealMessage(message: EncodedMessage): EncodedMessage {
  sealed.add(message);
  return message;
}

/** Whether {@link sealMessage} declared `message` unchanging. */
export function isSealed(message: EncodedMessage): boolean {
  return sealed.has(message);
}

/**
 * The copy of `message` a store keeps (and never changes): `message` itself when sealed, otherwise
 * a copy of its headers and body bytes (in a buffer of their own: a store keeps it long).
 */
export function keptCopy(message: EncodedMessage): EncodedMessage {
  if (sealed.has(message)) return message;
  return copyMessage(message);
}

/** A copy of the headers and body bytes of `message`, in a buffer of their own. */
export function copyMessage(message: EncodedMessage): EncodedMessage {
  return { headers: { ...message.headers }, body: new Uint8Array(message.body) };
}
