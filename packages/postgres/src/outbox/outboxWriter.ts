import type { ClientBase } from 'pg';
import {
  type AnyEventDefinition,
  type Envelope,
  type EventInput,
  type EventRegistry,
  type LatestVersion,
  type PublishOptions,
} from '@backtrack/core';
import { PostgresConfigError } from '../errors.js';
import type { PostgresOutbox } from './PostgresOutbox.js';
import { prepareJournaledEvent } from '@backtrack/core/adapter';

/** Who writes: fixed for one deploy of a service (the same fields as core's publisher). */
export interface OutboxWriterOptions {
  /** The producing service. Journaled and sent as `producerservice`. */
  service: string;
  /** The deployed version; a rollback selects a bad deploy's effects by it. */
  version: string;
  /** CloudEvents `source`. @default `//backtrack/<service>` */
  source?: string;
  /** The transport destination of an event type. @default () => service */
  topicFor?: (type: string) => string;
}

/** Collaborators of {@link createOutboxWriter}. */
export interface OutboxWriterDependencies {
  outbox: PostgresOutbox;
  /** Every written type MUST be registered: a rollback later needs its schema to read it. */
  registry: EventRegistry;
  /** Clock for envelope times. @default () => new Date() */
  now?: () => Date;
}

/** Writes events to the outbox inside the caller's transaction. */
export interface OutboxWriter {
  /**
   * Validates `data`, builds and encodes the envelope exactly as core's publisher does (producer
   * service and version stamped), and appends it to the outbox through `tx`. Nothing is sent
   * now: the record becomes visible when `tx` commits, and a {@link PostgresOutboxRelay}
   * publishes it. If `tx` rolls back, the event never existed. Resolves with the envelope.
   */
  write<E extends AnyEventDefinition, V extends number = LatestVersion<E>>(
    tx: ClientBase,
    event: E,
    data: EventInput<E, V>,
    options?: PublishOptions<V>,
  ): Promise<Envelope<unknown>>;
  readonly service: string;
  readonly version: string;
}

/**
 * The transactional counterpart of core's `createPublisher`: same envelope, same journal record,
 * but written in the caller's transaction and published later by the relay. Use it where an event
 * must go out if and only if the business change that causes it commits (the outbox pattern);
 * use the publisher where there is no database transaction to join.
 *
 * @example
 * const writer = createOutboxWriter({ service: 'payments', version: '1.4.0' }, { outbox, registry });
 * await inbox.transaction(key, async (tx) => {
 *   await tx.query('INSERT INTO payments (order_id) VALUES ($1)', [orderId]);
 *   await writer.write(tx, PaymentCharged, { orderId, amountCents }, { key: orderId, sagaId });
 * });
 */
export function createOutboxWriter(
  options: OutboxWriterOptions,
  dependencies: OutboxWriterDependencies,
): OutboxWriter {
  for (const field of ['service', 'version'] as const) {
    if (typeof options?.[field] !== 'string' || options[field].length === 0) {
      throw new PostgresConfigError(field, 'must be a non-empty string', options?.[field]);
    }
  }
  if (options.topicFor !== undefined && typeof options.topicFor !== 'function') {
    throw new PostgresConfigError('topicFor', 'must be a function', typeof options.topicFor);
  }
  if (!dependencies?.outbox || !dependencies.registry) {
    throw new PostgresConfigError('dependencies', 'need an outbox and a registry', 'missing');
  }
  const { service, version } = options;
  const source = options.source ?? `//backtrack/${service}`;
  const topicFor = options.topicFor ?? (() => service);
  const { outbox, registry } = dependencies;
  const now = dependencies.now ?? (() => new Date());
  const stamp = { service, version, source, topicFor, registry, now, writer: 'outbox writer' };
  return {
    service,
    version,
    async write(tx, event, data, writeOptions = {}) {
      const { envelope, record } = prepareJournaledEvent(stamp, event, data, writeOptions);
      await outbox.append(record, { client: tx });
      return envelope;
    },
  };
}
