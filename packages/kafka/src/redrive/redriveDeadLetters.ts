import { randomUUID } from 'node:crypto';
import type { Logger } from '@backtrack/core';
import type {
  ConsumedBatch,
  ConsumedRecord,
  KafkaAdminClient,
  KafkaClient,
  ProducerRecord,
  TopicRecords,
} from '../client/KafkaClient.js';
import {
  readDeadLetter,
  restoreNullHeaders,
  writableHeaders,
  type DeadLetter,
} from '../envelope/deadLetter.js';
import { BACKTRACK_HEADERS } from '../envelope/kafkaBinding.js';
import { KAFKA_ERROR_CODES, KafkaConfigError, KafkaError } from '../errors.js';
import { messageOf, type KafkaPublisher } from '../publisher/KafkaPublisher.js';

/** Options of {@link redriveDeadLetters}. */
export interface RedriveOptions {
  /** The dead-letter topic to read. */
  from: string;
  /**
   * Where to publish each dead letter again. @default the topic it was first consumed from
   * (its `x-backtrack-original-topic` header); a dead letter without one is skipped.
   */
  to?: string;
  /** Only dead letters for which this returns true are re-driven; the others are skipped. */
  filter?: (deadLetter: DeadLetter) => boolean;
  /** At most this many dead letters are re-driven. @default unlimited */
  limit?: number;
  /**
   * A consumer group that remembers how far earlier runs got: re-driven and skipped records are
   * committed, so a later run with the same group starts after them. Without it, every run reads
   * the topic from its beginning with a throw-away group (re-driving twice is harmless for
   * idempotent consumers: the message keeps its envelope id).
   */
  group?: string;
  /** Longest the run may take, in ms. @default 60_000 */
  timeoutMs?: number;
}

/** What {@link redriveDeadLetters} did. */
export interface RedriveResult {
  redriven: number;
  skipped: number;
  /** Re-driven count per destination topic. */
  byTopic: Record<string, number>;
  /** Whether every record present when the run started was looked at (false: limit or timeout). */
  complete: boolean;
}

/** What {@link redriveDeadLetters} needs of a transport. */
export interface RedriveTarget {
  readonly client: KafkaClient;
  readonly publisher: KafkaPublisher;
}

/**
 * Re-publishes dead letters to their source topic (or `to`), with the original key, headers and
 * bytes; Backtrack's dead-letter headers are dropped and `x-backtrack-redriven-from` is added.
 * Reads up to the end of the topic as it was when the run started. Each record is acknowledged
 * by the broker before its dead-letter offset is committed.
 *
 * @example
 * ```ts
 * const result = await redriveDeadLetters(transport, { from: 'orders.dlq', filter: (d) => d.code === 'BT_ERR_SCHEMA_VERSION_UNKNOWN' });
 * ```
 * @throws {KafkaConfigError} on invalid options.
 * @throws {KafkaError} `BT_ERR_KAFKA_REDRIVE_FAILED` when publishing failed; `details` has the counts so far.
 */
export async function redriveDeadLetters(
  target: RedriveTarget,
  options: RedriveOptions,
  logger?: Logger,
): Promise<RedriveResult> {
  const timeoutMs = resolveRedriveOptions(options);
  const result: RedriveResult = { redriven: 0, skipped: 0, byTopic: {}, complete: false };
  const { client } = target;
  const admin = client.admin();
  await admin.connect();
  const ephemeral = options.group === undefined;
  const groupId = options.group ?? `backtrack-redrive-${options.from}-${randomUUID()}`;
  try {
    const { ends, pending } = await redriveWindow(admin, options.from, groupId, ephemeral);
    if (pending.size === 0 || options.limit === 0) {
      result.complete = pending.size === 0;
      return result;
    }
    await consumeWindow(target, options, groupId, { ends, pending }, result, timeoutMs);
    logger?.info({ from: options.from, ...result }, 'dead letters re-driven');
    return result;
  } catch (cause) {
    if (cause instanceof KafkaConfigError) throw cause;
    throw new KafkaError(
      KAFKA_ERROR_CODES.REDRIVE_FAILED,
      `re-driving ${options.from} failed: ${messageOf(cause)}`,
      {
        cause,
        retriable: true,
        details: { from: options.from, redriven: result.redriven, skipped: result.skipped },
      },
    );
  } finally {
    if (ephemeral) await admin.deleteGroups([groupId]).catch(() => {});
    await admin.disconnect().catch(() => {});
  }
}

/** Checks the options, naming the bad field; returns the timeout with its default. */
function resolveRedriveOptions(options: RedriveOptions): number {
  if (typeof options.from !== 'string' || options.from.length === 0)
    throw new KafkaConfigError('from', 'must name the dead-letter topic');
  if (options.limit !== undefined && (!Number.isInteger(options.limit) || options.limit < 0)) {
    throw new KafkaConfigError('limit', 'must be an integer >= 0');
  }
  return options.timeoutMs ?? 60_000;
}

/** The records a run looks at: per partition, up to `ends`; `pending` has the partitions left. */
interface RedriveWindow {
  ends: Map<number, bigint>;
  pending: Set<number>;
}

