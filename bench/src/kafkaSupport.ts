/**
 * Raw kafkajs helpers shared by the Kafka benchmarks (topic set-up and tear-down, loading).
 */
import { toKafkaRecord } from '@backtrack/kafka/adapter';
import { Kafka, logLevel, Partitioners, type Admin } from 'kafkajs';
import type { EncodedMessage } from '@backtrack/core';
import { SERVICES } from './common.js';

export function rawKafka(clientId = 'bench-raw'): Kafka {
  return new Kafka({ brokers: SERVICES.kafka, clientId, logLevel: logLevel.NOTHING });
}

export async function createTopic(admin: Admin, topic: string, partitions = 1): Promise<void> {
  await admin.createTopics({
    waitForLeaders: true,
    topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }],
  });
}

/** Deletes the topics and consumer groups a benchmark made (best effort). */
export async function dropKafka(admin: Admin, topics: string[], groups: string[]): Promise<void> {
  const existing = new Set(await admin.listTopics().catch(() => [] as string[]));
  const doomed = topics.filter((t) => existing.has(t));
  if (doomed.length > 0) await admin.deleteTopics({ topics: doomed }).catch(() => undefined);
  if (groups.length > 0) await admin.deleteGroups(groups).catch(() => undefined);
}

/** Produces the messages with an idempotent producer in batches of `chunk` (set-up, not timed). */
export async function loadTopic(
  kafka: Kafka,
  topic: string,
  messages: readonly EncodedMessage[],
  chunk = 1000,
): Promise<void> {
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  try {
    for (let i = 0; i < messages.length; i += chunk) {
      await producer.send({
        topic,
        acks: -1,
        messages: messages.slice(i, i + chunk).map((m) => {
          const r = toKafkaRecord(m);
          return {
            key: r.key,
            value: r.value,
            headers: r.headers as Record<string, string | Buffer>,
          };
        }),
      });
    }
  } finally {
    await producer.disconnect();
  }
}
