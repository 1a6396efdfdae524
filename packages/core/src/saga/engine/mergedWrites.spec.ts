/**
 * A step's completion and what the run loop writes right after it with nothing observable in
 * between (the next one-step stage's first start, or the saga's completion) are one store write,
 * and the creation carries the first step's start (one-step first stage, no deadline).
 * These tests count the writes, put a crash where each half used to be written, and send a
 * cancel request through the store at a merged write.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CrashingSagaStore, SimulatedCrash } from '../../testing/CrashingSagaStore.js';
import { defineSaga } from '../definition.js';
import { SagaEventName } from '../events.js';
import { InMemorySagaStore } from '../InMemorySagaStore.js';
import { createSagaEngine, DEFAULT_SAGA_ENGINE_OPTIONS } from '../SagaEngine.js';
import type { SagaListQuery, SagaPage, SagaRecord, SagaStore } from '../SagaStore.js';

const logger = pino({ level: 'silent' });

/** Counts updates and keeps a copy of each record written, in order. */
class CountingStore implements SagaStore {
  readonly written: SagaRecord[] = [];
  readonly created: SagaRecord[] = [];
  /** Called before the n-th update (1-based) reaches the store. */
  before: ((n: number, record: SagaRecord) => Promise<void>) | undefined;
  constructor(readonly inner: SagaStore = new InMemorySagaStore()) {}
  create(record: SagaRecord): ReturnType<SagaStore['create']> {
    this.created.push(structuredClone(record));
    return this.inner.create(record);
  }
  get(sagaId: string): Promise<SagaRecord | undefined> {
    return this.inner.get(sagaId);
  }
  async update(record: SagaRecord, expectedRevision: number): Promise<SagaRecord> {
    await this.before?.(this.written.length + 1, record);
    this.written.push(structuredClone(record));
    return this.inner.update(record, expectedRevision);
  }
  list(query?: SagaListQuery): Promise<SagaPage> {
    return this.inner.list(query);
  }
}

function engineOn(store: SagaStore, now?: () => number) {
  return createSagaEngine({}, { store, logger, sleep: async () => {}, ...(now ? { now } : {}) });
}

/**
 * Effects applied once per idempotency key: `calls` lists every call, `effects` what took effect.
 */
function effectLog() {
  const applied = new Set<string>();
  const effects: string[] = [];
  const calls: string[] = [];
  const effect = (key: string, what: string) => {
    calls.push(what);
    if (applied.has(key)) return;
    applied.add(key);
    effects.push(what);
  };
  /** A step whose run and compensation are such effects (`name`, `undo <name>`). */
  const undoable = (name: string) => ({
    run: (c: { idempotencyKey: string }) => effect(c.idempotencyKey, name),
    compensate: (c: { idempotencyKey: string }) => effect(c.idempotencyKey, `undo ${name}`),
  });
  return { effects, calls, effect, undoable };
}

/** Three sequential steps whose effects are idempotent on their key; raw calls are counted. */
function threeSteps() {
  const { effects, calls, undoable } = effectLog();
  const saga = defineSaga('merged', { input: z.object({}) })
    .step('a', undoable('a'))
    .step('b', undoable('b'))
    .step('c', undoable('c'))
    .build();
  return { saga, effects, calls };
}

/** What each write says of the steps: `a:completed b:running c:pending saga:running`. */
const shape = (r: SagaRecord) =>
  `${Object.entries(r.steps)
    .map(([name, s]) => `${name}:${s.status}`)
    .join(' ')} saga:${r.status}`;

