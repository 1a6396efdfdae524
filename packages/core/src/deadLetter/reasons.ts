import { BacktrackError } from '../errors/BacktrackError.js';
import { MALFORMED_REASONS, MalformedMessageError } from '../envelope/errors.js';

/**
 * The header every transport sets on a dead letter: one value of {@link DEAD_LETTER_REASONS}, so
 * dead-letter tooling can branch without parsing English text or knowing every `BT_ERR_*` code.
 * The human text is in `x-backtrack-dead-letter-reason`, the code in `x-backtrack-dead-letter-code`.
 */
export const DEAD_LETTER_REASON_HEADER = 'x-backtrack-reason';

/**
 * Why a message is a dead letter: a stable, machine-readable vocabulary (docs/dead-letters.md).
 * Values are never renamed nor reused; new ones may be added, so tooling must treat an unknown
 * value like `other`.
 */
export const DEAD_LETTER_REASONS = {
  // The bytes could not be decoded into an envelope (`BT_ERR_MALFORMED_MESSAGE`, by its reason).
  /** A required CloudEvents attribute (id, source, type, specversion) is missing or empty. */
  MISSING_ATTRIBUTE: MALFORMED_REASONS.MISSING_ATTRIBUTE,
  /** An attribute has the wrong shape (a bad `time`, a non-integer `schemaversion`). */
  INVALID_ATTRIBUTE: MALFORMED_REASONS.INVALID_ATTRIBUTE,
  /** `specversion` is not 1.0. */
  UNSUPPORTED_SPECVERSION: MALFORMED_REASONS.UNSUPPORTED_SPECVERSION,
  /** The content type is not JSON. */
  UNSUPPORTED_CONTENT_TYPE: MALFORMED_REASONS.UNSUPPORTED_CONTENT_TYPE,
  /** The body is over the decoder's `maxBytes`. */
  TOO_LARGE: MALFORMED_REASONS.TOO_LARGE,
  /** Body or headers are not what a transport should hand over. */
  INVALID_SHAPE: MALFORMED_REASONS.INVALID_SHAPE,
  /** The body is not UTF-8. */
  INVALID_UTF8: MALFORMED_REASONS.INVALID_UTF8,
  /** The body is not JSON (an empty body or a Kafka tombstone too). */
  INVALID_JSON: MALFORMED_REASONS.INVALID_JSON,
  /** The JSON holds `__proto__`, `constructor` or `prototype`. */
  FORBIDDEN_KEY: MALFORMED_REASONS.FORBIDDEN_KEY,
  /** The CloudEvents batched content mode, which Backtrack does not read (`BT_ERR_CLOUDEVENTS_BATCH_UNSUPPORTED`). */
  BATCH_MODE_UNSUPPORTED: MALFORMED_REASONS.BATCH_MODE_UNSUPPORTED,
  /** `BT_ERR_MALFORMED_MESSAGE` without a finer reason. */
  MALFORMED: 'malformed',
  /** The transport could not even read the record into a message (`BT_ERR_KAFKA_RECORD_UNDECODABLE`). */
  UNDECODABLE: 'undecodable',
  // The envelope decoded, but its data does not fit the consumer's schemas.
  /** The data does not match the schema of its version (`BT_ERR_SCHEMA_VALIDATION`). */
  SCHEMA_VALIDATION: 'schema-validation',
  /** No schema for this event type (`BT_ERR_SCHEMA_UNKNOWN_EVENT_TYPE`). */
  UNKNOWN_TYPE: 'unknown-type',
  /** The type is known but not this schema version (`BT_ERR_SCHEMA_VERSION_UNKNOWN`). */
  UNKNOWN_VERSION: 'unknown-version',
  /** Up- or downcasting failed or is missing (`BT_ERR_SCHEMA_TRANSFORM_FAILED`, `_MISSING`). */
  TRANSFORM_FAILED: 'transform-failed',
  /** No handler for this type and `unhandled: 'dead-letter'` (`BT_ERR_CONSUMER_UNHANDLED_EVENT`). */
  UNHANDLED_TYPE: 'unhandled-type',
  // The handler.
  /** The handler rejected it (a non-retriable error) or the processor threw. */
  HANDLER_FAILED: 'handler-failed',
  /** Retried until the attempts ran out (`BT_ERR_CONSUMER_RETRIES_EXHAUSTED`, `BT_ERR_KAFKA_RETRIES_EXHAUSTED`). */
  RETRIES_EXHAUSTED: 'retries-exhausted',
  // Dead-lettered by RabbitMQ itself (never written by Backtrack; `readDeadLetter` reports them).
  /** The quorum queue's delivery limit was reached. */
  DELIVERY_LIMIT: 'delivery-limit',
  /** The message TTL expired. */
  EXPIRED: 'expired',
  /** A consumer outside Backtrack rejected it without requeue. */
  REJECTED: 'rejected',
  /** The queue's length limit dropped it. */
  MAXLEN: 'maxlen',
  /** Anything else (an application's own code without an error). */
  OTHER: 'other',
} as const;

