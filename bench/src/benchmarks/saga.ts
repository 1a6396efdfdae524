/**
 * 5. Saga engine: sagas of 3 steps, driven many at once, on the in-memory store and on Redis.
 *
 * A "transition" is one state change the engine persists: the saga's creation, each step
 * before it runs (`running`, with its attempt) and after (`completed`, with its result), and the
 * saga's end. A 3-step saga makes 8. Since session 12 the engine persists them in fewer store
 * writes (a step's completion and the next step's start are one write, the last completion and
 * the saga's end another): transitions are counted as 8 per saga completed, whatever the number
 * of writes, so that the rates compare with earlier sessions and with the hand-written loop (8
 * writes); the store writes per saga are recorded beside them. On Redis, every round trip the
 * client sends is counted.
 */
import { createSagaEngine, defineSaga, InMemorySagaStore, type SagaStore } from '@backtrack/core';
import { createRedisClient, RedisSagaStore } from '@backtrack/redis';
import { z } from 'zod';
import {
  cpuSecondsSince,
  runConcurrently,
  secondsSince,
  SERVICES,
  silentLogger,
  uniqueName,
} from '../common.js';
import { countRoundTrips } from '../redisCounter.js';
import { deleteByPrefix } from '../redisKeys.js';
import type { Benchmark } from '../runner.js';

const threeSteps = defineSaga('bench-3-steps', { input: z.object({ n: z.number() }) })
  .step('reserve', { run: ({ input }) => ({ reserved: input.n }), compensate: () => undefined })
  .step('charge', { run: ({ input }) => ({ charged: input.n }), compensate: () => undefined })
  .step('ship', { run: ({ input }) => ({ shipped: input.n }) })
  .build();

/** Transitions per 3-step saga: creation, each step's start and completion, the end. */
const TRANSITIONS_PER_SAGA = 8;

/** Counts the writes a store receives. */
function counting(store: SagaStore): { store: SagaStore; writes: () => number } {
  let writes = 0;
  const wrapped: SagaStore = {
    create: (record) => {
      writes++;
      return store.create(record);
    },
    update: (record, expected) => {
      writes++;
      return store.update(record, expected);
    },
    get: (id) => store.get(id),
    list: (q) => store.list(q),
  };
  return { store: wrapped, writes: () => writes };
}

/**
 * The hand-written floor: the same three steps per saga, each transition a fresh record written
 * to a Map (or one Redis HSET), with no engine around it.
 */
export async function rawSagas(
  count: number,
  concurrency: number,
  offset: number,
  write: (id: string, record: Record<string, unknown>) => Promise<unknown> | void,
): Promise<number> {
  let writes = 0;
  const steps = ['reserve', 'charge', 'ship'];
  await runConcurrently(count, concurrency, async (i) => {
    const id = `raw-${offset + i}`;
    const record: Record<string, unknown> = { sagaId: id, status: 'running', revision: 0 };
    const persist = async () => {
      writes++;
      record.revision = (record.revision as number) + 1;
      await write(id, { ...record });
    };
    await persist();
    for (const step of steps) {
      record[step] = 'running';
      await persist();
      record[`${step}Result`] = await Promise.resolve({ n: i });
      record[step] = 'completed';
      await persist();
    }
    record.status = 'completed';
    await persist();
  });
  return writes;
}

