/**
 * The shared SagaStore contract suite, run against every implementation (in-memory, Redis,
 * PostgreSQL, and any store a user writes).
 * Published in `@backtrack/core/adapter`; the test runner comes in as an argument (see
 * testApi.ts).
 */
import type { ContractTestApi } from './testApi.js';
import { BacktrackError } from '../../errors/BacktrackError.js';
import { SagaConcurrencyError } from '../../saga/errors.js';
import type { SagaRecord, SagaStatus, SagaStore } from '../../saga/SagaStore.js';

/** What a contract run needs from one implementation: a fresh, isolated store per test. */
export interface SagaStoreContractHarness {
  store: SagaStore;
  /**
   * A second store instance over the SAME data (for Redis or PostgreSQL: a second connection),
   * to show that create and update are atomic across clients, as with two engines recovering
   * the same saga. Defaults to `store`.
   */
  peer?: SagaStore;
  /** Drops what the test created. */
  cleanup?(): Promise<unknown>;
  /**
   * Lets `ms` pass for the store's retention clock: a fake clock's step, or (the default) real
   * waiting, which is what a Redis TTL or a PostgreSQL pruning pass needs.
   */
  advance?(ms: number): Promise<void>;
}

/** What a retention case asks the factory for. */
export interface SagaStoreContractOptions {
  /**
   * The store's retention of finished sagas, in ms (a few hundred in the retention cases). The
   * store must also run its own expiry (sweep, pruning pass) often enough for the cases to see
   * it within a few seconds: give it a short interval.
   * Absent: the store's default retention (the other cases write recent sagas only).
   */
  finishedRetentionMs?: number;
}

const BASE_TIME = Date.parse('2026-01-01T00:00:00.000Z');

/**
 * Tries to change a record a store handed out: a store that hands out frozen records makes the
 * change throw (a TypeError in strict-mode code); one that hands out copies lets it happen. Either
 * way, the stored saga must not change.
 */
function attempt(change: () => void): void {
  try {
    change();
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
  }
}

/**
 * A complete, valid SagaRecord for tests. `createdAt` is derived from `seq` so records have a
 * known order.
 */
export function makeSagaRecord(
  sagaId: string,
  overrides: Partial<SagaRecord> & { seq?: number } = {},
): SagaRecord {
  const { seq = 0, ...rest } = overrides;
  const createdAt = new Date(BASE_TIME + seq * 1000).toISOString();
  return {
    sagaId,
    sagaName: 'place-order',
    definitionVersion: 1,
    status: 'running',
    input: { orderId: sagaId, amountCents: 1250, tags: ['a', 'b'] },
    steps: {
      'reserve-stock': { status: 'pending', attempts: 0, compensationAttempts: 0 },
      'charge-card': { status: 'pending', attempts: 0, compensationAttempts: 0 },
    },
    completionOrder: [],
    compensationOrder: [],
    cancelRequested: false,
    revision: 0,
    createdAt,
    updatedAt: createdAt,
    ...rest,
  };
}

/**
 * Registers the SagaStore contract with `test` (`{ describe, it, expect }`) for one implementation.
 * `factory` is called once per test and must return an isolated, empty store.
 *
 * @example
 * sagaStoreContract('InMemorySagaStore', async () => ({ store: new InMemorySagaStore() }), {
 *   describe, it, expect,
 * });
 */
