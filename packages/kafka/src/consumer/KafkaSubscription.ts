import {
  deadLetterReasonOf,
  type Disposition,
  type IncomingMessage,
  type Logger,
  type MessageProcessor,
  type RetryPolicy,
  type Subscription,
} from '@backtrack/core';
import type {
  BatchControls,
  ConsumedBatch,
  ConsumedRecord,
  KafkaAdminClient,
  KafkaConsumerClient,
  ProducerRecord,
  TopicRecords,
} from '../client/KafkaClient.js';
import { restoreNullHeaders, writableHeaders } from '../envelope/deadLetter.js';
import {
  BACKTRACK_HEADERS,
  fromKafkaRecord,
  headerToPositiveInt,
  headerToString,
} from '../envelope/kafkaBinding.js';
import { KAFKA_ERROR_CODES, KafkaClosedError, KafkaError } from '../errors.js';
import type { ConnectionAccessError } from '@backtrack/core';
import { accessErrorOf } from '@backtrack/core/adapter';
import type { KafkaConsumerOptions } from '../options.js';
import type { TypeFilter } from './typeFilter.js';
import { messageOf, type KafkaPublisher } from '../publisher/KafkaPublisher.js';
import {
  DEAD_LETTER_REASON_HEADER,
  backoffDelayMs,
  truncateDeadLetterText,
} from '@backtrack/core/adapter';

/** What the subscription did with one message, reported after it is durable. */
export interface DispositionEvent {
  message: IncomingMessage;
  /** What the processor returned (or, when it threw, the retry the transport made of it). */
  disposition: Disposition;
  /**
   * - `acked`: done; the offset may be committed.
   * - `retried`: the retry record is acknowledged by the broker (topic mode), or the partition is
   *   paused to process it again (in-place mode).
   * - `dead-lettered`: the dead-letter record is acknowledged by the broker.
   * - `redelivered`: not processed; the partition was rewound to it.
   */
  action: 'acked' | 'retried' | 'dead-lettered' | 'redelivered';
  /** For `retried`/`dead-lettered`: the topic the record went to (in-place retries: none). */
  destination?: string;
}

/**
 * Something went wrong outside any one message's disposition; reported through `onError` (and
 * logged at error level). The subscription never stays dead: each kind says what happens next.
 *
 * - `batch-failed`: handling a batch threw unexpectedly; the partition is rewound to the batch's
 *   first record and fetched again after `retryInMs` (nothing after it is committed).
 * - `publish-failed`: the batch's retry or dead-letter records could not be published; rewound
 *   and tried again after `retryInMs` (attempt `attempt` of `publishFailureAttempts`).
 * - `partition-paused`: publishing failed `publishFailureAttempts` times in a row; the partition
 *   is paused for `publishFailurePauseMs` (`retryInMs`), then the batch is tried again.
 * - `consumer-crashed`: the Kafka client gave up on the consumer. With `restarting` the client
 *   restarts it itself; otherwise the subscription reconnects and rejoins after `retryInMs`.
 * - `restart-failed`: that reconnect failed; tried again after `retryInMs`.
 */
export interface SubscriptionErrorEvent {
  kind:
    'batch-failed' | 'publish-failed' | 'partition-paused' | 'consumer-crashed' | 'restart-failed';
  error: unknown;
  group: string;
  topic?: string;
  partition?: number;
  /** The offset the partition was rewound to. */
  offset?: string;
  /** Consecutive failures of this kind (per partition for batch and publish failures). */
  attempt: number;
  /** When the work is tried again, in ms (undefined when the client restarts on its own). */
  retryInMs?: number;
  /** `consumer-crashed` only: whether the client restarts the consumer itself. */
  restarting?: boolean;
}

/** Counters of one subscription since it started. */
export interface KafkaSubscriptionStats {
  acked: number;
  retried: number;
  deadLettered: number;
  redelivered: number;
  /**
   * Records passed over without the processor: retry-topic records of other consumer groups,
   * and records of types the subscription's `bindingKeys` do not match.
   */
  skipped: number;
  /** Publishing retry or dead-letter records failed and the batch was rewound. */
  publishFailures: number;
  /** Commits of consumed offsets. */
  commits: number;
  /** Records the transport could not read into a message; dead-lettered without processing. */
  undecodable: number;
  /** Batches that threw unexpectedly (rewound and fetched again after a backoff). */
  batchFailures: number;
  /** Partitions paused after `publishFailureAttempts` failed publishes in a row. */
  pausedPartitions: number;
  /** Crashes of the client's consumer. */
  crashes: number;
  /** Restarts of the consumer by the subscription after a crash the client did not restart. */
  restarts: number;
}

/** Everything a {@link KafkaSubscription} needs, assembled by the transport. */
export interface KafkaSubscriptionConfig {
  topics: string[];
  group: string;
  processor: MessageProcessor;
  options: Readonly<KafkaConsumerOptions>;
  /** Records of types this filter does not deliver are passed over (`bindingKeys`). */
  typeFilter?: TypeFilter | undefined;
  consumer: KafkaConsumerClient;
  admin: KafkaAdminClient;
  publisher: KafkaPublisher;
  logger: Logger;
  /** Test and metrics hook; called after each action is durable. Must not throw. */
  onDisposition?: ((event: DispositionEvent) => void) | undefined;
  /** Called (after logging) on every {@link SubscriptionErrorEvent}. Must not throw. */
  onError?: ((event: SubscriptionErrorEvent) => void) | undefined;
  /** Called once the subscription is closed. */
  onClosed?: (subscription: KafkaSubscription) => void;
  now?: () => number;
}

