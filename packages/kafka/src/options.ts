import { KafkaConfigError } from './errors.js';
import { defaultDeadLetterTopic, defaultRetryTopic, type TopicNamer } from './topics/topics.js';

/** How a subscription consumes. Every field has a default in {@link DEFAULT_KAFKA_CONSUMER_OPTIONS}. */
export interface KafkaConsumerOptions {
  /**
   * Where a consumer group with no committed offset starts: `true` = the earliest retained
   * record (nothing published before the group existed is missed), `false` = only new records.
   * @default true
   */
  fromBeginning: boolean;
  /**
   * How a `retry` disposition is carried out.
   * - `'topic'`: the record is published to the retry topic (`retryTopic`) with the attempt and
   *   due time in headers, and the partition goes on with the next record. The subscription also
   *   consumes the retry topic and processes each record again once it is due. Other keys are not
   *   held up; the retried key's later records may overtake the retried one.
   * - `'in-place'`: the partition is paused and the same record is processed again after the
   *   delay (strict order per partition, at the price of blocking it). Records are processed one
   *   by one (`process`, not `processBatch`). The attempt count lives in memory; after a
   *   rebalance or restart it starts at 1 again (more attempts, never fewer deliveries).
   * @default 'topic'
   */
  retryMode: 'topic' | 'in-place';
  /** Names the retry topic. @default `${topic}.retry` */
  retryTopic: TopicNamer;
  /** Names the dead-letter topic. @default `${topic}.dlq` */
  deadLetterTopic: TopicNamer;
  /**
   * Backstop: a message the processor asked to retry on this many attempts is dead-lettered
   * with `BT_ERR_KAFKA_RETRIES_EXHAUSTED` (core's pipeline normally stops earlier, per its own
   * retry policy).
   * @default 10
   */
  maxAttempts: number;
  /** Delay before retrying a message whose processor threw, in ms. @default 1000 */
  processorErrorDelayMs: number;
  /** Upper bound of any retry delay or pause, in ms. @default 900_000 (15 min) */
  maxDelayMs: number;
  /**
   * Pause of a partition after publishing a retry or dead-letter record failed (the batch is
   * then fetched again), in ms.
   * @default 1000
   */
  publishFailureBackoffMs: number;
  /**
   * Attempts at publishing the retry and dead-letter records of a batch before the partition is
   * paused for `publishFailurePauseMs` (and reported through `onError`, kind `partition-paused`).
   * Between attempts the batch is rewound and fetched again after an exponential backoff from
   * `publishFailureBackoffMs` up to `failureMaxBackoffMs`. Nothing of the batch is committed
   * meanwhile: no record is passed over without its disposition.
   * @default 5
   */
  publishFailureAttempts: number;
  /**
   * How long a partition stays paused after `publishFailureAttempts` failed publishes, in ms;
   * then the batch is tried again (a new round of attempts).
   * @default 300_000 (5 min)
   */
  publishFailurePauseMs: number;
  /**
   * Upper bound of the backoff after a failed publish, a batch that failed unexpectedly, or a
   * consumer restart after a crash, in ms. Each starts at `publishFailureBackoffMs` and doubles.
   * @default 60_000
   */
  failureMaxBackoffMs: number;
  /**
   * Create missing topics at subscribe: the retry and dead-letter topics with the partition count
   * of their source topic, and a missing source topic with `createPartitions`. Set false where
   * the application has no right to create topics (then create them with `ensureTopics`).
   * @default true
   */
  createTopics: boolean;
  /** Partitions of a source topic that `createTopics` has to create. @default 1 */
  createPartitions: number;
  /** Replication factor of topics `createTopics` creates. @default 1 */
  replicationFactor: number;
  /**
   * Most messages handed to `processBatch` at once. A fetched batch is processed in chunks of
   * this size; between chunks the consumer heartbeats, and a closing consumer stops (so a
   * graceful shutdown waits for one chunk, not a whole fetch). Each chunk costs the dedupe store
   * two round trips (one `claimMany`, one `completeMany`) whatever its size, so small chunks make
   * a fast consumer wait on the store (bench/README.md, "Kafka after session 5").
   * @default 500
   */
  batchSize: number;
  /**
   * Topic-partitions processed at once (kafkajs `partitionsConsumedConcurrently`). Each
   * partition stays strictly in order: its batches never overlap, and its offsets are committed
   * per partition. Raise it (up to the partitions a member owns) when handlers wait on I/O; the
   * processor, the dedupe store and the handlers then see that many batches at once. At most 64.
   * @default 1
   */
  partitionsConsumedConcurrently: number;
  /**
   * Whether a partition's next batch waits until the offset commit of the previous one is
   * acknowledged. `false`: the commit goes out in the background (the commits of the
   * partitions consumed at once share one OffsetCommit request, one in flight at a time) and
   * the partition moves on at once; `close` still sends every commit before leaving the group.
   * Either way a committed offset never passes a record without its disposition; without the
   * wait a crash or a lost partition may hand the new owner up to one more batch per partition
   * again (the dedupe store absorbs it). `true` costs one commit round trip per batch on the
   * hot path (35-55 ms per hop on the loaded 2-core bench machine).
   * @default false
   */
  awaitCommits: boolean;
  /**
   * Least time between two offset-commit requests of a subscription, in ms. The commits of the
   * batches that end meanwhile wait and go out together in one request (as many partitions as
   * have moved). `0` commits after each event-loop turn that ended a batch. Offsets are still
   * committed only after their records' dispositions; a larger interval only means more records
   * handled again (and deduplicated) after a crash: those of up to one interval. `close` and a
   * rebalance send what waits at once. With `awaitCommits`, each batch waits up to this long.
   * Each OffsetCommit costs the broker about as much CPU as a produce request.
   * @default 0
   */
  commitIntervalMs: number;
  /** @default 30_000 */
  sessionTimeoutMs: number;
  /** @default 3_000 */
  heartbeatIntervalMs: number;
  /** @default 60_000 */
  rebalanceTimeoutMs: number;
  /** Longest a fetch waits for new records, in ms; also bounds how long `close` waits for a fetch. @default 500 */
  maxWaitTimeMs: number;
  /** @default 1_048_576 */
  maxBytesPerPartition: number;
  /** How long `subscribe` waits for the first group join before it fails, in ms. @default 60_000 */
  joinTimeoutMs: number;
  /** How long `close` waits for in-flight work before it disconnects anyway, in ms. @default 30_000 */
  closeTimeoutMs: number;
}

