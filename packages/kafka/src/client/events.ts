/**
 * Transport events of the Kafka transport (`on(event, listener)`), from what the client reports:
 * `consumer.crashed` from a subscription's crash reports, `consumer.rebalancing` from the
 * client's group events, and `connection.disconnected`/`connection.reconnected` when a consumer
 * crashed on a lost connection and later rejoined its group. kafkajs does not report socket
 * drops otherwise (a producer's lost connection surfaces as a failed publish), and Kafka has no
 * `connection.blocked`.
 */
import type { TransportEventEmitter } from '@backtrack/core/adapter';
import type { SubscriptionErrorEvent } from '../consumer/KafkaSubscription.js';
import type { KafkaConsumerClient } from './KafkaClient.js';

/** kafkajs error names that mean the connection to a broker was lost or could not be made. */
const CONNECTION_ERRORS = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSBrokerNotFound',
  'KafkaJSRequestTimeoutError',
]);

/** True when `error`, or what it wraps (`cause`, kafkajs' `originalError`), is a lost connection. */
export function isKafkaConnectionLoss(error: unknown, depth = 0): boolean {
  if (typeof error !== 'object' || error === null || depth > 5) return false;
  const e = error as { name?: unknown; cause?: unknown; originalError?: unknown };
  if (typeof e.name === 'string' && CONNECTION_ERRORS.has(e.name)) return true;
  return (
    isKafkaConnectionLoss(e.cause, depth + 1) || isKafkaConnectionLoss(e.originalError, depth + 1)
  );
}

/**
 * Emits the events of one subscription: registers for the consumer's group events, and returns
 * the `onError` to give the subscription (it emits, then calls `onError`).
 */
export function instrumentSubscription(
  events: TransportEventEmitter,
  group: string,
  consumer: KafkaConsumerClient,
  onError: ((event: SubscriptionErrorEvent) => void) | undefined,
): (event: SubscriptionErrorEvent) => void {
  let disconnectedAt: number | undefined;
  let connects = 1;
  consumer.onGroupEvent?.((event) => {
    if (event.phase === 'joined' && disconnectedAt !== undefined) {
      connects++;
      events.emit('connection.reconnected', { connects, downtimeMs: Date.now() - disconnectedAt });
      disconnectedAt = undefined;
    }
    events.emit('consumer.rebalancing', {
      group,
      phase: event.phase,
      ...(event.memberId === undefined ? {} : { memberId: event.memberId }),
      ...(event.assignment === undefined ? {} : { assignment: event.assignment }),
    });
  });
  return (event) => {
    if (event.kind === 'consumer-crashed') {
      if (disconnectedAt === undefined && isKafkaConnectionLoss(event.error)) {
        disconnectedAt = Date.now();
        events.emit('connection.disconnected', { error: event.error, reconnecting: true });
      }
      events.emit('consumer.crashed', {
        group,
        error: event.error,
        restarting: event.restarting ?? false,
        attempt: event.attempt,
        ...(event.retryInMs === undefined ? {} : { retryInMs: event.retryInMs }),
      });
    }
    onError?.(event);
  };
}
