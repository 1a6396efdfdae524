/** Shared helpers of the Kafka integration tests (real broker only). */
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import type {
  Disposition,
  EncodedMessage,
  IncomingMessage,
  MessageProcessor,
} from '@backtrack/core';
import {
  createKafkaTransport,
  type KafkaTransport,
  type KafkaTransportOptions,
} from '@backtrack/kafka';
import { uniqueName } from '../../../test/support/services.js';

export { uniqueName };

/** A transport on the test broker, with fast consumer settings. */
export function makeTransport(
  brokers: string[],
  overrides: Partial<KafkaTransportOptions> = {},
): KafkaTransport {
  return createKafkaTransport({
    brokers,
    clientId: 'backtrack-kafka-test',
    clientLogLevel: 'nothing',
    ...overrides,
    consumer: {
      sessionTimeoutMs: 10_000,
      heartbeatIntervalMs: 1_000,
      maxWaitTimeMs: 200,
      ...overrides.consumer,
    },
  });
}

/** A neutral message with a CloudEvents-looking set of headers and a JSON body. */
export function message(data: unknown, headers: Record<string, string> = {}): EncodedMessage {
  return {
    headers: {
      id: randomUUID(),
      source: '//backtrack/test',
      type: 'test.event',
      specversion: '1.0',
      time: new Date().toISOString(),
      schemaversion: '1',
      'content-type': 'application/json',
      ...headers,
    },
    body: new TextEncoder().encode(JSON.stringify(data)),
  };
}

export function bodyOf(m: IncomingMessage | EncodedMessage): unknown {
  const encoded = 'message' in m ? m.message : m;
  return JSON.parse(new TextDecoder().decode(encoded.body));
}

/** A processor from a function, recording every call. */
export function recordingProcessor(
  decide: (m: IncomingMessage) => Disposition | Promise<Disposition>,
): MessageProcessor & {
  calls: IncomingMessage[];
} {
  const calls: IncomingMessage[] = [];
  return {
    calls,
    async process(m) {
      calls.push(m);
      return decide(m);
    },
  };
}

export const ACK: Disposition = { kind: 'ack', outcome: 'handled' };

/** Polls until `check` returns true (or throws on timeout with `what`). */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** A raw kafkajs record as read back from a topic. */
export interface RawRecord {
  partition: number;
  offset: string;
  key: string | null;
  value: Buffer | null;
  headers: Record<string, string>;
}

/** Reads a topic from the beginning with raw kafkajs until `count` records arrived. */
export async function readTopic(
  brokers: string[],
  topic: string,
  count: number,
  timeoutMs = 30_000,
): Promise<RawRecord[]> {
  const kafka = new Kafka({
    brokers,
    clientId: 'backtrack-test-reader',
    logLevel: logLevel.NOTHING,
  });
  const consumer = kafka.consumer({
    groupId: `reader-${randomUUID()}`,
    sessionTimeout: 10_000,
    heartbeatInterval: 1000,
    maxWaitTimeInMs: 200,
  });
  const records: RawRecord[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message: m }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(m.headers ?? {}))
          if (v !== undefined) headers[k] = v.toString();
        records.push({
          partition,
          offset: m.offset,
          key: m.key?.toString() ?? null,
          value: m.value,
          headers,
        });
      },
    });
    await waitFor(
      () => records.length >= count,
      `${count} records on ${topic} (got ${records.length})`,
      timeoutMs,
    );
    return records;
  } finally {
    await consumer.disconnect();
  }
}

/** Committed offsets of a group on a topic, by partition. */
export async function committedOffsets(
  brokers: string[],
  group: string,
  topic: string,
): Promise<Record<number, string>> {
  const kafka = new Kafka({
    brokers,
    clientId: 'backtrack-test-admin',
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [t] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return Object.fromEntries((t?.partitions ?? []).map((p) => [p.partition, p.offset]));
  } finally {
    await admin.disconnect();
  }
}
