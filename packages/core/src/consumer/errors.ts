import { BacktrackError } from '../errors/BacktrackError.js';
import { CORE_ERROR_CODES } from '../errors/codes.js';
import { ConfigError, type ConfigErrorOptions } from '../errors/ConfigError.js';

/**
 * A consumer pipeline option is invalid. Thrown once, by `createConsumerPipeline` or a
 * middleware factory, never on a message. `details.field` names the option.
 */
export class ConsumerConfigError extends ConfigError {
  static override readonly brand: string = '@backtrack/core.ConsumerConfigError';
  constructor(field: string, expectation: string, value?: unknown, options?: ConfigErrorOptions) {
    super(CORE_ERROR_CODES.CONSUMER_CONFIG_INVALID, 'consumer', field, expectation, value, options);
  }
}

/** Codes the pipeline puts on `dead-letter` dispositions it decides itself (not from an error). */
export const CONSUMER_DEAD_LETTER_CODES = {
  /** The handler failed on every attempt up to `retry.attempts`. */
  RETRIES_EXHAUSTED: CORE_ERROR_CODES.CONSUMER_RETRIES_EXHAUSTED,
  /** No handler for the event type and `unhandled: 'dead-letter'`. */
  UNHANDLED: CORE_ERROR_CODES.CONSUMER_UNHANDLED_EVENT,
  /** A handler or middleware threw something that is not retriable (a non-retriable BacktrackError). */
  HANDLER_REJECTED: CORE_ERROR_CODES.CONSUMER_HANDLER_REJECTED,
} as const;

/**
 * A handler (or middleware) did not finish within `handlerTimeoutMs`. Retriable: the message is
 * retried with backoff. The abandoned handler is told through `signal`; its dedupe lease is no
 * longer extended and expires, so a retry does not run beside it for longer than one lease.
 */
export class HandlerTimeoutError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.HandlerTimeoutError';
  constructor(timeoutMs: number, details: Record<string, unknown> = {}) {
    super(
      CORE_ERROR_CODES.CONSUMER_HANDLER_TIMEOUT,
      `handler did not finish within ${timeoutMs} ms`,
      {
        details: { timeoutMs, ...details },
        retriable: true,
      },
    );
  }
}
