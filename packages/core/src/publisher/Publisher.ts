import type { Logger } from 'pino';
import type { Envelope, ExtensionValue } from '../envelope/types.js';
import type { Journal } from '../journal/Journal.js';
import { createDefaultLogger } from '../logging/logger.js';
import type { EventInput, LatestVersion } from '../schema/defineEvent.js';
import type { AnyEventDefinition, EventRegistry } from '../schema/EventRegistry.js';
import type { Transport } from '../transport/Transport.js';
import { PublishFailedError, PublisherConfigError } from './errors.js';
import { prepareJournaledEvent } from './journaledEvent.js';

/** Who publishes: fixed for one deploy of a service. */
export interface PublisherOptions {
  /** The producing service, for example `orders`. Journaled and sent as `producerservice`. */
  service: string;
  /**
   * The deployed version of the service, for example `2.4.0` or a git sha. Journaled and sent as
   * `producerversion`: a rollback selects the effects of a bad deploy by this string.
   */
  version: string;
  /** CloudEvents `source`. @default `//backtrack/<service>` */
  source?: string;
  /** The transport destination (Kafka topic, AMQP exchange) of an event type. @default () => service */
  topicFor?: (type: string) => string;
}

/** Collaborators of {@link createPublisher}. */
export interface PublisherDependencies {
  transport: Transport;
  journal: Journal;
  /** Every published type MUST be registered: a rollback later needs its schema to read it. */
  registry: EventRegistry;
  /** @default createDefaultLogger() */
  logger?: Logger;
  /** Clock for envelope times. @default () => new Date() */
  now?: () => Date;
}

/** Per-message options of {@link Publisher.publish}. */
export interface PublishOptions<V extends number = number> {
  /** Ordering key (Kafka message key, CloudEvents `partitionkey`), for example an order id. */
  key?: string;
  /** The saga this event belongs to: a rollback hands it to saga compensation. */
  sagaId?: string;
  /** Id of the message that caused this one. */
  causationId?: string;
  /** Id shared by every message of one business flow. */
  correlationId?: string;
  /** The schema version to write; `data` is validated against it. @default the latest version */
  schemaVersion?: V;
  /**
   * The envelope id. Pass a deterministic one (see `deterministicId`) when the publish may be
   * retried, so a retry is the same event, not a second one. @default crypto.randomUUID()
   */
  id?: string;
  /** Overrides `topicFor(type)` for this message. */
  topic?: string;
  /** CloudEvents `subject`, for example `order/o-1`. */
  subject?: string;
  /** CloudEvents `dataschema`: the URI of the schema (a `.../vN` URI names the version). */
  dataschema?: string;
  /** Other CloudEvents extension attributes (`tenantid`, ...), lower-case alphanumeric names. */
  extensions?: Record<string, ExtensionValue>;
}

/** Publishes events through the outbox journal. */
export interface Publisher {
  /**
   * Validates `data` against the event's schema, builds and encodes the envelope, appends it to
   * the journal, publishes it, and marks it published.
   *
   * - Resolves with the envelope once the broker acknowledged it.
   * - Rejects with the schema error (nothing journaled, nothing published) on invalid data, with
   *   the store's error (nothing published) when the journal is down, and with
   *   {@link PublishFailedError} when the transport failed after the journal append: the outbox
   *   relay then delivers the record later.
   * - A failure to mark the record published after the broker acknowledged is only logged: the
   *   relay may publish it a second time under the same id, which consumers deduplicate.
   */
  publish<E extends AnyEventDefinition, V extends number = LatestVersion<E>>(
    event: E,
    data: EventInput<E, V>,
    options?: PublishOptions<V>,
  ): Promise<Envelope<unknown>>;
  /** The service and version this publisher stamps on every event. */
  readonly service: string;
  readonly version: string;
}

/**
 * Creates the journaling publisher of one service deploy.
 *
 * @example
 * const publisher = createPublisher(
 *   { service: 'orders', version: process.env.GIT_SHA! },
 *   { transport, journal, registry },
 * );
 * await publisher.publish(OrderPlaced, { orderId: 'o-1', amountCents: 1250, currency: 'EUR' }, { key: 'o-1' });
 */
export function createPublisher(
  options: PublisherOptions,
  dependencies: PublisherDependencies,
): Publisher {
  for (const field of ['service', 'version'] as const) {
    if (typeof options?.[field] !== 'string' || options[field].length === 0) {
      throw new PublisherConfigError(`publisher option "${field}" must be a non-empty string`, {
        details: { field },
      });
    }
  }
  if (options.topicFor !== undefined && typeof options.topicFor !== 'function') {
    throw new PublisherConfigError('publisher option "topicFor" must be a function', {
      details: { field: 'topicFor' },
    });
  }
  for (const field of ['transport', 'journal', 'registry'] as const) {
    if (!dependencies?.[field]) {
      throw new PublisherConfigError(`publisher dependency "${field}" is missing`, {
        details: { field },
      });
    }
  }
  const { service, version } = options;
  const source = options.source ?? `//backtrack/${service}`;
  const topicFor = options.topicFor ?? (() => service);
  const { transport, journal, registry } = dependencies;
  const now = dependencies.now ?? (() => new Date());
  const stamp = { service, version, source, topicFor, registry, now, writer: 'publisher' };
  const logger = (dependencies.logger ?? createDefaultLogger()).child({
    component: 'publisher',
    service,
    version,
  });

  return {
    service,
    version,
    async publish(event, data, publishOptions = {}) {
      const { envelope, record } = prepareJournaledEvent(stamp, event, data, publishOptions);
      const { topic, message } = record;
      await journal.append(record);
      try {
        await transport.publish([{ topic, key: publishOptions.key, message }]);
      } catch (cause) {
        logger.warn(
          { messageId: envelope.id, type: envelope.type, err: cause },
          'publish failed after journaling; the outbox relay will deliver it',
        );
        throw new PublishFailedError(envelope.id, envelope.type, cause);
      }
      try {
        await journal.markPublished([envelope.id]);
      } catch (err) {
        logger.warn(
          { messageId: envelope.id, type: envelope.type, err },
          'published but not marked in the journal; the relay may publish it again (same id)',
        );
      }
      logger.debug({ messageId: envelope.id, type: envelope.type, topic }, 'published');
      return envelope;
    },
  };
}
