import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { defineSaga } from './definition.js';
import { InMemorySagaStore } from './InMemorySagaStore.js';
import { CrashingSagaStore, SimulatedCrash } from '../testing/CrashingSagaStore.js';
import {
  createSagaEngine,
  DEFAULT_SAGA_ENGINE_OPTIONS,
  type SagaEngineOptions,
} from './SagaEngine.js';
import type { SagaListQuery, SagaPage, SagaRecord, SagaStore } from './SagaStore.js';

const logger = pino({ level: 'silent' });
const noSleep = async () => {};

/** A saga whose step `b` waits for a gate the test opens. */
function gatedSaga(effects: string[]) {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  let bStarted!: () => void;
  const started = new Promise<void>((r) => (bStarted = r));
  const saga = defineSaga('two-engines', { input: z.object({}) })
    .step('a', { run: () => void effects.push('a'), compensate: () => void effects.push('undo a') })
    .step('b', {
      run: async () => {
        bStarted();
        await gate;
        effects.push('b');
      },
      compensate: () => void effects.push('undo b'),
    })
    .step('c', { run: () => void effects.push('c'), compensate: () => void effects.push('undo c') })
    .build();
  return { saga, open, started };
}

function engineOn(store: SagaStore, options: SagaEngineOptions = {}, now?: () => number) {
  return createSagaEngine(
    { requestPollMs: 5, ...options },
    { store, logger, sleep: noSleep, ...(now ? { now } : {}) },
  );
}

/** A store an engine loses contact with on demand (a partition, a frozen process). */
class CuttableStore implements SagaStore {
  cut = false;
  constructor(private readonly inner: SagaStore) {}
  create(record: SagaRecord): ReturnType<SagaStore['create']> {
    return this.#check() ?? this.inner.create(record);
  }
  get(sagaId: string): Promise<SagaRecord | undefined> {
    return this.#check() ?? this.inner.get(sagaId);
  }
  update(record: SagaRecord, expectedRevision: number): Promise<SagaRecord> {
    return this.#check() ?? this.inner.update(record, expectedRevision);
  }
  list(query?: SagaListQuery): Promise<SagaPage> {
    return this.#check() ?? this.inner.list(query);
  }
  #check(): Promise<never> | undefined {
    return this.cut ? Promise.reject(new Error('store unreachable')) : undefined;
  }
}

