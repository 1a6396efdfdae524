import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { BacktrackError } from '../errors/BacktrackError.js';
import { defineSaga } from './definition.js';
import { SagaDefinitionError, SagaInputError, SagaStateError } from './errors.js';
import { SagaEventName } from './events.js';
import { InMemorySagaStore } from './InMemorySagaStore.js';
import { createSagaEngine } from './SagaEngine.js';

const noSleep = async () => {};
const silent = { level: 'silent' } as const;
import { pino } from 'pino';

function setup() {
  const store = new InMemorySagaStore();
  const engine = createSagaEngine({ store, logger: pino(silent), sleep: noSleep });
  const calls: string[] = [];
  return { store, engine, calls };
}

const Input = z.object({ orderId: z.string(), amount: z.number().positive() });

describe('saga engine', () => {
  afterEach(() => vi.useRealTimers());

  it('stores a copy of the input, also once records are handed over to the store', async () => {
    const { engine, store } = setup();
    const saga = defineSaga('inputs', { input: z.object({ meta: z.any() }) })
      .step('a', { run: () => ({}) })
      .build();
    const metas = [{ tag: 'x' }, { tag: 'y' }];
    for (const [i, meta] of metas.entries()) {
      const result = await engine.start(saga, { meta }, { sagaId: `s${i}` });
      expect(result.status).toBe('completed');
    }
    for (const meta of metas) {
      expect(Object.isFrozen(meta)).toBe(false);
      meta.tag = 'changed';
    }
    const stored = (await store.get('s1'))!;
    expect(stored.input).toEqual({ meta: { tag: 'y' } });
    expect(Object.isFrozen((stored.input as { meta: object }).meta)).toBe(true);
    expect(Object.isFrozen(stored.steps)).toBe(true);
    expect((await store.get('s0'))!.input).toEqual({ meta: { tag: 'x' } });
  });

  it('stores a copy of a step result: the step keeps its object, changeable, and the log does not change with it', async () => {
    const { engine, store } = setup();
    const returned: { lines: { qty: number }[] }[] = [];
    const saga = defineSaga('results', { input: z.object({ n: z.number() }) })
      .step('a', {
        run: () => {
          const result = { lines: [{ qty: 1 }] };
          returned.push(result);
          return result;
        },
      })
      .step('b', { run: ({ results }) => ({ seen: results.a.lines[0]!.qty }) })
      .build();
    const result = await engine.start(saga, { n: 1 });
    expect(result.status).toBe('completed');
    expect(Object.isFrozen(returned[0])).toBe(false);
    returned[0]!.lines[0]!.qty = 99;
    const stored = (await store.get(result.sagaId))!;
    expect(stored).toBe(result.record);
    expect(stored.steps.a!.result).toEqual({ lines: [{ qty: 1 }] });
    expect(stored.steps.b!.result).toEqual({ seen: 1 });
    expect(Object.isFrozen(stored.steps.a!.result)).toBe(true);
    expect(Object.isFrozen(stored.steps.a)).toBe(true);
  });

  it('a step that changes its input in place fails with a message that says the input is read-only', async () => {
    const { engine } = setup();
    const saga = defineSaga('mutating', { input: z.object({ items: z.array(z.string()) }) })
      .step('add', {
        run: ({ input }) => {
          input.items.push('x');
          return {};
        },
        retry: { attempts: 1 },
      })
      .build();
    const result = await engine.start(saga, { items: [] });
    expect(result.status).toBe('compensated');
    expect(result.record.failure?.error.message).toMatch(
      /not extensible \(if this object is the step's input or results: .*read-only; copy them/,
    );
  });

  it('completes every step in order and passes typed results forward', async () => {
    const { engine, calls } = setup();
    const saga = defineSaga('order', { input: Input })
      .step('reserve', {
        run: ({ input }) => (calls.push('reserve'), { reservationId: `r-${input.orderId}` }),
      })
      .step('charge', {
        run: ({ results, input }) => {
          calls.push(`charge:${results.reserve.reservationId}`);
          return { chargeId: `c-${input.amount}` };
        },
      })
      .build();
    const result = await engine.start(saga, { orderId: 'o1', amount: 5 }, { sagaId: 's1' });
    expect(result.status).toBe('completed');
    expect(calls).toEqual(['reserve', 'charge:r-o1']);
    expect(result.record.steps.charge?.result).toEqual({ chargeId: 'c-5' });
    expect(result.record.completionOrder).toEqual(['reserve', 'charge']);
  });

  it('compensates completed steps exactly once in reverse order when a step fails', async () => {
    const { engine, calls } = setup();
    const saga = defineSaga('order', { input: Input })
      .step('a', {
        run: () => (calls.push('run a'), 'A'),
        compensate: ({ result }) => void calls.push(`undo a ${result}`),
      })
      .step('b', {
        run: () => (calls.push('run b'), 'B'),
        compensate: ({ result }) => void calls.push(`undo b ${result}`),
      })
      .step('c', {
        run: () => {
          calls.push('run c');
          throw new Error('card declined');
        },
        compensate: () => void calls.push('undo c'),
        retry: { attempts: 2 },
      })
      .build();
    const result = await engine.start(saga, { orderId: 'o1', amount: 5 });
    expect(result.status).toBe('compensated');
    expect(calls).toEqual(['run a', 'run b', 'run c', 'run c', 'undo b B', 'undo a A']);
    expect(result.record.compensationOrder).toEqual(['b', 'a']);
    expect(result.record.failure).toMatchObject({
      step: 'c',
      reason: 'step-failed',
      error: { message: 'card declined' },
    });
    expect(result.record.steps.c).toMatchObject({ status: 'failed', attempts: 2 });
  });

  it('retries with backoff from the policy and succeeds', async () => {
    const store = new InMemorySagaStore();
    const waits: number[] = [];
    const engine = createSagaEngine(
      {},
      { store, logger: pino(silent), sleep: async (ms) => void waits.push(ms), random: () => 0.5 },
    );
    let n = 0;
    const saga = defineSaga('flaky', { input: z.object({}) })
      .step('s', {
        run: () => {
          if (++n < 3) throw new Error('transient');
          return n;
        },
        retry: { attempts: 5, initialDelayMs: 100, factor: 3, jitter: 'full' },
      })
      .build();
    const result = await engine.start(saga, {});
    expect(result.status).toBe('completed');
    expect(waits).toEqual([50, 150]);
    expect(result.record.steps.s).toMatchObject({ attempts: 3, result: 3 });
  });

  it('compensates at once on a non-retriable BacktrackError and fails without compensating on policy fail', async () => {
    const { engine, calls } = setup();
    const nonRetriable = defineSaga('nr', { input: z.object({}) })
      .step('a', { run: () => 1, compensate: () => void calls.push('undo a') })
      .step('b', {
        run: () => {
          calls.push('run b');
          throw new BacktrackError('BT_ERR_USER', 'nope', { retriable: false });
        },
        retry: { attempts: 5 },
      })
      .build();
    expect((await engine.start(nonRetriable, {})).status).toBe('compensated');
    expect(calls).toEqual(['run b', 'undo a']);

    calls.length = 0;
    const failing = defineSaga('fail', { input: z.object({}) })
      .step('a', { run: () => 1, compensate: () => void calls.push('undo a') })
      .step('b', {
        run: () => {
          throw new Error('corrupt ledger');
        },
        onError: () => 'fail',
      })
      .build();
    const r = await engine.start(failing, {});
    expect(r.status).toBe('failed');
    expect(calls).toEqual([]);
    expect(r.record.failure?.error.message).toBe('corrupt ledger');
  });

  it('runs a parallel group together and compensates the group together, every failure reported', async () => {
    const { engine, calls } = setup();
    let inFlight = 0;
    let maxInFlight = 0;
    const slow = (name: string) => async () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      calls.push(`run ${name}`);
      return name;
    };
    const saga = defineSaga('par', { input: z.object({}) })
      .step('first', { run: () => 'f', compensate: () => void calls.push('undo first') })
      .parallel('fanout', {
        x: { run: slow('x'), compensate: () => void calls.push('undo x') },
        y: { run: slow('y'), compensate: () => void calls.push('undo y') },
      })
      .step('last', {
        run: ({ results }) => {
          expect(results.x).toBe('x');
          expect(results.y).toBe('y');
          throw new Error('boom');
        },
        retry: { attempts: 1 },
      })
      .build();
    const r = await engine.start(saga, {});
    expect(maxInFlight).toBe(2);
    expect(r.status).toBe('compensated');
    expect(calls.slice(-3).slice(0, 2).sort()).toEqual(['undo x', 'undo y']);
    expect(calls.at(-1)).toBe('undo first');

    // Both compensations of a group fail: both are reported, the earlier stage waits.
    const calls2: string[] = [];
    const saga2 = defineSaga('par2', { input: z.object({}) })
      .step('first', { run: () => 'f', compensate: () => void calls2.push('undo first') })
      .parallel('fanout', {
        x: {
          run: () => 1,
          compensate: () => Promise.reject(new Error('x down')),
          compensationRetry: { attempts: 2 },
        },
        y: {
          run: () => 2,
          compensate: () => Promise.reject(new Error('y down')),
          compensationRetry: { attempts: 2 },
        },
      })
      .step('last', { run: () => Promise.reject(new Error('boom')), retry: { attempts: 1 } })
      .build();
    const stuck = await engine.start(saga2, {});
    expect(stuck.status).toBe('stuck');
    // Records the store hands out are read-only (the in-memory store's are frozen): sort a copy.
    expect([...(stuck.record.stuck?.steps ?? [])].sort()).toEqual(['x', 'y']);
    expect(stuck.record.stuck?.errors.map((e) => e.message).sort()).toEqual(['x down', 'y down']);
    expect(calls2).toEqual([]);
  });

  it('is idempotent on sagaId: a second start does not run the saga again', async () => {
    const { engine, calls } = setup();
    const saga = defineSaga('once', { input: z.object({}) })
      .step('a', {
        run: async () => (calls.push('a'), await new Promise((r) => setTimeout(r, 5)), 1),
      })
      .build();
    const [r1, r2] = await Promise.all([
      engine.start(saga, {}, { sagaId: 'x' }),
      engine.start(saga, {}, { sagaId: 'x' }),
    ]);
    const r3 = await engine.start(saga, {}, { sagaId: 'x' });
    expect(calls).toEqual(['a']);
    expect([r1.started, r2.started, r3.started]).toEqual([true, false, false]);
    expect(r3.status).toBe('completed');
  });

  it('rejects bad input at start, storing nothing', async () => {
    const { engine, store } = setup();
    const saga = defineSaga('in', { input: Input })
      .step('a', { run: () => 1 })
      .build();
    // @ts-expect-error bad input on purpose: orderId must be a string
    await expect(engine.start(saga, { orderId: 1 })).rejects.toBeInstanceOf(SagaInputError);
    await expect(engine.start(saga, { orderId: 'o', amount: -1 })).rejects.toMatchObject({
      code: 'BT_ERR_SAGA_INPUT_INVALID',
    });
    expect(store.size).toBe(0);
  });

  it('rejects bad definitions at definition time', () => {
    const base = defineSaga('d', { input: z.object({}) }).step('a', { run: () => 1 });
    // @ts-expect-error a duplicate step name on purpose (refused by the types too)
    expect(() => base.step('a', { run: () => 2 })).toThrow(SagaDefinitionError);
    expect(() =>
      base
        .step('p', { run: () => 1, pivot: true })
        .step('after', { run: () => 1, compensate: () => {} }),
    ).toThrow(/after a pivot/);
    expect(() => base.step('p', { run: () => 1, pivot: true, compensate: () => {} })).toThrow(
      /a pivot/,
    );
    expect(() => base.step('t', { run: () => 1, timeoutMs: 0 })).toThrow(SagaDefinitionError);
    expect(() => base.step('r', { run: () => 1, retry: { attempts: 0 } })).toThrow(/attempts/);
    expect(() => defineSaga('empty', { input: z.object({}) }).build()).toThrow(/no steps/);
    expect(() => defineSaga('', { input: z.object({}) })).toThrow(SagaDefinitionError);
    // @ts-expect-error not a zod schema, on purpose
    expect(() => defineSaga('x', { input: {} })).toThrow(/zod schema/);
    expect(() => base.parallel('g', {})).toThrow(/no steps/);
    expect(() => base.parallel('g', { q: { run: () => 1, pivot: true } })).toThrow(/pivot/);
  });

  it('after the pivot only goes forward: a failure there makes the saga stuck, not compensated', async () => {
    const { engine, calls } = setup();
    let fail = true;
    const saga = defineSaga('pivot', { input: z.object({}) })
      .step('a', { run: () => 1, compensate: () => void calls.push('undo a') })
      .step('ship', { run: () => 1, pivot: true })
      .step('notify', {
        run: () => {
          if (fail) throw new Error('mail down');
          calls.push('notified');
        },
        retry: { attempts: 2 },
      })
      .build();
    const r = await engine.start(saga, {}, { sagaId: 'p1' });
    expect(r.status).toBe('stuck');
    expect(r.record.stuck).toMatchObject({ phase: 'forward', steps: ['notify'] });
    expect(calls).toEqual([]);
    await expect(engine.cancel('p1')).rejects.toBeInstanceOf(SagaStateError);
    fail = false;
    const retried = await engine.retry('p1');
    expect(retried.status).toBe('completed');
    expect(calls).toEqual(['notified']);
  });

  it('times out a step attempt and retries it; the attempt signal is aborted', async () => {
    const { engine } = setup();
    let aborted = 0;
    let n = 0;
    const saga = defineSaga('timeout', { input: z.object({}) })
      .step('slow', {
        timeoutMs: 20,
        retry: { attempts: 3 },
        run: ({ signal }) =>
          new Promise((resolve) => {
            n++;
            if (n === 3) return resolve('fast');
            signal.addEventListener('abort', () => aborted++);
          }),
      })
      .build();
    const r = await engine.start(saga, {});
    expect(r.status).toBe('completed');
    expect(aborted).toBe(2);
    expect(r.record.steps.slow).toMatchObject({ attempts: 3, result: 'fast' });
  });

  it('cancel stops forward progress and runs every compensation', async () => {
    const { engine, calls } = setup();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const saga = defineSaga('cancel', { input: z.object({}) })
      .step('a', { run: () => 1, compensate: () => void calls.push('undo a') })
      .step('b', {
        run: async ({ signal }) => {
          calls.push('b started');
          await gate;
          calls.push(`b finished aborted=${signal.aborted}`);
          return 2;
        },
        compensate: () => void calls.push('undo b'),
      })
      .step('c', { run: () => void calls.push('run c') })
      .build();
    const running = engine.start(saga, {}, { sagaId: 'c1' });
    await vi.waitFor(() => expect(calls).toContain('b started'));
    const cancelled = engine.cancel('c1');
    setTimeout(release, 5);
    const [r1, r2] = await Promise.all([running, cancelled]);
    expect(r1.status).toBe('compensated');
    expect(r2.status).toBe('compensated');
    expect(calls).toEqual(['b started', 'b finished aborted=true', 'undo b', 'undo a']);
    expect(r2.record.failure?.reason).toBe('cancelled');
    await expect(engine.cancel('c1')).rejects.toThrow(/only a running saga/);
  });

  it('compensates when the saga deadline passes', async () => {
    const { engine, calls } = setup();
    const saga = defineSaga('deadline', { input: z.object({}), deadlineMs: 30 })
      .step('a', { run: () => 1, compensate: () => void calls.push('undo a') })
      .step('b', {
        run: () => new Promise((r) => setTimeout(() => r(2), 60)),
        compensate: () => void calls.push('undo b'),
      })
      .step('c', { run: () => void calls.push('run c') })
      .build();
    const r = await engine.start(saga, {});
    expect(r.status).toBe('compensated');
    expect(r.record.failure?.reason).toBe('deadline');
    expect(calls).toEqual(['undo b', 'undo a']);
  });

  it('a stuck saga is listed, emits saga.stuck, and can be retried or resolved by hand', async () => {
    const { engine, calls } = setup();
    const stuckEvents: string[] = [];
    engine.on(SagaEventName.SagaStuck, (e) => stuckEvents.push(`${e.sagaId}:${e.step}`));
    let refundWorks = false;
    const saga = defineSaga('refund', { input: z.object({}) })
      .step('reserve', { run: () => 1, compensate: () => void calls.push('release') })
      .step('charge', {
        run: () => 'ch_1',
        compensate: () => {
          if (!refundWorks) throw new Error('psp down');
          calls.push('refund');
        },
        compensationRetry: { attempts: 2 },
      })
      .step('ship', { run: () => Promise.reject(new Error('no courier')), retry: { attempts: 1 } })
      .build();
    const r = await engine.start(saga, {}, { sagaId: 'st1' });
    expect(r.status).toBe('stuck');
    expect(r.record.steps.charge).toMatchObject({
      status: 'compensation-failed',
      compensationAttempts: 2,
    });
    expect(r.record.steps.reserve?.status).toBe('completed');
    expect(stuckEvents).toEqual(['st1:charge']);
    expect((await engine.list({ status: 'stuck' })).items.map((s) => s.sagaId)).toEqual(['st1']);

    refundWorks = true;
    const retried = await engine.retry('st1');
    expect(retried.status).toBe('compensated');
    expect(calls).toEqual(['refund', 'release']);
    expect(retried.record.steps.charge?.compensationAttempts).toBe(3);

    // Resolve by hand instead of retrying.
    refundWorks = false;
    calls.length = 0;
    await engine.start(saga, {}, { sagaId: 'st2' });
    await expect(engine.resolve('st2', 'reserve', 'x')).rejects.toThrow(/not stuck/);
    const resolved = await engine.resolve('st2', 'charge', 'refunded by hand in the PSP console');
    expect(resolved.status).toBe('compensated');
    expect(resolved.record.steps.charge).toMatchObject({
      status: 'resolved',
      resolution: 'refunded by hand in the PSP console',
    });
    expect(calls).toEqual(['release']);
  });

  it('passes stable idempotency keys and emits step events', async () => {
    const { engine } = setup();
    const keys: string[] = [];
    const events: string[] = [];
    for (const name of Object.values(SagaEventName))
      engine.on(name, (e) => events.push(`${name}${e.step ? `:${e.step}` : ''}`));
    const saga = defineSaga('keys', { input: z.object({}) })
      .step('a', {
        run: ({ idempotencyKey }) => void keys.push(idempotencyKey),
        compensate: ({ idempotencyKey }) => void keys.push(idempotencyKey),
      })
      .step('b', { run: () => Promise.reject(new Error('x')), retry: { attempts: 1 } })
      .build();
    await engine.start(saga, {}, { sagaId: 'k1' });
    expect(keys).toEqual(['k1:a:run', 'k1:a:compensate']);
    expect(events).toEqual([
      'saga.started',
      'step.started:a',
      'step.completed:a',
      'step.started:b',
      'step.failed:b',
      'compensation.started:a',
      'step.compensated:a',
      'saga.compensated',
    ]);
  });

  it('finishes a saga with the definition version it started with', async () => {
    const store = new InMemorySagaStore();
    const calls: string[] = [];
    const v1 = defineSaga('versioned', { input: z.object({}), version: 1 })
      .step('a', { run: () => void calls.push('v1 a') })
      .step('b', { run: () => void calls.push('v1 b') })
      .build();
    const v2 = defineSaga('versioned', { input: z.object({}), version: 2 })
      .step('a2', { run: () => void calls.push('v2 a2') })
      .build();
    // A v1 saga crashed after its first step (simulated by writing its log directly).
    const old = createSagaEngine({ store, logger: pino(silent), sleep: noSleep });
    await old.start(v1, {}, { sagaId: 'v' });
    const rec = (await store.get('v'))!;
    await store.update(
      {
        ...rec,
        status: 'running',
        steps: { ...rec.steps, b: { status: 'pending', attempts: 0, compensationAttempts: 0 } },
        completionOrder: ['a'],
      },
      rec.revision,
    );
    calls.length = 0;
    const fresh = createSagaEngine({ store, logger: pino(silent), sleep: noSleep }).register(v2);
    const failed = await fresh.recover();
    expect(failed.errors[0]?.error.code).toBe('BT_ERR_SAGA_DEFINITION_NOT_REGISTERED');
    fresh.register(v1);
    const summary = await fresh.recover();
    expect(summary.results.map((r) => r.status)).toEqual(['completed']);
    expect(calls).toEqual(['v1 b']);
  });

  it('a listener that throws never affects the saga', async () => {
    const { engine } = setup();
    engine.on(SagaEventName.StepCompleted, () => {
      throw new Error('metrics down');
    });
    const saga = defineSaga('l', { input: z.object({}) })
      .step('a', { run: () => 1 })
      .build();
    expect((await engine.start(saga, {})).status).toBe('completed');
  });

  it('compensate() undoes a completed saga in reverse order, once, and refuses one past its pivot', async () => {
    const { engine, calls } = setup();
    const saga = defineSaga('undo-completed', { input: z.object({}) })
      .step('a', {
        run: () => 'A',
        compensate: ({ result }) => void calls.push(`undo a ${result}`),
      })
      .step('b', {
        run: () => 'B',
        compensate: ({ result }) => void calls.push(`undo b ${result}`),
      })
      .build();
    expect((await engine.start(saga, {}, { sagaId: 'u1' })).status).toBe('completed');
    const undone = await engine.compensate('u1', 'rollback of payments@1.1.0');
    expect(undone.status).toBe('compensated');
    expect(undone.record.failure).toMatchObject({
      reason: 'compensation-requested',
      error: { message: 'rollback of payments@1.1.0' },
    });
    expect(calls).toEqual(['undo b B', 'undo a A']);
    // A second request is a no-op.
    expect((await engine.compensate('u1')).status).toBe('compensated');
    expect(calls).toHaveLength(2);

    const pivoted = defineSaga('undo-pivot', { input: z.object({}) })
      .step('a', { run: () => 1, compensate: () => void calls.push('never') })
      .step('ship', { run: () => 1, pivot: true })
      .build();
    await engine.start(pivoted, {}, { sagaId: 'u2' });
    await expect(engine.compensate('u2')).rejects.toBeInstanceOf(SagaStateError);
    expect(calls).toHaveLength(2);
  });

  it('does not start the next step once cancel was asked, even if the step ignores an early abort', async () => {
    const { engine, calls } = setup();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const saga = defineSaga('cancel-between', { input: z.object({}) })
      .step('a', {
        run: async () => {
          calls.push('a started');
          await gate;
          return 1;
        },
        compensate: () => void calls.push('undo a'),
      })
      .step('b', {
        // Only listens for a future abort: started after the cancel it would wait forever.
        run: ({ signal }) =>
          new Promise((resolve) => signal.addEventListener('abort', () => resolve(2))),
        compensate: () => void calls.push('undo b'),
      })
      .build();
    const running = engine.start(saga, {}, { sagaId: 'cb' });
    await vi.waitFor(() => expect(calls).toContain('a started'));
    const cancelled = engine.cancel('cb');
    release();
    const [r1] = await Promise.all([running, cancelled]);
    expect(r1.status).toBe('compensated');
    expect(r1.record.steps.b?.attempts).toBe(0);
    expect(calls).toEqual(['a started', 'undo a']);
  });
});
