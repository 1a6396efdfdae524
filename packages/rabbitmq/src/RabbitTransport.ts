import { createDefaultLogger } from '@backtrack/core';
import type {
  ContentMode,
  Logger,
  OutgoingMessage,
  SubscriptionOptions,
  Transport,
  TransportEventListener,
  TransportEventName,
  TransportEvents,
} from '@backtrack/core';
import { RabbitConnection, type RabbitConnectionOptions } from './connection/RabbitConnection.js';
import { RabbitSubscription, type RabbitConsumerOptions } from './consumer/RabbitSubscription.js';
import { toAmqpMessage, type AmqpMessage } from './envelope/amqpBinding.js';
import { RABBIT_ERROR_CODES, RabbitClosedError, RabbitConfigError, RabbitError } from './errors.js';
import { resolveRabbitTransportOptions, stripUndefined } from './options.js';
import { RabbitPublisher } from './publisher/RabbitPublisher.js';
import { declareTopology, deleteTopology, type Topology } from './topology/topology.js';

/**
 * How a message's AMQP routing key is chosen: `'type'` (the event type, the default: consumers
 * bind topic patterns such as `order.*`), `'key'` (the `OutgoingMessage.key`, falling back to the
 * type), or a function.
 */
export type RoutingKeyStrategy = 'type' | 'key' | ((message: OutgoingMessage) => string);

/** Options of {@link createRabbitTransport}. */
export interface RabbitTransportOptions extends RabbitConnectionOptions {
  /** See {@link RoutingKeyStrategy}. @default 'type' */
  routingKey?: RoutingKeyStrategy;
  /**
   * How long `publish` waits for the broker's confirms, in ms, reconnects included.
   * @default 30_000
   */
  publishTimeoutMs?: number;
  /** Defaults for every subscription (each `subscribe` call can override them). */
  consumer?: Partial<RabbitConsumerOptions>;
  /** How long `close` waits for unconfirmed publishes, in ms. @default 10_000 */
  closeTimeoutMs?: number;
  /**
   * CloudEvents content mode of published messages: `binary` (`cloudEvents_` application
   * properties, data as the body) or `structured` (the event in the CloudEvents JSON format as
   * the body, `content-type: application/cloudevents+json`). Consumers read both.
   * @default 'binary'
   */
  contentMode?: ContentMode;
}

/** Collaborators of the transport. */
export interface RabbitTransportDependencies {
  /** @default createDefaultLogger() */
  logger?: Logger;
}

/**
 * What the `RabbitTransport` constructor takes besides the options: the open connection and the
 * started publisher that {@link createRabbitTransport} made for it.
 */
export interface ConnectedRabbitDependencies extends RabbitTransportDependencies {
  connection: RabbitConnection;
  publisher: RabbitPublisher;
}

/** The port's subscription options plus the RabbitMQ consumer options. */
export type RabbitSubscriptionOptions = SubscriptionOptions & Partial<RabbitConsumerOptions>;

/**
 * Connects to RabbitMQ and returns a {@link RabbitTransport}.
 *
 * @example
 * ```ts
 * const transport = await createRabbitTransport({ url: process.env.AMQP_URL! }, { logger });
 * await transport.publish([{ topic: 'orders', message: encodeEnvelope(envelope) }]);
 * const sub = await transport.subscribe({ topics: ['orders'], group: 'billing', processor });
 * ```
 * @throws {RabbitConfigError} on invalid options (before connecting).
 * @throws {RabbitConnectionError} when the broker cannot be reached.
 */
export async function createRabbitTransport(
  options: RabbitTransportOptions,
  dependencies: RabbitTransportDependencies = {},
): Promise<RabbitTransport> {
  // Checked before connecting; the constructor checks the same options with the same function.
  const resolved = resolveRabbitTransportOptions(options);
  const logger = (dependencies.logger ?? createDefaultLogger()).child({ transport: 'rabbitmq' });
  const connection = await RabbitConnection.open(options, logger);
  const publisher = new RabbitPublisher(
    connection,
    { publishTimeoutMs: resolved.publishTimeoutMs, maxChannelFailures: 3 },
    logger,
  );
  try {
    await publisher.start();
  } catch (error) {
    await connection.close().catch(() => undefined);
    throw error;
  }
  return new RabbitTransport(options, { connection, publisher, logger });
}

