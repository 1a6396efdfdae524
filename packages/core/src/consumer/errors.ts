import { BacktrackError } from '../errors/BacktrackError.js';

/**
 * A consumer pipeline option is invalid. Thrown once, by `createConsumerPipeline` or a
 * middleware factory, never on a message. `details.field` names the option.
 */
export class ConsumerConfigError extends BacktrackError {
  constructor(field: string, expectation: string, value?: unknown) {
    super('BT_ERR_CONSUMER_CONFIG_INVALID', `consumer option ${field} ${expectation}`, {
      details: { field, expectation, ...(value === undefined ? {} : { value: describe(value) }) },
    });
  }
}

/** Codes the pipeline puts on `dead-letter` dispositions it decides itself (not from an error). */
export const CONSUMER_DEAD_LETTER_CODES = {
  /** The handler failed on every attempt up to `retry.attempts`. */
  RETRIES_EXHAUSTED: 'BT_ERR_CONSUMER_RETRIES_EXHAUSTED',
  /** No handler for the event type and `unhandled: 'dead-letter'`. */
  UNHANDLED: 'BT_ERR_CONSUMER_UNHANDLED_EVENT',
  /** A handler or middleware threw something that is not retriable (a non-retriable BacktrackError). */
  HANDLER_REJECTED: 'BT_ERR_CONSUMER_HANDLER_REJECTED',
} as const;

function describe(value: unknown): unknown {
  return typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean'
    ? value
    : typeof value;
}

/**
 * A handler (or middleware) did not finish within `handlerTimeoutMs`. Retriable: the message is
 * retried with backoff. The abandoned handler is told through `signal`; its dedupe lease is no
 * longer extended and expires, so a retry does not run beside it for longer than one lease.
 */
export class HandlerTimeoutError extends BacktrackError {
  constructor(timeoutMs: number, details: Record<string, unknown> = {}) {
    super('BT_ERR_CONSUMER_HANDLER_TIMEOUT', `handler did not finish within ${timeoutMs} ms`, {
      details: { timeoutMs, ...details },
      retriable: true,
    });
  }
}
