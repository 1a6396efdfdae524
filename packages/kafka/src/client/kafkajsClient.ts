import {
  CompressionTypes,
  Kafka,
  Partitioners,
  logLevel as KafkajsLogLevel,
  type Admin,
  type Consumer,
  type KafkaConfig,
  type KafkaMessage,
  type LogEntry,
  type Producer,
  type SASLOptions,
} from 'kafkajs';
import type { ConnectionOptions } from 'node:tls';
import type { Logger } from '@backtrack/core';
import type {
  ConsumedRecord,
  ConsumerGroupEvent,
  ConsumerSettings,
  KafkaAdminClient,
  KafkaClient,
  KafkaConsumerClient,
  KafkaProducerClient,
  PartitionOffsets,
  ProducerSettings,
  TopicPartitions,
  TopicRecords,
  TopicSpec,
} from './KafkaClient.js';
import { CommitCoalescer, type CommitTopics } from './commitCoalescer.js';
import { classifyKafkaError, KafkaTlsWatch } from './connectionErrors.js';

/** How to reach the cluster with kafkajs. */
export interface KafkajsConnectionOptions {
  /** Bootstrap brokers, `host:port`. */
  brokers: string[];
  /** @default 'backtrack' */
  clientId?: string;
  ssl?: ConnectionOptions | boolean;
  sasl?: SASLOptions;
  /** @default 3000 */
  connectionTimeoutMs?: number;
  /** @default 30000 */
  requestTimeoutMs?: number;
  /**
   * The lowest kafkajs log level passed on to the pino logger. kafkajs logs transient, retried
   * protocol errors at ERROR; Backtrack logs them at `warn`.
   * @default 'warn'
   */
  clientLogLevel?: 'nothing' | 'error' | 'warn' | 'info' | 'debug';
}

const LOG_LEVELS = {
  nothing: KafkajsLogLevel.NOTHING,
  error: KafkajsLogLevel.ERROR,
  warn: KafkajsLogLevel.WARN,
  info: KafkajsLogLevel.INFO,
  debug: KafkajsLogLevel.DEBUG,
} as const;

// kafkajs warns on every idempotent producer with bounded retries; the bound is deliberate
// (publish must fail, not hang, when the cluster is gone) and documented in the README.
const SILENCED = [/Limiting retries for the idempotent producer/];

function pinoLogCreator(logger: Logger) {
  const log = logger.child({ component: 'kafkajs' });
  return () =>
    ({ namespace, level, log: entry }: LogEntry): void => {
      const { message, timestamp: _ts, ...extra } = entry;
      if (SILENCED.some((re) => re.test(message))) return;
      const record = { ...extra, namespace };
      if (level === KafkajsLogLevel.ERROR || level === KafkajsLogLevel.WARN)
        log.warn(record, message);
      else if (level === KafkajsLogLevel.INFO) log.debug(record, message);
      else log.trace(record, message);
    };
}

/**
 * The kafkajs implementation of {@link KafkaClient}. kafkajs 2.2.x speaks the classic consumer
 * group protocol and the API versions Apache Kafka 4.x still serves (KIP-896).
 */
export function createKafkajsClient(
  options: KafkajsConnectionOptions,
  logger: Logger,
): KafkaClient {
  // The default partitioner is the Java-compatible murmur2 one; naming it silences kafkajs' v2 notice.
  const watch = new KafkaTlsWatch();
  const config: KafkaConfig = {
    brokers: options.brokers,
    socketFactory: watch.socketFactory,
    clientId: options.clientId ?? 'backtrack',
    connectionTimeout: options.connectionTimeoutMs ?? 3000,
    requestTimeout: options.requestTimeoutMs ?? 30_000,
    logLevel: LOG_LEVELS[options.clientLogLevel ?? 'warn'],
    logCreator: pinoLogCreator(logger),
  };
  if (options.ssl !== undefined) config.ssl = options.ssl;
  if (options.sasl !== undefined) config.sasl = options.sasl;
  const kafka = new Kafka(config);
  return {
    name: 'kafkajs',
    producer: (settings) => new KafkajsProducer(kafka, settings, watch),
    consumer: (settings) => new KafkajsConsumer(kafka, settings, watch),
    admin: () => new KafkajsAdmin(kafka.admin(), watch),
  };
}

class KafkajsProducer implements KafkaProducerClient {
  readonly #producer: Producer;
  readonly #settings: ProducerSettings;
  readonly #watch: KafkaTlsWatch;

