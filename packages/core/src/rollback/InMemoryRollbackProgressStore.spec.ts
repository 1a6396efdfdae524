import { describe, expect, it } from 'vitest';
import { contractPlan, rollbackProgressStoreContract } from '../adapter/index.js';
import { InMemoryRollbackProgressStore } from './InMemoryRollbackProgressStore.js';

rollbackProgressStoreContract(
  'InMemoryRollbackProgressStore',
  async () => ({
    store: new InMemoryRollbackProgressStore(),
  }),
  { describe, it, expect },
);

describe('InMemoryRollbackProgressStore retention', () => {
  it('deletes a run runTtlMs after its last write', async () => {
    let now = Date.parse('2026-06-01T00:00:00.000Z');
    const store = new InMemoryRollbackProgressStore({ now: () => now, runTtlMs: 1_000 });
    await store.createRun('old', contractPlan('p-old'));
    now += 600;
    await store.createRun('new', contractPlan('p-new'));
    now += 600;
    expect(await store.getRun('old')).toBeUndefined();
    expect((await store.listRuns()).map((r) => r.runId)).toEqual(['new']);
  });
});
