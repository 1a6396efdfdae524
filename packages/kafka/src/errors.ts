import { BacktrackError, type BacktrackErrorOptions } from '@backtrack/core';
import { KAFKA_ACCESS_ERROR_CODES } from './client/connectionErrors.js';
import { configDetails } from '@backtrack/core/adapter';

/**
 * Stable codes of the errors `@backtrack/kafka` throws or writes into dead letters (listed in
 * docs/errors.md; never reused). Branch on these, not on messages.
 */
export const KAFKA_ERROR_CODES = {
  // Bad credentials, missing rights, certificates that do not verify (never retriable).
  ...KAFKA_ACCESS_ERROR_CODES,
  /** An option given to the transport, a subscription, the topic helper or redrive is invalid. */
  CONFIG_INVALID: 'BT_ERR_KAFKA_CONFIG_INVALID',
  /** The broker did not acknowledge a publish (acks=all) within the producer's retries. */
  PUBLISH_FAILED: 'BT_ERR_KAFKA_PUBLISH_FAILED',
  /** The transport or subscription is closed (or closing); nothing more is accepted. */
  CLOSED: 'BT_ERR_KAFKA_CLOSED',
  /** Connecting the producer, consumer or admin client failed. */
  CONNECTION_FAILED: 'BT_ERR_KAFKA_CONNECTION_FAILED',
  /** Creating or describing topics through the admin client failed. */
  TOPIC_ADMIN_FAILED: 'BT_ERR_KAFKA_TOPIC_ADMIN_FAILED',
  /**
   * Dead-letter code: the processor asked for a retry `maxAttempts` times (the transport's
   * backstop; core's pipeline normally dead-letters earlier with its own code).
   */
  RETRIES_EXHAUSTED: 'BT_ERR_KAFKA_RETRIES_EXHAUSTED',
  /** Dead-letter code: the processor threw (instead of returning a disposition) on every attempt. */
  PROCESSOR_FAILED: 'BT_ERR_KAFKA_PROCESSOR_FAILED',
  /**
   * Dead-letter code: the transport could not read the record into a message at all (a header
   * value no client should deliver, ...). The record is dead-lettered as it came, unprocessed.
   */
  RECORD_UNDECODABLE: 'BT_ERR_KAFKA_RECORD_UNDECODABLE',
  /** Re-driving dead letters failed part-way; `details` says how far it got. */
  REDRIVE_FAILED: 'BT_ERR_KAFKA_REDRIVE_FAILED',
} as const;

/** One of {@link KAFKA_ERROR_CODES}. */
export type KafkaErrorCode = (typeof KAFKA_ERROR_CODES)[keyof typeof KAFKA_ERROR_CODES];

/** Base class of every `@backtrack/kafka` error. */
export class KafkaError extends BacktrackError {
  static override readonly brand: string = '@backtrack/kafka.KafkaError';
  declare readonly code: KafkaErrorCode;
  constructor(code: KafkaErrorCode, message: string, options?: BacktrackErrorOptions) {
    super(code, message, options);
  }
}

/** Invalid options, thrown at construction (never lazily on the first message). */
export class KafkaConfigError extends KafkaError {
  static override readonly brand: string = '@backtrack/kafka.KafkaConfigError';
  constructor(
    field: string,
    expectation: string,
    value?: unknown,
    options: Omit<BacktrackErrorOptions, 'retriable'> = {},
  ) {
    super(KAFKA_ERROR_CODES.CONFIG_INVALID, `${field}: ${expectation}`, {
      ...options,
      details: { ...options.details, ...configDetails(field, expectation, value) },
    });
  }
}

/**
 * The broker did not acknowledge a publish. Retriable: the broker or the network was down; some
 * of the messages may have been written (publishing them again is safe for idempotent consumers,
 * which deduplicate on the envelope id). `details.topics` names the topics of the failed batch.
 */
export class KafkaPublishError extends KafkaError {
  static override readonly brand: string = '@backtrack/kafka.KafkaPublishError';
  constructor(message: string, options: Omit<BacktrackErrorOptions, 'retriable'> = {}) {
    super(KAFKA_ERROR_CODES.PUBLISH_FAILED, message, { ...options, retriable: true });
  }
}

/** The transport or subscription was closed; create a new one. */
export class KafkaClosedError extends KafkaError {
  static override readonly brand: string = '@backtrack/kafka.KafkaClosedError';
  constructor(what: string) {
    super(KAFKA_ERROR_CODES.CLOSED, `${what} is closed`, { details: { what } });
  }
}
