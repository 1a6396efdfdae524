export type { Envelope, EncodedMessage, ExtensionValue, ContentMode } from './types.js';
export {
  createEnvelope,
  assertValidEnvelope,
  isRfc3339,
  isSchemaVersion,
  isExtensionName,
  isExtensionValue,
  schemaVersionFromDataschema,
  withDataschemaVersion,
  KNOWN_ATTRIBUTES,
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
  toStructuredMessage,
  contentModeOf,
  STRUCTURED_CONTENT_TYPE,
  BATCH_CONTENT_TYPE,
  isJsonContentType,
  DEFAULT_ENVELOPE_LIMITS,
  ENVELOPE_HEADERS,
  FORBIDDEN_JSON_KEYS,
} from './codec.js';
export type { EnvelopeLimits, EncodeOptions, DecodeOptions } from './codec.js';
export {
  MalformedMessageError,
  BatchModeUnsupportedError,
  InvalidEnvelopeError,
  MALFORMED_REASONS,
} from './errors.js';
export type { MalformedReason } from './errors.js';
