/**
 * Scenario 9: Kafka consumers whose dedupe store is a real 3-master Redis Cluster (started by
 * scripts/redis-cluster/start when none answers), under a duplicate-heavy stream: every message
 * is published 1 to 4 times, each copy with its own random Kafka key, so the copies of one message
 * land on different partitions and reach two consumers of one group at the same time. Mid-stream,
 * hash slots are moved from one master to another (`redis-cli --cluster reshard`: MOVED and ASK
 * redirections, TRYAGAIN on batches of a slot in migration), and moved back at the end.
 *
 * Checked:
 * - every message's handler ran exactly once (the store, not an idempotency key, absorbs every
 *   copy: the ledger counts handler calls per message id);
 * - every copy got a disposition: acked as processed or as a duplicate, none dead-lettered;
 * - the default prefix (no hash tag) spread the dedupe keys over the three masters.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Cluster } from 'ioredis';
import { expect, it } from 'vitest';
import { createConsumerPipeline, handle, type Subscription } from '@backtrack/core';
import type { KafkaTransport } from '@backtrack/kafka';
import { RedisDedupeStore } from '@backtrack/redis';
import {
  deleteClusterPrefix,
  ensureRedisCluster,
  keysPerMaster,
  openCluster,
} from '../../../packages/redis/test/clusterSupport.js';
import { uniqueName } from '../../support/services.js';
import { prng, sleep, tracer } from '../support/child.js';
import { deleteTopology, openTransport } from '../support/consumers.js';
import { FaultOrderPlaced, orderMessage } from '../support/events.js';
import { deadConsumers, recordRow } from '../support/summary.js';
import { ConsumerSpy } from '@backtrack/core/testing';

export interface RedisClusterOptions {
  /** Distinct messages; each is published 1 to 4 times. */
  messages: number;
  /** Consumers in the group (each with its own Cluster client). */
  consumers: number;
  /** Hash slots moved between two masters mid-stream (and back at the end). */
  reshardSlots: number;
  seed: number;
}

const run = promisify(execFile);

