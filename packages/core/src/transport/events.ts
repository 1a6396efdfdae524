/**
 * Connection and consumer events of a transport, after kafkajs's instrumentation events: a typed
 * `on(event, listener)` on the transport, so an application (or the observability layer) sees a
 * blocked or dropped connection and a crashed or rebalancing consumer without reading logs.
 */
import type { Logger } from '../logging/logger.js';

/** What every transport event carries. */
export interface TransportEventBase {
  /** The transport's name: `kafka`, `rabbitmq`. */
  transport: string;
  /** Epoch ms when the transport saw it. */
  at: number;
}

/** The events and their payloads. A transport emits the ones its broker has (see its README). */
export interface TransportEventMap {
  /** The broker stopped accepting publishes from this connection (AMQP `connection.blocked`: a memory or disk alarm). */
  'connection.blocked': TransportEventBase & { reason: string };
  /** The broker accepts publishes again. */
  'connection.unblocked': TransportEventBase;
  /** The connection was lost; the transport reconnects unless `reconnecting` is false. */
  'connection.disconnected': TransportEventBase & {
    error?: unknown;
    reconnecting: boolean;
  };
  /** The connection is back (topology, publisher and consumers restored). */
  'connection.reconnected': TransportEventBase & {
    /** How many times the connection was established, the first connect included. */
    connects: number;
    /** Since the matching `connection.disconnected`, in ms. */
    downtimeMs?: number;
  };
  /** A subscription's consumer failed and restarts (the client's own restart, or the subscription's). */
  'consumer.crashed': TransportEventBase & {
    /** The consumer group (Kafka) or queue (AMQP). */
    group: string;
    error: unknown;
    /** True: the client library restarts it itself; false: the subscription does, after `retryInMs`. */
    restarting: boolean;
    /** Consecutive crashes or restarts of this subscription, 1 for the first. */
    attempt: number;
    /** When the subscription restarts it, in ms (undefined when the client restarts it). */
    retryInMs?: number;
  };
  /**
   * Kafka: the consumer group rebalances. `rebalancing` when this member learns a rebalance began
   * (a member joined or left), `joined` when it rejoined, with its new assignment.
   */
  'consumer.rebalancing': TransportEventBase & {
    group: string;
    phase: 'rebalancing' | 'joined';
    memberId?: string;
    /** `joined` only: topic to partitions assigned to this member. */
    assignment?: Record<string, number[]>;
  };
}

export type TransportEventName = keyof TransportEventMap;

export type TransportEventListener<E extends TransportEventName> = (
  event: TransportEventMap[E],
) => void;

/** The part of a transport that emits {@link TransportEventMap} events. */
export interface TransportEvents {
  /** Calls `listener` on every `event`; returns a function that removes it. */
  on<E extends TransportEventName>(event: E, listener: TransportEventListener<E>): () => void;
}

/**
 * A small typed emitter for adapters: listeners run synchronously, a listener that throws is
 * logged and never reaches the transport, and an event nobody listens to costs one map lookup
 * (`listens` lets the caller skip building the payload).
 */
export class TransportEventEmitter implements TransportEvents {
  readonly #listeners = new Map<TransportEventName, Set<(event: never) => void>>();

  constructor(
    readonly transport: string,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  on<E extends TransportEventName>(event: E, listener: TransportEventListener<E>): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener as (event: never) => void);
    return () => void set.delete(listener as (event: never) => void);
  }

  listens(event: TransportEventName): boolean {
    return (this.#listeners.get(event)?.size ?? 0) > 0;
  }

  emit<E extends TransportEventName>(
    event: E,
    payload: Omit<TransportEventMap[E], 'transport' | 'at'>,
  ): void {
    const set = this.#listeners.get(event);
    if (!set || set.size === 0) return;
    const full = { transport: this.transport, at: this.now(), ...payload } as TransportEventMap[E];
    for (const listener of [...set]) {
      try {
        (listener as TransportEventListener<E>)(full);
      } catch (error) {
        this.logger.error({ err: error, event }, 'transport event listener threw');
      }
    }
  }
}