/**
 * The RabbitMQ implementation of the core `Transport` port (amqplib).
 *
 * - `publish(messages)`: the exchange is `message.topic` (a topic exchange), the routing key the
 *   event type (see {@link RoutingKeyStrategy}). Resolves once the broker confirmed every message;
 *   rejects if any was returned unroutable, nacked, or not confirmed in time. Messages are
 *   persistent and `mandatory`.
 * - `subscribe(options)`: the queue is `options.group`, bound to every exchange in
 *   `options.topics`; retry queues and a dead-letter exchange and queue come with it.
 * - Connection loss: reconnects with backoff, re-declares topology, resumes consumers and re-sends
 *   unconfirmed messages.
 */
export class RabbitTransport implements Transport, TransportEvents {
  readonly name = 'rabbitmq';
  /** The managed connection (diagnostics and tests). */
  readonly connection: RabbitConnection;
  /** The confirm-channel publisher (diagnostics and tests). */
  readonly publisher: RabbitPublisher;
  readonly #logger: Logger;
  readonly #routingKey: RoutingKeyStrategy;
  readonly #closeTimeoutMs: number;
  readonly #contentMode: ContentMode;
  readonly #consumerDefaults: RabbitConsumerOptions;
  readonly #subscriptions = new Set<RabbitSubscription>();
  readonly #topologyHooks: Array<() => void> = [];
  #closed: Promise<void> | undefined;

  /**
   * Use {@link createRabbitTransport}: it checks the options, connects and starts the publisher,
   * then calls this. The constructor checks `options` with the same function
   * (`resolveRabbitTransportOptions`), so a bad option fails the same way both ways, and needs the
   * open connection and started publisher the factory made.
   * @throws {RabbitConfigError} on an invalid option, or without a connection and publisher.
   */
  constructor(options: RabbitTransportOptions, dependencies: ConnectedRabbitDependencies) {
    const resolved = resolveRabbitTransportOptions(options);
    for (const field of ['connection', 'publisher'] as const) {
      if (!dependencies?.[field]) {
        throw new RabbitConfigError(
          `dependencies.${field}`,
          'the transport needs the open connection and started publisher createRabbitTransport makes',
          dependencies?.[field],
        );
      }
    }
    this.#routingKey = resolved.routingKey;
    this.#contentMode = resolved.contentMode;
    this.#closeTimeoutMs = resolved.closeTimeoutMs;
    this.#consumerDefaults = resolved.consumerDefaults;
    this.connection = dependencies.connection;
    this.publisher = dependencies.publisher;
    this.#logger = dependencies.logger ?? createDefaultLogger().child({ transport: 'rabbitmq' });
  }

  /**
   * Listens to connection and consumer events: `connection.blocked` and `connection.unblocked`
   * (a broker alarm), `connection.disconnected` and `connection.reconnected`, `consumer.crashed`
   * (a consumer channel closed or cancelled while the connection stayed up; it is re-attached). Returns the unsubscribe function.
   */
  on<E extends TransportEventName>(event: E, listener: TransportEventListener<E>): () => void {
    return this.connection.events.on(event, listener);
  }

  /** Open subscriptions. */
  get subscriptions(): ReadonlySet<RabbitSubscription> {
    return this.#subscriptions;
  }

