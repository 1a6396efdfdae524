/**
 * Saga engine CPU alone, in rounds, printing CPU µs per transition and transitions per
 * CPU-second.
 *
 * - `sagaCpu.ts [n] [rounds] [concurrency]`: the `saga-engine` benchmark's in-memory side
 *   (3-step sagas, 64 at once, `InMemorySagaStore`, silent logger), no Redis.
 * - `sagaCpu.ts redis [n] [rounds] [concurrency] [sides]`: the Redis sides (`hand`: the
 *   hand-written `HSET` loop; `cas`: the same loop with a fenced write, a Lua script
 *   that checks the revision and sets the TTL of the finished record; `bt`: the engine on `RedisSagaStore`; default all three, the order reversed every other round),
 *   with the Redis server's own CPU per transition beside this process's (`INFO cpu`, main
 *   thread, server-wide), so point `REDIS_URL` at a Redis of your own
 *   (`redis-server --port 6391 --save ''`) for figures no other client blurs.
 *
 * Profile it with
 * `TSX_TSCONFIG_PATH=../tsconfig.json node --cpu-prof --import tsx src/sagaCpu.ts redis 4000 5 64 bt`.
 */
import { createHash } from 'node:crypto';
import { createSagaEngine, defineSaga, InMemorySagaStore, type SagaStore } from '@backtrack/core';
import { createRedisClient, RedisSagaStore } from '@backtrack/redis';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { runConcurrently, SERVICES, silentLogger, uniqueName } from './common.js';
import { deleteByPrefix } from './redisKeys.js';
import { rawSagas } from './benchmarks/saga.js';

const threeSteps = defineSaga('bench-3-steps', { input: z.object({ n: z.number() }) })
  .step('reserve', { run: ({ input }) => ({ reserved: input.n }), compensate: () => undefined })
  .step('charge', { run: ({ input }) => ({ charged: input.n }), compensate: () => undefined })
  .step('ship', { run: ({ input }) => ({ shipped: input.n }) })
  .build();

function counted(inner: SagaStore): { store: SagaStore; writes: () => number } {
  let writes = 0;
  const store: SagaStore = {
    create: (record) => {
      writes++;
      return inner.create(record);
    },
    update: (record, expected) => {
      writes++;
      return inner.update(record, expected);
    },
    get: (id) => inner.get(id),
    list: (q) => inner.list(q),
  };
  return { store, writes: () => writes };
}

/**
 * The Redis server's main-thread CPU so far, in µs (`INFO cpu`: user + system). Server-wide:
 * on a shared server it counts every client's commands.
 */
async function serverUsec(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (name: string) => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)?.[1] ?? NaN);
  return (field('used_cpu_user_main_thread') + field('used_cpu_sys_main_thread')) * 1e6;
}

async function memoryRounds(n: number, rounds: number, concurrency: number): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    const { store, writes } = counted(new InMemorySagaStore());
    const engine = createSagaEngine({ store, logger: silentLogger });
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await runConcurrently(n, concurrency, async (i) => {
      const r = await engine.start(threeSteps, { n: i });
      if (r.status !== 'completed') throw new Error(`saga ended ${r.status}`);
    });
    const c = process.cpuUsage(c0);
    const cpuUs = c.user + c.system;
    console.log(
      `round ${round}: ${(cpuUs / writes()).toFixed(2)} µs CPU/transition, ${Math.round(writes() / (cpuUs / 1e6))} transitions/cpu-s, ${Math.round(writes() / ((performance.now() - t0) / 1000))} transitions/s wall`,
    );
  }
}

/** The hand-written fenced write (side `cas`): revision check, HSET, TTL when finished. */
const CAS = `
local rev = redis.call('HGET', KEYS[1], 'rev')
if (rev or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'rev', ARGV[2], 'doc', ARGV[3])
if ARGV[4] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return 1
`;
const CAS_SHA = createHash('sha1').update(CAS).digest('hex');

async function redisRounds(
  n: number,
  rounds: number,
  concurrency: number,
  sides: string[],
): Promise<void> {
  const redis = createRedisClient(SERVICES.redis);
  const prefix = `${uniqueName('bench-sagacpu')}:`;
  try {
    await redis.script('LOAD', CAS);
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? sides : [...sides].reverse();
      for (const side of order) {
        const s0 = await serverUsec(redis);
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        let writes: number;
        if (side === 'hand') {
          writes = await rawSagas(n, concurrency, 0, (id, r) =>
            redis.hset(`${prefix}hand:${round}:${id}`, 'doc', JSON.stringify(r)),
          );
        } else if (side === 'cas') {
          // The HSET loop with the store's fencing: one script per transition that writes only
          // over the revision before it (and gives the finished record a TTL).
          writes = await rawSagas(n, concurrency, 0, (id, r) =>
            redis.evalsha(
              CAS_SHA,
              1,
              `${prefix}cas:${round}:${id}`,
              String((r.revision as number) - 1),
              String(r.revision),
              JSON.stringify(r),
              r.status === 'completed' ? '2592000000' : '0',
            ),
          );
        } else {
          const { store, writes: w } = counted(
            new RedisSagaStore({ keyPrefix: `${prefix}bt:${round}:` }, { redis }),
          );
          const engine = createSagaEngine({ store, logger: silentLogger });
          await runConcurrently(n, concurrency, async (i) => {
            const r = await engine.start(threeSteps, { n: i });
            if (r.status !== 'completed') throw new Error(`saga ended ${r.status}`);
          });
          writes = w();
        }
        const wall = (performance.now() - t0) / 1000;
        const c = process.cpuUsage(c0);
        const server = (await serverUsec(redis)) - s0;
        const cpuUs = c.user + c.system;
        console.log(
          `round ${round} ${side.padEnd(4)}: ${Math.round(writes / wall)} transitions/s wall, client ${(cpuUs / writes).toFixed(1)} µs CPU/transition, server ${(server / writes).toFixed(1)} µs CPU/transition`,
        );
        await deleteByPrefix(redis, prefix);
      }
    }
  } finally {
    await deleteByPrefix(redis, prefix).catch(() => undefined);
    await redis.quit().catch(() => undefined);
  }
}

if (process.argv[2] === 'redis') {
  await redisRounds(
    Number(process.argv[3] ?? 4000),
    Number(process.argv[4] ?? 5),
    Number(process.argv[5] ?? 64),
    (process.argv[6] ?? 'hand,cas,bt').split(','),
  );
} else {
  await memoryRounds(
    Number(process.argv[2] ?? 20000),
    Number(process.argv[3] ?? 5),
    Number(process.argv[4] ?? 64),
  );
}
