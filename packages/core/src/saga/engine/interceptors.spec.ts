import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineSaga } from '../definition.js';
import { SagaEngineConfigError, StepTimeoutError } from '../errors.js';
import { InMemorySagaStore } from '../InMemorySagaStore.js';
import { createSagaEngine } from '../SagaEngine.js';
import type { StepInterceptor, StepInvocation } from './interceptors.js';

const noSleep = async () => {};
const Input = z.object({ orderId: z.string() });

function engineWith(interceptors: StepInterceptor[]) {
  const store = new InMemorySagaStore();
  return createSagaEngine(
    { interceptors },
    { store, logger: pino({ level: 'silent' }), sleep: noSleep },
  );
}

/** reserve, charge (with compensations), then notify, which fails `failNotify` times. */
function orderSaga(failNotify: number, calls: string[] = []) {
  let notifyFailures = 0;
  return defineSaga('order', { input: Input })
    .step('reserve', {
      run: ({ input }) => (calls.push('run reserve'), { reservation: `r-${input.orderId}` }),
      compensate: () => void calls.push('undo reserve'),
    })
    .step('charge', {
      run: () => (calls.push('run charge'), { charge: 'c-1' }),
      compensate: () => void calls.push('undo charge'),
      retry: { attempts: 2 },
    })
    .step('notify', {
      run: () => {
        calls.push('run notify');
        if (notifyFailures++ < failNotify) throw new Error('mail server down');
        return 'sent';
      },
      retry: { attempts: 2 },
    })
    .build();
}

