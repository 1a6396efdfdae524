/**
 * AMQP 0-9-1 frame constants shared by the adapter's own frame code: the one-pass publish
 * frames (publisher/publishFrames.ts) and delivery decoding (decodeContentHeaders.ts).
 */
export const FRAME_METHOD = 1;
export const FRAME_HEADER = 2;
export const FRAME_BODY = 3;
export const FRAME_END = 0xce;
/** The `basic` class id. */
export const BASIC_CLASS = 60;
