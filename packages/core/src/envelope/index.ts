export type { Envelope, EncodedMessage } from './types.js';
export {
  createEnvelope,
  assertValidEnvelope,
  isRfc3339,
  isSchemaVersion,
  SPEC_VERSION,
  JSON_CONTENT_TYPE,
} from './envelope.js';
export type {
  CreateEnvelopeInput,
  CreateEnvelopeDependencies,
  EnvelopeExtensions,
} from './envelope.js';
export {
  encodeEnvelope,
  decodeEnvelope,
  isJsonContentType,
  DEFAULT_ENVELOPE_LIMITS,
  ENVELOPE_HEADERS,
  FORBIDDEN_JSON_KEYS,
} from './codec.js';
export type { EnvelopeLimits } from './codec.js';
export { MalformedMessageError, InvalidEnvelopeError, MALFORMED_REASONS } from './errors.js';
export type { MalformedReason } from './errors.js';