describe('step interceptors', () => {
  it('see every step call and every compensation, in order, with saga id, kind and attempt', async () => {
    const seen: Omit<StepInvocation, 'signal' | 'logger'>[] = [];
    const recorder: StepInterceptor = async (call, next) => {
      const { signal: _s, logger: _l, ...rest } = call;
      seen.push(rest);
      return next();
    };
    // notify fails both attempts: charge and reserve are compensated.
    const result = await engineWith([recorder]).start(
      orderSaga(2),
      { orderId: 'o1' },
      {
        sagaId: 's1',
      },
    );
    expect(result.status).toBe('compensated');
    expect(seen.map((c) => `${c.kind} ${c.step} #${c.attempt}`)).toEqual([
      'run reserve #1',
      'run charge #1',
      'run notify #1',
      'run notify #2',
      'compensate charge #1',
      'compensate reserve #1',
    ]);
    expect(seen[0]).toMatchObject({
      sagaId: 's1',
      sagaName: 'order',
      definitionVersion: 1,
      input: { orderId: 'o1' },
      idempotencyKey: 's1:reserve:run',
    });
    // A compensation sees what `run` returned.
    expect(seen[4]).toMatchObject({
      kind: 'compensate',
      result: { charge: 'c-1' },
      idempotencyKey: 's1:charge:compensate',
    });
  });

  it('compose outermost first, and can time a call and tag its stored result', async () => {
    const order: string[] = [];
    const durations = new Map<string, number>();
    const timing: StepInterceptor = async (call, next) => {
      order.push(`timing> ${call.step}`);
      const started = performance.now();
      try {
        return await next();
      } finally {
        durations.set(`${call.kind}:${call.step}`, performance.now() - started);
        order.push(`timing< ${call.step}`);
      }
    };
    const tagging: StepInterceptor = async (call, next) => {
      order.push(`tag> ${call.step}`);
      const result = await next();
      order.push(`tag< ${call.step}`);
      return call.kind === 'run' && typeof result === 'object' && result !== null
        ? { ...result, tenant: 'acme' }
        : result;
    };
    const slow = defineSaga('slow', { input: Input })
      .step('wait', {
        run: async () => {
          await new Promise((resolve) => setTimeout(resolve, 30));
          return { waited: true };
        },
      })
      .build();
    const result = await engineWith([timing, tagging]).start(slow, { orderId: 'o2' });
    expect(result.status).toBe('completed');
    expect(order).toEqual(['timing> wait', 'tag> wait', 'tag< wait', 'timing< wait']);
    expect(result.record.steps['wait']?.result).toEqual({ waited: true, tenant: 'acme' });
    expect(durations.get('run:wait')).toBeGreaterThanOrEqual(25);
  });

  it('an interceptor that throws before the step fails the step: retried, then compensated', async () => {
    const calls: string[] = [];
    let throws = 0;
    const flaky: StepInterceptor = async (call, next) => {
      // Fails every call of charge's run: its retries run out and reserve is compensated.
      if (call.step === 'charge' && call.kind === 'run') {
        throws++;
        throw new Error(`quota exceeded (${call.attempt})`);
      }
      return next();
    };
    const result = await engineWith([flaky]).start(orderSaga(0, calls), { orderId: 'o3' });
    expect(result.status).toBe('compensated');
    expect(throws).toBe(2); // charge's retry policy: 2 attempts
    expect(calls).toEqual(['run reserve', 'undo reserve']);
    expect(result.record.steps['charge']).toMatchObject({
      status: 'failed',
      attempts: 2,
      error: { message: 'quota exceeded (2)' },
    });
    expect(result.record.failure).toMatchObject({ step: 'charge', reason: 'step-failed' });
  });

  it('a throw after the step succeeded is the step failing too (a retry calls the step again)', async () => {
    const calls: string[] = [];
    let failed = false;
    const afterwards: StepInterceptor = async (call, next) => {
      const result = await next();
      if (call.step === 'reserve' && !failed) {
        failed = true;
        throw new Error('audit log unavailable');
      }
      return result;
    };
    const result = await engineWith([afterwards]).start(orderSaga(0, calls), { orderId: 'o4' });
    expect(result.status).toBe('completed');
    expect(calls).toEqual(['run reserve', 'run reserve', 'run charge', 'run notify']);
    expect(result.record.steps['reserve']).toMatchObject({ status: 'completed', attempts: 2 });
  });

  it('a synchronous throw is handled like a rejection, and a throw in a compensation retries it', async () => {
    const calls: string[] = [];
    let compensateThrows = 0;
    const sync: StepInterceptor = (call, next) => {
      if (call.kind === 'compensate' && call.step === 'reserve' && compensateThrows < 2) {
        compensateThrows++;
        throw new Error('tracer broken');
      }
      return next();
    };
    const result = await engineWith([sync]).start(orderSaga(2, calls), { orderId: 'o5' });
    expect(result.status).toBe('compensated');
    expect(result.record.steps['reserve']).toMatchObject({
      status: 'compensated',
      compensationAttempts: 3,
    });
    expect(calls.filter((c) => c === 'undo reserve')).toHaveLength(1);
  });

  it('an interceptor that always throws in a compensation leaves the saga stuck with its error', async () => {
    const broken: StepInterceptor = async (call, next) => {
      if (call.kind === 'compensate') throw new Error('never compensates');
      return next();
    };
    const result = await engineWith([broken]).start(orderSaga(2), { orderId: 'o6' });
    expect(result.status).toBe('stuck');
    expect(result.record.stuck?.errors[0]?.message).toBe('never compensates');
  });

  it('calling next twice calls the step once', async () => {
    const calls: string[] = [];
    const twice: StepInterceptor = async (_call, next) => {
      await next();
      return next();
    };
    const result = await engineWith([twice]).start(orderSaga(0, calls), { orderId: 'o7' });
    expect(result.status).toBe('completed');
    expect(calls).toEqual(['run reserve', 'run charge', 'run notify']);
  });

  it("a step's timeout applies inside the interceptors: next() rejects with StepTimeoutError", async () => {
    const errors: unknown[] = [];
    const catching: StepInterceptor = async (_call, next) => {
      try {
        return await next();
      } catch (error) {
        errors.push(error);
        throw error;
      }
    };
    const hanging = defineSaga('hang', { input: Input })
      .step('hang', {
        run: ({ signal }) =>
          new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
        timeoutMs: 20,
        retry: { attempts: 1 },
      })
      .build();
    const result = await engineWith([catching]).start(hanging, { orderId: 'o8' });
    expect(result.status).toBe('compensated');
    expect(errors[0]).toBeInstanceOf(StepTimeoutError);
  });

  it('are checked at construction', () => {
    const store = new InMemorySagaStore();
    expect(() =>
      createSagaEngine({ interceptors: ['nope' as unknown as StepInterceptor] }, { store }),
    ).toThrow(SagaEngineConfigError);
  });
});
