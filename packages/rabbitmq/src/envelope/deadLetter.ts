import {
  MalformedMessageError,
  deadLetterReasonOf,
  isDeadLetterReason,
  type DeadLetterReason,
  type EncodedMessage,
} from '@backtrack/core';
import {
  BACKTRACK_HEADERS,
  fromAmqpMessage,
  headerToPositiveInt,
  headerToString,
  type AmqpMessageLike,
} from './amqpBinding.js';
import { DEAD_LETTER_REASON_HEADER, brokerDeadLetterReason } from '@backtrack/core/adapter';

/** A message read from a dead-letter queue, with why it is there. */
export interface DeadLetter {
  /** The original message (headers and the original bytes). */
  message: EncodedMessage;
  /**
   * Why it was dead-lettered: the pipeline's reason, or for a message the broker dead-lettered
   * itself, `broker: <x-first-death-reason>` (`delivery_limit`, `expired`, `rejected`, `maxlen`).
   */
  reason: string;
  /** The error code (`BT_ERR_*`), or `broker:<reason>` for broker dead letters. */
  code: string;
  /**
   * The machine-readable reason (`x-backtrack-reason`), one of core's `DEAD_LETTER_REASONS`: from
   * the header when the consumer runner wrote it; for a message the broker dead-lettered itself,
   * `delivery-limit`, `expired`, `rejected` or `maxlen`; for older dead letters, derived from `code`.
   */
  reasonCode: DeadLetterReason;
  /** The error text behind it, if any. */
  error?: string;
  /** The queue it was consumed from. */
  queue?: string;
  /** The attempt at which it was dead-lettered. */
  attempt: number;
  /** Where it was first published. */
  originalExchange?: string;
  originalRoutingKey?: string;
  /** ISO time it was dead-lettered by the consumer runner. */
  deadLetteredAt?: string;
}

/**
 * Reads a message from a dead-letter queue: the original message as the neutral
 * {@link EncodedMessage} plus the reason, code and origin the consumer runner (or the broker)
 * recorded. Use it in tooling that inspects or replays dead letters.
 */
export function readDeadLetter(
  message: AmqpMessageLike & { fields?: { exchange?: string; routingKey?: string } },
): DeadLetter {
  const headers = message.properties.headers ?? {};
  const text = (name: string): string | undefined => headerToString(headers[name]);
  const brokerReason = text('x-first-death-reason');
  const reason = text(BACKTRACK_HEADERS.deadLetterReason) ?? `broker: ${brokerReason ?? 'unknown'}`;
  const code = text(BACKTRACK_HEADERS.deadLetterCode) ?? `broker:${brokerReason ?? 'unknown'}`;
  const machine = text(DEAD_LETTER_REASON_HEADER);
  const written = text(BACKTRACK_HEADERS.deadLetterCode);
  const reasonCode: DeadLetterReason = isDeadLetterReason(machine)
    ? machine
    : written === undefined
      ? brokerDeadLetterReason(brokerReason)
      : deadLetterReasonOf(written);
  const result: DeadLetter = {
    message: attributesOf(message),
    reason,
    code,
    reasonCode,
    attempt: headerToPositiveInt(headers[BACKTRACK_HEADERS.attempt]) ?? 1,
  };
  const optional = {
    error: text(BACKTRACK_HEADERS.error),
    queue: text(BACKTRACK_HEADERS.queue) ?? text('x-first-death-queue'),
    originalExchange: text(BACKTRACK_HEADERS.originalExchange) ?? text('x-first-death-exchange'),
    originalRoutingKey: text(BACKTRACK_HEADERS.originalRoutingKey),
    deadLetteredAt: text(BACKTRACK_HEADERS.deadLetteredAt),
  };
  for (const [key, value] of Object.entries(optional)) {
    if (value !== undefined) (result as unknown as Record<string, unknown>)[key] = value;
  }
  return result;
}

/**
 * The dead letter's envelope as the binding reads it. A delivery the binding refuses (an attribute
 * of no string form: often why it is a dead letter) keeps its bytes with no attributes, so
 * listing and redriving never fail on it.
 */
function attributesOf(message: AmqpMessageLike): EncodedMessage {
  try {
    return fromAmqpMessage(message);
  } catch (error) {
    if (!(error instanceof MalformedMessageError)) throw error;
    return {
      headers: {},
      body: new Uint8Array(
        message.content.buffer,
        message.content.byteOffset,
        message.content.byteLength,
      ),
    };
  }
}
