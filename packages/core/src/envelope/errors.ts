import { BacktrackError, type BacktrackErrorOptions } from '../errors/BacktrackError.js';
import type { EncodedMessage } from './types.js';
import { CORE_ERROR_CODES } from '../errors/codes.js';

/**
 * Why a message could not be decoded. Stable strings: dead-letter tooling may branch on them.
 */
export const MALFORMED_REASONS = {
  /** A required attribute (id, source, type, specversion) is absent or empty. */
  MISSING_ATTRIBUTE: 'missing-attribute',
  /** A header has the wrong shape (a non-string value, a bad `time`, a non-integer `schemaversion`). */
  INVALID_ATTRIBUTE: 'invalid-attribute',
  /** `specversion` is not `1.0`. */
  UNSUPPORTED_SPECVERSION: 'unsupported-specversion',
  /** `content-type` is not JSON (`application/json`, `application/*+json`, charset UTF-8). */
  UNSUPPORTED_CONTENT_TYPE: 'unsupported-content-type',
  /** The body is larger than the `maxBytes` limit. */
  TOO_LARGE: 'too-large',
  /** The body or the headers are not what a transport should hand over (not bytes, not an object). */
  INVALID_SHAPE: 'invalid-shape',
  /** The body is not valid UTF-8. */
  INVALID_UTF8: 'invalid-utf8',
  /** The body is not valid JSON. */
  INVALID_JSON: 'invalid-json',
  /** The JSON holds a `__proto__`, `constructor` or `prototype` key (prototype-pollution guard). */
  FORBIDDEN_KEY: 'forbidden-key',
  /**
   * The message is in the CloudEvents batched content mode (`application/cloudevents-batch+json`),
   * which Backtrack does not consume: the batch is dead-lettered whole with code
   * `BT_ERR_CLOUDEVENTS_BATCH_UNSUPPORTED`.
   */
  BATCH_MODE_UNSUPPORTED: 'batch-mode-unsupported',
} as const;

/** One of {@link MALFORMED_REASONS}. */
export type MalformedReason = (typeof MALFORMED_REASONS)[keyof typeof MALFORMED_REASONS];

/**
 * A received message cannot be decoded into an {@link Envelope}. Never retriable: the consumer
 * pipeline dead-letters it at once. The error keeps the message exactly as received
 * (`original.body` bytes and `original.headers`) so the dead letter loses nothing; the bytes are
 * deliberately NOT in `details`, which are meant for logs.
 */
export class MalformedMessageError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.MalformedMessageError';
  /** The message exactly as the transport handed it over. */
  readonly original: EncodedMessage;
  /** Machine-readable cause, one of {@link MALFORMED_REASONS}. */
  readonly reason: MalformedReason;

  constructor(
    reason: MalformedReason,
    message: string,
    original: EncodedMessage,
    options: BacktrackErrorOptions = {},
    code: string = CORE_ERROR_CODES.MALFORMED_MESSAGE,
  ) {
    super(code, message, {
      ...options,
      details: { reason, ...options.details },
      retriable: false,
    });
    this.reason = reason;
    this.original = original;
  }
}

/**
 * A message in the CloudEvents batched content mode (`application/cloudevents-batch+json`: a JSON
 * array of events in one message). Backtrack consumes one event per message, so the pipeline
 * dead-letters the batch whole (a {@link MalformedMessageError}, reason `batch-mode-unsupported`)
 * under its own code `BT_ERR_CLOUDEVENTS_BATCH_UNSUPPORTED`, so that tooling can find such dead
 * letters, split them and publish the events one by one.
 */
export class BatchModeUnsupportedError extends MalformedMessageError {
  static override readonly brand: string = '@backtrack/core.BatchModeUnsupportedError';
  constructor(original: EncodedMessage, contentType: string) {
    super(
      MALFORMED_REASONS.BATCH_MODE_UNSUPPORTED,
      `CloudEvents batched content mode ("${contentType}") is not supported: publish one event per message (binary or structured mode)`,
      original,
      { details: { attribute: 'content-type', value: contentType } },
      CORE_ERROR_CODES.CLOUDEVENTS_BATCH_UNSUPPORTED,
    );
  }
}

/**
 * An envelope handed to `createEnvelope` or `encodeEnvelope` is not valid (an empty `type`, a
 * non-integer `schemaversion`, data that JSON cannot represent, ...). A programming error on the
 * producing side: fix the call.
 */
export class InvalidEnvelopeError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.InvalidEnvelopeError';
  constructor(message: string, options: BacktrackErrorOptions = {}) {
    super(CORE_ERROR_CODES.ENVELOPE_INVALID, message, { ...options, retriable: false });
  }
}