export const sagaBenchmark: Benchmark = {
  id: 'saga-engine',
  title: 'Saga engine: 3-step sagas, in-memory and Redis store',
  async run(o, rec) {
    Object.assign(rec.params, {
      sagasInMemory: o.sagas,
      sagasRedis: o.redisSagas,
      inFlight: o.sagaConcurrency,
      steps: 3,
      transitionsPerSaga: TRANSITIONS_PER_SAGA,
    });
    rec
      .metric('raw-mem', {
        label: 'hand-written 3 steps, Map writes',
        role: 'baseline',
        unit: 'transitions/s',
      })
      .metric('bt-mem', {
        label: 'engine, InMemorySagaStore',
        role: 'backtrack',
        unit: 'transitions/s',
      })
      .metric('bt-mem-cpu', {
        label: 'engine, InMemorySagaStore, per CPU-second of this process',
        role: 'info',
        unit: 'transitions/cpu-s',
        target: 200_000,
      })
      .metric('bt-mem-sagas', { label: 'engine, InMemorySagaStore', role: 'info', unit: 'sagas/s' })
      .metric('bt-writes', {
        label: 'engine, store writes per saga (creation included)',
        role: 'info',
        unit: 'writes',
      })
      .metric('raw-redis', {
        label: 'hand-written 3 steps, one HSET per transition',
        role: 'baseline',
        unit: 'transitions/s',
      })
      .metric('bt-redis', {
        label: 'engine, RedisSagaStore',
        role: 'backtrack',
        unit: 'transitions/s',
      })
      .metric('bt-redis-rtt', {
        label: 'Redis round trips per transition (RedisSagaStore)',
        role: 'info',
        unit: 'round trips',
        target: 1,
        direction: 'max',
      })
      .metric('bt-redis-rtt-saga', {
        label: 'Redis round trips per saga (RedisSagaStore)',
        role: 'info',
        unit: 'round trips',
      })
      .ratio('mem', {
        label: 'engine in-memory / hand-written',
        numerator: 'bt-mem',
        denominator: 'raw-mem',
      })
      .ratio('redis', {
        label: 'engine on Redis / hand-written HSET',
        numerator: 'bt-redis',
        denominator: 'raw-redis',
      });

    const prefix = `${uniqueName('bench-saga')}:`;
    const redis = createRedisClient(SERVICES.redis);
    const counter = countRoundTrips(redis);
    try {
      await redis.ping();
      // Warm the engine and the Lua scripts once, outside the timing.
      {
        const warm = createSagaEngine(
          {},
          {
            store: new RedisSagaStore({ keyPrefix: `${prefix}warm:` }, { redis }),
            logger: silentLogger,
          },
        );
        await runConcurrently(Math.min(50, o.redisSagas), 8, (i) =>
          warm.start(threeSteps, { n: i }),
        );
      }
      for (let run = 0; run < o.runs; run++) {
        rec.log(` run ${run + 1}/${o.runs}`);
        const order = run % 2 === 0 ? ['raw', 'bt'] : ['bt', 'raw'];
        for (const side of order) {
          if (side === 'raw') {
            const map = new Map<string, Record<string, unknown>>();
            let t = performance.now();
            let writes = await rawSagas(o.sagas, o.sagaConcurrency, 0, (id, r) => {
              map.set(id, r);
            });
            rec.record('raw-mem', writes / secondsSince(t));
            t = performance.now();
            writes = await rawSagas(o.redisSagas, o.sagaConcurrency, 0, (id, r) =>
              redis.hset(`${prefix}raw:${run}:${id}`, 'doc', JSON.stringify(r)),
            );
            rec.record('raw-redis', writes / secondsSince(t));
          } else {
            const mem = counting(new InMemorySagaStore());
            const memEngine = createSagaEngine({ store: mem.store, logger: silentLogger });
            const cpu = process.cpuUsage();
            let t = performance.now();
            await runConcurrently(o.sagas, o.sagaConcurrency, async (i) => {
              const r = await memEngine.start(threeSteps, { n: i });
              if (r.status !== 'completed') throw new Error(`saga ended ${r.status}`);
            });
            let s = secondsSince(t);
            const transitions = o.sagas * TRANSITIONS_PER_SAGA;
            rec.record('bt-mem', transitions / s);
            rec.record('bt-mem-cpu', transitions / cpuSecondsSince(cpu));
            rec.record('bt-mem-sagas', o.sagas / s);
            rec.record('bt-writes', mem.writes() / o.sagas);

            const red = counting(
              new RedisSagaStore({ keyPrefix: `${prefix}bt:${run}:` }, { redis }),
            );
            const redisEngine = createSagaEngine({ store: red.store, logger: silentLogger });
            counter.reset();
            t = performance.now();
            await runConcurrently(o.redisSagas, o.sagaConcurrency, async (i) => {
              const r = await redisEngine.start(threeSteps, { n: i });
              if (r.status !== 'completed') throw new Error(`saga ended ${r.status}`);
            });
            s = secondsSince(t);
            const redisTransitions = o.redisSagas * TRANSITIONS_PER_SAGA;
            rec.record('bt-redis', redisTransitions / s);
            rec.record('bt-redis-rtt', counter.roundTrips / redisTransitions);
            rec.record('bt-redis-rtt-saga', counter.roundTrips / o.redisSagas);
          }
        }
      }
      rec.note(
        'The 200k transitions/s target (issue 13) is "on one core": it is checked against transitions per CPU-second the bench process used (user + system), because on a shared machine wall-clock time includes waiting for a core. The ownership lease rides in each store write (one round trip per write on Redis).',
      );
      rec.note(
        'A transition is one persisted state change: creation, each step before (running) and after (completed) it runs, and the end: 8 for 3 steps, counted as 8 per saga. Since session 12 the engine writes a completion and the next start (or the saga end) in one store write: 5 writes per 3-step saga (bt-writes), so fewer than 1 round trip per transition on Redis. The write before a step is what lets recover() know an effect may have happened; it is still written before every step runs.',
      );
    } finally {
      await deleteByPrefix(redis, prefix).catch(() => undefined);
      await redis.quit().catch(() => undefined);
    }
  },
};