export const DEFAULT_KAFKA_CONSUMER_OPTIONS: Readonly<KafkaConsumerOptions> = Object.freeze({
  fromBeginning: true,
  retryMode: 'topic',
  retryTopic: defaultRetryTopic,
  deadLetterTopic: defaultDeadLetterTopic,
  maxAttempts: 10,
  processorErrorDelayMs: 1000,
  maxDelayMs: 900_000,
  publishFailureBackoffMs: 1000,
  publishFailureAttempts: 5,
  publishFailurePauseMs: 300_000,
  failureMaxBackoffMs: 60_000,
  createTopics: true,
  createPartitions: 1,
  replicationFactor: 1,
  batchSize: 500,
  partitionsConsumedConcurrently: 1,
  awaitCommits: false,
  commitIntervalMs: 0,
  sessionTimeoutMs: 30_000,
  heartbeatIntervalMs: 3_000,
  rebalanceTimeoutMs: 60_000,
  maxWaitTimeMs: 500,
  maxBytesPerPartition: 1_048_576,
  joinTimeoutMs: 60_000,
  closeTimeoutMs: 30_000,
});

/** How the transport publishes. */
export interface KafkaProducerOptions {
  /**
   * In-flight produce requests per connection. The idempotent producer keeps order with up to
   * 5 in Kafka's protocol; kafkajs' implementation is only safe with 1.
   * @default 1
   */
  maxInFlightRequests: number;
  /**
   * Client retries of a failed produce request. Bounded so that `publish` fails (retriable)
   * instead of hanging while the cluster is away.
   * @default 10
   */
  retries: number;
  /** Broker-side wait for all in-sync replicas, in ms. @default 30_000 */
  ackTimeoutMs: number;
  /** Longest `publish` waits for an acknowledgement before it rejects, in ms. @default 60_000 */
  publishTimeoutMs: number;
  /** @default 'none' */
  compression: 'none' | 'gzip';
  /**
   * CloudEvents content mode of published records: `binary` (`ce_` headers, data as the value)
   * or `structured` (the event in the CloudEvents JSON format as the value,
   * `content-type: application/cloudevents+json`). Consumers read both.
   * @default 'binary'
   */
  contentMode: 'binary' | 'structured';
  /**
   * Concurrent publishes coalesce into one produce request: the first waits this long for others,
   * in ms (0 = those of the same event-loop turn; publishes arriving while a request is in flight
   * join the next one either way).
   * @default 0
   */
  lingerMs: number;
  /** Most records in one coalesced produce request. @default 500 */
  maxBatchRecords: number;
}

export const DEFAULT_KAFKA_PRODUCER_OPTIONS: Readonly<KafkaProducerOptions> = Object.freeze({
  maxInFlightRequests: 1,
  retries: 10,
  ackTimeoutMs: 30_000,
  publishTimeoutMs: 60_000,
  compression: 'none',
  contentMode: 'binary',
  lingerMs: 0,
  maxBatchRecords: 500,
});

/** Upper bound of `partitionsConsumedConcurrently` (more only adds memory and rebalance time). */
export const MAX_PARTITIONS_CONSUMED_CONCURRENTLY = 64;