async function waitUntil(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Moves `slots` hash slots from master `from` to master `to` (node ids), via redis-cli. */
async function reshard(seed: string, from: string, to: string, slots: number): Promise<void> {
  await run(
    'redis-cli',
    [
      '--cluster',
      'reshard',
      seed,
      '--cluster-from',
      from,
      '--cluster-to',
      to,
      '--cluster-slots',
      String(slots),
      '--cluster-yes',
    ],
    { timeout: 120_000 },
  );
}

async function masterIds(cluster: Cluster): Promise<{ id: string; address: string }[]> {
  const out: { id: string; address: string }[] = [];
  for (const node of cluster.nodes('master')) {
    out.push({
      id: String(await node.call('CLUSTER', 'MYID')),
      address: `${node.options.host}:${node.options.port}`,
    });
  }
  return out.sort((a, b) => a.address.localeCompare(b.address));
}

export function redisClusterScenario(options: RedisClusterOptions): void {
  it(`Kafka consumers on a 3-master Redis Cluster dedupe store, ${options.messages} messages published 1-4 times each with random keys, ${options.reshardSlots} slots resharded mid-stream: each applied once, every copy acked`, async () => {
    const mark = tracer('redis-cluster');
    const cluster = await ensureRedisCluster();
    // Under CI=true ensureRedisCluster throws when no cluster can be had; locally it says why.
    if (!cluster.available) throw new Error(`no Redis Cluster: ${cluster.reason}`);
    const admin = await openCluster(cluster.nodes);
    const rand = prng(options.seed);
    const name = uniqueName('faults-cluster');
    const dedupePrefix = `${name}:dedupe:`;
    const group = `${name}-g`;
    const ids = Array.from({ length: options.messages }, (_, i) => `${name}-m${i}`);
    const copies = ids.map(() => 1 + Math.floor(rand() * 4));
    const sent = copies.reduce((a, n) => a + n, 0);

    const handled = new Map<string, number>();
    const spies: ConsumerSpy[] = [];
    const closers: (() => Promise<unknown>)[] = [];
    const publisher = await openTransport('kafka', `${name}-pub`);
    let moved: { from: string; to: string } | undefined;
    let redeliveries = 0;
    try {
      await (publisher as KafkaTransport).ensureTopics({ topics: [name], partitions: 4 });
      for (let c = 0; c < options.consumers; c++) {
        const redis = await openCluster(cluster.nodes);
        const transport = (await openTransport('kafka', `${group}-${c}`)) as KafkaTransport;
        const spy = new ConsumerSpy();
        spies.push(spy);
        const pipeline = createConsumerPipeline(
          {
            name: group,
            retry: { attempts: 20, initialDelayMs: 100, maxDelayMs: 1_000 },
            idempotency: { leaseMs: 10_000, inProgressDelayMs: 200, unavailableDelayMs: 300 },
            handlers: [
              handle(FaultOrderPlaced, async ({ envelope }) => {
                handled.set(envelope.id, (handled.get(envelope.id) ?? 0) + 1);
                await sleep(rand() < 0.05 ? 20 : 0);
              }),
            ],
          },
          { dedupeStore: new RedisDedupeStore({ keyPrefix: dedupePrefix }, { redis }), spy },
        );
        const subscription: Subscription = await transport.subscribe({
          topics: [name],
          group,
          processor: pipeline,
          sessionTimeoutMs: 10_000,
          heartbeatIntervalMs: 1_000,
          maxWaitTimeMs: 100,
        });
        closers.push(async () => {
          await subscription.close().catch(() => undefined);
          await transport.close().catch(() => undefined);
          await redis.quit().catch(() => undefined);
        });
      }
      mark('consumers subscribed');

      // Every copy of every message, in a random order, each with its own random key.
      const records = ids.flatMap((id, i) => Array.from({ length: copies[i]! }, () => id));
      for (let i = records.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [records[i], records[j]] = [records[j]!, records[i]!];
      }
      const half = Math.floor(records.length / 2);
      const publish = async (list: string[]) => {
        for (let i = 0; i < list.length; i += 200) {
          await publisher.publish(
            list.slice(i, i + 200).map((id) => ({
              topic: name,
              key: `k-${Math.floor(rand() * 1e9)}`,
              message: orderMessage(id),
            })),
          );
        }
      };
      await publish(records.slice(0, half));
      mark('first half published');

      // Move slots from the first master to the second while the consumers work.
      const [a, b] = await masterIds(admin);
      moved = { from: a!.id, to: b!.id };
      const resharding = reshard(a!.address, a!.id, b!.id, options.reshardSlots);
      await publish(records.slice(half));
      mark('second half published');
      await resharding;
      mark('resharded');

      const acked = () =>
        spies.reduce((n, s) => n + s.records.filter((r) => r.disposition.kind === 'ack').length, 0);
      await waitUntil(
        'every copy to be acknowledged',
        () => acked() >= sent && ids.every((id) => handled.has(id)),
        180_000,
      );
      await sleep(1_000);
      mark('all acknowledged');

      const problems: string[] = [];
      let lost = 0;
      let twice = 0;
      for (const id of ids) {
        const n = handled.get(id) ?? 0;
        if (n === 0) lost++;
        if (n > 1) twice++;
        if (n !== 1) problems.push(`${id}: handler ran ${n} times`);
      }
      const all = spies.flatMap((s) => s.records);
      redeliveries = all.filter((r) => r.disposition.kind === 'redeliver').length;
      const deadLettered = all.filter(
        (r) => r.disposition.kind !== 'ack' && r.disposition.kind !== 'redeliver',
      );
      for (const r of deadLettered.slice(0, 5)) {
        problems.push(`${r.messageId}: disposition ${JSON.stringify(r.disposition)}`);
      }
      const duplicates = all.filter(
        (r) => r.disposition.kind === 'ack' && r.disposition.outcome === 'duplicate',
      ).length;
      const spread = await keysPerMaster(admin, dedupePrefix);
      for (const [node, n] of spread) {
        if (n < options.messages * 0.2) problems.push(`master ${node} holds only ${n} dedupe keys`);
      }
      recordRow({
        scenario: '9 Redis Cluster dedupe, duplicate-heavy (Kafka)',
        sent,
        processed: all.length,
        applied: [...handled.values()].reduce((x, n) => x + n, 0),
        duplicates,
        lost,
        appliedTwice: twice,
        consumersLeftDead: deadConsumers([lost]),
        faults: `${sent - options.messages} extra copies on random partitions, ${options.consumers} consumers; ${options.reshardSlots} slots resharded mid-stream (${redeliveries} redeliveries); dedupe keys per master ${[...spread.values()].join('/')}`,
      });
      expect(problems.slice(0, 20)).toEqual([]);
      expect(duplicates).toBeGreaterThanOrEqual(sent - options.messages);
    } finally {
      mark('cleanup');
      for (const close of closers) await close();
      await publisher.close().catch(() => undefined);
      await deleteTopology('kafka', name);
      if (moved) {
        const back = await masterIds(admin).catch(() => []);
        const address = back.find((m) => m.id === moved!.to)?.address;
        if (address) await reshard(address, moved.to, moved.from, options.reshardSlots);
      }
      await deleteClusterPrefix(admin, dedupePrefix).catch(() => undefined);
      await admin.quit().catch(() => undefined);
    }
  });
}
