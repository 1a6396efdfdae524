import { type ContentMode, type Logger, type OutgoingMessage } from '@backtrack/core';
import { accessErrorOf } from '@backtrack/core/adapter';
import type { KafkaProducerClient, ProducerRecord, TopicRecords } from '../client/KafkaClient.js';
import { toKafkaRecord } from '../envelope/kafkaBinding.js';
import { KafkaClosedError, KafkaError, KafkaPublishError } from '../errors.js';

/** How concurrent `publish` calls coalesce into produce requests. */
export interface KafkaPublisherBatching {
  /**
   * How long the first queued record waits for others before its produce request goes out, in
   * ms. 0 = the records published by the same synchronous code (and the promise reactions queued
   * before); records that arrive while requests are in flight join the next request either way.
   */
  lingerMs: number;
  /** Most records in one produce request (one `send`). */
  maxBatchRecords: number;
  /** Produce requests this publisher keeps in flight at once. */
  maxInFlightSends: number;
}

/** Defaults of {@link KafkaPublisherBatching}. */
export const DEFAULT_KAFKA_PUBLISHER_BATCHING: Readonly<KafkaPublisherBatching> = Object.freeze({
  lingerMs: 0,
  maxBatchRecords: 500,
  maxInFlightSends: 1,
});

/** One `publish` call waiting in the queue: its records, and how to settle it. */
interface Queued {
  readonly records: { topic: string; record: ProducerRecord }[];
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/**
 * Publishes through one idempotent producer (acks=all). Connects lazily on the first publish and
 * reconnects after a failed connect.
 *
 * Concurrent `publish` calls coalesce: they queue, and one produce request (one `send`, records
 * grouped by topic) carries the calls that arrived within `lingerMs` or while the previous request
 * was in flight, up to `maxBatchRecords`. Each call resolves only when the request carrying its
 * records was acknowledged. When a request fails for any reason other than a timeout or close,
 * every call it carried is sent again on its own, so a failure rejects exactly the calls whose
 * records the broker refuses (a record the broker had taken from the failed request may then be
 * written twice, under its envelope id, which consumers deduplicate).
 */
export class KafkaPublisher {
  readonly #producer: KafkaProducerClient;
  readonly #logger: Logger;
  readonly #timeoutMs: number;
  readonly #batching: KafkaPublisherBatching;
  readonly #contentMode: ContentMode;
  readonly #queue: Queued[] = [];
  #queuedRecords = 0;
  #inFlight = 0;
  #timer: (() => void) | undefined;
  #connecting: Promise<void> | undefined;
  #closed = false;

  constructor(
    producer: KafkaProducerClient,
    logger: Logger,
    publishTimeoutMs: number,
    batching: Partial<KafkaPublisherBatching> = {},
    contentMode: ContentMode = 'binary',
  ) {
    this.#contentMode = contentMode;
    this.#producer = producer;
    this.#logger = logger;
    this.#timeoutMs = publishTimeoutMs;
    this.#batching = { ...DEFAULT_KAFKA_PUBLISHER_BATCHING, ...stripUndefined(batching) };
  }