describe('merged saga log writes', () => {
  it('writes a 3-step saga in one creation and 3 updates: the creation starts the first step, each completion carries the next start, the last one the saga completion', async () => {
    const store = new CountingStore();
    const { saga, effects } = threeSteps();
    const result = await engineOn(store).start(saga, {}, { sagaId: 'm1' });
    expect(result.status).toBe('completed');
    expect(effects).toEqual(['a', 'b', 'c']);
    expect(store.created.map(shape)).toEqual(['a:running b:pending c:pending saga:running']);
    expect(store.created[0]!.steps['a']).toMatchObject({
      attempts: 1,
      startedAt: store.created[0]!.createdAt,
    });
    expect(store.written.map(shape)).toEqual([
      'a:completed b:running c:pending saga:running',
      'a:completed b:completed c:running saga:running',
      'a:completed b:completed c:completed saga:completed',
    ]);
    const r = result.record;
    // The next step started when the step before it ended (one write, one time).
    expect(r.steps['a']!.startedAt).toBe(r.createdAt);
    expect(r.steps['b']!.startedAt).toBe(r.steps['a']!.endedAt);
    expect(r.steps['c']!.startedAt).toBe(r.steps['b']!.endedAt);
    expect(r.steps['b']!.attempts).toBe(1);
    expect(r.completionOrder).toEqual(['a', 'b', 'c']);
    expect(r.lease).toBeUndefined();
  });

  it('keeps parallel stages and retries in writes of their own', async () => {
    const store = new CountingStore();
    let failures = 1;
    const saga = defineSaga('mixed', { input: z.object({}) })
      .step('a', { run: () => 'a' })
      .parallel('fanout', { p1: { run: () => 1 }, p2: { run: () => 2 } })
      .step('b', {
        run: () => {
          if (failures-- > 0) throw new Error('once');
          return 'b';
        },
        retry: { attempts: 2 },
      })
      .build();
    const result = await engineOn(store).start(saga, {}, { sagaId: 'm2' });
    expect(result.status).toBe('completed');
    expect(store.created.map(shape)).toEqual([
      'a:running p1:pending p2:pending b:pending saga:running',
    ]);
    expect(store.written.map(shape)).toEqual([
      // The next stage has two steps: the completion is written alone.
      'a:completed p1:pending p2:pending b:pending saga:running',
      'a:completed p1:running p2:pending b:pending saga:running',
      'a:completed p1:running p2:running b:pending saga:running',
      'a:completed p1:completed p2:running b:pending saga:running',
      'a:completed p1:completed p2:completed b:pending saga:running',
      'a:completed p1:completed p2:completed b:running saga:running',
      // The retry's second attempt is written as before.
      'a:completed p1:completed p2:completed b:running saga:running',
      'a:completed p1:completed p2:completed b:completed saga:completed',
    ]);
    expect(result.record.steps['b']!.attempts).toBe(2);
  });

  it('emits the step and saga events in the same order, each with the record as written', async () => {
    const store = new CountingStore();
    const { saga } = threeSteps();
    const engine = engineOn(store);
    const events: string[] = [];
    for (const name of Object.values(SagaEventName)) {
      engine.on(name, (e) =>
        events.push(
          `${name}${e.step ? `:${e.step}` : ''} [${shape(e.record)}] rev ${e.record.revision}`,
        ),
      );
    }
    await engine.start(saga, {}, { sagaId: 'm3' });
    expect(events).toEqual([
      // SagaStarted's record is the one created: its first step is already running.
      'saga.started [a:running b:pending c:pending saga:running] rev 0',
      'step.started:a [a:running b:pending c:pending saga:running] rev 0',
      // StepCompleted's record is the one stored: it already shows the next step running.
      'step.completed:a [a:completed b:running c:pending saga:running] rev 1',
      'step.started:b [a:completed b:running c:pending saga:running] rev 1',
      'step.completed:b [a:completed b:completed c:running saga:running] rev 2',
      'step.started:c [a:completed b:completed c:running saga:running] rev 2',
      'step.completed:c [a:completed b:completed c:completed saga:completed] rev 3',
      'saga.completed [a:completed b:completed c:completed saga:completed] rev 3',
    ]);
  });

  it.each([
    // Update 1 is a's completion with b's start: lost, a is in doubt (as when a's completion was lost).
    { crashAt: 1, left: 'a:running b:pending c:pending saga:running', calls: ['a', 'a', 'b', 'c'] },
    // Update 2 is b's completion with c's start: lost, b is in doubt.
    {
      crashAt: 2,
      left: 'a:completed b:running c:pending saga:running',
      calls: ['a', 'b', 'b', 'c'],
    },
    // Update 3 is c's completion with the saga's: lost, c is in doubt.
    {
      crashAt: 3,
      left: 'a:completed b:completed c:running saga:running',
      calls: ['a', 'b', 'c', 'c'],
    },
  ])(
    'a crash at merged write $crashAt leaves the step before it in doubt; recovery calls it again with the same key',
    async ({ crashAt, left, calls: expectedCalls }) => {
      const base = new InMemorySagaStore();
      const { saga, effects, calls } = threeSteps();
      const dying = engineOn(new CrashingSagaStore(base, crashAt));
      await expect(dying.start(saga, {}, { sagaId: 'm4' })).rejects.toBeInstanceOf(SimulatedCrash);
      expect(shape((await base.get('m4'))!)).toBe(left);
      const later = Date.now() + DEFAULT_SAGA_ENGINE_OPTIONS.leaseMs + 1;
      const summary = await engineOn(base, () => later)
        .register(saga)
        .recover();
      expect(summary.results.map((r) => r.status)).toEqual(['completed']);
      expect(calls).toEqual(expectedCalls);
      expect(effects).toEqual(['a', 'b', 'c']);
    },
  );

  it('a cancel request that reaches the store before a merged write writes the completion only: the next step never starts', async () => {
    const store = new CountingStore();
    const { saga, effects, calls } = threeSteps();
    // Another engine writes a cancel request just before a's completion reaches the store.
    store.before = async (n, record) => {
      if (n !== 1) return;
      const fresh = (await store.inner.get(record.sagaId))!;
      await store.inner.update(
        {
          ...fresh,
          cancelRequested: true,
          request: { kind: 'cancel', reason: 'customer', requestedAt: fresh.updatedAt, by: 'x' },
        },
        fresh.revision,
      );
    };
    const result = await engineOn(store).start(saga, {}, { sagaId: 'm5' });
    expect(result.status).toBe('compensated');
    expect(calls).toEqual(['a', 'undo a']);
    expect(effects).toEqual(['a', 'undo a']);
    expect(result.record.failure?.reason).toBe('cancelled');
    expect(result.record.steps['b']!.status).toBe('pending');
    expect(result.record.steps['b']!.attempts).toBe(0);
    // The refused merged write, then the completion alone on the fresh record.
    expect(shape(store.written[0]!)).toBe('a:completed b:running c:pending saga:running');
    expect(shape(store.written[1]!)).toBe('a:completed b:pending c:pending saga:running');
    expect(store.written[1]!.cancelRequested).toBe(true);
  });

  it('a cancel request that reaches the store before the last completion stops the saga completing: it compensates, as before', async () => {
    const store = new CountingStore();
    const { saga, effects } = threeSteps();
    store.before = async (n, record) => {
      if (n !== 3) return;
      const fresh = (await store.inner.get(record.sagaId))!;
      await store.inner.update(
        {
          ...fresh,
          cancelRequested: true,
          request: { kind: 'cancel', reason: 'customer', requestedAt: fresh.updatedAt, by: 'x' },
        },
        fresh.revision,
      );
    };
    const result = await engineOn(store).start(saga, {}, { sagaId: 'm6' });
    expect(shape(store.written[3]!)).toBe('a:completed b:completed c:completed saga:running');
    expect(result.status).toBe('compensated');
    expect(effects).toEqual(['a', 'b', 'c', 'undo c', 'undo b', 'undo a']);
  });

  it('a local cancel during a step writes its completion alone; the next step never starts', async () => {
    const store = new CountingStore();
    const engine = engineOn(store);
    const calls: string[] = [];
    let cancelling: Promise<unknown> | undefined;
    const saga = defineSaga('local-cancel', { input: z.object({}) })
      .step('a', {
        run: async (c) => {
          calls.push('a');
          const aborted = new Promise((r) => c.signal.addEventListener('abort', r));
          cancelling = engine.cancel('m7', 'customer');
          await aborted;
          return 'done anyway'; // cancellation is cooperative: this one completes
        },
        compensate: () => void calls.push('undo a'),
      })
      .step('b', { run: () => void calls.push('b') })
      .build();
    const result = await engine.start(saga, {}, { sagaId: 'm7' });
    await cancelling;
    expect(result.status).toBe('compensated');
    expect(calls).toEqual(['a', 'undo a']);
    expect(store.written.some((r) => r.steps['b']!.status === 'running')).toBe(false);
  });

  it('creates a saga with a deadline, or a parallel first stage, with its first steps pending (their starts written apart)', async () => {
    const store = new CountingStore();
    const engine = engineOn(store);
    const { saga } = threeSteps();
    await engine.start(saga, {}, { sagaId: 'm8', deadlineMs: 60_000 });
    const fanout = defineSaga('fanout-first', { input: z.object({}) })
      .parallel('fanout', { p1: { run: () => 1 }, p2: { run: () => 2 } })
      .step('b', { run: () => 'b' })
      .build();
    await engine.start(fanout, {}, { sagaId: 'm9' });
    expect(store.created.map(shape)).toEqual([
      'a:pending b:pending c:pending saga:running',
      'p1:pending p2:pending b:pending saga:running',
    ]);
    expect(shape(store.written[0]!)).toBe('a:running b:pending c:pending saga:running');
    expect((await store.get('m8'))!.status).toBe('completed');
    expect((await store.get('m9'))!.status).toBe('completed');
  });

  it('a second start of the same saga id runs nothing, whatever the first creation wrote', async () => {
    const store = new CountingStore();
    const { saga, calls } = threeSteps();
    const engine = engineOn(store);
    await engine.start(saga, {}, { sagaId: 'm10' });
    const again = await engineOn(store).register(saga).start(saga, {}, { sagaId: 'm10' });
    expect(again).toMatchObject({ started: false, status: 'completed' });
    expect(calls).toEqual(['a', 'b', 'c']);
  });

  it('a crash right after the creation leaves the first step in doubt: a compensation request settles it (same key) and undoes it', async () => {
    const base = new InMemorySagaStore();
    const { saga, effects, calls } = threeSteps();
    // The creation wrote a running; the process dies before a's completion is written.
    const dying = engineOn(new CrashingSagaStore(base, 1));
    await expect(dying.start(saga, {}, { sagaId: 'm11' })).rejects.toBeInstanceOf(SimulatedCrash);
    const later = Date.now() + DEFAULT_SAGA_ENGINE_OPTIONS.leaseMs + 1;
    const result = await engineOn(base, () => later)
      .register(saga)
      .compensate('m11', 'rollback');
    expect(result.status).toBe('compensated');
    expect(calls).toEqual(['a', 'a', 'undo a']);
    expect(effects).toEqual(['a', 'undo a']);
  });

  /** a and b undoable, c fails for good: the saga compensates b then a. */
  function failingThird() {
    const { effects, calls, undoable } = effectLog();
    const saga = defineSaga('merged-undo', { input: z.object({}) })
      .step('a', undoable('a'))
      .step('b', undoable('b'))
      .step('c', {
        run: () => {
          calls.push('c');
          throw new Error('declined');
        },
        retry: { attempts: 1 },
      })
      .build();
    return { saga, effects, calls };
  }

  it('compensates one step after another in one write each: an end carries the next start, the last one the saga end', async () => {
    const store = new CountingStore();
    const { saga, effects } = failingThird();
    const engine = engineOn(store);
    const events: string[] = [];
    for (const name of Object.values(SagaEventName)) {
      engine.on(name, (e) => events.push(`${name}${e.step ? `:${e.step}` : ''}`));
    }
    const result = await engine.start(saga, {}, { sagaId: 'm12' });
    expect(result.status).toBe('compensated');
    expect(effects).toEqual(['a', 'b', 'undo b', 'undo a']);
    expect(store.written.map(shape)).toEqual([
      'a:completed b:running c:pending saga:running',
      'a:completed b:completed c:running saga:running',
      'a:completed b:completed c:failed saga:running',
      'a:completed b:completed c:failed saga:compensating',
      'a:completed b:compensating c:failed saga:compensating',
      'a:compensating b:compensated c:failed saga:compensating',
      'a:compensated b:compensated c:failed saga:compensated',
    ]);
    expect(result.record.compensationOrder).toEqual(['b', 'a']);
    const a = result.record.steps['a']!;
    expect(a.compensationAttempts).toBe(1);
    expect(a.compensationStartedAt).toBe(result.record.steps['b']!.compensationEndedAt);
    expect(events.slice(-5)).toEqual([
      'compensation.started:b',
      'step.compensated:b',
      'compensation.started:a',
      'step.compensated:a',
      'saga.compensated',
    ]);
  });

  it.each([
    // Update 6 is b's compensation end with a's start: lost, b's compensation is in doubt.
    { crashAt: 6, calls: ['a', 'b', 'c', 'undo b', 'undo b', 'undo a'] },
    // Update 7 is a's compensation end with the saga's: lost, a's compensation is in doubt.
    { crashAt: 7, calls: ['a', 'b', 'c', 'undo b', 'undo a', 'undo a'] },
  ])(
    'a crash at merged compensation write $crashAt leaves that compensation in doubt; recovery calls it again with the same key',
    async ({ crashAt, calls: expectedCalls }) => {
      const base = new InMemorySagaStore();
      const { saga, effects, calls } = failingThird();
      const dying = engineOn(new CrashingSagaStore(base, crashAt));
      await expect(dying.start(saga, {}, { sagaId: 'm13' })).rejects.toBeInstanceOf(SimulatedCrash);
      const later = Date.now() + DEFAULT_SAGA_ENGINE_OPTIONS.leaseMs + 1;
      const summary = await engineOn(base, () => later)
        .register(saga)
        .recover();
      expect(summary.results.map((r) => r.status)).toEqual(['compensated']);
      expect(calls).toEqual(expectedCalls);
      expect(effects).toEqual(['a', 'b', 'undo b', 'undo a']);
    },
  );
});
