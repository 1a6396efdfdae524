import {
  createDefaultLogger,
  type Logger,
  type OutgoingMessage,
  type SubscriptionOptions,
  type Transport,
  type TransportEventListener,
  type TransportEventName,
  type TransportEvents,
} from '@backtrack/core';
import { TransportEventEmitter } from '@backtrack/core/adapter';
import type { KafkaAdminClient, KafkaClient } from './client/KafkaClient.js';
import { createKafkajsClient, type KafkajsConnectionOptions } from './client/kafkajsClient.js';
import { instrumentSubscription } from './client/events.js';
import {
  KafkaSubscription,
  type DispositionEvent,
  type SubscriptionErrorEvent,
} from './consumer/KafkaSubscription.js';
import { KafkaClosedError, KafkaConfigError } from './errors.js';
import {
  resolveConsumerOptions,
  resolveProducerOptions,
  type KafkaConsumerOptions,
  type KafkaProducerOptions,
} from './options.js';
import { KafkaPublisher } from './publisher/KafkaPublisher.js';
import { typeFilterOf } from './consumer/typeFilter.js';
import { ensureTopics, type EnsureTopicsOptions } from './topics/topics.js';

/** Options of {@link createKafkaTransport}. */
export interface KafkaTransportOptions extends KafkajsConnectionOptions {
  /** Publisher settings over {@link DEFAULT_KAFKA_PRODUCER_OPTIONS}. */
  producer?: Partial<KafkaProducerOptions>;
  /** Consumer defaults of every subscription, over {@link DEFAULT_KAFKA_CONSUMER_OPTIONS}. */
  consumer?: Partial<KafkaConsumerOptions>;
}

/** Collaborators of the transport. */
export interface KafkaTransportDependencies {
  /** @default createDefaultLogger() */
  logger?: Logger;
  /**
   * The Kafka client library behind the transport. @default the kafkajs client built from the
   * connection options
   */
  client?: KafkaClient;
  /** Clock for retry due times, ms since the epoch. @default Date.now */
  now?: () => number;
  /**
   * Called for every subscription's {@link SubscriptionErrorEvent} (a failed batch, a crash and
   * restart, a paused partition) that the subscription has no `onError` of its own for. They are
   * logged at error level either way. Must not throw.
   */
  onSubscriptionError?: (event: SubscriptionErrorEvent) => void;
}

/** Per-subscription options: the core ones plus any {@link KafkaConsumerOptions} override. */
export interface KafkaSubscriptionOptions
  extends SubscriptionOptions, Partial<KafkaConsumerOptions> {
  /** Called after each message's outcome is durable (tests, metrics). Must not throw. */
  onDisposition?: (event: DispositionEvent) => void;
  /**
   * Called on a failure outside any one message (a failed batch, a consumer crash and its
   * restart, a partition paused because its dead letters could not be written). Must not throw.
   * @default the transport's `onSubscriptionError`
   */
  onError?: (event: SubscriptionErrorEvent) => void;
  /**
   * Hand the processor only records whose `ce_type` header matches one of these keys, as a
   * RabbitMQ queue bound with them (and the in-memory transport's `bindingKeys`) gets only those
   * types: words split by `.`, `*` one word, `#` zero or more. Every other record of the topics
   * is passed over before it is decoded (no envelope, no processor, no dedupe store) and its
   * offset committed with the batch. A record without a `ce_type` header (structured content
   * mode, a foreign producer) is always handed on. Kafka delivers every record of a topic to
   * every group subscribed to it, so a group that handles a few of a topic's types saves the
   * decoding of the rest (bench/README.md, "Kafka adapter (session 7)").
   * @default every type
   */
  bindingKeys?: readonly string[];
}

/**
 * The Kafka {@link Transport}: an idempotent acks=all publisher and consumer-group subscriptions
 * with retry and dead-letter topics. See the package README for the guarantees.
 *
 * @example
 * ```ts
 * const transport = createKafkaTransport({ brokers: ['127.0.0.1:9092'], clientId: 'orders' });
 * await transport.publish([{ topic: 'orders', key: orderId, message: encodeEnvelope(envelope) }]);
 * const sub = await transport.subscribe({ topics: ['orders'], group: 'billing', processor });
 * ```
 */
export class KafkaTransport implements Transport, TransportEvents {
  readonly name = 'kafka';
  readonly #client: KafkaClient;
  readonly #logger: Logger;
  readonly #consumerDefaults: Readonly<KafkaConsumerOptions>;
  readonly #publisher: KafkaPublisher;
  readonly #subscriptions = new Set<KafkaSubscription>();
  readonly #now: () => number;
  readonly #onSubscriptionError: ((event: SubscriptionErrorEvent) => void) | undefined;
  readonly #events: TransportEventEmitter;
  #closed = false;