/** Where to stop: the end of each partition now. Where to start: the group's offsets. */
async function redriveWindow(
  admin: KafkaAdminClient,
  from: string,
  groupId: string,
  ephemeral: boolean,
): Promise<RedriveWindow> {
  const ends = new Map((await admin.topicOffsets(from)).map((p) => [p.partition, BigInt(p.high)]));
  const starts = new Map<number, bigint>();
  if (!ephemeral) {
    for (const p of await admin.groupOffsets(groupId, from))
      if (BigInt(p.offset) >= 0n) starts.set(p.partition, BigInt(p.offset));
  }
  const low = new Map((await admin.topicOffsets(from)).map((p) => [p.partition, BigInt(p.low)]));
  const pending = new Set<number>();
  for (const [partition, high] of ends) {
    const start = starts.get(partition) ?? low.get(partition) ?? 0n;
    if (start < high) pending.add(partition);
  }
  return { ends, pending };
}

/**
 * Consumes the window with the group, re-driving batch by batch, until every pending partition
 * reached its end, the limit is reached, a publish fails (thrown) or `timeoutMs` passed.
 * Adds to `result`.
 */
async function consumeWindow(
  { client, publisher }: RedriveTarget,
  options: RedriveOptions,
  groupId: string,
  { ends, pending }: RedriveWindow,
  result: RedriveResult,
  timeoutMs: number,
): Promise<void> {
  const consumer = client.consumer({
    groupId,
    fromBeginning: true,
    sessionTimeoutMs: 30_000,
    heartbeatIntervalMs: 3_000,
    rebalanceTimeoutMs: 60_000,
    maxWaitTimeMs: 250,
    maxBytesPerPartition: 1_048_576,
    partitionsConsumedConcurrently: 1,
    commitIntervalMs: 0,
  });
  let finish!: (error?: unknown) => void;
  const finished = new Promise<void>((resolve, reject) => {
    finish = (error) => (error === undefined ? resolve() : reject(error));
  });
  let done = false;
  const limitReached = () => options.limit !== undefined && result.redriven >= options.limit;

  await consumer.connect();
  try {
    await consumer.subscribe([options.from]);
    await consumer.run(async (batch, controls) => {
      if (done) return;
      const end = ends.get(batch.partition) ?? 0n;
      const sorted = sortBatch(batch, end, options, result.redriven);
      if (sorted.outgoing.length > 0) {
        try {
          await publisher.sendRecords(sorted.outgoing);
        } catch (error) {
          done = true;
          finish(error);
          return;
        }
      }
      result.redriven += sorted.redriven;
      result.skipped += sorted.skipped;
      for (const [t, n] of Object.entries(sorted.byTopic))
        result.byTopic[t] = (result.byTopic[t] ?? 0) + n;
      const { lastDone } = sorted;
      // Commit only after the broker acknowledged the re-driven records.
      if (lastDone !== undefined) {
        controls.resolveOffset(lastDone);
        await controls.commit((BigInt(lastDone) + 1n).toString());
        if (BigInt(lastDone) + 1n >= end) pending.delete(batch.partition);
      }
      if (pending.size === 0 || limitReached()) {
        result.complete = pending.size === 0;
        done = true;
        finish();
      }
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      finished,
      new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          done = true;
          resolve();
        }, timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
  } finally {
    await consumer.stop().catch(() => {});
    await consumer.disconnect().catch(() => {});
  }
}

/** One batch sorted: the records to publish per topic, the counts, and the last offset looked at. */
interface SortedBatch {
  outgoing: TopicRecords[];
  lastDone: string | undefined;
  redriven: number;
  skipped: number;
  byTopic: Record<string, number>;
}

/**
 * Sorts a batch's records below `end` into re-driven (by destination) and skipped ones, stopping
 * at the limit (`redrivenSoFar` counts the earlier batches).
 */
function sortBatch(
  batch: ConsumedBatch,
  end: bigint,
  options: RedriveOptions,
  redrivenSoFar: number,
): SortedBatch {
  const sorted: SortedBatch = {
    outgoing: [],
    lastDone: undefined,
    redriven: 0,
    skipped: 0,
    byTopic: {},
  };
  const { outgoing, byTopic } = sorted;
  for (const record of batch.records) {
    if (BigInt(record.offset) >= end) break;
    if (options.limit !== undefined && redrivenSoFar + sorted.redriven >= options.limit) break;
    const dl = readDeadLetter(record, batch.partition);
    const destination = options.to ?? dl.originalTopic;
    if (destination === undefined || (options.filter && !options.filter(dl))) {
      sorted.skipped++;
    } else {
      let b = outgoing.find((o) => o.topic === destination);
      if (!b) outgoing.push((b = { topic: destination, records: [] }));
      b.records.push(redriveRecord(record, options.from));
      byTopic[destination] = (byTopic[destination] ?? 0) + 1;
      sorted.redriven++;
    }
    sorted.lastDone = record.offset;
  }
  return sorted;
}

/**
 * The original record again: key, value (null for a tombstone) and headers byte for byte; headers
 * that had no value stay named in `x-backtrack-null-headers` (kafkajs cannot write a null header
 * value), which the consumer runner reads back as null.
 */
function redriveRecord(record: ConsumedRecord, from: string): ProducerRecord {
  const headers = writableHeaders(restoreNullHeaders(record.headers));
  headers[BACKTRACK_HEADERS.redrivenFrom] = from;
  return { key: record.key, value: record.value, headers };
}
