import type { EncodedMessage } from '../envelope/types.js';
import type { MessageProcessor } from '../consumer/processor.js';

/** One message handed to a transport for publishing. */
export interface OutgoingMessage {
  /**
   * Logical destination: the Kafka topic, or the AMQP exchange (routed by event type).
   */
  topic: string;
  /** Ordering key (Kafka message key). Events with one key keep their order. */
  key?: string;
  message: EncodedMessage;
}

/** How a subscription consumes: topics, the consumer group (AMQP: the queue) and the pipeline. */
export interface SubscriptionOptions {
  topics: string[];
  /** Consumer group id (Kafka) or queue name (AMQP); also scopes dedupe keys. */
  group: string;
  processor: MessageProcessor;
}

/** A running subscription. */
export interface Subscription {
  /** Stops fetching, waits for in-flight handlers, acknowledges what finished, then resolves. */
  close(): Promise<void>;
}

/**
 * The Transport port. Adapters (Kafka, RabbitMQ, in-memory) implement it.
 *
 * - `publish` MUST resolve only after the broker acknowledged every message (Kafka acks=all,
 *   AMQP publisher confirm), and MUST reject if any message was not acknowledged.
 * - A subscription MUST acknowledge a message only after its disposition (see `Disposition`) is known, and
 *   MUST act on every disposition: `ack` acknowledges; `retry` re-delivers after `delayMs` with
 *   attempt + 1; `dead-letter` sends the original headers and bytes with the reason to the
 *   dead-letter destination, then acknowledges; `redeliver` does not acknowledge and lets the
 *   message come again (pausing when told to), never dropping it.
 */
export interface Transport {
  /** Short name for logs and metrics, for example `kafka`. */
  readonly name: string;
  publish(messages: OutgoingMessage[]): Promise<void>;
  subscribe(options: SubscriptionOptions): Promise<Subscription>;
  /** Closes every subscription and the connection. */
  close(): Promise<void>;
}
