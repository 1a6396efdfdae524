/**
 * Scenario 6: a rollback run (compensate strategy, compensations published to RabbitMQ) is
 * killed with SIGKILL at random moments and resumed by a new process each time, until it
 * completes. Checked on the consuming side (ledger in Redis, written by a consumer with the
 * idempotent pipeline):
 * - every effect of the bad version is compensated exactly once in effect, and nothing of the
 *   good version is touched (stock back to the levels before the bad deploy);
 * - a compensation reaches the broker more than once only when a kill fell between the broker's
 *   confirm of its batch and its journal mark (the run's progress of it); such a repeat carries the SAME message id
 *   (deterministic), so the consumer's dedupe absorbs it. Repeats are bounded by one batch per kill.
 */
import { Redis } from 'ioredis';
import { expect, it } from 'vitest';
import {
  createConsumerPipeline,
  createPublisher,
  handle,
  planRollback,
  type Middleware,
} from '@backtrack/core';
import { createRabbitTransport } from '@backtrack/rabbitmq';
import { RedisDedupeStore, RedisJournal, RedisRollbackProgressStore } from '@backtrack/redis';
import { serviceUrl, uniqueName } from '../../support/services.js';
import { rabbitNames, RawAmqp } from '../support/brokers.js';
import { prng, sleep, startChild, tracer, type FaultChild } from '../support/child.js';
import { deadConsumers, recordRow } from '../support/summary.js';
import {
  FaultStockReleased,
  FaultStockReserved,
  rollbackCompensations,
  rollbackRegistry,
  type RollbackWorkerConfig,
} from '../fixtures/rollbackWorld.js';

export interface RollbackKillOptions {
  /** Effects of the bad version (one compensation each). */
  effects: number;
  kills: number;
  batchSize: number;
  seed: number;
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number) {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

async function deleteByPattern(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    if (keys.length > 0) await redis.unlink(...keys);
    cursor = next;
  } while (cursor !== '0');
}