  /** Connects now (optional: `publish` connects on first use). */
  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(new KafkaClosedError('publisher'));
    this.#connecting ??= this.#producer.connect().catch((cause: unknown) => {
      this.#connecting = undefined;
      const denied = accessErrorOf(cause);
      if (denied) throw denied;
      throw new KafkaPublishError(`connecting the producer failed: ${messageOf(cause)}`, { cause });
    });
    return this.#connecting;
  }

  /**
   * Publishes the messages; resolves only when the broker acknowledged all of them (acks=all).
   * The messages of one call always travel in one produce request.
   * @throws {KafkaPublishError} (retriable) when they were not all acknowledged in time.
   * @throws {KafkaClosedError} after `close`.
   */
  publish(messages: OutgoingMessage[]): Promise<void> {
    if (this.#closed) return Promise.reject(new KafkaClosedError('publisher'));
    if (messages.length === 0) return Promise.resolve();
    let records: Queued['records'];
    try {
      records = messages.map((m) => ({
        topic: m.topic,
        record: toKafkaRecord(m.message, m.key, this.#contentMode),
      }));
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ records, resolve, reject });
      this.#queuedRecords += records.length;
      this.#schedule();
    });
  }

  /** Sends raw records (retry and dead-letter records, redrive). Same guarantees as `publish`. */
  async sendRecords(batches: TopicRecords[]): Promise<void> {
    if (this.#closed) throw new KafkaClosedError('publisher');
    await this.connect();
    const topics = batches.map((b) => b.topic);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.#producer.send(batches),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new KafkaPublishError(`no acknowledgement within ${this.#timeoutMs} ms`, {
                  details: { topics, timeout: true },
                }),
              ),
            this.#timeoutMs,
          );
        }),
      ]);
    } catch (cause) {
      if (cause instanceof KafkaError) throw cause;
      const denied = accessErrorOf(cause);
      if (denied) throw denied;
      this.#logger.warn({ err: cause, topics }, 'kafka publish failed');
      throw new KafkaPublishError(
        `publishing to ${topics.join(', ')} failed: ${messageOf(cause)}`,
        {
          cause,
          details: { topics, count: batches.reduce((n, b) => n + b.records.length, 0) },
        },
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /** Starts a request now when a full batch waits, else after the linger. */
  #schedule(): void {
    if (this.#inFlight >= this.#batching.maxInFlightSends) return; // #sent drains the queue
    if (this.#queuedRecords >= this.#batching.maxBatchRecords) {
      this.#flush();
      return;
    }
    if (this.#timer !== undefined) return;
    const fire = (): void => {
      this.#timer = undefined;
      this.#flush();
    };
    if (this.#batching.lingerMs > 0) {
      const handle = setTimeout(fire, this.#batching.lingerMs);
      this.#timer = () => clearTimeout(handle);
    } else {
      // What the same synchronous code (and the promise reactions queued before) publishes.
      let cancelled = false;
      queueMicrotask(() => {
        if (!cancelled) fire();
      });
      this.#timer = () => {
        cancelled = true;
      };
    }
  }

  #flush(): void {
    this.#timer?.();
    this.#timer = undefined;
    while (this.#queue.length > 0 && this.#inFlight < this.#batching.maxInFlightSends) {
      const calls: Queued[] = [];
      let count = 0;
      // A call's records are never split; a call larger than the limit travels alone.
      while (this.#queue.length > 0) {
        const next = this.#queue[0]!;
        if (calls.length > 0 && count + next.records.length > this.#batching.maxBatchRecords) break;
        this.#queue.shift();
        calls.push(next);
        count += next.records.length;
      }
      this.#queuedRecords -= count;
      this.#inFlight += 1;
      void this.#send(calls).finally(() => {
        this.#inFlight -= 1;
        if (this.#queue.length > 0) this.#flush();
      });
    }
  }

  async #send(calls: Queued[]): Promise<void> {
    try {
      await this.sendRecords(groupByTopic(calls));
      for (const call of calls) call.resolve();
      return;
    } catch (error) {
      const isTimeout =
        error instanceof KafkaError && (error.details as { timeout?: unknown })?.timeout === true;
      if (calls.length === 1 || isTimeout || this.#closed) {
        for (const call of calls) call.reject(error as Error);
        return;
      }
      this.#logger.debug(
        { calls: calls.length },
        'a coalesced produce request failed; sending its publishes one by one',
      );
    }
    await Promise.all(
      calls.map((call) =>
        this.sendRecords(groupByTopic([call])).then(call.resolve, (error: unknown) =>
          call.reject(error as Error),
        ),
      ),
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#timer !== undefined) this.#flush(); // what lingers still goes out
    this.#closed = true;
    // Queued calls that could not start fail; those in flight finish or time out.
    for (const call of this.#queue.splice(0)) call.reject(new KafkaClosedError('publisher'));
    this.#queuedRecords = 0;
    while (this.#inFlight > 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const connecting = this.#connecting;
    if (connecting) {
      await connecting.catch(() => {});
      await this.#producer.disconnect();
    }
  }
}

function groupByTopic(calls: readonly Queued[]): TopicRecords[] {
  const byTopic = new Map<string, TopicRecords>();
  for (const call of calls) {
    for (const { topic, record } of call.records) {
      let batch = byTopic.get(topic);
      if (!batch) byTopic.set(topic, (batch = { topic, records: [] }));
      batch.records.push(record);
    }
  }
  return [...byTopic.values()];
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