  constructor(kafka: Kafka, settings: ProducerSettings, watch: KafkaTlsWatch) {
    this.#settings = settings;
    this.#watch = watch;
    this.#producer = kafka.producer({
      idempotent: settings.idempotent,
      maxInFlightRequests: settings.maxInFlightRequests,
      retry: { retries: settings.retries },
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: true,
    });
  }

  connect(): Promise<void> {
    return this.#watch.guard(this.#producer.connect());
  }

  async send(batches: TopicRecords[]): Promise<void> {
    await this.#watch.guard(this.#send(batches));
  }

  async #send(batches: TopicRecords[]): Promise<void> {
    await this.#producer.sendBatch({
      acks: -1,
      timeout: this.#settings.ackTimeoutMs,
      compression:
        this.#settings.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None,
      topicMessages: batches.map(({ topic, records }) => ({
        topic,
        messages: records.map((r) => ({ key: r.key, value: r.value, headers: r.headers })),
      })),
    });
  }

  disconnect(): Promise<void> {
    return this.#producer.disconnect();
  }
}

class KafkajsConsumer implements KafkaConsumerClient {
  readonly #consumer: Consumer;
  readonly #settings: ConsumerSettings;
  readonly #watch: KafkaTlsWatch;
  /** The partitions' commits, coalesced into one OffsetCommit request at a time. */
  readonly #commits: CommitCoalescer;
  #commitVia: (offsets: { topics: CommitTopics }) => Promise<void> = () =>
    Promise.reject(new Error('no batch is running'));

  constructor(kafka: Kafka, settings: ConsumerSettings, watch: KafkaTlsWatch) {
    this.#settings = settings;
    this.#watch = watch;
    this.#commits = new CommitCoalescer((topics) => this.#commitVia({ topics }), {
      intervalMs: settings.commitIntervalMs,
    });
    this.#consumer = kafka.consumer({
      groupId: settings.groupId,
      sessionTimeout: settings.sessionTimeoutMs,
      heartbeatInterval: settings.heartbeatIntervalMs,
      rebalanceTimeout: settings.rebalanceTimeoutMs,
      maxWaitTimeInMs: settings.maxWaitTimeMs,
      maxBytesPerPartition: settings.maxBytesPerPartition,
      allowAutoTopicCreation: false,
      // A crash is logged by the transport; always restart rather than leave a dead subscription.
      // Except after an access failure (credentials, ACLs, certificates): that stops it.
      retry: {
        retries: 8,
        restartOnFailure: async (error) => classifyKafkaError(error) === undefined,
      },
    });
    // What waits for the commit interval goes out before this member gives its partitions up.
    this.#consumer.on(this.#consumer.events.REBALANCING, () => this.#commits.flush());
  }

  connect(): Promise<void> {
    return this.#watch.guard(this.#consumer.connect());
  }

  subscribe(topics: string[]): Promise<void> {
    return this.#watch.guard(
      this.#consumer.subscribe({ topics, fromBeginning: this.#settings.fromBeginning }),
    );
  }

  run(handler: Parameters<KafkaConsumerClient['run']>[0]): Promise<void> {
    return this.#watch.guard(this.#run(handler));
  }

  #run(handler: Parameters<KafkaConsumerClient['run']>[0]): Promise<void> {
    return this.#consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.#settings.partitionsConsumedConcurrently,
      eachBatch: async ({
        batch,
        resolveOffset,
        heartbeat,
        isRunning,
        isStale,
        commitOffsetsIfNecessary,
      }) => {
        await handler(
          {
            topic: batch.topic,
            partition: batch.partition,
            highWatermark: batch.highWatermark,
            records: consumedRecords(batch.messages),
          },
          {
            resolveOffset,
            heartbeat,
            isRunning,
            isStale,
            commit: (nextOffset) => {
              // Every batch's function commits through the same group; the latest one is
              // the current run's (after a restart the group is a new one).
              this.#commitVia = commitOffsetsIfNecessary;
              return this.#commits.commit(batch.topic, batch.partition, nextOffset);
            },
          },
        );
      },
    });
  }

  pause(partitions: TopicPartitions[]): void {
    this.#consumer.pause(partitions);
  }

  resume(partitions: TopicPartitions[]): void {
    this.#consumer.resume(partitions);
  }

  seek(topic: string, partition: number, offset: string): void {
    this.#consumer.seek({ topic, partition, offset });
  }

  flushCommits(): void {
    this.#commits.flush();
  }

  stop(): Promise<void> {
    this.#commits.flush();
    return this.#consumer.stop();
  }

  disconnect(): Promise<void> {
    return this.#consumer.disconnect();
  }

  onCrash(listener: (error: unknown, restarting: boolean) => void): void {
    this.#consumer.on(this.#consumer.events.CRASH, (event) =>
      listener(
        classifyKafkaError(event.payload.error) ?? event.payload.error,
        event.payload.restart,
      ),
    );
  }

  onGroupJoin(listener: (assignment: Record<string, number[]>) => void): void {
    this.#consumer.on(this.#consumer.events.GROUP_JOIN, (event) =>
      listener(event.payload.memberAssignment),
    );
  }

  onGroupEvent(listener: (event: ConsumerGroupEvent) => void): void {
    this.#consumer.on(this.#consumer.events.REBALANCING, (event) =>
      listener({ phase: 'rebalancing', memberId: event.payload.memberId }),
    );
    this.#consumer.on(this.#consumer.events.GROUP_JOIN, (event) =>
      listener({
        phase: 'joined',
        memberId: event.payload.memberId,
        assignment: event.payload.memberAssignment,
      }),
    );
  }
}

