import { MalformedMessageError } from '../envelope/errors.js';
import { BacktrackError } from '../errors/BacktrackError.js';
import { StoreUnavailableError } from '../errors/StoreUnavailableError.js';
import { accessErrorOf } from '../errors/ConnectionAccessError.js';
import type { Logger } from '../logging/logger.js';
import { redactText } from '../logging/redact.js';
import { backoffDelayMs, type RetryPolicy } from '../retry/backoff.js';
import {
  MissingTransformError,
  SchemaValidationError,
  TransformFailedError,
  UnknownEventTypeError,
  UnknownSchemaVersionError,
} from '../schema/errors.js';
import { isLogged, type ConsumerContext } from './context.js';
import type { ConsumerSpy } from '../testing/ConsumerSpy.js';
import { CONSUMER_DEAD_LETTER_CODES } from './errors.js';
import { IdempotencyKeyError, LeaseHeldError } from './idempotent/errors.js';
import type { Disposition } from './processor.js';

/** Errors that mean "this message can never be processed": dead-lettered at once. */
const BAD_MESSAGE_ERRORS = [
  MalformedMessageError,
  UnknownEventTypeError,
  UnknownSchemaVersionError,
  SchemaValidationError,
  MissingTransformError,
  TransformFailedError,
  IdempotencyKeyError,
] as const;

/** What {@link classifyError} needs to know about the pipeline. */
export interface ClassifyPolicy {
  retry: Readonly<RetryPolicy>;
  random: () => number;
  inProgressDelayMs: number;
  unavailableDelayMs: number;
}

/**
 * Turns what a message's middleware or handler threw into a disposition: bad input is
 * dead-lettered, a held lease or a store outage is redelivered, a non-retriable error is
 * dead-lettered, anything else is retried until `retry.attempts`.
 */
export function classifyError(
  error: unknown,
  context: ConsumerContext,
  policy: ClassifyPolicy,
): Disposition {
  // The reason travels with the message (dead-letter headers): no secret of a handler's error.
  const message = redactText(error instanceof Error ? error.message : String(error));
  if (BAD_MESSAGE_ERRORS.some((type) => error instanceof type)) {
    return { kind: 'dead-letter', reason: message, code: (error as BacktrackError).code, error };
  }
  if (error instanceof LeaseHeldError) {
    return { kind: 'redeliver', reason: message, delayMs: policy.inProgressDelayMs, pause: false };
  }
  if (error instanceof StoreUnavailableError) {
    return { kind: 'redeliver', reason: message, delayMs: policy.unavailableDelayMs, pause: true };
  }
  // Bad credentials or missing rights on a store: the message is fine, keep it (no dead letter).
  if (accessErrorOf(error)) {
    return { kind: 'redeliver', reason: message, delayMs: policy.unavailableDelayMs, pause: true };
  }
  if (error instanceof BacktrackError && !error.retriable) {
    return {
      kind: 'dead-letter',
      reason: `handler rejected the message: ${message}`,
      code: error.code,
      error,
    };
  }
  const { retry } = policy;
  if (context.attempt < retry.attempts) {
    const delayMs = Math.round(backoffDelayMs(context.attempt + 1, retry, policy.random));
    return {
      kind: 'retry',
      reason: `handler failed on attempt ${context.attempt}: ${message}`,
      delayMs,
      error,
    };
  }
  return {
    kind: 'dead-letter',
    reason: `handler failed on all ${context.attempt} attempts (retry.attempts ${retry.attempts}): ${message}`,
    code: CONSUMER_DEAD_LETTER_CODES.RETRIES_EXHAUSTED,
    error,
  };
}

/** Logs a message's final disposition (acks at debug only) and records it on the spy. */
export function reportOutcome(
  context: ConsumerContext,
  disposition: Disposition,
  logger: Logger,
  spy: ConsumerSpy | undefined,
): void {
  if (disposition.kind !== 'ack' || logger.isLevelEnabled('debug')) {
    logDisposition(context, disposition);
  }
  if (spy === undefined) return;
  const envelope = context.envelope;
  spy.record({
    ...(envelope === undefined
      ? {}
      : {
          messageId: envelope.id,
          type: envelope.type,
          data: envelope.data,
          ...(envelope.sagaid === undefined ? {} : { sagaId: envelope.sagaid }),
        }),
    attempt: context.attempt,
    disposition,
    at: Date.now(),
  });
}

function logDisposition(context: ConsumerContext, disposition: Disposition): void {
  const level =
    disposition.kind === 'ack'
      ? 'debug'
      : disposition.kind === 'retry'
        ? 'warn'
        : disposition.kind === 'dead-letter'
          ? 'error'
          : disposition.pause
            ? 'warn'
            : 'debug';
  // The message's child logger is made only when the line is written.
  if (!isLogged(context, level)) return;
  const { error, ...fields } = disposition as Disposition & { error?: unknown };
  switch (disposition.kind) {
    case 'ack':
      context.logger.debug({ disposition: fields }, 'message processed');
      break;
    case 'retry':
      context.logger.warn({ disposition: fields, err: error }, 'handler failed; retrying later');
      break;
    case 'redeliver':
      context.logger[disposition.pause ? 'warn' : 'debug'](
        { disposition: fields },
        'message will be redelivered',
      );
      break;
    case 'dead-letter':
      context.logger.error({ disposition: fields, err: error }, 'message dead-lettered');
      break;
  }
}
