import { classifyRabbitError } from '../connection/connectionErrors.js';
import type { Channel } from 'amqplib';
import { RabbitConfigError, RabbitTopologyError } from '../errors.js';

/** AMQP queue types Backtrack declares. */
export const QUEUE_TYPES = { quorum: 'quorum', classic: 'classic' } as const;
/** `quorum` (replicated, counts deliveries, at-least-once dead-lettering) or `classic`. */
export type QueueType = (typeof QUEUE_TYPES)[keyof typeof QUEUE_TYPES];

/** An exchange to declare. */
export interface ExchangeDeclaration {
  name: string;
  /** @default 'topic' */
  type?: 'topic' | 'direct' | 'fanout' | 'headers';
  /** @default true */
  durable?: boolean;
  /** Extra `x-` arguments. */
  arguments?: Record<string, unknown>;
}

/** A queue to declare. */
export interface QueueDeclaration {
  name: string;
  /** @default 'quorum' */
  type?: QueueType;
  /**
   * Quorum queues only: how many times the broker delivers a message before it dead-letters it
   * (`x-delivery-limit`). Set explicitly because RabbitMQ 4 applies a default of 20 when it is
   * unset, which silently dead-letters (or, without a dead-letter exchange, drops) messages that
   * were requeued 20 times. `null` leaves it unset.
   */
  deliveryLimit?: number | null;
  /** Where the broker dead-letters (TTL expiry, delivery limit, reject without requeue). */
  deadLetterExchange?: string;
  /** Routing key for broker dead-lettering; the message's own key when unset. */
  deadLetterRoutingKey?: string;
  /** Per-queue message TTL (`x-message-ttl`), in ms. */
  messageTtlMs?: number;
  /**
   * Quorum queues with a dead-letter exchange: dead-letter `at-least-once` (the broker keeps the
   * message until the target queue confirmed it) rather than `at-most-once`. Needs RabbitMQ 3.10+
   * and `x-overflow: reject-publish`, which this option sets too. Ignored on classic queues and
   * on brokers that do not support it.
   * @default true
   */
  atLeastOnceDeadLetter?: boolean;
  /** Extra `x-` arguments, merged last. */
  arguments?: Record<string, unknown>;
}

/** A queue-to-exchange binding. */
export interface BindingDeclaration {
  exchange: string;
  queue: string;
  /** Binding key (topic pattern on a topic exchange). */
  routingKey: string;
  arguments?: Record<string, unknown>;
}

/** Exchanges, queues and bindings declared together (idempotently, and again on every reconnect). */
export interface Topology {
  exchanges?: ExchangeDeclaration[];
  queues?: QueueDeclaration[];
  bindings?: BindingDeclaration[];
}

/** What the connected broker supports, read from its server properties on connect. */
export interface BrokerCapabilities {
  /** `version` from the server properties, for example `3.10.8`. */
  version: string;
  /** Quorum queues accept `x-message-ttl` (3.10+). */
  quorumMessageTtl: boolean;
  /** Quorum queues accept `x-dead-letter-strategy: at-least-once` (3.10+). */
  atLeastOnceDeadLetter: boolean;
}

/** Capabilities of a broker version string (unknown or unparsable versions get the modern set). */
export function capabilitiesOf(version: string | undefined): BrokerCapabilities {
  const match = /^(\d+)\.(\d+)/.exec(version ?? '');
  const modern =
    match === null || Number(match[1]) > 3 || (Number(match[1]) === 3 && Number(match[2]) >= 10);
  return {
    version: version ?? 'unknown',
    quorumMessageTtl: modern,
    atLeastOnceDeadLetter: modern,
  };
}

/** The `x-` arguments of a queue declaration on a broker with `capabilities`. */
export function queueArguments(
  queue: QueueDeclaration,
  capabilities: BrokerCapabilities,
): Record<string, unknown> {
  const type = queue.type ?? 'quorum';
  const args: Record<string, unknown> = { 'x-queue-type': type };
  if (type === 'quorum' && queue.deliveryLimit !== null && queue.deliveryLimit !== undefined) {
    args['x-delivery-limit'] = queue.deliveryLimit;
  }
  if (queue.deadLetterExchange !== undefined) {
    args['x-dead-letter-exchange'] = queue.deadLetterExchange;
    if (queue.deadLetterRoutingKey !== undefined) {
      args['x-dead-letter-routing-key'] = queue.deadLetterRoutingKey;
    }
    if (
      type === 'quorum' &&
      (queue.atLeastOnceDeadLetter ?? true) &&
      capabilities.atLeastOnceDeadLetter
    ) {
      args['x-dead-letter-strategy'] = 'at-least-once';
      args['x-overflow'] = 'reject-publish';
    }
  }
  if (queue.messageTtlMs !== undefined) args['x-message-ttl'] = queue.messageTtlMs;
  return { ...args, ...queue.arguments };
}

