/**
 * The small internal port between the Kafka transport and a Kafka client library. The transport
 * only ever talks to these interfaces, so a second client (for example a librdkafka binding) can
 * be added by implementing them, without touching `@backtrack/core` or the transport's logic.
 * `createKafkajsClient` is the kafkajs implementation.
 *
 * Offsets are decimal strings (Kafka offsets are 64-bit). "Resolving" an offset means the record
 * at that offset is done: the next fetch of the partition starts after it, and the next commit
 * covers it.
 */

/**
 * A header value as a client delivers it: Kafka headers are bytes; some clients give strings;
 * `null` is a header with no value (any producer may write one, kafkajs decodes it as null).
 */
export type KafkaHeaderValue = Buffer | string | null | (Buffer | string | null)[] | undefined;

/** A record to produce. */
export interface ProducerRecord {
  /** The partitioning key; `null` lets the client spread records over partitions. */
  key: string | Buffer | null;
  /** The value; `null` writes a tombstone. */
  value: Buffer | null;
  headers: Record<string, string | Buffer | (string | Buffer)[]>;
}

/** Records for one topic. */
export interface TopicRecords {
  topic: string;
  records: ProducerRecord[];
}

/** Producer settings the transport needs. */
export interface ProducerSettings {
  /** Idempotent producer (the broker drops retried duplicates by producer id and sequence). */
  idempotent: boolean;
  /** In-flight requests per broker connection. Idempotence requires <= 5; kafkajs is safe with 1. */
  maxInFlightRequests: number;
  /** Client-level retries of a failed produce request before the send rejects. */
  retries: number;
  /** Broker-side wait for acks=all, in ms. */
  ackTimeoutMs: number;
  compression: 'none' | 'gzip';
}

export interface KafkaProducerClient {
  connect(): Promise<void>;
  /** Resolves only when every record is acknowledged by all in-sync replicas (acks=all). */
  send(batches: TopicRecords[]): Promise<void>;
  disconnect(): Promise<void>;
}

/** A record as the consumer delivered it. */
export interface ConsumedRecord {
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, KafkaHeaderValue>;
  /** Record timestamp, ms since the epoch, as a string. */
  timestamp: string;
}

/** The records fetched for one topic-partition. */
export interface ConsumedBatch {
  topic: string;
  partition: number;
  records: ConsumedRecord[];
  highWatermark: string;
}

/** What a batch handler may do with the partition it is handling. */
export interface BatchControls {
  /** Marks the record at `offset` (and everything before it in this partition) as done. */
  resolveOffset(offset: string): void;
  /** Commits `nextOffset` (the offset of the first record NOT done) for this partition now. */
  commit(nextOffset: string): Promise<void>;
  /** Keeps the group membership alive during a long batch. */
  heartbeat(): Promise<void>;
  /** False once the consumer is stopping: start no new work. */
  isRunning(): boolean;
  /** True when a seek is pending for this partition: the rest of the batch is outdated. */
  isStale(): boolean;
}

/** A topic or some of its partitions. Without `partitions`: all of the topic's partitions. */
export interface TopicPartitions {
  topic: string;
  partitions?: number[];
}

/** Consumer settings the transport needs. */
export interface ConsumerSettings {
  groupId: string;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  rebalanceTimeoutMs: number;
  maxWaitTimeMs: number;
  maxBytesPerPartition: number;
  /** Where a group with no committed offset starts. */
  fromBeginning: boolean;
  partitionsConsumedConcurrently: number;
  /** Least time between two OffsetCommit requests of this consumer, in ms (0: after each turn). */
  commitIntervalMs: number;
}

export interface KafkaConsumerClient {
  connect(): Promise<void>;
  subscribe(topics: string[]): Promise<void>;
  /**
   * Starts fetching. The handler is called for one topic-partition at a time (per
   * `partitionsConsumedConcurrently`); offsets are neither resolved nor committed automatically.
   * Resolves once the group is joined.
   */
  run(handler: (batch: ConsumedBatch, controls: BatchControls) => Promise<void>): Promise<void>;
  pause(partitions: TopicPartitions[]): void;
  resume(partitions: TopicPartitions[]): void;
  /** The next fetch of this partition starts at `offset`. */
  seek(topic: string, partition: number, offset: string): void;
  /** Optional: sends the commits that wait for `commitIntervalMs` now (close). */
  flushCommits?(): void;
  /** Stops fetching, waits for the batch in progress, leaves the group. */
  stop(): Promise<void>;
  disconnect(): Promise<void>;
  /** Called when the client gave up on the consumer; `restarting` tells whether it restarts. */
  onCrash(listener: (error: unknown, restarting: boolean) => void): void;
  /** Called after every (re)join of the group with this member's assignment. */
  onGroupJoin(listener: (assignment: Record<string, number[]>) => void): void;
  /**
   * Optional: group membership events for `consumer.rebalancing` (a client without it emits
   * none): `rebalancing` when this member learns a rebalance began, `joined` after it rejoined.
   */
  onGroupEvent?(listener: (event: ConsumerGroupEvent) => void): void;
}

/** A consumer group membership event (see {@link KafkaConsumerClient.onGroupEvent}). */
export interface ConsumerGroupEvent {
  phase: 'rebalancing' | 'joined';
  memberId?: string;
  /** `joined` only: topic to partitions assigned to this member. */
  assignment?: Record<string, number[]>;
}

/** A topic to create. */
export interface TopicSpec {
  topic: string;
  partitions: number;
  replicationFactor: number;
  /** Topic-level configs, for example `{ 'retention.ms': '604800000' }`. */
  config?: Record<string, string>;
}

/** Offsets of one partition: `low` is the first available, `high` the next to be written. */
export interface PartitionOffsets {
  partition: number;
  low: string;
  high: string;
}

export interface KafkaAdminClient {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  listTopics(): Promise<string[]>;
  /** Creates the topics that do not exist yet (waits for their leaders); existing ones are left alone. */
  createTopics(topics: TopicSpec[]): Promise<void>;
  /** The number of partitions of each topic that exists; missing topics are absent. */
  partitionCounts(topics: string[]): Promise<Map<string, number>>;
  topicOffsets(topic: string): Promise<PartitionOffsets[]>;
  deleteTopics(topics: string[]): Promise<void>;
  deleteGroups(groupIds: string[]): Promise<void>;
  /** The committed offsets of a group for a topic (`-1` for none). */
  groupOffsets(groupId: string, topic: string): Promise<{ partition: number; offset: string }[]>;
}

/** Factory of the three client roles; one instance per transport. */
export interface KafkaClient {
  /** Short client name for logs, for example `kafkajs`. */
  readonly name: string;
  producer(settings: ProducerSettings): KafkaProducerClient;
  consumer(settings: ConsumerSettings): KafkaConsumerClient;
  admin(): KafkaAdminClient;
}
