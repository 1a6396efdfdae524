/**
 * One step's call and its log writes: `runStep` calls a step's `run` (with retries and backoff)
 * and `compensateStep` its `compensate`, each logging `running`/`compensating` before the call
 * and the outcome after it.
 */
import { backoffDelayMs } from '../../retry/backoff.js';
import type {
  CompensationContext,
  StepContext,
  StepDefinition,
  StepErrorPolicy,
} from '../definition.js';
import { SagaEventName } from '../events.js';
import type { StoredError } from '../SagaStore.js';
import type { RunState } from './context.js';
import { intercept, type StepCallKind, type StepInvocation } from './interceptors.js';
import { CompensateCall, RunCall } from './stepContext.js';
import {
  callWithTimeout,
  isThenable,
  safePolicy,
  toStoredError,
  type Cancellation,
  type StepOutcome,
} from './support.js';
import {
  compensationFailed,
  compensationStarted,
  type SAGA_COMPENSATED,
  stepCompensatedThen,
  stepCompleted,
  stepFailed,
  stepStarted,
  type Transition,
} from './transitions.js';

/**
 * `settle`: called only to learn the outcome of an attempt in doubt; no retry, no backoff.
 * `completed`: the transition that logs the step's completion (default `stepCompleted`; the run
 * loop passes one that may start the next step or complete the saga in the same write).
 * `started`: the run already wrote this step's first attempt as `running` (in the write that
 * completed the step before it): the first attempt is called without a write of its own.
 */
export async function runStep(
  run: RunState,
  step: StepDefinition,
  cancel: Cancellation,
  settle = false,
  completed: Transition<string, unknown> = stepCompleted,
  started = false,
): Promise<StepOutcome> {
  const name = step.name;
  for (let tries = 1; ; tries++) {
    let attempt = run.record.steps[name]!.attempts;
    if (started && tries === 1) {
      // Written `running` (attempt 1, started at writtenAt) by the completion before it.
    } else {
      attempt += 1;
      await run.write(stepStarted, name, attempt);
    }
    const startedAt = run.writtenAt;
    const record = run.record;
    const ctx = new RunCall(run, record, name, attempt, cancel);
    if (run.ctx.logger.isLevelEnabled('debug')) ctx.logger.debug('step started');
    if (run.ctx.listens(SagaEventName.StepStarted))
      run.ctx.emit(SagaEventName.StepStarted, { record, step: name, attempt });
    let result: unknown;
    try {
      const interceptors = run.ctx.interceptors;
      const called =
        interceptors.length === 0
          ? callRun(step, ctx)
          : intercept(interceptors, invocationOf(run, ctx, 'run'), () => callRun(step, ctx));
      // A step that returns a plain value is not awaited: no promise and no turn per step.
      result = isThenable(called) ? await called : called;
    } catch (error) {
      const stored = toStoredError(error);
      const cancelled = cancel.aborted;
      let policy: StepErrorPolicy = cancelled
        ? 'compensate'
        : safePolicy(step, error, attempt, () => ctx.logger);
      if (policy === 'retry' && (settle || tries >= step.retry.attempts)) policy = 'compensate';
      const willRetry = policy === 'retry';
      // The attempt's logger (a pino child) is made only when the line is written.
      if (run.ctx.logger.isLevelEnabled('warn')) {
        ctx.logger.warn(
          { err: error, willRetry, policy, durationMs: run.ctx.now() - startedAt },
          'step failed',
        );
      }
      if (run.ctx.listens(SagaEventName.StepFailed))
        run.ctx.emit(SagaEventName.StepFailed, {
          record: run.record,
          step: name,
          attempt,
          error: stored,
          willRetry,
          durationMs: run.ctx.now() - startedAt,
        });
      if (willRetry) {
        try {
          await run.ctx.sleep(backoffDelayMs(tries + 1, step.retry, run.ctx.random), cancel.signal);
          continue;
        } catch {
          policy = 'compensate'; // cancelled or deadline while waiting
        }
      }
      const final = policy === 'fail' ? 'fail' : 'compensate';
      await run.write(stepFailed, name, { error: stored, policy: final });
      return { ok: false, policy, error: stored };
    }
    await run.write(completed, name, result);
    const info = run.ctx.logger.isLevelEnabled('info');
    const listened = run.ctx.listens(SagaEventName.StepCompleted);
    if (info || listened) {
      const durationMs = run.writtenAt - startedAt;
      if (info) ctx.logger.info({ outcome: 'completed', durationMs }, 'step completed');
      if (listened)
        run.ctx.emit(SagaEventName.StepCompleted, {
          record: run.record,
          step: name,
          attempt,
          durationMs,
        });
    }
    return COMPLETED;
  }
}