  /**
   * Publishes every message and resolves once the broker confirmed all of them. Every message is
   * mapped before any is sent, so an invalid one fails the call with nothing published. When one
   * fails later, the call rejects with the first failure; others of the batch may be confirmed.
   */
  async publish(messages: OutgoingMessage[]): Promise<void> {
    if (this.#closed) throw new RabbitClosedError('the RabbitMQ transport');
    const prepared = new Array<{ exchange: string; routingKey: string } & AmqpMessage>(
      messages.length,
    );
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      const { content, options } = toAmqpMessage(m.message, this.#contentMode);
      prepared[i] = { exchange: m.topic, routingKey: this.#routingKeyOf(m), content, options };
    }
    // (One message, what a handler's publish usually is: its own failure is the first.)
    if (prepared.length === 1) {
      const p = prepared[0]!;
      return this.publisher.publish(p.exchange, p.routingKey, p.content, p.options);
    }
    const results = await Promise.allSettled(
      prepared.map((p) => this.publisher.publish(p.exchange, p.routingKey, p.content, p.options)),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  #routingKeyOf(message: OutgoingMessage): string {
    const strategy = this.#routingKey;
    const type = message.message.headers['type'];
    const key =
      typeof strategy === 'function'
        ? strategy(message)
        : strategy === 'key' && message.key !== undefined
          ? message.key
          : type;
    if (typeof key !== 'string') {
      throw new RabbitError(
        RABBIT_ERROR_CODES.MESSAGE_INVALID,
        'message has no "type" header to route by',
        { details: { topic: message.topic, id: message.message.headers['id'] } },
      );
    }
    return key;
  }

  /**
   * Subscribes `options.processor` to the queue `options.group`. With `declare` (the default) the
   * queue, its bindings to every exchange in `options.topics`, its retry queues and its
   * dead-letter exchange and queue are declared first, and again after every reconnect.
   */
  async subscribe(options: RabbitSubscriptionOptions): Promise<RabbitSubscription> {
    if (this.#closed) throw new RabbitClosedError('the RabbitMQ transport');
    const { topics, group, processor, ...rest } = options;
    const merged: RabbitConsumerOptions = { ...this.#consumerDefaults, ...stripUndefined(rest) };
    const subscription = new RabbitSubscription(
      { topics, group, processor, options: merged },
      { connection: this.connection, publisher: this.publisher, logger: this.#logger },
    );
    await subscription.start();
    this.#subscriptions.add(subscription);
    const close = subscription.close.bind(subscription);
    subscription.close = async () => {
      await close();
      this.#subscriptions.delete(subscription);
    };
    return subscription;
  }

  /**
   * Declares a topology now and again after every reconnect (exchanges a publisher needs, extra
   * queues or bindings).
   * @throws {RabbitTopologyError} when a declaration conflicts with what the broker has.
   */
  async declare(topology: Topology): Promise<void> {
    await this.connection.withChannel((channel) =>
      declareTopology(channel, topology, this.connection.capabilities),
    );
    this.#topologyHooks.push(
      this.connection.addSetupHook(
        'topology',
        async (model, capabilities) => {
          const channel = await model.createChannel();
          channel.on('error', () => undefined);
          try {
            await declareTopology(channel, topology, capabilities);
          } catch (error) {
            // Publishing to what is missing fails with its own error; keep reconnecting.
            this.#logger.error({ err: error }, 'amqp topology could not be re-declared');
          } finally {
            await channel.close().catch(() => undefined);
          }
        },
        'topology',
      ),
    );
  }

  /** Deletes a topology's queues and exchanges (tests and tear-down tooling). */
  async deleteTopology(topology: Topology): Promise<void> {
    await this.connection.withChannel((channel) => deleteTopology(channel, topology));
  }

  /**
   * Closes every subscription (each waits for its in-flight handlers), waits up to
   * `closeTimeoutMs` for unconfirmed publishes, and closes the connection.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      await Promise.allSettled([...this.#subscriptions].map((s) => s.close()));
      for (const remove of this.#topologyHooks) remove();
      await this.publisher.close(this.#closeTimeoutMs);
      await this.connection.close();
      this.#logger.info('amqp transport closed');
    })();
    return this.#closed;
  }
}
