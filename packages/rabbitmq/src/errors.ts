import { BacktrackError, type BacktrackErrorOptions } from '@backtrack/core';
import { RABBIT_ACCESS_ERROR_CODES } from './connection/connectionErrors.js';
import { configDetails } from '@backtrack/core/adapter';

/**
 * Stable codes of the errors `@backtrack/rabbitmq` throws (listed in docs/errors.md; never
 * reused). Branch on these, not on messages.
 */
export const RABBIT_ERROR_CODES = {
  // Bad credentials, missing rights, certificates that do not verify (never retriable).
  ...RABBIT_ACCESS_ERROR_CODES,
  /** An option given to the transport, a subscription or the topology helper is invalid. */
  CONFIG_INVALID: 'BT_ERR_AMQP_CONFIG_INVALID',
  /** A message handed to `publish` cannot be mapped to AMQP (for example no `id` header). */
  MESSAGE_INVALID: 'BT_ERR_AMQP_MESSAGE_INVALID',
  /** The broker returned a `mandatory` message: no queue is bound for its routing key. */
  UNROUTABLE: 'BT_ERR_AMQP_UNROUTABLE',
  /** The broker negatively acknowledged (nacked) a published message. */
  PUBLISH_NACKED: 'BT_ERR_AMQP_PUBLISH_NACKED',
  /** The broker did not confirm a message within `publishTimeoutMs`. */
  PUBLISH_TIMEOUT: 'BT_ERR_AMQP_PUBLISH_TIMEOUT',
  /** The exchange a message was published to does not exist. */
  EXCHANGE_NOT_FOUND: 'BT_ERR_AMQP_EXCHANGE_NOT_FOUND',
  /** The broker closed the publishing channel for a reason other than a lost connection. */
  CHANNEL_ERROR: 'BT_ERR_AMQP_CHANNEL_ERROR',
  /** The transport or subscription is closed (or closing); nothing more is accepted. */
  CLOSED: 'BT_ERR_AMQP_CLOSED',
  /** Connecting failed and the reconnect budget is exhausted. */
  CONNECTION_FAILED: 'BT_ERR_AMQP_CONNECTION_FAILED',
  /**
   * Dead-letter code of a message whose processor threw (instead of returning a disposition)
   * `processorErrorMaxAttempts` times.
   */
  PROCESSOR_FAILED: 'BT_ERR_AMQP_PROCESSOR_FAILED',
  /** Declaring an exchange, queue or binding failed (for example different arguments exist). */
  TOPOLOGY_FAILED: 'BT_ERR_AMQP_TOPOLOGY_FAILED',
  /**
   * `redriveDeadLetters` stopped: a copy was returned unroutable, nacked, not confirmed in time,
   * or its exchange does not exist. That dead letter and the ones after it stay in the queue.
   */
  REDRIVE_FAILED: 'BT_ERR_AMQP_REDRIVE_FAILED',
  /** The queue named to the dead-letter tooling (`browseDeadLetters`, `redriveDeadLetters`) does not exist. */
  QUEUE_NOT_FOUND: 'BT_ERR_AMQP_QUEUE_NOT_FOUND',
} as const;

/** One of {@link RABBIT_ERROR_CODES}. */
export type RabbitErrorCode = (typeof RABBIT_ERROR_CODES)[keyof typeof RABBIT_ERROR_CODES];

/** Base class of every `@backtrack/rabbitmq` error. */
export class RabbitError extends BacktrackError {
  static override readonly brand: string = '@backtrack/rabbitmq.RabbitError';
  declare readonly code: RabbitErrorCode;
  constructor(code: RabbitErrorCode, message: string, options?: BacktrackErrorOptions) {
    super(code, message, options);
  }
}

/** Invalid options, thrown at construction (never lazily on the first message). */
export class RabbitConfigError extends RabbitError {
  static override readonly brand: string = '@backtrack/rabbitmq.RabbitConfigError';
  constructor(
    field: string,
    expectation: string,
    value?: unknown,
    options: Omit<BacktrackErrorOptions, 'retriable'> = {},
  ) {
    super(RABBIT_ERROR_CODES.CONFIG_INVALID, `${field}: ${expectation}`, {
      ...options,
      details: { ...options.details, ...configDetails(field, expectation, value) },
    });
  }
}

/**
 * A message was not confirmed by the broker. `details` carries `messageId`, `exchange` and
 * `routingKey`. When `retriable` is true, publishing the same message again may succeed.
 */
export class RabbitPublishError extends RabbitError {
  static override readonly brand: string = '@backtrack/rabbitmq.RabbitPublishError';
}

/** The broker returned a `mandatory` message because no queue is bound for its routing key. */
export class RabbitUnroutableError extends RabbitPublishError {
  static override readonly brand: string = '@backtrack/rabbitmq.RabbitUnroutableError';
  constructor(details: {
    messageId: string;
    exchange: string;
    routingKey: string;
    replyText: string;
  }) {
    super(
      RABBIT_ERROR_CODES.UNROUTABLE,
      `message ${details.messageId} to exchange "${details.exchange}" with routing key "${details.routingKey}" was returned unroutable (${details.replyText}): bind a queue for it, or declare the consumer's topology first`,
      { details, retriable: false },
    );
  }
}

/** The transport, or the subscription, is closed. */
export class RabbitClosedError extends RabbitError {
  static override readonly brand: string = '@backtrack/rabbitmq.RabbitClosedError';
  constructor(what: string, details: Record<string, unknown> = {}) {
    super(RABBIT_ERROR_CODES.CLOSED, `${what} is closed`, { details, retriable: false });
  }
}

/** Connecting (or reconnecting) failed for good. */
export class RabbitConnectionError extends RabbitError {
  static override readonly brand: string = '@backtrack/rabbitmq.RabbitConnectionError';
  constructor(message: string, options?: BacktrackErrorOptions) {
    super(RABBIT_ERROR_CODES.CONNECTION_FAILED, message, { retriable: true, ...options });
  }
}

/** Declaring topology failed; `details.declaration` names the object. */
export class RabbitTopologyError extends RabbitError {
  static override readonly brand: string = '@backtrack/rabbitmq.RabbitTopologyError';
  constructor(message: string, options?: BacktrackErrorOptions) {
    super(RABBIT_ERROR_CODES.TOPOLOGY_FAILED, message, options);
  }
}