const COMPLETED: StepOutcome = Object.freeze({ ok: true });

/**
 * `started`: the write that ended the compensation before this one also wrote this one's start
 * (its first call here is made without a write). `then`: what the write of a successful
 * compensation also records (see `stepCompensatedThen`).
 */
export async function compensateStep(
  run: RunState,
  name: string,
  started = false,
  then?: string | typeof SAGA_COMPENSATED,
): Promise<{ ok: true } | { ok: false; error: StoredError }> {
  const step = run.def.steps.find((s) => s.name === name)!;
  for (let tries = 1; ; tries++) {
    let attempt = run.record.steps[name]!.compensationAttempts;
    if (started && tries === 1) {
      // Written `compensating` by the compensation before it.
    } else {
      attempt += 1;
      await run.write(compensationStarted, name, attempt);
    }
    const startedAt = run.writtenAt;
    const record = run.record;
    const ctx = new CompensateCall(run, record, name, attempt);
    if (run.ctx.listens(SagaEventName.CompensationStarted))
      run.ctx.emit(SagaEventName.CompensationStarted, { record, step: name, attempt });
    try {
      const interceptors = run.ctx.interceptors;
      const called =
        interceptors.length === 0
          ? callCompensate(step, ctx)
          : intercept(interceptors, invocationOf(run, ctx, 'compensate'), () =>
              callCompensate(step, ctx),
            );
      if (isThenable(called)) await called;
    } catch (error) {
      const stored = toStoredError(error);
      const willRetry = tries < step.compensationRetry.attempts;
      if (run.ctx.logger.isLevelEnabled('warn')) {
        ctx.logger.warn({ err: error, willRetry }, 'compensation failed');
      }
      if (run.ctx.listens(SagaEventName.CompensationFailed))
        run.ctx.emit(SagaEventName.CompensationFailed, {
          record: run.record,
          step: name,
          attempt,
          error: stored,
          willRetry,
          durationMs: run.ctx.now() - startedAt,
        });
      if (willRetry) {
        await run.ctx.sleep(backoffDelayMs(tries + 1, step.compensationRetry, run.ctx.random));
        continue;
      }
      await run.write(compensationFailed, name, stored);
      return { ok: false, error: stored };
    }
    await run.write(stepCompensatedThen, name, then);
    if (run.ctx.logger.isLevelEnabled('info')) {
      ctx.logger.info(
        { outcome: 'compensated', durationMs: run.writtenAt - startedAt },
        'step compensated',
      );
    }
    if (run.ctx.listens(SagaEventName.StepCompensated))
      run.ctx.emit(SagaEventName.StepCompensated, { record: run.record, step: name, attempt });
    return COMPLETED;
  }
}

/** The step's result, or a promise of it. */
function callRun(step: StepDefinition, ctx: RunCall): unknown {
  return step.timeoutMs === undefined
    ? step.run(ctx)
    : callWithTimeout(step.name, step.timeoutMs, ctx.cancellation, (cancel) =>
        step.run(ctx.withCancellation(cancel)),
      );
}

/** Compensation runs without the saga's cancel signal: only its own timeout aborts it. */
function callCompensate(step: StepDefinition, ctx: CompensateCall): unknown {
  return step.timeoutMs === undefined
    ? step.compensate!(ctx)
    : callWithTimeout(step.name, step.timeoutMs, undefined, (cancel) =>
        step.compensate!(ctx.withCancellation(cancel)),
      );
}

/** What interceptors see of a call (built only when there are interceptors). */
function invocationOf(
  run: RunState,
  ctx: StepContext<unknown, unknown> | CompensationContext<unknown, unknown, unknown>,
  kind: StepCallKind,
): StepInvocation {
  return {
    sagaId: ctx.sagaId,
    sagaName: ctx.sagaName,
    definitionVersion: run.def.version,
    step: ctx.step,
    kind,
    attempt: ctx.attempt,
    input: ctx.input,
    ...(kind === 'compensate' ? { result: (ctx as { result: unknown }).result } : {}),
    idempotencyKey: ctx.idempotencyKey,
    get signal() {
      return ctx.signal;
    },
    get logger() {
      return ctx.logger;
    },
  };
}