interface Item {
  record: ConsumedRecord;
  /** Undefined for a record passed over (a retry record of another group, an unbound type). */
  incoming?: IncomingMessage;
  /** Decided without the processor: a record that could not be read into a message. */
  preset?: Disposition;
}

type Stop =
  | { kind: 'redeliver'; offset: string; delayMs: number; pauseAll: boolean }
  | { kind: 'not-due'; offset: string; dueAt: number }
  | { kind: 'stopping'; offset: string };

const PROCESSOR_THREW = Symbol('processorThrew');
type RetryDisposition = Extract<Disposition, { kind: 'retry' }> & { [PROCESSOR_THREW]?: true };

/**
 * A consumer-group subscription: the Kafka consumer runner behind `KafkaTransport.subscribe`.
 *
 * Per topic-partition, records are handed to the processor in offset order (`processBatch` for
 * the whole fetched batch when the processor has it and `retryMode` is `'topic'`, else `process`
 * one by one). The dispositions are then carried out in order; retry and dead-letter records of a
 * batch go out in one produce request, and only after the broker acknowledged them are the
 * offsets resolved and committed. The committed offset therefore never passes a message that is
 * not acknowledged, retried or dead-lettered. A `redeliver` (or a not-yet-due retry record)
 * rewinds the partition to that record and pauses it: nothing after it is committed, nothing is
 * skipped.
 */
