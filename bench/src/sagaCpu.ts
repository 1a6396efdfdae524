/**
 * Saga engine CPU alone: the `saga-engine` benchmark's in-memory side (3-step sagas, 64 at once,
 * `InMemorySagaStore`, silent logger) without Redis, in rounds, printing CPU µs per transition and
 * transitions per CPU-second. Profile it with
 * `TSX_TSCONFIG_PATH=../tsconfig.json node --cpu-prof --import tsx src/sagaCpu.ts 20000 5`.
 */
import { createSagaEngine, defineSaga, InMemorySagaStore, type SagaStore } from '@backtrack/core';
import { z } from 'zod';
import { runConcurrently, silentLogger } from './common.js';

const threeSteps = defineSaga('bench-3-steps', { input: z.object({ n: z.number() }) })
  .step('reserve', { run: ({ input }) => ({ reserved: input.n }), compensate: () => undefined })
  .step('charge', { run: ({ input }) => ({ charged: input.n }), compensate: () => undefined })
  .step('ship', { run: ({ input }) => ({ shipped: input.n }) })
  .build();

const n = Number(process.argv[2] ?? 20000);
const rounds = Number(process.argv[3] ?? 5);
const concurrency = Number(process.argv[4] ?? 64);
for (let round = 0; round < rounds; round++) {
  const inner = new InMemorySagaStore();
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
    `round ${round}: ${(cpuUs / writes).toFixed(2)} µs CPU/transition, ${Math.round(writes / (cpuUs / 1e6))} transitions/cpu-s, ${Math.round(writes / ((performance.now() - t0) / 1000))} transitions/s wall`,
  );
}
