import type { EncodedMessage } from '@backtrack/core';
import type { ConsumedRecord } from '../client/KafkaClient.js';
import {
  BACKTRACK_HEADERS,
  fromKafkaRecord,
  headerToPositiveInt,
  headerToString,
} from './kafkaBinding.js';

/** A record read from a dead-letter topic, with why it is there. */
export interface DeadLetter {
  /** The original message: its CloudEvents headers and the original bytes, unchanged. */
  message: EncodedMessage;
  /** The original Kafka key. */
  key: string | null;
  /** Why it was dead-lettered (the pipeline's reason text). */
  reason: string;
  /** The stable code (`BT_ERR_*`). */
  code: string;
  /** The error message behind it, if any. */
  error?: string;
  /** The topic it was first consumed from. */
  originalTopic?: string;
  originalPartition?: number;
  originalOffset?: string;
  /** The consumer group that dead-lettered it. */
  group?: string;
  /** The attempt on which it was dead-lettered. */
  attempt: number;
  /** ISO time it was dead-lettered. */
  deadLetteredAt?: string;
  /** Where it is in the dead-letter topic. */
  partition: number;
  offset: string;
}

/** Reads a dead-letter record written by the Kafka transport. Never throws. */
export function readDeadLetter(record: ConsumedRecord, partition: number): DeadLetter {
  const h = record.headers;
  const originalPartition = headerToString(h[BACKTRACK_HEADERS.originalPartition]);
  const dl: DeadLetter = {
    message: fromKafkaRecord(record),
    key: record.key === null ? null : record.key.toString('utf8'),
    reason: headerToString(h[BACKTRACK_HEADERS.reason]) ?? 'unknown',
    code: headerToString(h[BACKTRACK_HEADERS.deadLetterCode]) ?? 'unknown',
    attempt: headerToPositiveInt(h[BACKTRACK_HEADERS.attempt]) ?? 1,
    partition,
    offset: record.offset,
  };
  const error = headerToString(h[BACKTRACK_HEADERS.error]);
  if (error !== undefined) dl.error = error;
  const originalTopic = headerToString(h[BACKTRACK_HEADERS.originalTopic]);
  if (originalTopic !== undefined) dl.originalTopic = originalTopic;
  if (originalPartition !== undefined && /^\d+$/.test(originalPartition))
    dl.originalPartition = Number(originalPartition);
  const originalOffset = headerToString(h[BACKTRACK_HEADERS.originalOffset]);
  if (originalOffset !== undefined) dl.originalOffset = originalOffset;
  const group = headerToString(h[BACKTRACK_HEADERS.group]);
  if (group !== undefined) dl.group = group;
  const at = headerToString(h[BACKTRACK_HEADERS.deadLetteredAt]);
  if (at !== undefined) dl.deadLetteredAt = at;
  return dl;
}