/** One of {@link DEAD_LETTER_REASONS}. */
export type DeadLetterReason = (typeof DEAD_LETTER_REASONS)[keyof typeof DEAD_LETTER_REASONS];

const ALL = new Set<string>(Object.values(DEAD_LETTER_REASONS));
const MALFORMED = new Set<string>(Object.values(MALFORMED_REASONS));

const BY_CODE: Readonly<Record<string, DeadLetterReason>> = {
  BT_ERR_MALFORMED_MESSAGE: DEAD_LETTER_REASONS.MALFORMED,
  BT_ERR_KAFKA_RECORD_UNDECODABLE: DEAD_LETTER_REASONS.UNDECODABLE,
  BT_ERR_CLOUDEVENTS_BATCH_UNSUPPORTED: DEAD_LETTER_REASONS.BATCH_MODE_UNSUPPORTED,
  BT_ERR_SCHEMA_VALIDATION: DEAD_LETTER_REASONS.SCHEMA_VALIDATION,
  BT_ERR_SCHEMA_UNKNOWN_EVENT_TYPE: DEAD_LETTER_REASONS.UNKNOWN_TYPE,
  BT_ERR_SCHEMA_VERSION_UNKNOWN: DEAD_LETTER_REASONS.UNKNOWN_VERSION,
  BT_ERR_SCHEMA_TRANSFORM_FAILED: DEAD_LETTER_REASONS.TRANSFORM_FAILED,
  BT_ERR_SCHEMA_TRANSFORM_MISSING: DEAD_LETTER_REASONS.TRANSFORM_FAILED,
  BT_ERR_CONSUMER_UNHANDLED_EVENT: DEAD_LETTER_REASONS.UNHANDLED_TYPE,
  BT_ERR_CONSUMER_HANDLER_REJECTED: DEAD_LETTER_REASONS.HANDLER_FAILED,
  BT_ERR_KAFKA_PROCESSOR_FAILED: DEAD_LETTER_REASONS.HANDLER_FAILED,
  BT_ERR_AMQP_PROCESSOR_FAILED: DEAD_LETTER_REASONS.HANDLER_FAILED,
  BT_ERR_CONSUMER_RETRIES_EXHAUSTED: DEAD_LETTER_REASONS.RETRIES_EXHAUSTED,
  BT_ERR_KAFKA_RETRIES_EXHAUSTED: DEAD_LETTER_REASONS.RETRIES_EXHAUSTED,
};

const BROKER: Readonly<Record<string, DeadLetterReason>> = {
  delivery_limit: DEAD_LETTER_REASONS.DELIVERY_LIMIT,
  expired: DEAD_LETTER_REASONS.EXPIRED,
  rejected: DEAD_LETTER_REASONS.REJECTED,
  maxlen: DEAD_LETTER_REASONS.MAXLEN,
};

/**
 * The machine-readable reason of a dead-letter disposition, from its code and error:
 * a `BT_ERR_MALFORMED_MESSAGE` by the decoder's own reason (`invalid-json`, `too-large`, ...),
 * a known code by the table in docs/dead-letters.md, any other code with an error attached (a
 * handler's non-retriable error carries its own code) `handler-failed`, else `other`. Never throws.
 */
export function deadLetterReasonOf(code: string, error?: unknown): DeadLetterReason {
  // A decoder error (whatever its code: batched mode has its own) by the decoder's own reason.
  if (code === 'BT_ERR_MALFORMED_MESSAGE' || error instanceof MalformedMessageError) {
    const fine =
      error instanceof MalformedMessageError
        ? error.reason
        : error instanceof BacktrackError
          ? error.details['reason']
          : undefined;
    if (typeof fine === 'string' && MALFORMED.has(fine)) return fine as DeadLetterReason;
  }
  const known = BY_CODE[code];
  if (known !== undefined) return known;
  return error === undefined ? DEAD_LETTER_REASONS.OTHER : DEAD_LETTER_REASONS.HANDLER_FAILED;
}

/** The reason of a message RabbitMQ dead-lettered itself (`x-first-death-reason`). */
export function brokerDeadLetterReason(firstDeathReason: string | undefined): DeadLetterReason {
  return (firstDeathReason && BROKER[firstDeathReason]) || DEAD_LETTER_REASONS.OTHER;
}

/** True when `value` is one of {@link DEAD_LETTER_REASONS} (for reading the header back). */
export function isDeadLetterReason(value: unknown): value is DeadLetterReason {
  return typeof value === 'string' && ALL.has(value);
}

/** Longest reason or error text a transport writes into a header, in characters. */
export const MAX_DEAD_LETTER_TEXT = 1_000;

/**
 * Cuts a reason or error text to {@link MAX_DEAD_LETTER_TEXT} characters (the last one an
 * ellipsis), so a huge error message cannot make a retry or dead-letter record too large to write.
 */
export function truncateDeadLetterText(text: string, max = MAX_DEAD_LETTER_TEXT): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