/**
 * Declares a topology on `channel`: exchanges, then queues, then bindings. Declarations are
 * idempotent; a declaration that conflicts with what exists (other type or arguments) fails with
 * {@link RabbitTopologyError} naming it. The broker closes the channel on such a failure, so pass
 * a channel used for nothing else.
 */
export async function declareTopology(
  channel: Channel,
  topology: Topology,
  capabilities: BrokerCapabilities,
): Promise<void> {
  for (const exchange of topology.exchanges ?? []) {
    await attempt(`exchange "${exchange.name}"`, () =>
      channel.assertExchange(exchange.name, exchange.type ?? 'topic', {
        durable: exchange.durable ?? true,
        ...(exchange.arguments ? { arguments: exchange.arguments } : {}),
      }),
    );
  }
  for (const queue of topology.queues ?? []) {
    if (queue.type === 'quorum' || queue.type === undefined) {
      if (queue.messageTtlMs !== undefined && !capabilities.quorumMessageTtl) {
        throw new RabbitTopologyError(
          `queue "${queue.name}": quorum queues support x-message-ttl from RabbitMQ 3.10 (broker ${capabilities.version}); use type: 'classic'`,
          { details: { declaration: queue.name } },
        );
      }
    }
    await attempt(`queue "${queue.name}"`, () =>
      channel.assertQueue(queue.name, {
        durable: true,
        arguments: queueArguments(queue, capabilities),
      }),
    );
  }
  for (const binding of topology.bindings ?? []) {
    await attempt(
      `binding "${binding.exchange}" -> "${binding.queue}" (${binding.routingKey})`,
      () =>
        channel.bindQueue(binding.queue, binding.exchange, binding.routingKey, binding.arguments),
    );
  }
}

/**
 * Deletes the queues and exchanges of a topology (bindings go with them). For tests and
 * tear-down tooling; missing objects are not an error.
 */
export async function deleteTopology(channel: Channel, topology: Topology): Promise<void> {
  for (const queue of topology.queues ?? []) await channel.deleteQueue(queue.name);
  for (const exchange of topology.exchanges ?? []) await channel.deleteExchange(exchange.name);
}

async function attempt(declaration: string, run: () => Promise<unknown>): Promise<void> {
  try {
    await run();
  } catch (cause) {
    const text = cause instanceof Error ? cause.message : String(cause);
    const denied = classifyRabbitError(cause);
    if (denied) throw denied;
    throw new RabbitTopologyError(`declaring ${declaration} failed: ${text}`, {
      cause,
      details: { declaration },
    });
  }
}

/** The dead-letter destination of a consumer queue. */
export interface DeadLetterOptions {
  /**
   * Exchange (direct) that dead letters are published to, by the consumer runner and by the
   * broker (delivery limit, TTL).
   * @default `${queue}.dlx`
   */
  exchange?: string;
  /** Queue that keeps the dead letters. @default `${queue}.dlq` */
  queue?: string;
  /** Routing key of dead letters on the exchange. @default the consumer queue's name */
  routingKey?: string;
  /** Type of the dead-letter queue. @default the consumer queue's type */
  queueType?: QueueType;
  /**
   * Quorum `x-delivery-limit` of the dead-letter queue. Nothing consumes a dead-letter queue, but
   * tooling looks into it, and on RabbitMQ 3.x to 4.2 every look (a `basic.get` put back) counts as
   * a delivery; the queue has no dead-letter exchange of its own, so a message over the limit
   * would be dropped. Hence a large explicit limit rather than none (RabbitMQ 4 applies 20).
   * `null` leaves it unset.
   * @default 1_000_000 ({@link DEFAULT_DEAD_LETTER_DELIVERY_LIMIT})
   */
  deliveryLimit?: number | null;
}

/** `x-delivery-limit` of a dead-letter queue unless `deadLetter.deliveryLimit` says otherwise. */
export const DEFAULT_DEAD_LETTER_DELIVERY_LIMIT = 1_000_000;

