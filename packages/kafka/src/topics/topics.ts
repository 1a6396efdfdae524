import { accessErrorOf } from '@backtrack/core/adapter';
import type { KafkaAdminClient, TopicSpec } from '../client/KafkaClient.js';
import { KAFKA_ERROR_CODES, KafkaConfigError, KafkaError } from '../errors.js';

/** Names the retry topic of a source topic for a consumer group. */
export type TopicNamer = (topic: string, group: string) => string;

/** Default retry topic: `<topic>.retry`, shared by every group (records carry their group). */
export const defaultRetryTopic: TopicNamer = (topic) => `${topic}.retry`;
/** Default dead-letter topic: `<topic>.dlq`. */
export const defaultDeadLetterTopic: TopicNamer = (topic) => `${topic}.dlq`;

/** What {@link ensureTopics} creates. */
export interface EnsureTopicsOptions {
  /** The source topics. */
  topics: string[];
  /**
   * Partitions of each source topic (and of its retry topic, so a key keeps one retry partition).
   * @default 3
   */
  partitions?: number;
  /** @default 1 */
  replicationFactor?: number;
  /** Create `<topic>.retry` too (named by `retryTopic`). @default true */
  retry?: boolean;
  /** Create `<topic>.dlq` too (named by `deadLetterTopic`). @default true */
  deadLetter?: boolean;
  /** Consumer group passed to the namers (only matters for custom namers). @default '' */
  group?: string;
  retryTopic?: TopicNamer;
  deadLetterTopic?: TopicNamer;
  /** Topic-level configs for every created topic, for example `{ 'min.insync.replicas': '2' }`. */
  config?: Record<string, string>;
}

/** Validates the options of {@link ensureTopics} and lists the topic specs it would create. */
export function topicSpecs(options: EnsureTopicsOptions): TopicSpec[] {
  const partitions = options.partitions ?? 3;
  const replicationFactor = options.replicationFactor ?? 1;
  if (!Array.isArray(options.topics) || options.topics.length === 0) {
    throw new KafkaConfigError('topics', 'must list at least one topic');
  }
  for (const t of options.topics) {
    if (typeof t !== 'string' || !/^[A-Za-z0-9._-]{1,249}$/.test(t)) {
      throw new KafkaConfigError('topics', `"${String(t)}" is not a valid Kafka topic name`);
    }
  }
  if (!Number.isInteger(partitions) || partitions < 1)
    throw new KafkaConfigError('partitions', 'must be an integer >= 1');
  if (!Number.isInteger(replicationFactor) || replicationFactor < 1) {
    throw new KafkaConfigError('replicationFactor', 'must be an integer >= 1');
  }
  const group = options.group ?? '';
  const specs = new Map<string, TopicSpec>();
  const add = (topic: string) => {
    const spec: TopicSpec = { topic, partitions, replicationFactor };
    if (options.config) spec.config = options.config;
    specs.set(topic, spec);
  };
  for (const t of options.topics) {
    add(t);
    if (options.retry ?? true) add((options.retryTopic ?? defaultRetryTopic)(t, group));
    if (options.deadLetter ?? true)
      add((options.deadLetterTopic ?? defaultDeadLetterTopic)(t, group));
  }
  return [...specs.values()];
}

/**
 * Creates the topics a consumer or saga needs, with their retry and dead-letter topics, through
 * the admin client. Idempotent: topics that exist are left as they are (their partition count is
 * not changed). Returns the names of every topic that now exists for these options.
 *
 * @throws {KafkaConfigError} on invalid options (before any call to the broker).
 * @throws {KafkaError} `BT_ERR_KAFKA_TOPIC_ADMIN_FAILED` when the broker refuses.
 */
export async function ensureTopics(
  admin: KafkaAdminClient,
  options: EnsureTopicsOptions,
): Promise<string[]> {
  const specs = topicSpecs(options);
  try {
    const existing = new Set(await admin.listTopics());
    await admin.createTopics(specs.filter((s) => !existing.has(s.topic)));
  } catch (cause) {
    throw (
      accessErrorOf(cause) ??
      new KafkaError(
        KAFKA_ERROR_CODES.TOPIC_ADMIN_FAILED,
        `creating topics failed: ${String((cause as Error)?.message ?? cause)}`,
        {
          cause,
          retriable: true,
          details: { topics: specs.map((s) => s.topic) },
        },
      )
    );
  }
  return specs.map((s) => s.topic);
}
