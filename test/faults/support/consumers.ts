/**
 * In-process consumers for the scenarios whose consumer survives the fault (a broker or Redis
 * restart): the real transport, core's pipeline with the RedisDedupeStore, a spy, and a handler
 * whose effect the scenario supplies (written outside the process: Redis or PostgreSQL).
 */
import { createConsumerPipeline, handle, type Subscription, type Transport } from '@backtrack/core';
import { createKafkaTransport, type KafkaTransport } from '@backtrack/kafka';
import { createRabbitTransport, type RabbitTransport } from '@backtrack/rabbitmq';
import { createRedisClient, createRedisClusterClient, RedisDedupeStore } from '@backtrack/redis';
import { serviceUrl } from '../../support/services.js';
import { kafkaBrokers, rabbitNames, RawAmqp, rawKafka } from './brokers.js';
import { FaultOrderPlaced } from './events.js';
import { ConsumerSpy } from '@backtrack/core/testing';

export type TransportName = 'kafka' | 'rabbitmq';

export interface HandlerCall {
  messageId: string;
  idempotencyKey: string;
  startedAt: number;
}

export interface TestConsumer {
  transportName: TransportName;
  topic: string;
  group: string;
  transport: Transport;
  subscription: Subscription;
  spy: ConsumerSpy;
  calls: HandlerCall[];
  /** Closes the subscription, the transport and the Redis client, and deletes topics/queues. */
  close(): Promise<void>;
}

export async function openTransport(
  name: TransportName,
  label: string,
  publishTimeoutMs = 20_000,
): Promise<Transport> {
  if (name === 'kafka') {
    return createKafkaTransport({
      brokers: kafkaBrokers(),
      clientId: label,
      clientLogLevel: 'nothing',
      producer: { publishTimeoutMs, retries: 5 },
    });
  }
  return createRabbitTransport({
    url: serviceUrl('rabbitmq'),
    connectionName: label,
    reconnect: { initialDelayMs: 100, maxDelayMs: 1_000 },
    publishTimeoutMs,
    consumer: { prefetch: 20, retryDelaysMs: [200, 1_000], shutdownTimeoutMs: 5_000 },
  });
}

export async function startConsumer(options: {
  transport: TransportName;
  topic: string;
  group: string;
  dedupePrefix: string;
  /** Seed nodes of a Redis Cluster for the dedupe store (default: the shared Redis). */
  dedupeClusterNodes?: string[];
  effect: (call: HandlerCall) => Promise<void>;
}): Promise<TestConsumer> {
  const transport = await openTransport(options.transport, `${options.group}-consumer`);
  const redis = options.dedupeClusterNodes
    ? createRedisClusterClient(options.dedupeClusterNodes)
    : createRedisClient(serviceUrl('redis'));
  // Scenario 3 takes Redis (or a cluster node) away on purpose: the store reports it
  // (StoreUnavailableError); the client's own connection errors are expected noise.
  redis.on('error', () => undefined);
  const spy = new ConsumerSpy();
  const calls: HandlerCall[] = [];
  const pipeline = createConsumerPipeline(
    {
      name: options.group,
      retry: { attempts: 20, initialDelayMs: 100, maxDelayMs: 1_000 },
      idempotency: { leaseMs: 3_000, inProgressDelayMs: 200, unavailableDelayMs: 500 },
      handlers: [
        handle(FaultOrderPlaced, async ({ envelope, idempotencyKey }) => {
          const call = { messageId: envelope.id, idempotencyKey, startedAt: Date.now() };
          calls.push(call);
          await options.effect(call);
        }),
      ],
    },
    { dedupeStore: new RedisDedupeStore({ keyPrefix: options.dedupePrefix }, { redis }), spy },
  );
  if (options.transport === 'kafka') {
    await (transport as KafkaTransport).ensureTopics({ topics: [options.topic], partitions: 2 });
  }
  const subscription =
    options.transport === 'kafka'
      ? await (transport as KafkaTransport).subscribe({
          topics: [options.topic],
          group: options.group,
          processor: pipeline,
          sessionTimeoutMs: 10_000,
          heartbeatIntervalMs: 1_000,
          maxWaitTimeMs: 100,
        })
      : await transport.subscribe({
          topics: [options.topic],
          group: options.group,
          processor: pipeline,
        });
  const names =
    options.transport === 'rabbitmq' ? rabbitNames(transport as RabbitTransport) : undefined;
  return {
    transportName: options.transport,
    topic: options.topic,
    group: options.group,
    transport,
    subscription,
    spy,
    calls,
    async close() {
      await subscription.close().catch(() => undefined);
      await transport.close().catch(() => undefined);
      redis.disconnect();
      await deleteTopology(options.transport, options.topic, names);
    },
  };
}

export async function deleteTopology(
  transport: TransportName,
  topic: string,
  names?: { queues: string[]; exchanges: string[] },
): Promise<void> {
  if (transport === 'kafka') {
    const admin = rawKafka().admin();
    await admin.connect().catch(() => undefined);
    await admin
      .deleteTopics({ topics: [topic, `${topic}.retry`, `${topic}.dlq`] })
      .catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
  } else if (names) {
    const raw = await RawAmqp.open().catch(() => undefined);
    await raw?.remove(names.queues, names.exchanges);
    await raw?.close();
  }
}
