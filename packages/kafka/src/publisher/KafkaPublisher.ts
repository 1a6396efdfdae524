import type { ContentMode, Logger, OutgoingMessage } from '@backtrack/core';
import type { KafkaProducerClient, TopicRecords } from '../client/KafkaClient.js';
import { toKafkaRecord } from '../envelope/kafkaBinding.js';
import { KafkaClosedError, KafkaError, KafkaPublishError } from '../errors.js';

/**
 * Publishes through one idempotent producer (acks=all). Connects lazily on the first publish and
 * reconnects after a failed connect. Messages are grouped by topic into one produce request.
 */
export class KafkaPublisher {
  readonly #producer: KafkaProducerClient;
  readonly #logger: Logger;
  readonly #timeoutMs: number;
  readonly #contentMode: ContentMode;
  #connecting: Promise<void> | undefined;
  #closed = false;

  constructor(
    producer: KafkaProducerClient,
    logger: Logger,
    publishTimeoutMs: number,
    contentMode: ContentMode = 'binary',
  ) {
    this.#contentMode = contentMode;
    this.#producer = producer;
    this.#logger = logger;
    this.#timeoutMs = publishTimeoutMs;
  }

  /** Connects now (optional: `publish` connects on first use). */
  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(new KafkaClosedError('publisher'));
    this.#connecting ??= this.#producer.connect().catch((cause: unknown) => {
      this.#connecting = undefined;
      throw new KafkaPublishError(`connecting the producer failed: ${messageOf(cause)}`, { cause });
    });
    return this.#connecting;
  }

  /**
   * Publishes the messages; resolves only when the broker acknowledged all of them (acks=all).
   * @throws {KafkaPublishError} (retriable) when they were not all acknowledged in time.
   * @throws {KafkaClosedError} after `close`.
   */
  async publish(messages: OutgoingMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const byTopic = new Map<string, TopicRecords>();
    for (const m of messages) {
      let batch = byTopic.get(m.topic);
      if (!batch) byTopic.set(m.topic, (batch = { topic: m.topic, records: [] }));
      batch.records.push(toKafkaRecord(m.message, m.key, this.#contentMode));
    }
    await this.sendRecords([...byTopic.values()]);
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
                  details: { topics },
                }),
              ),
            this.#timeoutMs,
          );
        }),
      ]);
    } catch (cause) {
      if (cause instanceof KafkaError) throw cause;
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

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const connecting = this.#connecting;
    if (connecting) {
      await connecting.catch(() => {});
      await this.#producer.disconnect();
    }
  }
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