export function rollbackKillScenario(options: RollbackKillOptions): void {
  it(`rollback of ${options.effects} effects (RabbitMQ) SIGKILLed ${options.kills} times and resumed: every effect compensated exactly once, repeats only with the same id`, async () => {
    const mark = tracer('rollback-kill');
    const random = prng(options.seed);
    const redis = new Redis(serviceUrl('redis'));
    const name = uniqueName('faults-rollback');
    const state = `${name}:state`;
    const journalPrefix = `${name}:journal:`;
    const progressPrefix = `${name}:progress:`;
    const transport = await createRabbitTransport({
      url: serviceUrl('rabbitmq'),
      connectionName: name,
    });
    let names = { queues: [] as string[], exchanges: [name] };
    let child: FaultChild | undefined;
    try {
      const journal = new RedisJournal({ keyPrefix: journalPrefix }, { redis });
      const deliveries: Middleware = async (context, next) => {
        if (context.envelope?.type === FaultStockReleased.type) {
          await redis.hincrby(`${state}:deliveries`, context.envelope.id, 1);
        }
        await next();
      };
      const subscription = await transport.subscribe({
        topics: [name],
        group: `${name}-stock`,
        processor: createConsumerPipeline(
          {
            name: `${name}-stock`,
            middleware: [deliveries],
            idempotency: { leaseMs: 3_000, inProgressDelayMs: 200 },
            handlers: [
              handle(FaultStockReserved, async ({ data }) => {
                await redis.hincrby(`${state}:stock`, data.sku, data.quantity);
              }),
              handle(FaultStockReleased, async ({ data, envelope }) => {
                // Deliberately NOT idempotent on its own: only the dedupe step stands between a
                // repeated compensation and a second release.
                await redis.hincrby(`${state}:stock`, data.sku, -data.quantity);
                await redis.hincrby(`${state}:reversed`, envelope.causationid ?? '?', 1);
              }),
            ],
          },
          {
            registry: rollbackRegistry,
            dedupeStore: new RedisDedupeStore({ keyPrefix: `${state}:dedupe:` }, { redis }),
          },
        ),
      });
      names = rabbitNames(transport);
      const publisher = (version: string) =>
        createPublisher(
          { service: 'warehouse', version, topicFor: () => name },
          { transport, journal, registry: rollbackRegistry },
        );
      await publisher('3.0.0').publish(FaultStockReserved, { sku: 'keep', quantity: 5 });
      const bad = publisher('3.1.0');
      const originals: string[] = [];
      for (let i = 0; i < options.effects; i++) {
        const e = await bad.publish(FaultStockReserved, {
          sku: `sku-${i % 11}`,
          quantity: 1 + (i % 4),
        });
        originals.push(e.id);
      }
      await waitUntil(
        'the bad version to be applied',
        async () =>
          Number((await redis.hgetall(`${state}:stock`))['keep'] ?? 0) === 5 &&
          (await redis.hlen(`${state}:stock`)) === 12,
        60_000,
      );
      const plan = await planRollback(
        { service: 'warehouse', version: '3.1.0', strategy: 'compensate' },
        { journal, registry: rollbackRegistry, compensations: rollbackCompensations },
      );
      expect(plan.items).toHaveLength(options.effects);
      const runId = `${name}-run`;
      const progressStore = new RedisRollbackProgressStore(
        { keyPrefix: progressPrefix },
        { redis },
      );
      await progressStore.createRun(runId, plan);
      mark('planned');

      const config: RollbackWorkerConfig = {
        amqpUrl: serviceUrl('rabbitmq'),
        redisUrl: serviceUrl('redis'),
        journalPrefix,
        progressPrefix,
        runId,
        batchSize: options.batchSize,
        leaseMs: 1_500,
        waitForLeaseMs: 15_000,
        confirmedKey: `${state}:confirmed`,
        paceMs: 25,
      };
      const killedAt: number[] = [];
      const finished = (c: FaultChild) =>
        Math.max(
          0,
          ...c.events.filter((e) => e.name === 'progress').map((e) => Number(e.data.finished)),
        );
      let reached = 0;
      for (let k = 0; k < options.kills; k++) {
        child = startChild('rollbackWorker.ts', config);
        await child.waitFor('ready', 60_000);
        // A random point past the previous one: between batches, mid-publish, or between a
        // confirm and the journal mark.
        const target =
          reached +
          1 +
          Math.floor(random() * ((options.effects - reached) / (options.kills - k + 1)));
        const c = child;
        await waitUntil(
          `progress ${target}`,
          async () => finished(c) >= target || c.events.some((e) => e.name === 'done'),
          90_000,
        );
        await sleep(Math.floor(random() * 30));
        if (child.events.some((e) => e.name === 'done')) break;
        await child.kill();
        reached = finished(child);
        killedAt.push(reached);
        mark(`killed at ${reached}`);
      }
      child = startChild('rollbackWorker.ts', config);
      const done = (await child.waitFor('done', 120_000)).data as {
        status: string;
        summary: { reversed: number; failed: number };
      };
      expect(await child.exited(30_000)).toBe(0);
      child = undefined;
      mark('run completed');

      await waitUntil(
        'every compensation to be consumed',
        async () => (await redis.hlen(`${state}:reversed`)) >= options.effects,
        60_000,
      );
      await sleep(1_000); // stragglers (a repeat of the last batch) arrive now
      const reversed = await redis.hgetall(`${state}:reversed`);
      const stock = await redis.hgetall(`${state}:stock`);
      const delivered = await redis.hgetall(`${state}:deliveries`);
      const problems: string[] = [];
      let lost = 0;
      let twice = 0;
      for (const id of originals) {
        const n = Number(reversed[id] ?? 0);
        if (n === 0) lost++;
        if (n > 1) twice++;
        if (n !== 1) problems.push(`${id}: compensated ${n} times`);
      }
      for (const id of Object.keys(reversed))
        if (!originals.includes(id)) problems.push(`${id}: compensated but not an effect of 3.1.0`);
      for (const [sku, level] of Object.entries(stock)) {
        if (Number(level) !== (sku === 'keep' ? 5 : 0))
          problems.push(`stock ${sku} = ${level} after the rollback`);
      }
      const compensationIds = Object.keys(delivered);
      const repeats = Object.values(delivered).reduce((a, n) => a + Number(n) - 1, 0);
      if (compensationIds.length !== options.effects)
        problems.push(
          `${compensationIds.length} distinct compensation ids for ${options.effects} effects`,
        );
      if (repeats > killedAt.length * options.batchSize)
        problems.push(
          `${repeats} repeated compensations for ${killedAt.length} kills of batch ${options.batchSize}`,
        );
      recordRow({
        scenario: '6 rollback run SIGKILL + resume (RabbitMQ)',
        sent: options.effects,
        processed: Object.values(delivered).reduce((a, n) => a + Number(n), 0),
        applied: Object.values(reversed).reduce((a, n) => a + Number(n), 0),
        duplicates: repeats,
        lost,
        appliedTwice: twice,
        consumersLeftDead: deadConsumers([lost]),
        faults: `${killedAt.length} SIGKILLs at ${killedAt.join(',')} of ${options.effects} done; ${repeats} compensations re-published (same id) and absorbed; run ${done.status}, reversed ${done.summary.reversed}`,
      });
      expect(problems.slice(0, 20)).toEqual([]);
      expect(done.status).toBe('completed');
      expect(killedAt.length).toBe(options.kills);
      await subscription.close();
    } finally {
      await child?.kill();
      await transport.close().catch(() => undefined);
      const raw = await RawAmqp.open();
      await raw.remove(names.queues, names.exchanges);
      await raw.close();
      for (const p of [journalPrefix, progressPrefix, state])
        await deleteByPattern(redis, `${p}*`).catch(() => undefined);
      redis.disconnect();
    }
  });
}