export function sagaStoreContract(
  name: string,
  factory: (options: SagaStoreContractOptions) => Promise<SagaStoreContractHarness>,
  test: ContractTestApi,
): void {
  const { describe, it, expect } = test;
  async function withStore(
    fn: (h: Required<SagaStoreContractHarness>) => Promise<void>,
    options: SagaStoreContractOptions = {},
  ) {
    const h = await factory(options);
    const full: Required<SagaStoreContractHarness> = {
      peer: h.store,
      cleanup: async () => undefined,
      advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      ...h,
    };
    try {
      await fn(full);
    } finally {
      await full.cleanup();
    }
  }

  /** Collects every page of a query, asserting page sizes and the cursor protocol. */
  async function listAll(
    store: SagaStore,
    query: Parameters<SagaStore['list']>[0] & { limit: number },
  ): Promise<SagaRecord[]> {
    const all: SagaRecord[] = [];
    let cursor: string | undefined;
    for (let pages = 0; pages < 1000; pages++) {
      const page = await store.list({ ...query, ...(cursor ? { cursor } : {}) });
      expect(page.items.length).toBeLessThanOrEqual(query.limit);
      all.push(...page.items);
      if (page.nextCursor === undefined) return all;
      expect(page.items.length).toBe(query.limit);
      cursor = page.nextCursor;
    }
    throw new Error('list never ended');
  }

  const ids = (records: readonly SagaRecord[]) => records.map((r) => r.sagaId);

  async function seed(store: SagaStore): Promise<SagaRecord[]> {
    const specs: Array<[string, SagaStatus, string]> = [
      ['s1', 'running', 'place-order'],
      ['s2', 'compensating', 'place-order'],
      ['s3', 'running', 'refund-order'],
      ['s4', 'stuck', 'place-order'],
      ['s5', 'running', 'place-order'],
      ['s6', 'completed', 'refund-order'],
      ['s7', 'stuck', 'refund-order'],
      ['s8', 'running', 'place-order'],
    ];
    const records = specs.map(([id, status, sagaName], seq) =>
      makeSagaRecord(id, { status, sagaName, seq }),
    );
    // Created out of order: listing order must follow createdAt, not insertion order.
    for (const r of [...records].reverse()) {
      expect((await store.create(r)).created).toBe(true);
    }
    return records;
  }

  describe(`SagaStore contract: ${name}`, () => {
    it('creates a saga and gets it back unchanged', () =>
      withStore(async ({ store }) => {
        const record = makeSagaRecord('saga-1', {
          deadline: '2026-01-02T00:00:00.000Z',
          failure: {
            step: 'charge-card',
            reason: 'step-failed',
            error: { name: 'Error', message: 'declined', code: 'CARD_DECLINED' },
          },
          steps: {
            'reserve-stock': {
              status: 'completed',
              attempts: 2,
              compensationAttempts: 0,
              result: { reservationId: 'r-1', lines: [{ sku: 'x', qty: 2 }], note: 'ünïcødé ✓' },
            },
          },
          completionOrder: ['reserve-stock'],
        });
        const created = await store.create(record);
        expect(created).toEqual({ created: true, record });
        expect(await store.get('saga-1')).toEqual(record);
      }));

    it('answers undefined for an unknown saga', () =>
      withStore(async ({ store }) => {
        expect(await store.get('nope')).toBeUndefined();
      }));

    it('is idempotent on sagaId: a second create returns the existing record and replaces nothing', () =>
      withStore(async ({ store }) => {
        const first = makeSagaRecord('saga-1', { input: { attempt: 'first' } });
        await store.create(first);
        const second = await store.create(
          makeSagaRecord('saga-1', { input: { attempt: 'second' }, status: 'completed', seq: 5 }),
        );
        expect(second).toEqual({ created: false, record: first });
        expect(await store.get('saga-1')).toEqual(first);
        expect(ids(await listAll(store, { limit: 10 }))).toEqual(['saga-1']);
      }));

    it('lets exactly one of many concurrent creates of one sagaId win, across clients', () =>
      withStore(async ({ store, peer }) => {
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            (i % 2 === 0 ? store : peer).create(makeSagaRecord('race', { input: { writer: i } })),
          ),
        );
        const winners = results.filter((r) => r.created);
        expect(winners).toHaveLength(1);
        const winnerInput = winners[0]!.record.input;
        for (const r of results) expect(r.record.input).toEqual(winnerInput);
        expect((await store.get('race'))?.input).toEqual(winnerInput);
        expect(ids(await listAll(store, { limit: 10, status: 'running' }))).toEqual(['race']);
      }));

    it('hands out records no caller can change the stored saga through (copies, or frozen)', () =>
      withStore(async ({ store, peer }) => {
        const record = makeSagaRecord('saga-1');
        const { record: returned } = await store.create(record);
        // A store may hand out copies (a change is not seen) or frozen records (a change throws).
        attempt(() => void (returned.status = 'completed'));
        record.status = 'failed';
        const got = await store.get('saga-1');
        expect(got?.status).toBe('running');
        attempt(() => void got!.completionOrder.push('tampered'));
        attempt(() => void (got!.steps['reserve-stock']!.attempts = 9));
        attempt(() => void ((got!.input as { tags: string[] }).tags[0] = 'tampered'));
        const listed = (await store.list()).items[0]!;
        attempt(() => void (listed.steps['charge-card']!.status = 'completed'));
        const fresh = (await store.get('saga-1'))!;
        expect(fresh).toEqual(makeSagaRecord('saga-1'));
        const updated = await store.update({ ...fresh, status: 'compensating' }, fresh.revision);
        attempt(() => void (updated.compensationOrder = ['tampered']));
        expect(await peer.get('saga-1')).toEqual({
          ...makeSagaRecord('saga-1'),
          status: 'compensating',
          revision: 1,
        });
      }));

    it('keeps nothing of the record it was given: changing it afterwards changes nothing stored', () =>
      withStore(async ({ store, peer }) => {
        const record = makeSagaRecord('saga-1');
        await store.create(record);
        record.steps['reserve-stock']!.status = 'completed';
        (record.input as { tags: string[] }).tags.push('tampered');
        const v0 = (await store.get('saga-1'))!;
        // The next record built from the stored one, as the engine builds it: what changes is
        // new, the rest is the stored record's own parts.
        const result = { reservationId: 'r-1', lines: [{ sku: 'x', qty: 2 }] };
        const next: SagaRecord = {
          ...v0,
          steps: {
            ...v0.steps,
            'reserve-stock': { ...v0.steps['reserve-stock']!, status: 'completed', result },
          },
          completionOrder: [...v0.completionOrder, 'reserve-stock'],
        };
        const v1 = await store.update(next, v0.revision);
        result.lines[0]!.qty = 99;
        next.completionOrder.push('tampered');
        next.steps['charge-card'] = { status: 'failed', attempts: 1, compensationAttempts: 0 };
        const expected = {
          ...makeSagaRecord('saga-1'),
          steps: {
            ...makeSagaRecord('saga-1').steps,
            'reserve-stock': {
              status: 'completed',
              attempts: 0,
              compensationAttempts: 0,
              result: { reservationId: 'r-1', lines: [{ sku: 'x', qty: 2 }] },
            },
          },
          completionOrder: ['reserve-stock'],
          revision: 1,
        };
        expect(v1).toEqual(expected);
        expect(await peer.get('saga-1')).toEqual(expected);
        expect(await store.get('saga-1')).toEqual(expected);
      }));

    it('updates with the expected revision and stores revision + 1', () =>
      withStore(async ({ store }) => {
        await store.create(makeSagaRecord('saga-1'));
        const v0 = (await store.get('saga-1'))!;
        const next: SagaRecord = {
          ...v0,
          status: 'compensating',
          completionOrder: ['reserve-stock'],
          updatedAt: '2026-01-01T00:05:00.000Z',
        };
        const v1 = await store.update(next, 0);
        expect(v1).toEqual({ ...next, revision: 1 });
        expect(await store.get('saga-1')).toEqual({ ...next, revision: 1 });
        const v2 = await store.update({ ...v1, status: 'compensated' }, 1);
        expect(v2.revision).toBe(2);
        const v3 = await store.update({ ...v2, cancelRequested: true }, 2);
        expect(v3.revision).toBe(3);
        expect(await store.get('saga-1')).toEqual({ ...v2, cancelRequested: true, revision: 3 });
      }));

    it('keeps the ownership lease and a request as written, and drops a removed lease', () =>
      withStore(async ({ store, peer }) => {
        const lease = { owner: 'host/1/abc', token: 't-1', expiresAt: '2026-01-01T00:00:30.000Z' };
        const created = await store.create({ ...makeSagaRecord('saga-l'), lease });
        expect(created.record.lease).toEqual(lease);
        const request = {
          kind: 'compensate' as const,
          reason: 'rollback',
          requestedAt: '2026-01-01T00:00:01.000Z',
          by: 'host/2/def',
        };
        const v1 = await store.update(
          { ...created.record, cancelRequested: true, request },
          created.record.revision,
        );
        expect(await peer.get('saga-l')).toEqual({ ...v1, lease, request });
        const { lease: _dropped, ...withoutLease } = v1;
        const v2 = await store.update({ ...withoutLease, status: 'compensated' }, v1.revision);
        expect(v2.lease).toBeUndefined();
        expect((await peer.get('saga-l'))!.lease).toBeUndefined();
        // A takeover on a stale revision is refused: the lease rides the revision check.
        await expect(
          store.update(
            { ...v1, lease: { ...lease, owner: 'host/3/ghi', token: 't-2' } },
            v1.revision,
          ),
        ).rejects.toBeInstanceOf(SagaConcurrencyError);
      }));

    it('keeps the trace context the saga started in, through updates and lists', () =>
      withStore(async ({ store, peer }) => {
        const traceContext = {
          traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
          tracestate: 'vendor=abc',
        };
        const created = await store.create({ ...makeSagaRecord('saga-t'), traceContext });
        expect(created.record.traceContext).toEqual(traceContext);
        const v1 = await store.update(
          { ...created.record, status: 'compensating' },
          created.record.revision,
        );
        expect(v1.traceContext).toEqual(traceContext);
        expect((await peer.get('saga-t'))!.traceContext).toEqual(traceContext);
        const listed = await peer.list({ status: 'compensating' });
        expect(listed.items.find((r) => r.sagaId === 'saga-t')?.traceContext).toEqual(traceContext);
      }));

    it('rejects an update with a stale revision with SagaConcurrencyError and keeps the record', () =>
      withStore(async ({ store }) => {
        await store.create(makeSagaRecord('saga-1'));
        const v1 = await store.update({ ...(await store.get('saga-1'))!, status: 'stuck' }, 0);
        const stale = store.update({ ...v1, status: 'completed' }, 0);
        await expect(stale).rejects.toBeInstanceOf(SagaConcurrencyError);
        await expect(stale).rejects.toMatchObject({
          code: 'BT_ERR_SAGA_CONCURRENT_UPDATE',
          details: { sagaId: 'saga-1', expectedRevision: 0 },
        });
        await expect(store.update({ ...v1, status: 'completed' }, 7)).rejects.toBeInstanceOf(
          SagaConcurrencyError,
        );
        expect(await store.get('saga-1')).toEqual(v1);
      }));

    it('rejects an update of a saga that does not exist with SagaConcurrencyError', () =>
      withStore(async ({ store }) => {
        await expect(store.update(makeSagaRecord('ghost'), 0)).rejects.toBeInstanceOf(
          SagaConcurrencyError,
        );
        expect(await store.get('ghost')).toBeUndefined();
      }));

    it('lets exactly one of many concurrent updates with the same revision win, across clients', () =>
      withStore(async ({ store, peer }) => {
        await store.create(makeSagaRecord('saga-1'));
        const base = (await store.get('saga-1'))!;
        const outcomes = await Promise.allSettled(
          Array.from({ length: 20 }, (_, i) =>
            (i % 2 === 0 ? store : peer).update(
              { ...base, status: i % 3 === 0 ? 'stuck' : 'compensating', input: { writer: i } },
              0,
            ),
          ),
        );
        const won = outcomes.filter((o) => o.status === 'fulfilled');
        const lost = outcomes.filter((o) => o.status === 'rejected');
        expect(won).toHaveLength(1);
        for (const o of lost) {
          expect(o.reason).toBeInstanceOf(SagaConcurrencyError);
          expect(o.reason).toBeInstanceOf(BacktrackError);
        }
        const winner = won[0]!.value;
        expect(winner.revision).toBe(1);
        expect(await store.get('saga-1')).toEqual(winner);
        // The index holds the saga exactly once, under the winner's status.
        const indexed = await listAll(store, {
          limit: 10,
          status: ['running', 'stuck', 'compensating'],
        });
        expect(indexed.map((r) => [r.sagaId, r.status])).toEqual([['saga-1', winner.status]]);
      }));

    it('lists every saga oldest first when no filter is given', () =>
      withStore(async ({ store }) => {
        const records = await seed(store);
        const page = await store.list();
        expect(ids(page.items)).toEqual(ids(records));
        expect(page.nextCursor).toBeUndefined();
      }));

    it('lists by one status, by several statuses, by sagaName, and by both', () =>
      withStore(async ({ store }) => {
        await seed(store);
        expect(ids((await store.list({ status: 'running' })).items)).toEqual([
          's1',
          's3',
          's5',
          's8',
        ]);
        expect(ids((await store.list({ status: ['stuck', 'compensating'] })).items)).toEqual([
          's2',
          's4',
          's7',
        ]);
        expect(ids((await store.list({ sagaName: 'refund-order' })).items)).toEqual([
          's3',
          's6',
          's7',
        ]);
        expect(
          ids((await store.list({ sagaName: 'place-order', status: ['running', 'stuck'] })).items),
        ).toEqual(['s1', 's4', 's5', 's8']);
        expect((await store.list({ status: 'compensated' })).items).toEqual([]);
        expect((await store.list({ sagaName: 'no-such-saga' })).items).toEqual([]);
      }));

    it('pages with a cursor: every match exactly once, in order, and no cursor on the last page', () =>
      withStore(async ({ store }) => {
        const records = await seed(store);
        for (const limit of [1, 2, 3, 8, 50]) {
          expect(ids(await listAll(store, { limit }))).toEqual(ids(records));
        }
        expect(ids(await listAll(store, { limit: 2, status: 'running' }))).toEqual([
          's1',
          's3',
          's5',
          's8',
        ]);
        expect(
          ids(
            await listAll(store, {
              limit: 2,
              status: ['running', 'stuck'],
              sagaName: 'place-order',
            }),
          ),
        ).toEqual(['s1', 's4', 's5', 's8']);
        const firstPage = await store.list({ limit: 4, status: 'running' });
        expect(firstPage.items).toHaveLength(4);
        expect(firstPage.nextCursor).toBeUndefined();
      }));

    it('orders sagas created in the same millisecond by sagaId', () =>
      withStore(async ({ store }) => {
        for (const id of ['b', 'c', 'a']) await store.create(makeSagaRecord(id, { seq: 3 }));
        await store.create(makeSagaRecord('z', { seq: 1 }));
        expect(ids(await listAll(store, { limit: 1 }))).toEqual(['z', 'a', 'b', 'c']);
      }));

    it('moves a saga between status indexes when its status changes', () =>
      withStore(async ({ store }) => {
        await seed(store);
        const s5 = (await store.get('s5'))!;
        const moved = await store.update({ ...s5, status: 'compensating' }, s5.revision);
        expect(ids((await store.list({ status: 'running' })).items)).toEqual(['s1', 's3', 's8']);
        expect(ids((await store.list({ status: 'compensating' })).items)).toEqual(['s2', 's5']);
        await store.update({ ...moved, status: 'stuck' }, moved.revision);
        expect(ids((await store.list({ status: 'compensating' })).items)).toEqual(['s2']);
        expect(ids((await store.list({ status: 'stuck' })).items)).toEqual(['s4', 's5', 's7']);
        expect(ids((await store.list({ status: 'stuck', sagaName: 'place-order' })).items)).toEqual(
          ['s4', 's5'],
        );
        expect(
          ids((await store.list({ status: 'running', sagaName: 'place-order' })).items),
        ).toEqual(['s1', 's8']);
        const listed = (await store.list({ status: 'stuck' })).items.find((r) => r.sagaId === 's5');
        expect(listed?.revision).toBe(s5.revision + 2);
        // An update that keeps the status keeps the saga where it is.
        const s1 = (await store.get('s1'))!;
        await store.update({ ...s1, completionOrder: ['reserve-stock'] }, s1.revision);
        expect(ids((await store.list({ status: 'running' })).items)).toEqual(['s1', 's3', 's8']);
        // A failed (stale) update moves nothing.
        await expect(store.update({ ...s1, status: 'completed' }, s1.revision)).rejects.toThrow();
        expect(ids((await store.list({ status: 'completed' })).items)).toEqual(['s6']);
      }));

    it('prunes only finished sagas last written before the cut, and drops them from every index', () =>
      withStore(async ({ store }) => {
        expect(store.prune, 'this store implements prune').toBeTypeOf('function');
        const old = '2026-01-01T00:00:00.000Z';
        const recent = '2026-03-01T00:00:00.000Z';
        const specs: Array<[string, SagaStatus, string]> = [
          ['p-running', 'running', old],
          ['p-compensating', 'compensating', old],
          ['p-stuck', 'stuck', old],
          ['p-completed', 'completed', old],
          ['p-compensated', 'compensated', old],
          ['p-failed', 'failed', old],
          ['p-completed-recent', 'completed', recent],
        ];
        for (const [id, status, updatedAt] of specs) {
          await store.create(makeSagaRecord(id, { status, updatedAt }));
        }
        const cut = new Date('2026-02-01T00:00:00.000Z');
        expect(await store.prune!({ updatedBefore: cut })).toBe(3);
        for (const id of ['p-completed', 'p-compensated', 'p-failed']) {
          expect(await store.get(id), id).toBeUndefined();
        }
        expect(ids(await listAll(store, { limit: 10 })).sort()).toEqual(
          ['p-compensating', 'p-completed-recent', 'p-running', 'p-stuck'].sort(),
        );
        expect(ids((await store.list({ status: 'completed' })).items)).toEqual([
          'p-completed-recent',
        ]);
        expect((await store.list({ status: ['compensated', 'failed'] })).items).toEqual([]);
        expect(await store.prune!({ updatedBefore: cut })).toBe(0);
        // A pruned saga id can be used again.
        expect((await store.create(makeSagaRecord('p-completed'))).created).toBe(true);
      }));

    it('prunes in bounded steps (limit) and only the statuses asked for', () =>
      withStore(async ({ store }) => {
        const old = '2026-01-01T00:00:00.000Z';
        for (let i = 0; i < 5; i++) {
          await store.create(
            makeSagaRecord(`q-done-${i}`, { status: 'completed', updatedAt: old, seq: i }),
          );
        }
        await store.create(makeSagaRecord('q-undone', { status: 'compensated', updatedAt: old }));
        const cut = new Date('2026-02-01T00:00:00.000Z');
        expect(await store.prune!({ updatedBefore: cut, statuses: ['compensated'] })).toBe(1);
        expect(await store.get('q-undone')).toBeUndefined();
        const steps: number[] = [];
        for (let n = -1; n !== 0;) {
          n = await store.prune!({ updatedBefore: cut, limit: 2 });
          steps.push(n);
        }
        expect(steps).toEqual([2, 2, 1, 0]);
        expect((await store.list()).items).toEqual([]);
      }));

    // Retention: finished sagas expire by themselves, RETENTION_MS after their last write (real
    // time on Redis and PostgreSQL, so the cases poll for a few seconds rather than wait exactly).
    const RETENTION_MS = 400;

    /** Writes `id` as the engine does: created running, then moved through `statuses`. */
    async function drive(store: SagaStore, id: string, statuses: SagaStatus[], seq = 0) {
      let r = (await store.create(makeSagaRecord(id, { seq }))).record;
      for (const status of statuses) r = await store.update({ ...r, status }, r.revision);
      return r;
    }

    /** Polls (advancing the clock) until `done` holds, for at most ~5 s of store calls. */
    async function eventually(
      advance: (ms: number) => Promise<void>,
      done: () => Promise<boolean>,
    ): Promise<boolean> {
      for (let i = 0; i < 100; i++) {
        if (await done()) return true;
        await advance(50);
      }
      return done();
    }

    it(
      'expires finished sagas by itself after finishedRetentionMs; running, compensating and stuck ones never',
      () =>
        withStore(
          async ({ store, advance }) => {
            await drive(store, 'r-running', [], 1);
            await drive(store, 'r-compensating', ['compensating'], 2);
            await drive(store, 'r-stuck', ['compensating', 'stuck'], 3);
            await drive(store, 'r-completed', ['completed'], 4);
            await drive(store, 'r-compensated', ['compensating', 'compensated'], 5);
            await drive(store, 'r-failed', ['failed'], 6);
            // Finished, then asked to compensate: not finished any more, so it must not expire.
            await drive(store, 'r-reopened', ['completed', 'compensating'], 7);
            const live = ['r-running', 'r-compensating', 'r-stuck', 'r-reopened'];
            const finished = ['r-completed', 'r-compensated', 'r-failed'];
            // Before the retention ends, every saga is there.
            expect(ids(await listAll(store, { limit: 3 })).sort()).toEqual(
              [...live, ...finished].sort(),
            );
            await advance(RETENTION_MS + 100);
            const gone = await eventually(advance, async () => {
              const left = await Promise.all(finished.map((id) => store.get(id)));
              const listed = ids(await listAll(store, { limit: 2 }));
              return left.every((r) => r === undefined) && listed.length === live.length;
            });
            expect(gone, 'finished sagas gone from get and list').toBe(true);
            // Listing after expiry: every page, every filter, only the live sagas.
            expect(ids(await listAll(store, { limit: 1 })).sort()).toEqual([...live].sort());
            for (const status of ['completed', 'compensated', 'failed'] as const) {
              expect((await store.list({ status })).items, status).toEqual([]);
            }
            expect(
              ids(
                await listAll(store, {
                  status: ['running', 'completed', 'stuck'],
                  sagaName: 'place-order',
                  limit: 1,
                }),
              ),
            ).toEqual(['r-running', 'r-stuck']);
            for (const id of live) expect((await store.get(id))?.sagaId, id).toBe(id);
          },
          { finishedRetentionMs: RETENTION_MS },
        ),
      20_000,
    );

    it(
      'lets a saga id be used again once its finished saga expired',
      () =>
        withStore(
          async ({ store, advance }) => {
            const done = await drive(store, 'r-again', ['completed'], 1);
            await advance(RETENTION_MS + 100);
            expect(
              await eventually(advance, async () => (await store.get('r-again')) === undefined),
            ).toBe(true);
            // The same id, a new saga (a later createdAt): listed once, as itself.
            const fresh = await drive(store, 'r-again', [], 9);
            expect(fresh.createdAt).not.toBe(done.createdAt);
            const listed = await listAll(store, { limit: 1 });
            expect(listed.map((r) => [r.sagaId, r.createdAt, r.status])).toEqual([
              ['r-again', fresh.createdAt, 'running'],
            ]);
            expect(ids((await store.list({ status: 'completed' })).items)).toEqual([]);
          },
          { finishedRetentionMs: RETENTION_MS },
        ),
      20_000,
    );

    it('does not lose or repeat sagas that stay in the index while paging', () =>
      withStore(async ({ store }) => {
        await seed(store);
        const page1 = await store.list({ status: 'running', limit: 2 });
        expect(ids(page1.items)).toEqual(['s1', 's3']);
        // Between pages, one already-listed saga and one not-yet-listed saga change status.
        const s1 = (await store.get('s1'))!;
        await store.update({ ...s1, status: 'completed' }, s1.revision);
        const s5 = (await store.get('s5'))!;
        await store.update({ ...s5, status: 'stuck' }, s5.revision);
        const page2 = await store.list({ status: 'running', limit: 2, cursor: page1.nextCursor! });
        expect(ids(page2.items)).toEqual(['s8']);
        expect(page2.nextCursor).toBeUndefined();
      }));
  });
}