describe('saga ownership: one engine drives a saga at a time', () => {
  it('compensate() from another engine asks the owner, which undoes every completed step once, in reverse', async () => {
    const store = new InMemorySagaStore();
    const effects: string[] = [];
    const { saga, open, started } = gatedSaga(effects);
    const a = engineOn(store).register(saga);
    const b = engineOn(store).register(saga);
    const running = a.start(saga, {}, { sagaId: 's1' });
    await started;
    const compensated = b.compensate('s1', 'rollback of v2');
    // Let engine B do whatever it does before the owner's step finishes.
    await new Promise((r) => setTimeout(r, 20));
    open();
    const [byOwner, byRequester] = await Promise.all([running, compensated]);
    expect(effects).toEqual(['a', 'b', 'undo b', 'undo a']);
    expect(byOwner.status).toBe('compensated');
    expect(byRequester.status).toBe('compensated');
    expect(byRequester.record.compensationOrder).toEqual(['b', 'a']);
    expect(byRequester.record.failure).toMatchObject({
      reason: 'compensation-requested',
      error: { message: 'rollback of v2' },
    });
    expect(byRequester.record.lease).toBeUndefined();
  });

  it('cancel() from another engine returns `requested` at once when asked not to wait', async () => {
    const store = new InMemorySagaStore();
    const effects: string[] = [];
    const { saga, open, started } = gatedSaga(effects);
    const a = engineOn(store).register(saga);
    const b = engineOn(store).register(saga);
    const running = a.start(saga, {}, { sagaId: 's2' });
    await started;
    const asked = await b.cancel('s2', 'operator', { wait: false });
    expect(asked).toMatchObject({ requested: true, status: 'running' });
    expect(asked.record.request).toMatchObject({ kind: 'cancel', reason: 'operator' });
    expect(effects).toEqual(['a']);
    open();
    const done = await running;
    expect(done.status).toBe('compensated');
    expect(effects).toEqual(['a', 'b', 'undo b', 'undo a']);
    expect(done.record.failure?.reason).toBe('cancelled');
  });

  it('a waiting requester gives up after its timeout and says the request stands', async () => {
    const store = new InMemorySagaStore();
    const effects: string[] = [];
    const { saga, open, started } = gatedSaga(effects);
    const a = engineOn(store).register(saga);
    const b = engineOn(store).register(saga);
    const running = a.start(saga, {}, { sagaId: 's3' });
    await started;
    const asked = await b.compensate('s3', 'rollback', { timeoutMs: 30 });
    expect(asked).toMatchObject({ requested: true, status: 'running' });
    open();
    expect((await running).status).toBe('compensated');
    expect(effects).toEqual(['a', 'b', 'undo b', 'undo a']);
  });

  it('another engine takes a saga over only after the owner stopped renewing its lease and it expired', async () => {
    const shared = new InMemorySagaStore();
    let clock = Date.parse('2026-01-01T00:00:00Z');
    const now = () => clock;
    const effects: string[] = [];
    const { saga, started } = gatedSaga(effects); // the gate never opens: the owner hangs in b
    const ownerStore = new CuttableStore(shared);
    const owner = engineOn(ownerStore, { leaseMs: 1_000, heartbeatMs: 10 }, now).register(saga);
    const other = engineOn(shared, { leaseMs: 1_000 }, now).register(saga);
    void owner.start(saga, {}, { sagaId: 's4' }).catch(() => undefined);
    await started;

    // The owner is alive: its heartbeat renews the lease while b runs, so recover() leaves it.
    clock += 900;
    await vi.waitFor(async () =>
      expect(Date.parse((await shared.get('s4'))!.lease!.expiresAt)).toBe(clock + 1_000),
    );
    clock += 900;
    const whileAlive = await other.recover();
    expect(whileAlive.owned.map((o) => o.sagaId)).toEqual(['s4']);
    expect(whileAlive.results).toEqual([]);

    // The owner loses the store (a frozen or partitioned process): nothing renews the lease.
    ownerStore.cut = true;
    const lastExpiry = Date.parse((await shared.get('s4'))!.lease!.expiresAt);
    clock = lastExpiry - 1;
    expect((await other.recover()).owned).toHaveLength(1);
    clock = lastExpiry + 1;
    // After expiry the other engine takes over: step b runs again (same idempotency key).
    void other.recover();
    await vi.waitFor(async () => {
      const r = (await shared.get('s4'))!;
      expect(r.lease?.owner).toBe(other.ownerId);
      expect(r.steps.b?.attempts).toBe(2);
    });
    expect(effects).toEqual(['a']);
  });

  it('the old owner cannot write once another engine took the saga over', async () => {
    const store = new InMemorySagaStore();
    let clock = Date.parse('2026-01-01T00:00:00Z');
    const now = () => clock;
    const effects: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let calls = 0;
    const saga = defineSaga('takeover', { input: z.object({}) })
      .step('a', {
        run: async () => {
          const call = (calls += 1);
          if (call === 1) await gate; // the first owner is slow (a long GC pause, say)
          effects.push(`a#${call}`);
        },
        compensate: () => void effects.push('undo a'),
      })
      .step('b', { run: () => void effects.push('b') })
      .build();
    const first = engineOn(store, { leaseMs: 1_000, heartbeatMs: 60_000 }, now).register(saga);
    const second = engineOn(store, { leaseMs: 1_000 }, now).register(saga);
    const slow = first.start(saga, {}, { sagaId: 's5' });
    await vi.waitFor(() => expect(calls).toBe(1));
    clock += 1_001;
    const recovered = await second.recover();
    expect(recovered.results.map((r) => r.status)).toEqual(['completed']);
    release();
    await expect(slow).rejects.toMatchObject({ code: 'BT_ERR_SAGA_LEASE_LOST' });
    const final = (await store.get('s5'))!;
    expect(final.status).toBe('completed');
    expect(final.steps.a?.attempts).toBe(2);
    expect(effects).toEqual(['a#2', 'b', 'a#1']);
  });

  it('a step a crash left in doubt is settled (called again, same key) before a requested compensation', async () => {
    const base = new InMemorySagaStore();
    const applied = new Set<string>();
    const effects: string[] = [];
    const effect = (key: string, what: string) => {
      if (applied.has(key)) return; // the downstream absorbs a repeat of one idempotency key
      applied.add(key);
      effects.push(what);
    };
    const saga = defineSaga('in-doubt', { input: z.object({}) })
      .step('a', {
        run: (c) => effect(c.idempotencyKey, 'a'),
        compensate: (c) => effect(c.idempotencyKey, 'undo a'),
      })
      .step('b', {
        run: (c) => effect(c.idempotencyKey, 'b'),
        compensate: (c) => effect(c.idempotencyKey, 'undo b'),
      })
      .step('c', { run: (c) => effect(c.idempotencyKey, 'c') })
      .build();
    // Updates (the creation wrote a running): a completed with b running, b completed with c
    // running <- the process dies here (a completion and the next step's start are one write).
    const dying = engineOn(new CrashingSagaStore(base, 2));
    await expect(dying.start(saga, {}, { sagaId: 's6' })).rejects.toBeInstanceOf(SimulatedCrash);
    expect(effects).toEqual(['a', 'b']);
    expect((await base.get('s6'))!.steps.b?.status).toBe('running');
    // Meanwhile a rollback asks for compensation; the crashed engine's lease has not expired.
    const asking = engineOn(base).register(saga);
    const asked = await asking.compensate('s6', 'rollback', { wait: false });
    expect(asked.requested).toBe(true);
    const later = Date.now() + DEFAULT_SAGA_ENGINE_OPTIONS.leaseMs + 1;
    const result = await engineOn(base, {}, () => later)
      .register(saga)
      .resume('s6');
    expect(result.status).toBe('compensated');
    expect(effects).toEqual(['a', 'b', 'undo b', 'undo a']);
    expect(result.record.compensationOrder).toEqual(['b', 'a']);
  });
});
