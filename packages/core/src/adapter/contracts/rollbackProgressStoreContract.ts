/**
 * The shared RollbackProgressStore contract suite. Published in `@backtrack/core/adapter`; the
 * test runner comes in as an argument (see testApi.ts).
 */
import type { ContractTestApi } from './testApi.js';
import { summaryOf, type RollbackPlan } from '../../rollback/plan.js';
import type { RollbackProgressStore } from '../../rollback/RollbackProgressStore.js';

export interface RollbackProgressStoreContractHarness {
  store: RollbackProgressStore;
  /** A second instance over the same data (Redis: another connection). @default store */
  peer?: RollbackProgressStore;
  cleanup?(): Promise<void>;
}

/** A small plan literal: the store treats plans as opaque JSON keyed by planId. */
export function contractPlan(planId = 'plan-1'): RollbackPlan {
  return {
    planId,
    createdAt: '2026-11-25T10:00:00.000Z',
    service: 'orders',
    version: '2.4.0',
    strategy: 'compensate',
    window: { until: '2026-11-25T10:00:00.000Z' },
    items: [
      {
        itemId: 'compensate:e1',
        action: 'compensate',
        original: {
          id: 'e1',
          type: 't',
          schemaVersion: 1,
          seq: 1,
          time: '2026-11-25T09:00:00.000Z',
        },
        messages: [
          {
            id: 'm1',
            type: 'u',
            schemaVersion: 1,
            topic: 'orders',
            headers: { id: 'm1' },
            body: 'e30=',
            data: {},
          },
        ],
      },
    ],
    sagas: [{ itemId: 'saga:s1', sagaId: 's1', effects: [] }],
    needsPerson: [],
    skipped: [],
    counts: { effects: 1, items: 1, messages: 1, sagas: 1, needsPerson: 0, skipped: 0 },
  };
}

const summary = {
  reversed: 1,
  replayed: 0,
  skipped: 0,
  failed: 0,
  needsPerson: 0,
  sagasCompensated: 1,
  published: 1,
};

/**
 * Registers the RollbackProgressStore contract with `test` (`{ describe, it, expect }`) for one
 * implementation. `factory` is called once per test and must return an isolated store.
 */
