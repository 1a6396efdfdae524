/**
 * Lab (session 13, issue 14): the Redis progress store's calls of a 20,000-item rollback run, as
 * the run made them before session 13 (`base`: per batch of 100 one `setItems` of its
 * `publishing` marks and the previous batch's `done` marks, per page of 2,000 a checkpoint that
 * forgets its items) and since (`fence`: one `renewLease` per batch, a checkpoint that forgets
 * nothing). Prints client and Redis CPU (INFO cpu) per item:
 * `REDIS_URL=redis://127.0.0.1:PORT tsx bench/src/rollbackProgressLab.ts base|fence`.
 * Point it at a Redis of your own: Redis' CPU is server-wide.
 */
import { createRedisClient, RedisRollbackProgressStore } from '@backtrack/redis';
const redis = createRedisClient(process.env.REDIS_URL!);
const mode = process.argv[2]!;
const N = 20_000,
  B = 100,
  PAGE = 2_000;
const cpuRedis = async () => {
  const info = await redis.info('cpu');
  const g = (k: string) => Number(new RegExp(`${k}:([0-9.]+)`).exec(info)![1]);
  return (g('used_cpu_sys') + g('used_cpu_user')) * 1e6;
};
const prefix = `lab-${process.pid}`;
const store = new RedisRollbackProgressStore({ keyPrefix: prefix }, { redis });
const plan = {
  planId: 'p',
  service: 's',
  version: 'v',
  strategy: 'compensate',
  window: {},
  counts: { effects: N, items: N, sagas: 0, needsPerson: 0, skipped: 0 },
} as never;
await store.createRun('r', plan);
const lease = await store.acquireLease('r', 'lab', 60_000);
if (!lease.acquired) throw new Error('no lease');
const token = lease.token;
const r0 = await cpuRedis();
const c0 = process.cpuUsage();
for (let page = 0; page < N / PAGE; page++) {
  const ids = Array.from({ length: PAGE }, (_, i) => `compensate:item-${page * PAGE + i}`);
  let carry: { itemId: string; state: 'done' }[] = [];
  for (let b = 0; b < PAGE; b += B) {
    const batch = ids.slice(b, b + B);
    if (mode === 'base') {
      await store.setItems('r', token, [
        ...carry,
        ...batch.map((itemId) => ({ itemId, state: 'publishing' as const })),
      ]);
      carry = batch.map((itemId) => ({ itemId, state: 'done' as const }));
    } else await store.renewLease('r', token, 60_000);
  }
  if (mode === 'base') await store.setItems('r', token, carry);
  const cp = {
    complete: false,
    pages: page + 1,
    finished: (page + 1) * PAGE,
    forgotten: { done: (page + 1) * PAGE, skipped: 0 },
    totals: {
      reversed: (page + 1) * PAGE,
      replayed: 0,
      skipped: 0,
      needsPerson: 0,
      sagasCompensated: 0,
    },
  };
  await store.setCheckpoint('r', token, cp, mode === 'base' ? ids : []);
}
const c = process.cpuUsage(c0);
const r1 = await cpuRedis();
console.log(
  JSON.stringify({
    mode,
    clientUsPerItem: +((c.user + c.system) / N).toFixed(2),
    redisUsPerItem: +((r1 - r0) / N).toFixed(2),
  }),
);
await store.destroy();
await redis.quit();