const POSITIVE_INTS = [
  'maxAttempts',
  'publishFailureAttempts',
  'createPartitions',
  'replicationFactor',
  'batchSize',
  'partitionsConsumedConcurrently',
  'sessionTimeoutMs',
  'heartbeatIntervalMs',
  'rebalanceTimeoutMs',
  'maxBytesPerPartition',
  'joinTimeoutMs',
  'closeTimeoutMs',
] as const;
const NON_NEGATIVE = [
  'processorErrorDelayMs',
  'maxDelayMs',
  'publishFailureBackoffMs',
  'publishFailurePauseMs',
  'failureMaxBackoffMs',
  'maxWaitTimeMs',
  'commitIntervalMs',
] as const;

/** Merges over the defaults and validates once; throws {@link KafkaConfigError} naming the field. */
export function resolveConsumerOptions(
  partial: Partial<KafkaConsumerOptions> | undefined,
  defaults: Readonly<KafkaConsumerOptions> = DEFAULT_KAFKA_CONSUMER_OPTIONS,
): Readonly<KafkaConsumerOptions> {
  const o: KafkaConsumerOptions = { ...defaults };
  for (const [k, v] of Object.entries(partial ?? {})) {
    if (v !== undefined) (o as unknown as Record<string, unknown>)[k] = v;
  }
  for (const f of POSITIVE_INTS) {
    if (!Number.isInteger(o[f]) || o[f] < 1)
      throw new KafkaConfigError(f, 'must be an integer >= 1', o[f]);
  }
  for (const f of NON_NEGATIVE) {
    if (!Number.isFinite(o[f]) || o[f] < 0)
      throw new KafkaConfigError(f, 'must be a number >= 0', o[f]);
  }
  if (o.partitionsConsumedConcurrently > MAX_PARTITIONS_CONSUMED_CONCURRENTLY) {
    throw new KafkaConfigError(
      'partitionsConsumedConcurrently',
      `must be at most ${MAX_PARTITIONS_CONSUMED_CONCURRENTLY}`,
      o.partitionsConsumedConcurrently,
    );
  }
  if (o.retryMode !== 'topic' && o.retryMode !== 'in-place') {
    throw new KafkaConfigError('retryMode', "must be 'topic' or 'in-place'", o.retryMode);
  }
  if (typeof o.retryTopic !== 'function')
    throw new KafkaConfigError('retryTopic', 'must be a function');
  if (typeof o.deadLetterTopic !== 'function')
    throw new KafkaConfigError('deadLetterTopic', 'must be a function');
  if (typeof o.fromBeginning !== 'boolean')
    throw new KafkaConfigError('fromBeginning', 'must be a boolean');
  if (typeof o.awaitCommits !== 'boolean')
    throw new KafkaConfigError('awaitCommits', 'must be a boolean');
  if (typeof o.createTopics !== 'boolean')
    throw new KafkaConfigError('createTopics', 'must be a boolean');
  if (o.heartbeatIntervalMs >= o.sessionTimeoutMs) {
    throw new KafkaConfigError('heartbeatIntervalMs', 'must be lower than sessionTimeoutMs');
  }
  return Object.freeze(o);
}

/** Merges over the defaults and validates once; throws {@link KafkaConfigError} naming the field. */
export function resolveProducerOptions(
  partial: Partial<KafkaProducerOptions> | undefined,
): Readonly<KafkaProducerOptions> {
  const o: KafkaProducerOptions = { ...DEFAULT_KAFKA_PRODUCER_OPTIONS };
  for (const [k, v] of Object.entries(partial ?? {})) {
    if (v !== undefined) (o as unknown as Record<string, unknown>)[k] = v;
  }
  if (
    !Number.isInteger(o.maxInFlightRequests) ||
    o.maxInFlightRequests < 1 ||
    o.maxInFlightRequests > 5
  ) {
    throw new KafkaConfigError(
      'producer.maxInFlightRequests',
      'must be an integer from 1 to 5 (idempotent producer)',
    );
  }
  if (!Number.isInteger(o.retries) || o.retries < 1) {
    throw new KafkaConfigError(
      'producer.retries',
      'must be an integer >= 1 (the idempotent producer needs retries)',
    );
  }
  for (const f of ['ackTimeoutMs', 'publishTimeoutMs'] as const) {
    if (!Number.isFinite(o[f]) || o[f] <= 0)
      throw new KafkaConfigError(`producer.${f}`, 'must be a number > 0');
  }
  if (!Number.isFinite(o.lingerMs) || o.lingerMs < 0 || o.lingerMs > 1000) {
    throw new KafkaConfigError('producer.lingerMs', 'must be a number from 0 to 1000 (ms)');
  }
  if (!Number.isInteger(o.maxBatchRecords) || o.maxBatchRecords < 1) {
    throw new KafkaConfigError('producer.maxBatchRecords', 'must be an integer >= 1');
  }
  if (o.compression !== 'none' && o.compression !== 'gzip') {
    throw new KafkaConfigError('producer.compression', "must be 'none' or 'gzip'");
  }
  if (o.contentMode !== 'binary' && o.contentMode !== 'structured') {
    throw new KafkaConfigError('producer.contentMode', "must be 'binary' or 'structured'");
  }
  return Object.freeze(o);
}
