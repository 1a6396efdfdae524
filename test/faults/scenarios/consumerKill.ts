/**
 * Scenario 1: the consumer process is killed with SIGKILL in the middle of a batch (Kafka: a
 * fetched batch whose offsets are not committed; RabbitMQ: up to `prefetch` unacknowledged
 * deliveries), several times in a row, each time restarted. Every message must end applied
 * exactly once in effect: redeliveries are absorbed by the Redis dedupe store (done marks) and,
 * for a handler killed between its effect and its dedupe mark, by its idempotency key. With
 * `store: 'redis-cluster'` the dedupe store is the private 3-master Redis Cluster (default key
 * prefix scheme, no hash tag: a batch's claims and marks go to all three masters at once).
 */
import { Redis } from 'ioredis';
import { expect, it } from 'vitest';
import { createKafkaTransport } from '@backtrack/kafka';
import { createRabbitTransport } from '@backtrack/rabbitmq';
import type { Transport } from '@backtrack/core';
import { serviceUrl, uniqueName } from '../../support/services.js';
import { kafkaBrokers, RawAmqp, rawKafka } from '../support/brokers.js';
import { prng, sleep, startChild, type FaultChild } from '../support/child.js';
import { orderMessage } from '../support/events.js';
import { deadConsumers, recordRow } from '../support/summary.js';
import {
  clearConsumerLedger,
  consumerLedgerKeys,
  verifyConsumerLedger,
} from '../fixtures/consumerLedger.js';
import type { ConsumerWorkerConfig } from '../fixtures/consumerWorker.js';
import {
  deleteClusterPrefix,
  keysPerMaster,
  openCluster,
  requireRedisCluster,
} from '../support/redisCluster.js';

export interface ConsumerKillOptions {
  transport: 'kafka' | 'rabbitmq';
  messages: number;
  kills: number;
  seed: number;
  /** The dedupe store's Redis: the shared one (default) or the private Redis Cluster. */
  store?: 'redis' | 'redis-cluster';
}

async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Kafka: committed offsets of the group equal the end offsets of every partition. */
async function kafkaFullyCommitted(topic: string, group: string): Promise<boolean> {
  const admin = rawKafka().admin();
  await admin.connect();
  try {
    const ends = await admin.fetchTopicOffsets(topic);
    const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return ends.every(
      (e) => committed?.partitions.find((p) => p.partition === e.partition)?.offset === e.high,
    );
  } finally {
    await admin.disconnect();
  }
}

