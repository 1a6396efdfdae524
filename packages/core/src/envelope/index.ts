export type { Envelope, EncodedMessage, ExtensionValue, ContentMode } from './types.js';
export {
  createEnvelope,
  isRfc3339,
  isSchemaVersion,
  isExtensionName,
  isExtensionValue,
  schemaVersionFromDataschema,
} from './envelope.js';
export { REPLAY_OF, replayOf } from './replayOf.js';
export type {
  CreateEnvelopeInput,
  CreateEnvelopeDependencies,
  EnvelopeExtensions,
} from './envelope.js';
// Binding helpers for transports (toStructuredMessage, contentModeOf, ...): `@backtrack/core/adapter`.
export {
  encodeEnvelope,
  decodeEnvelope,
  DEFAULT_ENVELOPE_LIMITS,
  ENVELOPE_HEADERS,
} from './codec.js';
export type { EnvelopeLimits, EncodeOptions, DecodeOptions } from './codec.js';
export {
  MalformedMessageError,
  BatchModeUnsupportedError,
  InvalidEnvelopeError,
  MALFORMED_REASONS,
} from './errors.js';
export type { MalformedReason } from './errors.js';