export function rollbackProgressStoreContract(
  name: string,
  factory: () => Promise<RollbackProgressStoreContractHarness>,
  test: ContractTestApi,
): void {
  const { describe, it, expect } = test;
  async function withStore(
    fn: (store: RollbackProgressStore, peer: RollbackProgressStore) => Promise<void>,
  ) {
    const h = await factory();
    try {
      await fn(h.store, h.peer ?? h.store);
    } finally {
      await h.cleanup?.();
    }
  }
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  describe(`RollbackProgressStore contract: ${name}`, () => {
    it('creates a run idempotently, keeps the plan, and rejects another plan under the same id', async () => {
      await withStore(async (store) => {
        const plan = contractPlan();
        const first = await store.createRun('run-1', plan);
        expect(first.created).toBe(true);
        expect(first.run).toMatchObject({
          runId: 'run-1',
          planId: 'plan-1',
          status: 'running',
          totalItems: 2,
        });
        expect((await store.createRun('run-1', plan)).created).toBe(false);
        // The summary only: a store never holds a plan's items.
        expect(await store.getPlan('run-1')).toEqual(summaryOf(plan));
        await expect(store.createRun('run-1', contractPlan('plan-2'))).rejects.toMatchObject({
          code: 'BT_ERR_ROLLBACK_RUN_CONFLICT',
        });
        expect(await store.getRun('nope')).toBeUndefined();
        expect(await store.getPlan('nope')).toBeUndefined();
      });
    });

    it('grants the lease to exactly one of two concurrent runners', async () => {
      await withStore(async (store, peer) => {
        await store.createRun('run-2', contractPlan());
        const results = await Promise.all([
          store.acquireLease('run-2', 'a', 10_000),
          peer.acquireLease('run-2', 'b', 10_000),
        ]);
        expect(results.filter((r) => r.acquired)).toHaveLength(1);
        const loser = results.find((r) => !r.acquired)!;
        expect(loser).toMatchObject({ acquired: false });
        if (!loser.acquired) expect(['a', 'b']).toContain(loser.owner);
        expect((await store.getRun('run-2'))!.lease?.owner).toMatch(/^[ab]$/);
      });
    });

    it('lets the lease expire by itself, and fences the old holder out', async () => {
      await withStore(async (store, peer) => {
        await store.createRun('run-3', contractPlan());
        const old = await store.acquireLease('run-3', 'old', 150);
        if (!old.acquired) throw new Error('first lease not granted');
        await store.setItems('run-3', old.token, [
          { itemId: 'compensate:e1', state: 'publishing' },
        ]);
        await sleep(250);
        const next = await peer.acquireLease('run-3', 'new', 10_000);
        expect(next.acquired).toBe(true);
        await expect(
          store.setItems('run-3', old.token, [{ itemId: 'compensate:e1', state: 'done' }]),
        ).rejects.toMatchObject({ code: 'BT_ERR_ROLLBACK_LEASE_LOST' });
        await expect(store.renewLease('run-3', old.token, 1000)).rejects.toMatchObject({
          code: 'BT_ERR_ROLLBACK_LEASE_LOST',
        });
        await expect(
          store.finishRun('run-3', old.token, 'completed', summary),
        ).rejects.toMatchObject({
          code: 'BT_ERR_ROLLBACK_LEASE_LOST',
        });
        await store.releaseLease('run-3', old.token); // not the holder: nothing happens
        expect((await store.getRun('run-3'))!.lease?.owner).toBe('new');
        expect((await store.getItems('run-3'))['compensate:e1']!.state).toBe('publishing');
      });
    });

    it('records item states, counting publishing attempts', async () => {
      await withStore(async (store) => {
        await store.createRun('run-4', contractPlan());
        const lease = await store.acquireLease('run-4', 'me', 10_000);
        if (!lease.acquired) throw new Error('lease not granted');
        await store.setItems('run-4', lease.token, [
          { itemId: 'compensate:e1', state: 'publishing' },
        ]);
        await store.setItems('run-4', lease.token, [
          { itemId: 'compensate:e1', state: 'failed', error: 'broker down' },
        ]);
        await store.setItems('run-4', lease.token, [
          { itemId: 'compensate:e1', state: 'publishing' },
          { itemId: 'saga:s1', state: 'needs-person', error: 'past pivot' },
        ]);
        await store.setItems('run-4', lease.token, [{ itemId: 'compensate:e1', state: 'done' }]);
        const items = await store.getItems('run-4');
        expect(items['compensate:e1']).toMatchObject({ state: 'done', attempts: 2 });
        expect(items['saga:s1']).toMatchObject({
          state: 'needs-person',
          attempts: 0,
          error: 'past pivot',
        });
        expect(await store.getItems('nope')).toEqual({});
      });
    });

    it('checkpoints a page: stores the cursor and forgets the given items, fenced', async () => {
      await withStore(async (store, peer) => {
        await store.createRun('run-6', contractPlan());
        expect(await store.getCheckpoint('run-6')).toBeUndefined();
        const lease = await store.acquireLease('run-6', 'me', 200);
        if (!lease.acquired) throw new Error('lease not granted');
        await store.setItems('run-6', lease.token, [
          { itemId: 'compensate:e1', state: 'publishing' },
          { itemId: 'skip:e2', state: 'skipped', error: 'nothing to do' },
          { itemId: 'person:e3', state: 'needs-person', error: 'irreversible' },
        ]);
        await store.setItems('run-6', lease.token, [{ itemId: 'compensate:e1', state: 'done' }]);
        const checkpoint = {
          cursor: 'journal:abc',
          complete: false,
          pages: 1,
          finished: 3,
          forgotten: { done: 1, skipped: 1 },
          totals: { reversed: 1, replayed: 0, skipped: 1, needsPerson: 1, sagasCompensated: 0 },
        };
        await store.setCheckpoint('run-6', lease.token, checkpoint, ['compensate:e1', 'skip:e2']);
        expect(await peer.getCheckpoint('run-6')).toEqual(checkpoint);
        expect(Object.keys(await peer.getItems('run-6'))).toEqual(['person:e3']);
        // A forgotten item counts its attempts from zero again.
        await store.setItems('run-6', lease.token, [
          { itemId: 'compensate:e1', state: 'publishing' },
        ]);
        expect((await store.getItems('run-6'))['compensate:e1']!.attempts).toBe(1);
        await sleep(300);
        await peer.acquireLease('run-6', 'other', 10_000);
        await expect(
          store.setCheckpoint('run-6', lease.token, { ...checkpoint, pages: 2 }, []),
        ).rejects.toMatchObject({ code: 'BT_ERR_ROLLBACK_LEASE_LOST' });
        expect((await store.getCheckpoint('run-6'))!.pages).toBe(1);
      });
    });

    it('renews, releases and finishes a run with its summary', async () => {
      await withStore(async (store, peer) => {
        await store.createRun('run-5', contractPlan());
        const lease = await store.acquireLease('run-5', 'me', 200);
        if (!lease.acquired) throw new Error('lease not granted');
        await store.renewLease('run-5', lease.token, 10_000);
        await sleep(300);
        expect((await peer.acquireLease('run-5', 'other', 1000)).acquired).toBe(false);
        await store.finishRun('run-5', lease.token, 'completed', summary);
        await store.releaseLease('run-5', lease.token);
        const run = await store.getRun('run-5');
        expect(run).toMatchObject({ status: 'completed', summary });
        expect(run!.lease).toBeUndefined();
        expect((await peer.acquireLease('run-5', 'other', 1000)).acquired).toBe(true);
      });
    });

    it('lists runs newest first', async () => {
      await withStore(async (store) => {
        await store.createRun('run-a', contractPlan('p-a'));
        await sleep(5);
        await store.createRun('run-b', contractPlan('p-b'));
        const runs = await store.listRuns({ limit: 10 });
        expect(runs.map((r) => r.runId).slice(0, 2)).toEqual(['run-b', 'run-a']);
      });
    });
  });
}
