/**
 * Scenario 4: the saga engine's process is killed with SIGKILL at random moments while it runs
 * 1,000 sagas whose steps and compensations fail at random; a new process recovers each time.
 * Every saga must end completed, compensated or stuck, with the foundation invariants (checked
 * against an external ledger), and every stuck saga must be retriable to `compensated`.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { expect, it } from 'vitest';
import { createSagaEngine, SagaStatus, type SagaRecord, type SagaStore } from '@backtrack/core';
import { dropSchema, migrate, PostgresSagaStore } from '@backtrack/postgres';
import { RedisSagaStore } from '@backtrack/redis';
import { serviceUrl, uniqueName } from '../../support/services.js';
import { prng, sleep, startChild } from '../support/child.js';
import { recordRow } from '../support/summary.js';
import { faultSaga, ledgerKeys, verifySagas } from '../fixtures/faultSaga.js';
import type { SagaWorkerConfig } from '../fixtures/sagaWorker.js';

export interface SagaCrashOptions {
  /** The saga log the engine writes: it must survive the process, so never the in-memory one. */
  store: 'redis' | 'postgres';
  sagas: number;
  kills: number;
  seed: number;
}

async function allSagas(store: SagaStore): Promise<SagaRecord[]> {
  const out: SagaRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.list({ limit: 500, ...(cursor ? { cursor } : {}) });
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return out;
}

async function deleteByPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length > 0) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

export function sagaCrashScenario(options: SagaCrashOptions): void {
  it(`saga engine: ${options.sagas} sagas, ${options.kills} SIGKILLs, recover() in a new process each time (${options.store} saga store)`, async () => {
    const random = prng(options.seed);
    const redis = new Redis(serviceUrl('redis'));
    const pool = new pg.Pool({ connectionString: serviceUrl('postgres'), max: 4 });
    const schema = uniqueName('bt_faults_saga').replaceAll('-', '_');
    const prefix = uniqueName('faults:saga');
    const storePrefix = `${prefix}:log:`;
    if (options.store === 'postgres') await migrate(pool, { schema });
    const store: SagaStore =
      options.store === 'postgres'
        ? new PostgresSagaStore({ pool }, { schema })
        : new RedisSagaStore({ keyPrefix: storePrefix }, { redis });
    const config: SagaWorkerConfig = {
      store:
        options.store === 'postgres'
          ? { kind: 'postgres', url: serviceUrl('postgres'), schema }
          : { kind: 'redis', url: serviceUrl('redis'), prefix: storePrefix },
      redisUrl: serviceUrl('redis'),
      prefix,
      count: options.sagas,
      concurrency: 20,
      // About 5 s for 1,000 sagas at 20 at once, so every kill lands mid-run.
      startIntervalMs: 100,
      seed: options.seed,
      failRate: 0.12,
      compensationFailRate: 0.25,
    };
    const kills: string[] = [];
    try {
      for (let round = 0; round < options.kills; round++) {
        const child = startChild('sagaWorker.ts', config);
        try {
          await child.waitFor('ready', 60_000);
          // A random moment, spread over the run whatever the machine's speed: once the sagas
          // started in this process pass a random point of this round's share (recovery of the
          // previous round's sagas in flight runs before that), plus a few ms.
          const target = Math.floor(((round + random()) / options.kills) * options.sagas * 0.9);
          const until = Date.now() + 120_000;
          const started = () =>
            Math.max(
              -1,
              ...child.events.filter((e) => e.name === 'progress').map((e) => Number(e.data.n)),
            );
          while (
            started() < target &&
            !child.events.some((e) => e.name === 'done') &&
            Date.now() < until
          ) {
            await sleep(5);
          }
          await sleep(Math.floor(random() * 40));
          if (child.events.some((e) => e.name === 'done')) break;
        } finally {
          await child.kill();
        }
        const inFlight = (
          await store.list({ status: [SagaStatus.Running, SagaStatus.Compensating], limit: 1000 })
        ).items.length;
        kills.push(`${inFlight}`);
      }
      // A new process that is left alone: recover() plus the sagas never started.
      const final = startChild('sagaWorker.ts', config);
      const done = await final.waitFor('done', 240_000);
      expect(await final.exited(30_000)).toBe(0);

      const ids = Array.from({ length: options.sagas }, (_, n) => `${prefix}-s${n}`);
      let records = await allSagas(store);
      const verdict = await verifySagas(redis, prefix, records, ids);
      expect(verdict.violations.slice(0, 20), `violations: ${verdict.violations.length}`).toEqual(
        [],
      );
      expect(verdict.sagas).toBe(options.sagas);

      // A stuck saga keeps a way out: retry it once the downstream works again.
      const healthy = faultSaga({
        redis,
        prefix,
        seed: options.seed,
        failRate: 0,
        compensationFailRate: 0,
      });
      const engine = createSagaEngine({ store }).register(healthy);
      const stuck = records.filter((r) => r.status === SagaStatus.Stuck);
      for (const r of stuck) {
        expect((await engine.retry(r.sagaId)).status).toBe(SagaStatus.Compensated);
      }
      records = await allSagas(store);
      const after = await verifySagas(redis, prefix, records, ids);
      expect(after.violations.slice(0, 20)).toEqual([]);

      const stats = await redis.hgetall(ledgerKeys(prefix).stats);
      recordRow({
        scenario: `4 saga engine SIGKILL + recover (${options.store} log)`,
        sent: options.sagas,
        processed: Number(stats.calls ?? 0),
        applied: after.effects,
        duplicates: Number(stats.duplicates ?? 0),
        lost: after.lost,
        appliedTwice: after.appliedTwice,
        consumersLeftDead: '-',
        faults: `${kills.length} kills (in flight: ${kills.join(',')}); ${Number(stats.injected ?? 0)} injected step failures; ${JSON.stringify(verdict.byStatus)}, ${stuck.length} stuck retried; final recovered ${String(done.data.recovered)}`,
      });
      expect(after.lost).toBe(0);
      expect(after.appliedTwice).toBe(0);
      expect(kills.length).toBeGreaterThanOrEqual(Math.min(3, options.kills));
    } finally {
      const keys = ledgerKeys(prefix);
      await redis.del(keys.done, keys.effects, keys.stats).catch(() => undefined);
      if (options.store === 'postgres') await dropSchema(pool, schema).catch(() => undefined);
      else await deleteByPrefix(redis, storePrefix).catch(() => undefined);
      await deleteByPrefix(redis, `${prefix}:order:`).catch(() => undefined);
      await pool.end();
      redis.disconnect();
    }
  });
}
