import {
  BacktrackError,
  createConsumerPipeline,
  createPublisher,
  isRetriable,
  type DedupeStore,
  type EventRegistry,
  type HandlerRoute,
  type Journal,
  type JournalingPublisher,
  type Logger,
  type PublisherBatchingOptions,
  type Subscription,
  type Transport,
} from '@backtrack/core';
import { SILENT_STORY, type Story } from '../story.js';
import { tracedRoute } from '../trace.js';
import type { ShopTopics } from './topics.js';

/** The infrastructure a service runs on; the same code runs on memory, Kafka or RabbitMQ. */
export interface ServiceInfra {
  /** This service's transport (its own connection on a real broker). */
  transport: Transport;
  /** The effect journal the publisher writes every event to (the outbox). */
  journal: Journal;
  /** Where the idempotent consumer keeps its claims and done marks. */
  dedupeStore: DedupeStore;
  /** The library's logger (pino). */
  logger: Logger;
  /** The run's topics (Kafka) or exchanges (RabbitMQ): what goes where, who reads what. */
  topics: ShopTopics;
  /** The consumer group (Kafka) or queue (RabbitMQ) of a service. */
  group: (service: ServiceName) => string;
  /** The narration; silent by default. */
  story?: Story;
  /**
   * Consumers of this service in its group, each its own subscription (Kafka: a group member
   * with its share of the partitions; RabbitMQ: a competing consumer with its own channel and
   * prefetch window). Order per order id holds on Kafka (one partition, one member); on RabbitMQ
   * competing consumers may interleave two messages of one order, which the services' state
   * tolerates (a release or refund that comes first is remembered). @default 1
   */
  consumers?: number;
  /** The journaling publisher's batching. @default the library's defaults */
  batching?: PublisherBatchingOptions;
  /**
   * Bind a service's group only to the event types it handles: RabbitMQ and in memory bind its
   * queue to them (routing key = type) instead of `#`; Kafka skips other types' records before
   * decoding them (`bindingKeys` on the `ce_type` header). The topics already carry only what their readers handle
   * (see topics.ts); the bindings keep a type published to the wrong topic from reaching a
   * service that would only acknowledge and ignore it. @default false
   */
  bindHandledTypes?: boolean;
}

export type ServiceName = 'orders' | 'inventory' | 'payments' | 'shipping';

/** A service that is running: stop it to close its subscription (its transport stays open). */
export interface RunningService {
  readonly name: ServiceName;
  readonly version: string;
  stop(): Promise<void>;
}

/** The publisher of one deploy of a service: every event goes through the journal first. */
export function publisherFor(
  infra: ServiceInfra,
  service: ServiceName,
  version: string,
  registry: EventRegistry,
): JournalingPublisher {
  return createPublisher(
    {
      service,
      version,
      topicFor: (type) => infra.topics.publishTo(service, type),
      ...(infra.batching ? { batching: infra.batching } : {}),
    },
    { transport: infra.transport, journal: infra.journal, registry, logger: infra.logger },
  );
}

/**
 * Subscribes a service to the topics it reads (`infra.topics.readBy(service)`: only the types it
 * handles travel there), through the consumer pipeline with the idempotent step (`dedupeStore`):
 * decode → validate/upcast → claim → handler → done mark. An event type the service has no
 * handler for (none is routed to it) would be acknowledged and ignored; a type it routes but
 * cannot read (an unknown version) is dead-lettered.
 */
export async function consume(
  infra: ServiceInfra,
  service: ServiceName,
  options: { handlers: HandlerRoute[]; registry: EventRegistry },
): Promise<Subscription> {
  const processor = createConsumerPipeline(
    {
      name: service,
      // The traced route passes other types to `next()` as the route does: the pipeline may find
      // it by type (one lookup) instead of passing each message down the routes in turn.
      handlers: options.handlers.map((route) =>
        Object.assign(tracedRoute(service, route), { onlyOwnType: route.onlyOwnType === true }),
      ),
      unhandled: 'ignore',
      retry: { attempts: 5, initialDelayMs: 100, maxDelayMs: 2_000 },
    },
    { registry: options.registry, dedupeStore: infra.dedupeStore, logger: infra.logger },
  );
  const subscription = {
    topics: infra.topics.readBy(service),
    group: infra.group(service),
    processor,
    ...(infra.bindHandledTypes
      ? { bindingKeys: [...new Set(options.handlers.map((route) => route.eventType))] }
      : {}),
  };
  const count = Math.max(1, infra.consumers ?? 1);
  const subscriptions: Subscription[] = [];
  try {
    // One after the other: each Kafka member joins the group before the next one rebalances it.
    for (let i = 0; i < count; i++)
      subscriptions.push(await subscribeOnce(infra, service, subscription));
  } catch (error) {
    await Promise.allSettled(subscriptions.map((s) => s.close()));
    throw error;
  }
  if (subscriptions.length === 1) return subscriptions[0]!;
  return {
    close: async () => {
      await Promise.all(subscriptions.map((s) => s.close()));
    },
  };
}

async function subscribeOnce(
  infra: ServiceInfra,
  service: ServiceName,
  subscription: Parameters<Transport['subscribe']>[0],
): Promise<Subscription> {
  // A broker that is still settling (Kafka right after creating topics) fails now and then:
  // try a few times before giving up (a configuration error fails at once).
  for (let attempt = 1; ; attempt++) {
    try {
      return await infra.transport.subscribe(subscription);
    } catch (error) {
      const configError = error instanceof BacktrackError && !isRetriable(error);
      if (configError || attempt >= 6) throw error;
      infra.logger.warn({ err: error, service, attempt }, 'subscribe failed; retrying');
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
}

export function storyOf(infra: ServiceInfra): Story {
  return infra.story ?? SILENT_STORY;
}

/**
 * Stops a service: its subscription first (no new messages, so no new publishes), then its
 * publisher, which writes the published marks it still holds while the journal's store is open.
 */
export async function stopService(
  subscription: Subscription,
  publisher: JournalingPublisher,
): Promise<void> {
  await subscription.close();
  await publisher.close();
}