  constructor(options: KafkaTransportOptions, dependencies: KafkaTransportDependencies = {}) {
    if (
      !Array.isArray(options?.brokers) ||
      options.brokers.length === 0 ||
      options.brokers.some((b) => typeof b !== 'string' || !b.includes(':'))
    ) {
      throw new KafkaConfigError('brokers', 'must list at least one "host:port"', options?.brokers);
    }
    const producer = resolveProducerOptions(options.producer);
    this.#consumerDefaults = resolveConsumerOptions(options.consumer);
    this.#logger = (dependencies.logger ?? createDefaultLogger()).child({ transport: 'kafka' });
    this.#client = dependencies.client ?? createKafkajsClient(options, this.#logger);
    this.#events = new TransportEventEmitter('kafka', this.#logger);
    this.#now = dependencies.now ?? Date.now;
    this.#onSubscriptionError = dependencies.onSubscriptionError;
    this.#publisher = new KafkaPublisher(
      this.#client.producer({
        idempotent: true,
        maxInFlightRequests: producer.maxInFlightRequests,
        retries: producer.retries,
        ackTimeoutMs: producer.ackTimeoutMs,
        compression: producer.compression,
      }),
      this.#logger,
      producer.publishTimeoutMs,
      {
        lingerMs: producer.lingerMs,
        maxBatchRecords: producer.maxBatchRecords,
        maxInFlightSends: producer.maxInFlightRequests,
      },
      producer.contentMode,
    );
  }

  /** Connects the producer now (optional: the first `publish` connects). */
  async connect(): Promise<void> {
    if (this.#closed) throw new KafkaClosedError('kafka transport');
    await this.#publisher.connect();
  }

  /**
   * Publishes the messages of one call in one produce request, coalesced with concurrent calls
   * (see `producer.lingerMs`); resolves only after the broker acknowledged every
   * message (acks=all, idempotent producer). The key is `message.key`, else the `partitionkey`,
   * else the `sagaid` attribute.
   * @throws {KafkaPublishError} (retriable) if any message was not acknowledged.
   */
  async publish(messages: OutgoingMessage[]): Promise<void> {
    if (this.#closed) throw new KafkaClosedError('kafka transport');
    await this.#publisher.publish(messages);
  }

  /**
   * Joins the consumer group and starts consuming; resolves once the group is joined.
   * @throws {KafkaConfigError} on invalid options.
   */
  async subscribe(options: KafkaSubscriptionOptions): Promise<KafkaSubscription> {
    if (this.#closed) throw new KafkaClosedError('kafka transport');
    const { topics, group, processor, onDisposition, onError, bindingKeys, ...overrides } = options;
    if (!Array.isArray(topics) || topics.length === 0)
      throw new KafkaConfigError('topics', 'must list at least one topic');
    if (typeof group !== 'string' || group.length === 0)
      throw new KafkaConfigError('group', 'must be a non-empty string');
    if (!processor || typeof processor.process !== 'function')
      throw new KafkaConfigError('processor', 'must implement process()');
    const opts = resolveConsumerOptions(overrides, this.#consumerDefaults);
    const typeFilter = typeFilterOf(bindingKeys);
    const consumer = this.#client.consumer({
      groupId: group,
      sessionTimeoutMs: opts.sessionTimeoutMs,
      heartbeatIntervalMs: opts.heartbeatIntervalMs,
      rebalanceTimeoutMs: opts.rebalanceTimeoutMs,
      maxWaitTimeMs: opts.maxWaitTimeMs,
      maxBytesPerPartition: opts.maxBytesPerPartition,
      fromBeginning: opts.fromBeginning,
      partitionsConsumedConcurrently: opts.partitionsConsumedConcurrently,
      commitIntervalMs: opts.commitIntervalMs,
    });
    const subscription = new KafkaSubscription({
      topics,
      group,
      processor,
      options: opts,
      typeFilter,
      consumer,
      admin: this.#client.admin(),
      publisher: this.#publisher,
      logger: this.#logger,
      onDisposition,
      onError: instrumentSubscription(
        this.#events,
        group,
        consumer,
        onError ?? this.#onSubscriptionError,
      ),
      onClosed: (s) => this.#subscriptions.delete(s),
      now: this.#now,
    });
    this.#subscriptions.add(subscription);
    try {
      await subscription.start();
    } catch (error) {
      this.#subscriptions.delete(subscription);
      throw error;
    }
    return subscription;
  }

  /**
   * Listens to consumer and connection events: `consumer.crashed` (with restart info),
   * `consumer.rebalancing` (a group rebalance began / this member rejoined), and
   * `connection.disconnected`/`connection.reconnected` around a consumer crash on a lost broker
   * connection. Returns the unsubscribe function.
   */
  on<E extends TransportEventName>(event: E, listener: TransportEventListener<E>): () => void {
    return this.#events.on(event, listener);
  }

  /** A fresh admin client of this transport's cluster (connect and disconnect it yourself). */
  admin(): KafkaAdminClient {
    return this.#client.admin();
  }

  /** Creates topics with their retry and dead-letter topics; see {@link ensureTopics}. */
  async ensureTopics(options: EnsureTopicsOptions): Promise<string[]> {
    const admin = this.#client.admin();
    await admin.connect();
    try {
      return await ensureTopics(admin, options);
    } finally {
      await admin.disconnect().catch(() => {});
    }
  }

  /** The publisher, for tools (redrive) that send raw records with the same guarantees. */
  get publisher(): KafkaPublisher {
    return this.#publisher;
  }

  /** The client behind the transport. */
  get client(): KafkaClient {
    return this.#client;
  }

  /** Closes every subscription (each finishes and commits its batch in flight), then the producer. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#subscriptions].map((s) => s.close()));
    this.#subscriptions.clear();
    await this.#publisher.close();
  }
}

/** Creates a {@link KafkaTransport}; options are validated here, before anything connects. */
export function createKafkaTransport(
  options: KafkaTransportOptions,
  dependencies: KafkaTransportDependencies = {},
): KafkaTransport {
  return new KafkaTransport(options, dependencies);
}
