/**
 * Raw broker clients for the fault suite: publishing bytes and headers no Backtrack publisher
 * would ever write (a foreign or broken producer), and reading dead-letter destinations back.
 */
import { randomUUID } from 'node:crypto';
import amqplib, { type ChannelModel, type GetMessage, type Options } from 'amqplib';
import { Kafka, logLevel, type IHeaders } from 'kafkajs';
import type { ConsumedRecord } from '@backtrack/kafka/adapter';
import { serviceUrl } from '../../support/services.js';
import { sleep } from './child.js';

export const kafkaBrokers = (): string[] =>
  serviceUrl('kafka')
    .split(',')
    .map((b) => b.trim());

export function rawKafka(): Kafka {
  return new Kafka({
    brokers: kafkaBrokers(),
    clientId: 'backtrack-faults-raw',
    logLevel: logLevel.NOTHING,
  });
}

export interface RawKafkaRecord {
  key: string;
  value: Buffer | null;
  headers: IHeaders;
}

export async function produceRaw(topic: string, records: RawKafkaRecord[]): Promise<void> {
  const producer = rawKafka().producer({ allowAutoTopicCreation: false });
  await producer.connect();
  try {
    await producer.send({ topic, acks: -1, messages: records });
  } finally {
    await producer.disconnect();
  }
}

/** Reads `topic` from the beginning until `count` records arrived or `timeoutMs` passed. */
export async function readKafkaTopic(
  topic: string,
  count: number,
  timeoutMs = 30_000,
): Promise<{ record: ConsumedRecord; partition: number }[]> {
  const consumer = rawKafka().consumer({
    groupId: `faults-reader-${randomUUID()}`,
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
    maxWaitTimeInMs: 200,
  });
  const out: { record: ConsumedRecord; partition: number }[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const headers: ConsumedRecord['headers'] = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) {
          if (v !== undefined) headers[k] = v as ConsumedRecord['headers'][string];
        }
        out.push({
          partition,
          record: {
            offset: message.offset,
            key: message.key,
            value: message.value,
            headers,
            timestamp: message.timestamp,
          },
        });
      },
    });
    const until = Date.now() + timeoutMs;
    while (out.length < count && Date.now() < until) await sleep(100);
    return out;
  } finally {
    await consumer.disconnect();
  }
}

export class RawAmqp {
  private constructor(readonly model: ChannelModel) {}

  static async open(): Promise<RawAmqp> {
    return new RawAmqp(await amqplib.connect(serviceUrl('rabbitmq')));
  }

  async publish(
    exchange: string,
    messages: { routingKey: string; body: Buffer; options: Options.Publish }[],
  ): Promise<void> {
    const channel = await this.model.createConfirmChannel();
    try {
      for (const m of messages) channel.publish(exchange, m.routingKey, m.body, m.options);
      await channel.waitForConfirms();
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  /** Takes (acknowledges) messages from `queue` until `count` arrived or `timeoutMs` passed. */
  async take(queue: string, count: number, timeoutMs = 30_000): Promise<GetMessage[]> {
    const channel = await this.model.createChannel();
    const out: GetMessage[] = [];
    const until = Date.now() + timeoutMs;
    try {
      while (out.length < count && Date.now() < until) {
        const m = await channel.get(queue, { noAck: true });
        if (m) out.push(m);
        else await sleep(50);
      }
      return out;
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  async messageCount(queue: string): Promise<number> {
    const channel = await this.model.createChannel();
    try {
      return (await channel.checkQueue(queue)).messageCount;
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  /** Deletes queues and exchanges (test clean-up; missing ones are fine). */
  async remove(queues: string[], exchanges: string[]): Promise<void> {
    for (const q of queues) {
      const ch = await this.model.createChannel();
      await ch.deleteQueue(q).catch(() => undefined);
      await ch.close().catch(() => undefined);
    }
    for (const x of exchanges) {
      const ch = await this.model.createChannel();
      await ch.deleteExchange(x).catch(() => undefined);
      await ch.close().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await this.model.close().catch(() => undefined);
  }
}

/** Queues and exchanges a RabbitMQ transport declared for its subscriptions (for clean-up). */
export function rabbitNames(transport: {
  subscriptions: Iterable<{
    topology: { topology: { queues?: { name: string }[]; exchanges?: { name: string }[] } };
  }>;
}): { queues: string[]; exchanges: string[] } {
  const queues: string[] = [];
  const exchanges: string[] = [];
  for (const s of transport.subscriptions) {
    for (const q of s.topology.topology.queues ?? []) queues.push(q.name);
    for (const e of s.topology.topology.exchanges ?? []) exchanges.push(e.name);
  }
  return { queues, exchanges };
}
