/**
 * The raw clients under the hand-written order saga: kafkajs and amqplib, set up the way a team
 * with the same guarantees would (Kafka: idempotent producer with acks=all, consumer groups,
 * offsets committed after the batch is handled; RabbitMQ: durable queues, persistent and
 * mandatory messages, publisher confirms, manual acks after the batch is handled).
 */
import amqp, {
  type Channel,
  type ChannelModel,
  type ConfirmChannel,
  type ConsumeMessage,
} from 'amqplib';
import { Kafka, logLevel, Partitioners, type Consumer, type Producer } from 'kafkajs';

export interface Outgoing {
  topic: string;
  key: string;
  value: Buffer;
  headers?: Record<string, string>;
}

export interface Delivery {
  key: string;
  value: Buffer;
}

export interface Bus {
  /** Resolves once the broker acknowledged every message. */
  send(batch: readonly Outgoing[]): Promise<void>;
  /**
   * Hands `group` the messages of `topics` in batches; a partition's (queue's) next batch comes
   * after `onBatch` resolved, and only then are its messages committed (acked). A rejection
   * hands the same messages again.
   */
  consume(
    group: string,
    topics: readonly string[],
    onBatch: (batch: Delivery[]) => Promise<void>,
  ): Promise<void>;
  close(): Promise<void>;
  /** Deletes what the run created on the broker. */
  destroy(): Promise<void>;
}

export async function kafkaBus(
  brokers: string[],
  prefix: string,
  topics: readonly string[],
  partitions: number,
): Promise<Bus> {
  const kafka = new Kafka({ brokers, clientId: prefix, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    waitForLeaders: true,
    topics: topics.map((t) => ({
      topic: `${prefix}.${t}`,
      numPartitions: partitions,
      replicationFactor: 1,
    })),
  });
  await new Promise((r) => setTimeout(r, 1_000)); // let the new leaders be known (as the example does)
  const producer: Producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  const consumers: Consumer[] = [];
  const groups: string[] = [];
  return {
    async send(batch) {
      const byTopic = new Map<
        string,
        { key: string; value: Buffer; headers?: Record<string, string> }[]
      >();
      for (const m of batch) {
        const topic = `${prefix}.${m.topic}`;
        let list = byTopic.get(topic);
        if (list === undefined) byTopic.set(topic, (list = []));
        list.push(
          m.headers
            ? { key: m.key, value: m.value, headers: m.headers }
            : { key: m.key, value: m.value },
        );
      }
      await producer.sendBatch({
        acks: -1,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      });
    },
    async consume(group, readTopics, onBatch) {
      const groupId = `${prefix}.${group}`;
      groups.push(groupId);
      const consumer = kafka.consumer({ groupId });
      consumers.push(consumer);
      await consumer.connect();
      await consumer.subscribe({
        topics: readTopics.map((t) => `${prefix}.${t}`),
        fromBeginning: true,
      });
      const joined = new Promise<void>((resolve) =>
        consumer.on(consumer.events.GROUP_JOIN, () => resolve()),
      );
      await consumer.run({
        partitionsConsumedConcurrently: partitions,
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary }) => {
          if (batch.messages.length === 0) return;
          await onBatch(
            batch.messages.map((m) => ({
              key: m.key?.toString() ?? '',
              value: m.value ?? Buffer.alloc(0),
            })),
          );
          resolveOffset(batch.messages.at(-1)!.offset);
          await commitOffsetsIfNecessary();
        },
      });
      await joined;
    },
    async close() {
      await Promise.allSettled(consumers.map((c) => c.disconnect()));
      await producer.disconnect();
    },
    async destroy() {
      const existing = new Set(await admin.listTopics());
      const doomed = topics.map((t) => `${prefix}.${t}`).filter((t) => existing.has(t));
      await admin.deleteTopics({ topics: doomed }).catch(() => undefined);
      await admin.deleteGroups(groups).catch(() => undefined);
      await admin.disconnect();
    },
  };
}

/**
 * RabbitMQ: one topic exchange for the run, routing key = topic name, one durable queue per
 * group bound to the topics it reads (quorum by default, like Backtrack's). Deliveries are gathered into batches (what arrived before
 * the next turn of the event loop, while the previous batch is handled): one batch at a time per
 * queue, acked with one multiple-ack once it is handled.
 */
export async function rabbitBus(
  url: string,
  prefix: string,
  prefetch: number,
  queueType: 'quorum' | 'classic' = 'quorum',
): Promise<Bus> {
  const connection: ChannelModel = await amqp.connect(url);
  const exchange = `${prefix}.x`;
  const publishing: ConfirmChannel = await connection.createConfirmChannel();
  await publishing.assertExchange(exchange, 'topic', { durable: true });
  publishing.on('return', () => undefined); // mandatory: an unroutable message would come back
  const channels: Channel[] = [];
  const queues: string[] = [];
  return {
    async send(batch) {
      await Promise.all(
        batch.map(
          (m) =>
            new Promise<void>((resolve, reject) => {
              publishing.publish(
                exchange,
                m.topic,
                m.value,
                { persistent: true, mandatory: true, headers: { key: m.key, ...m.headers } },
                (error) => (error ? reject(error as Error) : resolve()),
              );
            }),
        ),
      );
    },
    async consume(group, readTopics, onBatch) {
      const queue = `${prefix}.${group}`;
      queues.push(queue);
      const channel = await connection.createChannel();
      channels.push(channel);
      // Quorum, as Backtrack's queues are by default (RabbitMQ's durable queue type).
      await channel.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': queueType } });
      for (const topic of readTopics) await channel.bindQueue(queue, exchange, topic);
      await channel.prefetch(prefetch);
      let waiting: ConsumeMessage[] = [];
      let busy = false;
      const drain = async () => {
        busy = true;
        while (waiting.length > 0) {
          const batch = waiting;
          waiting = [];
          try {
            await onBatch(
              batch.map((m) => ({
                key: String(m.properties.headers?.key ?? ''),
                value: m.content,
              })),
            );
            channel.ack(batch.at(-1)!, true);
          } catch {
            channel.nack(batch.at(-1)!, true, true); // handed again
          }
        }
        busy = false;
      };
      await channel.consume(queue, (m) => {
        if (m === null) return;
        waiting.push(m);
        if (!busy) {
          busy = true;
          setImmediate(() => void drain());
        }
      });
    },
    async close() {
      await Promise.allSettled(channels.map((c) => c.close()));
      await publishing.close().catch(() => undefined);
    },
    async destroy() {
      const channel = await connection.createChannel();
      for (const q of queues) await channel.deleteQueue(q).catch(() => undefined);
      await channel.deleteExchange(exchange).catch(() => undefined);
      await channel.close().catch(() => undefined);
      await connection.close();
    },
  };
}