export class KafkaSubscription implements Subscription {
  readonly group: string;
  readonly topics: readonly string[];
  readonly #cfg: KafkaSubscriptionConfig;
  readonly #opts: Readonly<KafkaConsumerOptions>;
  readonly #typeFilter: TypeFilter | undefined;
  readonly #log: Logger;
  /** Whether per-message `debug` lines are wanted (read once: the level is a start-up setting). */
  readonly #debug: boolean;
  readonly #now: () => number;
  /** retry topic → source topic */
  readonly #retrySources = new Map<string, string>();
  readonly #subscribedTopics: string[];
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #inPlaceAttempts = new Map<string, number>();
  /** Offset commits not acknowledged yet (`awaitCommits: false`). */
  readonly #commits = new Set<Promise<void>>();
  readonly #stats: KafkaSubscriptionStats = {
    acked: 0,
    retried: 0,
    deadLettered: 0,
    redelivered: 0,
    skipped: 0,
    publishFailures: 0,
    commits: 0,
    undecodable: 0,
    batchFailures: 0,
    pausedPartitions: 0,
    crashes: 0,
    restarts: 0,
  };
  /** Consecutive failed batches / publishes per `topic:partition`. */
  readonly #batchFailures = new Map<string, number>();
  readonly #publishFailures = new Map<string, number>();
  #consecutiveRestarts = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  readonly #backoff: Readonly<RetryPolicy>;
  #closing: Promise<void> | undefined;
  #abandoned = false;
  #started = false;
  #fatal: ConnectionAccessError | undefined;
  #onFatal: ((error: ConnectionAccessError) => void) | undefined;

  constructor(config: KafkaSubscriptionConfig) {
    this.#cfg = config;
    this.#opts = config.options;
    this.#typeFilter = config.typeFilter;
    this.group = config.group;
    this.topics = [...config.topics];
    this.#now = config.now ?? Date.now;
    this.#log = config.logger.child({ transport: 'kafka', group: config.group });
    // A logger that cannot say (a test double) gets every line, as before.
    this.#debug = this.#log.isLevelEnabled?.('debug') ?? true;
    this.#backoff = Object.freeze({
      attempts: Number.MAX_SAFE_INTEGER,
      initialDelayMs: this.#opts.publishFailureBackoffMs,
      maxDelayMs: Math.max(this.#opts.failureMaxBackoffMs, this.#opts.publishFailureBackoffMs),
      factor: 2,
      jitter: 'equal',
    });
    if (this.#opts.retryMode === 'topic') {
      for (const t of config.topics)
        this.#retrySources.set(this.#opts.retryTopic(t, config.group), t);
    }
    this.#subscribedTopics = [...config.topics, ...this.#retrySources.keys()];
  }

  /** The topics this subscription consumes: its source topics and their retry topics. */
  get subscribedTopics(): readonly string[] {
    return this.#subscribedTopics;
  }

  /**
   * Set when the subscription stopped for good because the broker refused it (credentials
   * revoked, an ACL removed, a certificate that no longer verifies): a `BT_ERR_KAFKA_*` access
   * error. Nothing after the last committed offset was acknowledged; a new subscription with
   * working credentials resumes there.
   */
  get fatalError(): ConnectionAccessError | undefined {
    return this.#fatal;
  }

  stats(): Readonly<KafkaSubscriptionStats> {
    return { ...this.#stats };
  }

  /** Creates missing topics (if enabled), joins the group and starts fetching. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    if (this.#opts.createTopics) await this.#createTopics();
    const { consumer } = this.#cfg;
    let joined!: () => void;
    const firstJoin = new Promise<void>((resolve) => (joined = resolve));
    consumer.onGroupJoin((assignment) => {
      this.#log.info({ assignment }, 'kafka consumer joined its group');
      joined();
    });
    consumer.onCrash((error, restarting) => this.#onCrash(error, restarting));
    // Set before running: kafkajs may report a refused join before `run` resolves.
    const denied = new Promise<never>((_, reject) => (this.#onFatal = reject));
    denied.catch(() => {});
    try {
      await this.#run();
    } catch (cause) {
      await consumer.disconnect().catch(() => {});
      const denied = accessErrorOf(cause);
      if (denied) throw denied;
      throw new KafkaError(
        KAFKA_ERROR_CODES.CONNECTION_FAILED,
        `starting the consumer of group ${this.group} failed: ${messageOf(cause)}`,
        { cause, retriable: true, details: { group: this.group, topics: this.#subscribedTopics } },
      );
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.#opts.joinTimeoutMs);
    });
    const outcome = await Promise.race([firstJoin, timeout, denied]).finally(() => {
      clearTimeout(timer);
      this.#onFatal = undefined;
    });
    if (outcome === 'timeout') {
      await this.close().catch(() => {});
      throw new KafkaError(
        KAFKA_ERROR_CODES.CONNECTION_FAILED,
        `consumer group ${this.group} did not join within ${this.#opts.joinTimeoutMs} ms`,
        { retriable: true, details: { group: this.group, topics: this.#subscribedTopics } },
      );
    }
  }

  async #run(): Promise<void> {
    const { consumer } = this.#cfg;
    await consumer.connect();
    await consumer.subscribe(this.#subscribedTopics);
    await consumer.run((batch, controls) => this.#handleBatchSafely(batch, controls));
  }

  /**
   * The client gave up on the consumer. kafkajs restarts it itself only after retriable errors;
   * after any other (a bug, a record it cannot handle) the subscription reconnects and rejoins the
   * group with a backoff, so it never stays dead. Offsets not committed are fetched again.
   */
  #onCrash(error: unknown, restarting: boolean): void {
    this.#stats.crashes++;
    if (this.#closing) {
      this.#log.warn({ err: error }, 'kafka consumer crashed while closing');
      return;
    }
    const denied = accessErrorOf(error);
    if (denied) {
      // Restarting cannot help: stop (uncommitted records stay in Kafka) and say why.
      this.#fatal = denied;
      this.#log.error({ err: denied }, 'kafka consumer stopped: the broker refused access');
      this.#emitError({ kind: 'consumer-crashed', error: denied, attempt: 1, restarting: false });
      this.#onFatal?.(denied);
      void this.close().catch(() => {});
      return;
    }
    if (restarting) {
      this.#log.error({ err: error, restarting }, 'kafka consumer crashed; the client restarts it');
      this.#emitError({ kind: 'consumer-crashed', error, attempt: 1, restarting: true });
      return;
    }
    this.#consecutiveRestarts++;
    const delay = this.#delay(this.#consecutiveRestarts);
    this.#log.error(
      { err: error, restarting, retryInMs: delay, attempt: this.#consecutiveRestarts },
      'kafka consumer crashed; restarting it',
    );
    this.#emitError({
      kind: 'consumer-crashed',
      error,
      attempt: this.#consecutiveRestarts,
      restarting: false,
      retryInMs: delay,
    });
    this.#scheduleRestart(delay);
  }

  #scheduleRestart(delay: number): void {
    clearTimeout(this.#restartTimer);
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#closing) return;
      void (async () => {
        const { consumer } = this.#cfg;
        try {
          await consumer.disconnect().catch(() => {});
          if (this.#closing) return;
          await this.#run();
          this.#stats.restarts++;
          this.#log.info({ attempt: this.#consecutiveRestarts }, 'kafka consumer restarted');
        } catch (error) {
          if (this.#closing) return;
          this.#consecutiveRestarts++;
          const next = this.#delay(this.#consecutiveRestarts);
          this.#log.error(
            { err: error, retryInMs: next, attempt: this.#consecutiveRestarts },
            'restarting the kafka consumer failed',
          );
          this.#emitError({
            kind: 'restart-failed',
            error,
            attempt: this.#consecutiveRestarts,
            retryInMs: next,
          });
          this.#scheduleRestart(next);
        }
      })();
    }, delay);
  }

  /** The backoff before attempt `failures + 1`, in ms. */
  #delay(failures: number): number {
    return Math.round(backoffDelayMs(failures + 1, this.#backoff));
  }

  #emitError(event: Omit<SubscriptionErrorEvent, 'group'>): void {
    try {
      this.#cfg.onError?.({ group: this.group, ...event });
    } catch (err) {
      this.#log.warn({ err }, 'onError hook threw');
    }
  }

  /**
   * Never throws: a batch that fails unexpectedly (a bug, a client error) is reported, and its
   * partition rewound to the batch's first record and fetched again after a backoff. Nothing
   * after it is committed, so no record is passed over.
   */
  async #handleBatchSafely(batch: ConsumedBatch, controls: BatchControls): Promise<void> {
    const key = `${batch.topic}:${batch.partition}`;
    try {
      await this.#handleBatch(batch, controls);
      this.#batchFailures.delete(key);
      this.#consecutiveRestarts = 0;
    } catch (error) {
      if (this.#abandoned) return;
      const first = batch.records[0]?.offset;
      const attempt = (this.#batchFailures.get(key) ?? 0) + 1;
      this.#batchFailures.set(key, attempt);
      this.#stats.batchFailures++;
      const delay = this.#delay(attempt);
      this.#log.error(
        {
          err: error,
          topic: batch.topic,
          partition: batch.partition,
          offset: first,
          attempt,
          retryInMs: delay,
        },
        'handling a batch failed; rewinding the partition',
      );
      this.#emitError({
        kind: 'batch-failed',
        error,
        topic: batch.topic,
        partition: batch.partition,
        ...(first === undefined ? {} : { offset: first }),
        attempt,
        retryInMs: delay,
      });
      // A failing seek or pause is left to the client: it crashes the consumer, and #onCrash
      // restarts it (the offsets are still uncommitted).
      if (first !== undefined) this.#rewind(batch.topic, batch.partition, first, delay, false);
    }
  }

  /**
   * Stops fetching, lets the batch in progress finish (its offsets are committed), leaves the
   * group and disconnects. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#doClose();
    return this.#closing;
  }

  async #doClose(): Promise<void> {
    clearTimeout(this.#restartTimer);
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    // The commits still on their way go out before the consumer leaves its group (a batch that
    // ends from now on awaits its own); those waiting for the commit interval go out now.
    this.#cfg.consumer.flushCommits?.();
    await Promise.all([...this.#commits]);
    const { consumer } = this.#cfg;
    let timer: NodeJS.Timeout | undefined;
    const stopped = consumer.stop().then(
      () => 'stopped' as const,
      (err: unknown) => {
        this.#log.warn({ err }, 'kafka consumer stop failed');
        return 'stopped' as const;
      },
    );
    const outcome = await Promise.race([
      stopped,
      new Promise<'timeout'>(
        (resolve) => (timer = setTimeout(() => resolve('timeout'), this.#opts.closeTimeoutMs)),
      ),
    ]);
    clearTimeout(timer);
    const disconnect = consumer
      .disconnect()
      .catch((err: unknown) => this.#log.warn({ err }, 'kafka consumer disconnect failed'));
    if (outcome === 'timeout') {
      // The batch in flight is abandoned: whatever it returns later is neither published nor
      // committed, so the partition's next owner processes it again (dedupe makes that safe).
      // kafkajs completes the disconnect once that batch returns; close() does not wait for it.
      this.#abandoned = true;
      this.#log.warn(
        { closeTimeoutMs: this.#opts.closeTimeoutMs },
        'in-flight batch did not finish in time; abandoning it',
      );
    } else {
      await disconnect;
    }
    this.#log.info({ stats: this.#stats }, 'kafka subscription closed');
    this.#cfg.onClosed?.(this);
  }

  async #createTopics(): Promise<void> {
    const { admin } = this.#cfg;
    const o = this.#opts;
    try {
      await admin.connect();
      // One look at what exists (the source topics and their retry and dead-letter topics):
      // listing the topics asks the broker for the metadata of every topic it has.
      const derived = (topic: string) => [
        ...(o.retryMode === 'topic' ? [o.retryTopic(topic, this.group)] : []),
        o.deadLetterTopic(topic, this.group),
      ];
      const counts = await admin.partitionCounts([
        ...new Set(this.topics.flatMap((t) => [t, ...derived(t)])),
      ]);
      const specs = [];
      for (const topic of this.topics) {
        const partitions = counts.get(topic) ?? o.createPartitions;
        const base = { partitions, replicationFactor: o.replicationFactor };
        if (!counts.has(topic)) specs.push({ topic, ...base });
        for (const t of derived(topic)) if (!counts.has(t)) specs.push({ topic: t, ...base });
      }
      await admin.createTopics(specs);
    } catch (cause) {
      throw new KafkaError(
        KAFKA_ERROR_CODES.TOPIC_ADMIN_FAILED,
        `creating the topics of group ${this.group} failed: ${messageOf(cause)}`,
        {
          cause,
          retriable: true,
          details: { topics: this.topics },
        },
      );
    } finally {
      await admin.disconnect().catch(() => {});
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Batch handling

  async #handleBatch(batch: ConsumedBatch, controls: BatchControls): Promise<void> {
    if (this.#closing || !controls.isRunning() || controls.isStale() || batch.records.length === 0)
      return;
    const sourceTopic = this.#retrySources.get(batch.topic);
    const isRetryTopic = sourceTopic !== undefined;
    const topic = sourceTopic ?? batch.topic;

    // 1. Which records to process now: on a retry topic, records of other groups are passed over
    //    and the first record not due yet stops the batch (the partition waits for it).
    const items: Item[] = [];
    let stop: Stop | undefined;
    const now = this.#now();
    const typeFilter = this.#typeFilter;
    for (const received of batch.records) {
      let record = received;
      try {
        // A type the group does not bind is passed over before anything is decoded.
        if (typeFilter !== undefined && !typeFilter.delivers(received.headers)) {
          items.push({ record });
          continue;
        }
        // A retry or redriven record names the headers that had no value on the original.
        const headers = restoreNullHeaders(received.headers);
        if (headers !== received.headers) record = { ...received, headers };
        if (isRetryTopic) {
          const group = headerToString(record.headers[BACKTRACK_HEADERS.group]);
          if (group !== undefined && group !== this.group) {
            items.push({ record });
            continue;
          }
          const dueAt = Number(headerToString(record.headers[BACKTRACK_HEADERS.retryDueAt]) ?? 0);
          if (Number.isFinite(dueAt) && dueAt > now) {
            stop = { kind: 'not-due', offset: record.offset, dueAt };
            break;
          }
        }
        items.push({ record, incoming: this.#toIncoming(record, batch, topic, isRetryTopic) });
      } catch (error) {
        // Whatever could not be read (a header value no client should deliver, ...) is
        // dead-lettered as it came, without the processor.
        items.push(this.#undecodable(received, batch, topic, error));
      }
    }

    // 2. Process.
    const dispositions = await this.#process(items, controls);
    if (this.#abandoned) return;

    // 3. Carry out the dispositions in order, up to the first that does not let the partition
    //    move on. Retry and dead-letter records are produced together before any offset moves.
    const outgoing: TopicRecords[] = [];
    const events: DispositionEvent[] = [];
    let lastDone: string | undefined;
    let skipped = 0;
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      const incoming = item.incoming;
      if (!incoming) {
        skipped++;
        lastDone = item.record.offset;
        continue;
      }
      let disposition = item.preset ?? dispositions[i];
      if (disposition === undefined) {
        // Not processed (the consumer is stopping): it is fetched again by whoever owns the partition next.
        stop = { kind: 'stopping', offset: item.record.offset };
        break;
      }
      if (disposition.kind === 'retry' && incoming.attempt >= this.#opts.maxAttempts) {
        const threw = (disposition as RetryDisposition)[PROCESSOR_THREW] === true;
        disposition = {
          kind: 'dead-letter',
          reason: `${threw ? 'processor threw' : 'retries exhausted'} after ${incoming.attempt} attempts: ${disposition.reason}`,
          code: threw ? KAFKA_ERROR_CODES.PROCESSOR_FAILED : KAFKA_ERROR_CODES.RETRIES_EXHAUSTED,
          error: disposition.error,
        };
      }
      if (disposition.kind === 'redeliver') {
        stop = {
          kind: 'redeliver',
          offset: item.record.offset,
          delayMs: this.#clampDelay(disposition.delayMs),
          pauseAll: disposition.pause,
        };
        events.push({ message: incoming, disposition, action: 'redelivered' });
        break;
      }
      if (disposition.kind === 'retry' && this.#opts.retryMode === 'in-place') {
        this.#inPlaceAttempts.set(
          this.#attemptKey(batch.topic, batch.partition, item.record.offset),
          incoming.attempt + 1,
        );
        stop = {
          kind: 'redeliver',
          offset: item.record.offset,
          delayMs: this.#clampDelay(disposition.delayMs),
          pauseAll: false,
        };
        events.push({ message: incoming, disposition, action: 'retried' });
        break;
      }
      if (disposition.kind === 'retry') {
        const destination = this.#opts.retryTopic(topic, this.group);
        addRecord(outgoing, destination, this.#retryRecord(item.record, incoming, disposition));
        events.push({ message: incoming, disposition, action: 'retried', destination });
      } else if (disposition.kind === 'dead-letter') {
        const destination = this.#opts.deadLetterTopic(topic, this.group);
        addRecord(
          outgoing,
          destination,
          this.#deadLetterRecord(item.record, incoming, disposition),
        );
        events.push({ message: incoming, disposition, action: 'dead-lettered', destination });
      } else {
        events.push({ message: incoming, disposition, action: 'acked' });
      }
      if (this.#opts.retryMode === 'in-place') {
        this.#inPlaceAttempts.delete(
          this.#attemptKey(batch.topic, batch.partition, item.record.offset),
        );
      }
      lastDone = item.record.offset;
    }

    const partitionKey = `${batch.topic}:${batch.partition}`;
    if (outgoing.length > 0) {
      try {
        await this.#cfg.publisher.sendRecords(outgoing);
        this.#publishFailures.delete(partitionKey);
      } catch (err) {
        this.#publishFailed(batch, err);
        return;
      }
    }

    // 4. Move the offset past everything done, and commit it: awaited with `awaitCommits` (and
    //    while closing), else in the background (the partition's next batch starts at once).
    if (lastDone !== undefined) {
      controls.resolveOffset(lastDone);
      const committed = this.#commit(controls, batch, nextOffset(lastDone));
      if (this.#closing) this.#cfg.consumer.flushCommits?.();
      if (this.#opts.awaitCommits || this.#closing) await committed;
    }
    this.#stats.skipped += skipped;
    for (const e of events) this.#report(e, batch);

    // 5. Whatever stopped the batch: rewind to it and wait.
    if (stop?.kind === 'redeliver') {
      this.#rewind(batch.topic, batch.partition, stop.offset, stop.delayMs, stop.pauseAll);
    } else if (stop?.kind === 'not-due') {
      const waitMs = this.#clampDelay(stop.dueAt - this.#now());
      this.#rewind(batch.topic, batch.partition, stop.offset, Math.max(waitMs, 1), false);
    } else if (stop?.kind === 'stopping') {
      this.#cfg.consumer.seek(batch.topic, batch.partition, stop.offset);
    }
  }

  /** Commits `offset` of the batch's partition; never rejects (a failure is logged). */
  #commit(controls: BatchControls, batch: ConsumedBatch, offset: string): Promise<void> {
    const committed = controls.commit(offset).then(
      () => {
        this.#stats.commits++;
      },
      (err: unknown) => {
        // The offsets stay resolved locally and are committed with the next batch; if this member
        // lost the partition, the new owner processes them again (at-least-once, dedupe).
        this.#log.warn(
          { err, topic: batch.topic, partition: batch.partition },
          'offset commit failed',
        );
      },
    );
    this.#commits.add(committed);
    void committed.then(() => this.#commits.delete(committed));
    return committed;
  }

  /**
   * Nothing of this batch moves on: it is rewound to its first record and fetched again after a
   * backoff (handlers that already ran see their messages again; dedupe makes that harmless).
   * After `publishFailureAttempts` failures in a row the partition is paused for
   * `publishFailurePauseMs` and reported, so a record that cannot be written (too large for the
   * dead-letter topic, no right to write there) does not spin the partition.
   */
  #publishFailed(batch: ConsumedBatch, err: unknown): void {
    const key = `${batch.topic}:${batch.partition}`;
    this.#stats.publishFailures++;
    const attempt = (this.#publishFailures.get(key) ?? 0) + 1;
    const first = batch.records[0]!.offset;
    const where = { topic: batch.topic, partition: batch.partition, offset: first };
    if (attempt < this.#opts.publishFailureAttempts) {
      this.#publishFailures.set(key, attempt);
      const delay = this.#delay(attempt);
      this.#log.warn(
        { err, ...where, attempt, retryInMs: delay },
        'publishing retry/dead-letter records failed; rewinding the partition',
      );
      this.#emitError({ kind: 'publish-failed', error: err, ...where, attempt, retryInMs: delay });
      this.#rewind(batch.topic, batch.partition, first, delay, false);
      return;
    }
    this.#publishFailures.delete(key);
    this.#stats.pausedPartitions++;
    const pause = this.#opts.publishFailurePauseMs;
    this.#log.error(
      { err, ...where, attempt, pausedForMs: pause },
      'publishing retry/dead-letter records failed on every attempt; pausing the partition',
    );
    this.#emitError({ kind: 'partition-paused', error: err, ...where, attempt, retryInMs: pause });
    this.#rewind(batch.topic, batch.partition, first, Math.max(pause, 1), false);
  }

  /** An item for a record that could not be read into a message: dead-lettered as it came. */
  #undecodable(record: ConsumedRecord, batch: ConsumedBatch, topic: string, error: unknown): Item {
    this.#stats.undecodable++;
    const value = Buffer.isBuffer(record.value) ? record.value : Buffer.alloc(0);
    const reason = `the record could not be read: ${safeMessage(error)}`;
    this.#log.error(
      { err: error, topic: batch.topic, partition: batch.partition, offset: record.offset },
      'undecodable record; dead-lettering it',
    );
    return {
      record,
      incoming: {
        message: {
          headers: {},
          body: new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
        },
        attempt: 1,
        origin: {
          transport: 'kafka',
          topic,
          partition: batch.partition,
          offset: String(record.offset),
          group: this.group,
        },
      },
      preset: {
        kind: 'dead-letter',
        reason,
        code: KAFKA_ERROR_CODES.RECORD_UNDECODABLE,
        error,
      },
    };
  }

  async #process(items: Item[], controls: BatchControls): Promise<(Disposition | undefined)[]> {
    const { processor } = this.#cfg;
    // The items the processor sees (one pass, no intermediate arrays).
    const indexes: number[] = [];
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      if (item.incoming !== undefined && item.preset === undefined) indexes.push(i);
    }
    const result: (Disposition | undefined)[] = new Array<Disposition | undefined>(items.length);
    if (indexes.length === 0) return result;

    if (processor.processBatch && this.#opts.retryMode === 'topic') {
      // Chunks of `batchSize`: between two chunks the membership is kept alive, and a stopping
      // consumer (or a redeliver) ends the batch; the rest is fetched again by the next owner.
      for (let start = 0; start < indexes.length; start += this.#opts.batchSize) {
        if (start > 0 && !controls.isRunning()) break;
        const chunk =
          start === 0 && indexes.length <= this.#opts.batchSize
            ? indexes
            : indexes.slice(start, start + this.#opts.batchSize);
        const messages = new Array<IncomingMessage>(chunk.length);
        for (let j = 0; j < chunk.length; j++) messages[j] = items[chunk[j]!]!.incoming!;
        let chunkResult: Disposition[] | undefined;
        try {
          chunkResult = await processor.processBatch(messages);
        } catch (err) {
          this.#log.error(
            { err, count: chunk.length },
            'processBatch threw; retrying every message of the chunk',
          );
        }
        chunk.forEach((itemIndex, j) => {
          result[itemIndex] =
            chunkResult?.[j] ??
            this.#processorThrew(
              new Error('processBatch returned no disposition'),
              chunkResult === undefined,
            );
        });
        if (chunk.some((i) => result[i]?.kind === 'redeliver')) break;
        if (!(await this.#heartbeat(controls))) break;
      }
      return result;
    }

    for (let i = 0; i < items.length; i++) {
      const message = items[i]!.incoming;
      if (!message || items[i]!.preset) continue;
      if (!controls.isRunning()) break;
      let d: Disposition;
      try {
        d = await processor.process(message);
      } catch (err) {
        this.#log.error(
          { err, messageId: message.message.headers['id'], offset: message.origin.offset },
          'processor threw',
        );
        d = this.#processorThrew(err, true);
      }
      result[i] = d;
      // Strict order: nothing after a message that has to come again is processed now.
      if (d.kind === 'redeliver' || (d.kind === 'retry' && this.#opts.retryMode === 'in-place'))
        break;
      if (!(await this.#heartbeat(controls))) break;
    }
    return result;
  }

  /**
   * Heartbeats between messages. False when the group is rebalancing (or the member is gone):
   * the batch then ends after what is done, so the rebalance is not held up; the rest is fetched
   * again by whoever owns the partition next.
   */
  async #heartbeat(controls: BatchControls): Promise<boolean> {
    try {
      await controls.heartbeat();
      return true;
    } catch (err) {
      this.#log.info({ err }, 'heartbeat failed (rebalance?); ending the batch early');
      return false;
    }
  }

  #processorThrew(error: unknown, threw: boolean): Disposition {
    const d: RetryDisposition = {
      kind: 'retry',
      delayMs: this.#opts.processorErrorDelayMs,
      reason: threw ? `processor threw: ${messageOf(error)}` : messageOf(error),
      error,
    };
    d[PROCESSOR_THREW] = true;
    return d;
  }

  #toIncoming(
    record: ConsumedRecord,
    batch: ConsumedBatch,
    topic: string,
    isRetryTopic: boolean,
  ): IncomingMessage {
    const h = record.headers;
    let attempt = 1;
    let partition = batch.partition;
    let offset = record.offset;
    if (isRetryTopic) {
      attempt = headerToPositiveInt(h[BACKTRACK_HEADERS.attempt]) ?? 2;
      const p = headerToString(h[BACKTRACK_HEADERS.originalPartition]);
      if (p !== undefined && /^\d+$/.test(p)) partition = Number(p);
      offset = headerToString(h[BACKTRACK_HEADERS.originalOffset]) ?? offset;
    } else if (this.#opts.retryMode === 'in-place') {
      attempt =
        this.#inPlaceAttempts.get(this.#attemptKey(batch.topic, batch.partition, record.offset)) ??
        1;
    }
    const origin: IncomingMessage['origin'] = {
      transport: 'kafka',
      topic,
      partition,
      offset,
      group: this.group,
    };
    // The record key orders the pipeline's concurrent lanes (one key, one after the other).
    if (record.key !== null && record.key !== undefined) origin.key = keyText(record.key);
    return { message: fromKafkaRecord(record), attempt, origin };
  }

  /**
   * The original record's headers byte for byte, without Backtrack's own (so they are never
   * stacked); null values are written empty and named in `x-backtrack-null-headers`.
   */
  #originalHeaders(record: ConsumedRecord): ProducerRecord['headers'] {
    return writableHeaders(record.headers);
  }

  #retryRecord(
    record: ConsumedRecord,
    incoming: IncomingMessage,
    d: Extract<Disposition, { kind: 'retry' }>,
  ): ProducerRecord {
    const delayMs = this.#clampDelay(d.delayMs);
    const headers = this.#originalHeaders(record);
    headers[BACKTRACK_HEADERS.attempt] = String(incoming.attempt + 1);
    headers[BACKTRACK_HEADERS.retryDueAt] = String(this.#now() + delayMs);
    headers[BACKTRACK_HEADERS.retryDelayMs] = String(Math.round(delayMs));
    headers[BACKTRACK_HEADERS.reason] = truncateDeadLetterText(d.reason);
    if (d.error !== undefined)
      headers[BACKTRACK_HEADERS.error] = truncateDeadLetterText(safeMessage(d.error));
    this.#addOrigin(headers, incoming);
    return { key: record.key, value: record.value, headers };
  }

  #deadLetterRecord(
    record: ConsumedRecord,
    incoming: IncomingMessage,
    d: Extract<Disposition, { kind: 'dead-letter' }>,
  ): ProducerRecord {
    const headers = this.#originalHeaders(record);
    headers[BACKTRACK_HEADERS.attempt] = String(incoming.attempt);
    headers[DEAD_LETTER_REASON_HEADER] = deadLetterReasonOf(d.code, d.error);
    headers[BACKTRACK_HEADERS.reason] = truncateDeadLetterText(d.reason);
    headers[BACKTRACK_HEADERS.deadLetterCode] = truncateDeadLetterText(d.code);
    if (d.error !== undefined)
      headers[BACKTRACK_HEADERS.error] = truncateDeadLetterText(safeMessage(d.error));
    headers[BACKTRACK_HEADERS.deadLetteredAt] = new Date(this.#now()).toISOString();
    this.#addOrigin(headers, incoming);
    // The value as it came: a tombstone stays a tombstone.
    return { key: record.key, value: record.value, headers };
  }

  #addOrigin(headers: ProducerRecord['headers'], incoming: IncomingMessage): void {
    headers[BACKTRACK_HEADERS.group] = this.group;
    headers[BACKTRACK_HEADERS.originalTopic] = incoming.origin.topic;
    if (incoming.origin.partition !== undefined)
      headers[BACKTRACK_HEADERS.originalPartition] = String(incoming.origin.partition);
    if (incoming.origin.offset !== undefined)
      headers[BACKTRACK_HEADERS.originalOffset] = incoming.origin.offset;
  }

  /** Rewinds a partition to `offset` and pauses it (or every subscribed topic) for `delayMs`. */
  #rewind(
    topic: string,
    partition: number,
    offset: string,
    delayMs: number,
    pauseAll: boolean,
  ): void {
    const { consumer } = this.#cfg;
    consumer.seek(topic, partition, offset);
    if (this.#closing || delayMs <= 0) return;
    const targets = pauseAll
      ? this.#subscribedTopics.map((t) => ({ topic: t }))
      : [{ topic, partitions: [partition] }];
    const key = pauseAll ? '*' : `${topic}:${partition}`;
    consumer.pause(targets);
    clearTimeout(this.#timers.get(key));
    this.#timers.set(
      key,
      setTimeout(() => {
        this.#timers.delete(key);
        if (this.#closing) return;
        try {
          consumer.resume(targets);
        } catch (err) {
          this.#log.warn({ err, targets }, 'resume failed');
        }
      }, delayMs),
    );
  }

  #report(event: DispositionEvent, batch: ConsumedBatch): void {
    if (event.action === 'acked') {
      // The common case, once per message: no log fields unless debug logging is on.
      this.#stats.acked++;
      if (this.#debug) this.#log.debug(this.#fields(event, batch), 'message acknowledged');
      this.#notify(event);
      return;
    }
    const fields = this.#fields(event, batch);
    switch (event.action) {
      case 'retried':
        this.#stats.retried++;
        this.#log.info(
          { ...fields, reason: reasonOf(event.disposition), destination: event.destination },
          'message retried',
        );
        break;
      case 'dead-lettered':
        this.#stats.deadLettered++;
        this.#log.warn(
          {
            ...fields,
            reason: reasonOf(event.disposition),
            code: event.disposition.kind === 'dead-letter' ? event.disposition.code : undefined,
            destination: event.destination,
          },
          'message dead-lettered',
        );
        break;
      case 'redelivered':
        this.#stats.redelivered++;
        this.#log.warn(
          { ...fields, reason: reasonOf(event.disposition) },
          'message not processed; partition rewound',
        );
        break;
    }
    this.#notify(event);
  }

  #fields(event: DispositionEvent, batch: ConsumedBatch): Record<string, unknown> {
    const m = event.message;
    return {
      messageId: m.message.headers['id'],
      type: m.message.headers['type'],
      sagaId: m.message.headers['sagaid'],
      topic: batch.topic,
      partition: batch.partition,
      offset: m.origin.offset,
      attempt: m.attempt,
    };
  }

  #notify(event: DispositionEvent): void {
    try {
      this.#cfg.onDisposition?.(event);
    } catch (err) {
      this.#log.warn({ err }, 'onDisposition hook threw');
    }
  }

  #clampDelay(ms: number): number {
    return Number.isFinite(ms)
      ? Math.min(Math.max(0, ms), this.#opts.maxDelayMs)
      : this.#opts.maxDelayMs;
  }

  #attemptKey(topic: string, partition: number, offset: string): string {
    return `${topic}:${partition}:${offset}`;
  }

  /** @internal Throws if the subscription is closed. */
  assertOpen(): void {
    if (this.#closing) throw new KafkaClosedError(`subscription of group ${this.group}`);
  }
}

function addRecord(outgoing: TopicRecords[], topic: string, record: ProducerRecord): void {
  let batch = outgoing.find((b) => b.topic === topic);
  if (!batch) outgoing.push((batch = { topic, records: [] }));
  batch.records.push(record);
}

/** A record key as text (Latin-1: one character per byte, so distinct keys stay distinct). */
function keyText(key: Buffer | string): string {
  return typeof key === 'string' ? key : key.toString('latin1');
}

function nextOffset(offset: string): string {
  return (BigInt(offset) + 1n).toString();
}

/** `messageOf` that survives errors whose `message` getter or `toString` throws. */
function safeMessage(error: unknown): string {
  try {
    return messageOf(error);
  } catch {
    return 'unprintable error';
  }
}

function reasonOf(d: Disposition): string | undefined {
  return d.kind === 'ack' ? undefined : d.reason;
}
