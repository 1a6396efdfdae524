export type { Envelope, EncodedMessage } from './types.js';