export function consumerKillScenario(options: ConsumerKillOptions): void {
  const onCluster = options.store === 'redis-cluster';
  it(`${options.transport}: consumer SIGKILLed mid-batch ${options.kills} times in a row during ${options.messages} messages${onCluster ? ', Redis Cluster dedupe' : ''}: each applied exactly once`, async () => {
    const random = prng(options.seed);
    const clusterNodes = onCluster ? await requireRedisCluster() : undefined;
    const redis = new Redis(serviceUrl('redis'));
    const name = uniqueName(`faults-kill-${options.transport}${onCluster ? '-cluster' : ''}`);
    const prefix = `${name}:ledger`;
    const config: ConsumerWorkerConfig = {
      transport: options.transport,
      url: options.transport === 'kafka' ? kafkaBrokers().join(',') : serviceUrl('rabbitmq'),
      redisUrl: serviceUrl('redis'),
      topic: name,
      group: `${name}-g`,
      prefix,
      dedupePrefix: `${name}:dedupe:`,
      ...(clusterNodes ? { dedupeClusterNodes: clusterNodes } : {}),
      leaseMs: 1_500,
      latencyMs: 3,
    };
    const ids = Array.from({ length: options.messages }, (_, i) => `${name}-m${i}`);
    const publisher: Transport =
      options.transport === 'kafka'
        ? createKafkaTransport({
            brokers: kafkaBrokers(),
            clientId: 'faults-publisher',
            clientLogLevel: 'nothing',
          })
        : await createRabbitTransport({
            url: serviceUrl('rabbitmq'),
            connectionName: `${name}-pub`,
          });
    const effects = () => redis.hlen(consumerLedgerKeys(prefix).effects);
    const killedAt: number[] = [];
    let child: FaultChild | undefined;
    const t0 = Date.now();
    const mark = (what: string) => {
      if (process.env.FAULT_DEBUG)
        console.log(`[${options.transport}] +${Date.now() - t0} ms ${what}`);
    };
    try {
      if (options.transport === 'kafka') {
        await (publisher as ReturnType<typeof createKafkaTransport>).ensureTopics({
          topics: [name],
          partitions: 2,
        });
      }
      child = startChild('consumerWorker.ts', config);
      await child.waitFor('subscribed', 90_000);
      mark('first consumer subscribed');
      for (let i = 0; i < ids.length; i += 200) {
        await publisher.publish(
          ids.slice(i, i + 200).map((id) => ({ topic: name, key: id, message: orderMessage(id) })),
        );
      }
      for (let k = 0; k < options.kills; k++) {
        const base = await effects();
        const target = Math.min(options.messages, base + 30 + Math.floor(random() * 150));
        if (base >= options.messages) break;
        await waitUntil(`${target} effects`, async () => (await effects()) >= target, 90_000);
        mark(`killing at ${await effects()}`);
        await child.kill();
        killedAt.push(await effects());
        child = startChild('consumerWorker.ts', config);
        await child.waitFor('subscribed', 90_000);
        mark(`restarted, effects ${await effects()}`);
      }
      await waitUntil(
        `all ${options.messages} effects`,
        async () => (await effects()) >= options.messages,
        180_000,
      );
      mark('all applied');
      // Graceful stop: what it acknowledged / committed is then visible on the broker.
      child.process.kill('SIGTERM');
      await child.waitFor('closed', 60_000);
      await child.exited(30_000);
      child = undefined;
      mark('closed');
      if (options.transport === 'kafka') {
        expect(await kafkaFullyCommitted(name, config.group)).toBe(true);
      } else {
        const raw = await RawAmqp.open();
        try {
          expect(await raw.messageCount(config.group)).toBe(0);
          expect(await raw.messageCount(`${config.group}.dlq`)).toBe(0);
        } finally {
          await raw.close();
        }
      }
      const v = await verifyConsumerLedger(redis, prefix, ids);
      let spread = '';
      if (clusterNodes) {
        const admin = await openCluster(clusterNodes);
        try {
          const perMaster = [...(await keysPerMaster(admin, config.dedupePrefix)).values()];
          spread = `; dedupe keys per cluster master ${perMaster.join('/')}`;
          // No hash tag: the marks spread over the masters (each holds a fair share).
          expect(Math.min(...perMaster)).toBeGreaterThanOrEqual(options.messages * 0.2);
        } finally {
          await admin.quit().catch(() => undefined);
        }
      }
      const transportLabel = options.transport === 'kafka' ? 'Kafka' : 'RabbitMQ';
      recordRow({
        scenario: `1 consumer SIGKILL mid-batch (${transportLabel}${onCluster ? ', Redis Cluster dedupe' : ''})`,
        sent: v.sent,
        processed: v.deliveries,
        applied: v.applied,
        duplicates: v.duplicates,
        lost: v.lost,
        appliedTwice: v.appliedTwice,
        consumersLeftDead: deadConsumers([v.lost]),
        faults: `${killedAt.length} SIGKILLs at ${killedAt.join(',')} effects; ${v.handlerReruns} handler re-runs absorbed by the idempotency key${spread}`,
      });
      expect(v.problems.slice(0, 20)).toEqual([]);
      expect(killedAt.length).toBe(options.kills);
    } finally {
      await child?.kill();
      await publisher.close().catch(() => undefined);
      await clearConsumerLedger(redis, prefix).catch(() => undefined);
      if (clusterNodes) {
        const admin = await openCluster(clusterNodes).catch(() => undefined);
        if (admin) {
          await deleteClusterPrefix(admin, config.dedupePrefix).catch(() => undefined);
          await admin.quit().catch(() => undefined);
        }
      }
      if (options.transport === 'kafka') {
        const admin = rawKafka().admin();
        await admin.connect();
        await admin
          .deleteTopics({ topics: [name, `${name}.retry`, `${name}.dlq`] })
          .catch(() => undefined);
        await admin.disconnect();
      } else {
        const raw = await RawAmqp.open();
        const g = config.group;
        await raw.remove(
          [g, `${g}.dlq`, `${g}.retry.200ms`, `${g}.retry.1000ms`],
          [name, `${g}.dlx`],
        );
        await raw.close();
      }
      redis.disconnect();
    }
  });
}