/**
 * kafkajs' fetched messages, handed on as they are: they already have the shape of
 * {@link ConsumedRecord} (a copy per record was one more object per message on the hot path).
 * Only what an old message-set format may leave out is filled in, in place.
 */
function consumedRecords(messages: KafkaMessage[]): ConsumedRecord[] {
  const records = messages as unknown as ConsumedRecord[];
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    if (r.headers === undefined || r.headers === null) r.headers = {};
    if (r.key === undefined) r.key = null;
    if (r.value === undefined) r.value = null;
  }
  return records;
}

class KafkajsAdmin implements KafkaAdminClient {
  readonly #admin: Admin;
  readonly #watch: KafkaTlsWatch;

  constructor(admin: Admin, watch: KafkaTlsWatch) {
    this.#admin = admin;
    this.#watch = watch;
  }

  connect(): Promise<void> {
    return this.#watch.guard(this.#admin.connect());
  }

  disconnect(): Promise<void> {
    return this.#admin.disconnect();
  }

  listTopics(): Promise<string[]> {
    return this.#watch.guard(this.#admin.listTopics());
  }

  async createTopics(topics: TopicSpec[]): Promise<void> {
    if (topics.length === 0) return;
    let createError: unknown;
    try {
      await this.#admin.createTopics({
        waitForLeaders: true,
        topics: topics.map((t) => ({
          topic: t.topic,
          numPartitions: t.partitions,
          replicationFactor: t.replicationFactor,
          configEntries: Object.entries(t.config ?? {}).map(([name, value]) => ({ name, value })),
        })),
      });
    } catch (error) {
      // A concurrent creator won the race, or (KRaft) the new topics are not in the metadata
      // yet and kafkajs' leader wait gave up early: fine if they show up below.
      createError = error;
      const denied = classifyKafkaError(error);
      if (denied) throw denied;
    }
    await this.#waitForTopics(
      topics.map((t) => t.topic),
      createError,
    );
  }

  /** Waits until every topic is in the metadata with a leader for each partition. */
  async #waitForTopics(names: string[], createError: unknown, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown = createError;
    while (Date.now() < deadline) {
      try {
        const existing = new Set(await this.#admin.listTopics());
        if (names.every((n) => existing.has(n))) {
          const { topics } = await this.#admin.fetchTopicMetadata({ topics: names });
          if (
            topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))
          )
            return;
        }
      } catch (error) {
        lastError = error;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw (
      lastError ?? new Error(`topics ${names.join(', ')} did not appear within ${timeoutMs} ms`)
    );
  }

  async partitionCounts(topics: string[]): Promise<Map<string, number>> {
    const existing = new Set(await this.#admin.listTopics());
    const wanted = topics.filter((t) => existing.has(t));
    const counts = new Map<string, number>();
    if (wanted.length === 0) return counts;
    const { topics: metadata } = await this.#admin.fetchTopicMetadata({ topics: wanted });
    for (const t of metadata) counts.set(t.name, t.partitions.length);
    return counts;
  }

  async topicOffsets(topic: string): Promise<PartitionOffsets[]> {
    const offsets = await this.#admin.fetchTopicOffsets(topic);
    return offsets.map((o) => ({ partition: o.partition, low: o.low, high: o.high }));
  }

  async deleteTopics(topics: string[]): Promise<void> {
    if (topics.length > 0) await this.#admin.deleteTopics({ topics });
  }

  async deleteGroups(groupIds: string[]): Promise<void> {
    if (groupIds.length > 0) await this.#admin.deleteGroups(groupIds);
  }

  async groupOffsets(
    groupId: string,
    topic: string,
  ): Promise<{ partition: number; offset: string }[]> {
    const result = await this.#admin.fetchOffsets({ groupId, topics: [topic] });
    return (result[0]?.partitions ?? []).map((p) => ({ partition: p.partition, offset: p.offset }));
  }
}
