/**
 * Scenario 8: a Kafka consumer group under churn. Three consumer processes (real transport,
 * core's pipeline, RedisDedupeStore) share one group over a 6-partition topic while messages are
 * still being published; members are SIGKILLed and new ones added mid-stream, so the group
 * rebalances during batches (a joining member, and a dead one once its session expires). Every
 * message must end applied exactly once in effect, the committed offsets must reach the end
 * offsets, and every member alive at the end must close cleanly (none left dead).
 */
import { Redis } from 'ioredis';
import { expect, it } from 'vitest';
import { createKafkaTransport } from '@backtrack/kafka';
import { serviceUrl, uniqueName } from '../../support/services.js';
import { kafkaBrokers, rawKafka } from '../support/brokers.js';
import { prng, sleep, startChild, tracer, type FaultChild } from '../support/child.js';
import { orderMessage } from '../support/events.js';
import { recordRow } from '../support/summary.js';
import {
  clearConsumerLedger,
  consumerLedgerKeys,
  verifyConsumerLedger,
} from '../fixtures/consumerLedger.js';
import type { ConsumerWorkerConfig } from '../fixtures/consumerWorker.js';

export interface ConsumerGroupRebalanceOptions {
  messages: number;
  /** Members at the start. */
  members: number;
  partitions: number;
  /** Churn steps: each SIGKILLs one member and adds one (in random order). */
  steps: number;
  /** Publishing rate, so that the churn lands mid-stream. */
  perSecond: number;
  seed: number;
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number) {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

export function consumerGroupRebalanceScenario(options: ConsumerGroupRebalanceOptions): void {
  it(`kafka: ${options.members} consumer processes in one group over ${options.partitions} partitions, ${options.steps} members SIGKILLed and ${options.steps} added mid-stream during ${options.messages} messages: 0 lost, 0 applied twice, offsets committed to the end`, async () => {
    const trace = tracer('rebalance');
    const random = prng(options.seed);
    const redis = new Redis(serviceUrl('redis'));
    const name = uniqueName('faults-rebalance');
    const prefix = `${name}:ledger`;
    const config: ConsumerWorkerConfig = {
      transport: 'kafka',
      url: kafkaBrokers().join(','),
      redisUrl: serviceUrl('redis'),
      topic: name,
      group: `${name}-g`,
      prefix,
      dedupePrefix: `${name}:dedupe:`,
      leaseMs: 1_500,
      latencyMs: 3,
    };
    const ids = Array.from({ length: options.messages }, (_, i) => `${name}-m${i}`);
    const publisher = createKafkaTransport({
      brokers: kafkaBrokers(),
      clientId: 'faults-rebalance-publisher',
      clientLogLevel: 'nothing',
    });
    const effects = () => redis.hlen(consumerLedgerKeys(prefix).effects);
    const live: FaultChild[] = [];
    const churn: string[] = [];
    let started = 0;
    const start = async () => {
      const child = startChild('consumerWorker.ts', config);
      live.push(child);
      started++;
      await child.waitFor('subscribed', 90_000);
      return child;
    };
    let publishing: Promise<void> | undefined;
    try {
      await publisher.ensureTopics({ topics: [name], partitions: options.partitions });
      for (let i = 0; i < options.members; i++) await start();
      trace(`${options.members} members subscribed`);
      // Published as a stream while the group churns.
      const chunk = Math.max(1, Math.round(options.perSecond / 5));
      publishing = (async () => {
        for (let i = 0; i < ids.length; i += chunk) {
          const t = Date.now();
          await publisher.publish(
            ids
              .slice(i, i + chunk)
              .map((id) => ({ topic: name, key: id, message: orderMessage(id) })),
          );
          await sleep(Math.max(0, 200 - (Date.now() - t)));
        }
      })();
      for (let s = 0; s < options.steps; s++) {
        // Step s at about (s + 1) / (steps + 2) of the stream, give or take a fifth of a share.
        const share = options.messages / (options.steps + 2);
        const target = Math.floor(share * (s + 1) + share * 0.4 * (random() - 0.5));
        await waitUntil(`${target} effects`, async () => (await effects()) >= target, 120_000);
        const at = await effects();
        const victim = live.splice(Math.floor(random() * live.length), 1)[0]!;
        if (random() < 0.5) {
          await victim.kill();
          await start();
          churn.push(`kill+add@${at}`);
        } else {
          // The new member joins (a rebalance during batches) before the old one dies.
          const joining = start();
          await sleep(Math.floor(random() * 500));
          await victim.kill();
          await joining;
          churn.push(`add+kill@${at}`);
        }
        trace(`step ${s}: ${churn.at(-1)}; ${live.length} live`);
      }
      await publishing;
      const midStream = churn.filter((c) => Number(c.split('@')[1]) < options.messages).length;
      await waitUntil(
        `all ${options.messages} effects`,
        async () => (await effects()) >= options.messages,
        240_000,
      );
      trace('all applied');
      // A killed member's partitions move on once its session expires; their new owners then
      // re-read the records it applied but did not commit (dedupe absorbs them) and commit.
      const admin = rawKafka().admin();
      await admin.connect();
      const committedAtEnd = async () => {
        const ends = await admin.fetchTopicOffsets(name);
        const [committed] = await admin.fetchOffsets({ groupId: config.group, topics: [name] });
        return ends.every(
          (e) => committed?.partitions.find((p) => p.partition === e.partition)?.offset === e.high,
        );
      };
      try {
        await waitUntil('committed offsets at the end offsets', committedAtEnd, 60_000).catch(
          () => undefined,
        );
        expect(await committedAtEnd(), 'committed offsets at the end offsets').toBe(true);
      } finally {
        await admin.disconnect();
      }
      trace('committed to the end');

      // None left dead: every member still running, and each closes gracefully.
      const dead = live.filter((c) => c.process.exitCode !== null || c.process.signalCode !== null);
      expect(dead.length, 'members that died on their own').toBe(0);
      for (const c of live) c.process.kill('SIGTERM');
      for (const c of live) {
        await c.waitFor('closed', 60_000);
        await c.exited(30_000);
      }
      live.length = 0;

      const v = await verifyConsumerLedger(redis, prefix, ids);
      recordRow({
        scenario: '8 consumer group rebalance (Kafka, 6 partitions)',
        sent: v.sent,
        processed: v.deliveries,
        applied: v.applied,
        duplicates: v.duplicates,
        lost: v.lost,
        appliedTwice: v.appliedTwice,
        consumersLeftDead: dead.length,
        faults: `${options.members} members, ${options.steps} SIGKILLs + ${options.steps} joins (${churn.join(', ')}); ${started} processes; ${v.handlerReruns} handler re-runs absorbed`,
      });
      expect(v.problems.slice(0, 20)).toEqual([]);
      expect(midStream, 'churn steps that happened before the stream was consumed').toBe(
        options.steps,
      );
    } finally {
      await publishing?.catch(() => undefined);
      for (const c of live) await c.kill();
      await publisher.close().catch(() => undefined);
      await clearConsumerLedger(redis, prefix).catch(() => undefined);
      const keys = await redis.keys(`${name}:*`).catch(() => [] as string[]);
      if (keys.length > 0) await redis.del(...keys).catch(() => undefined);
      const admin = rawKafka().admin();
      await admin.connect().catch(() => undefined);
      await admin
        .deleteTopics({ topics: [name, `${name}.retry`, `${name}.dlq`] })
        .catch(() => undefined);
      await admin.deleteGroups([config.group]).catch(() => undefined);
      await admin.disconnect().catch(() => undefined);
      redis.disconnect();
    }
  });
}