/** Options of {@link consumerTopology}. */
export interface ConsumerTopologyOptions {
  /** The consumer queue (the subscription's `group`). */
  queue: string;
  /** Topic exchanges the queue is bound to (the subscription's `topics`). */
  exchanges: readonly string[];
  /** Binding keys on every exchange (topic patterns over the event type). @default ['#'] */
  bindingKeys?: readonly string[];
  /** @default 'quorum' */
  queueType?: QueueType;
  /** Quorum `x-delivery-limit` of the consumer queue. See {@link QueueDeclaration.deliveryLimit}. */
  deliveryLimit?: number | null;
  /**
   * TTLs of the retry queues, in ms, ascending. A retry waits in the smallest queue whose TTL is
   * at least the delay asked for (the largest one when none is). One queue per TTL keeps expiry
   * in FIFO order: with per-message TTLs in one queue, a long delay at the head would hold back
   * every shorter one behind it.
   */
  retryDelaysMs: readonly number[];
  deadLetter?: DeadLetterOptions;
}

/** The names and declarations a consumer queue needs. */
export interface ConsumerTopology {
  queue: string;
  deadLetterExchange: string;
  deadLetterQueue: string;
  deadLetterRoutingKey: string;
  /** Retry queues by TTL, ascending; publish to them through the default exchange. */
  retryQueues: ReadonlyArray<{ delayMs: number; name: string }>;
  topology: Topology;
}

/**
 * Builds the topology a consumer queue needs:
 *
 * - the topic exchanges it reads from, and a binding per exchange and binding key;
 * - the queue itself (quorum by default) with an explicit delivery limit and the dead-letter
 *   exchange, dead-lettering at-least-once where the broker supports it;
 * - one retry queue per delay, `${queue}.retry.${ms}ms`, with that TTL, dead-lettering back to
 *   the consumer queue through the default exchange (the runner republishes retries there with
 *   an attempt header), and the consumer queue's delivery limit;
 * - a direct dead-letter exchange and queue for messages that cannot be processed, the queue
 *   with a large explicit delivery limit (see {@link DeadLetterOptions.deliveryLimit}).
 */
export function consumerTopology(options: ConsumerTopologyOptions): ConsumerTopology {
  const { queue } = options;
  if (queue.length === 0) throw new RabbitConfigError('group', 'the queue name is empty');
  const type = options.queueType ?? 'quorum';
  const delays = [...options.retryDelaysMs];
  const deadLetterExchange = options.deadLetter?.exchange ?? `${queue}.dlx`;
  const deadLetterQueue = options.deadLetter?.queue ?? `${queue}.dlq`;
  const deadLetterRoutingKey = options.deadLetter?.routingKey ?? queue;
  const retryQueues = delays.map((delayMs) => ({ delayMs, name: `${queue}.retry.${delayMs}ms` }));
  const bindingKeys = options.bindingKeys ?? ['#'];

  const topology: Topology = {
    exchanges: [
      ...options.exchanges.map((name) => ({ name, type: 'topic' as const })),
      { name: deadLetterExchange, type: 'direct' },
    ],
    queues: [
      {
        name: deadLetterQueue,
        type: options.deadLetter?.queueType ?? type,
        deliveryLimit:
          options.deadLetter?.deliveryLimit === undefined
            ? DEFAULT_DEAD_LETTER_DELIVERY_LIMIT
            : options.deadLetter.deliveryLimit,
      },
      ...retryQueues.map((r): QueueDeclaration => ({
        name: r.name,
        type,
        messageTtlMs: r.delayMs,
        deadLetterExchange: '',
        deadLetterRoutingKey: queue,
        // Nothing consumes a retry queue (messages leave by TTL), but an explicit limit keeps
        // RabbitMQ 4's default of 20 from applying to whatever tooling looks into it.
        deliveryLimit: options.deliveryLimit ?? null,
      })),
      {
        name: queue,
        type,
        deliveryLimit: options.deliveryLimit,
        deadLetterExchange,
        deadLetterRoutingKey,
      },
    ],
    bindings: [
      { exchange: deadLetterExchange, queue: deadLetterQueue, routingKey: deadLetterRoutingKey },
      ...options.exchanges.flatMap((exchange) =>
        bindingKeys.map((routingKey) => ({ exchange, queue, routingKey })),
      ),
    ],
  };
  return {
    queue,
    deadLetterExchange,
    deadLetterQueue,
    deadLetterRoutingKey,
    retryQueues,
    topology,
  };
}
