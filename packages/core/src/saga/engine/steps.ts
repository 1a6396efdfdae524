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
import { StepStatus, type SagaRecord, type StoredError } from '../SagaStore.js';
import type { Logger } from '../../logging/logger.js';
import type { RunState } from './context.js';
import { intercept, type StepCallKind, type StepInvocation } from './interceptors.js';
import { callWithTimeout, safePolicy, toStoredError, type StepOutcome } from './support.js';

/** `settle`: called only to learn the outcome of an attempt in doubt; no retry, no backoff. */
export async function runStep(
  run: RunState,
  step: StepDefinition,
  signal: AbortSignal,
  settle = false,
): Promise<StepOutcome> {
  for (let tries = 1; ; tries++) {
    const attempt = run.record.steps[step.name]!.attempts + 1;
    const attemptAt = run.ctx.now();
    await run.write((x) => {
      const s = x.steps[step.name]!;
      s.status = StepStatus.Running;
      s.attempts = attempt;
      s.startedAt = new Date(attemptAt).toISOString();
      delete s.endedAt;
    });
    const log = run.lazyLog({ step: step.name, attempt });
    if (run.ctx.logger.isLevelEnabled('debug')) log().debug('step started');
    if (run.ctx.listens(SagaEventName.StepStarted))
      run.ctx.emit(SagaEventName.StepStarted, {
        record: run.record,
        step: step.name,
        attempt,
      });
    const startedAt = run.ctx.now();
    let result: unknown;
    try {
      const ctx: StepContext<unknown, Record<string, unknown>> = {
        sagaId: run.record.sagaId,
        sagaName: run.def.name,
        step: step.name,
        input: run.record.input,
        results: resultsOf(run.record),
        idempotencyKey: `${run.record.sagaId}:${step.name}:run`,
        attempt,
        signal,
        get logger() {
          return log();
        },
      };
      const interceptors = run.ctx.interceptors;
      result =
        interceptors.length === 0
          ? await callRun(step, ctx)
          : await intercept(interceptors, invocationOf(run, ctx, 'run', log), () =>
              callRun(step, ctx),
            );
    } catch (error) {
      const stored = toStoredError(error);
      const cancelled = signal.aborted;
      let policy: StepErrorPolicy = cancelled
        ? 'compensate'
        : safePolicy(step, error, attempt, log());
      if (policy === 'retry' && (settle || tries >= step.retry.attempts)) policy = 'compensate';
      const willRetry = policy === 'retry';
      log().warn(
        { err: error, willRetry, policy, durationMs: run.ctx.now() - startedAt },
        'step failed',
      );
      if (run.ctx.listens(SagaEventName.StepFailed))
        run.ctx.emit(SagaEventName.StepFailed, {
          record: run.record,
          step: step.name,
          attempt,
          error: stored,
          willRetry,
          durationMs: run.ctx.now() - startedAt,
        });
      if (willRetry) {
        try {
          await run.ctx.sleep(backoffDelayMs(tries + 1, step.retry, run.ctx.random), signal);
          continue;
        } catch {
          policy = 'compensate'; // cancelled or deadline while waiting
        }
      }
      await run.write((x) => {
        const s = x.steps[step.name]!;
        s.status = StepStatus.Failed;
        s.error = stored;
        s.policy = policy === 'fail' ? 'fail' : 'compensate';
        s.endedAt = new Date(run.ctx.now()).toISOString();
      });
      return { ok: false, policy, error: stored };
    }
    await run.write((x) => {
      const s = x.steps[step.name]!;
      s.status = StepStatus.Completed;
      s.result = result;
      s.endedAt = new Date(run.ctx.now()).toISOString();
      delete s.error;
      x.completionOrder.push(step.name);
    });
    const durationMs = run.ctx.now() - startedAt;
    if (run.ctx.logger.isLevelEnabled('info')) {
      log().info({ outcome: 'completed', durationMs }, 'step completed');
    }
    if (run.ctx.listens(SagaEventName.StepCompleted))
      run.ctx.emit(SagaEventName.StepCompleted, {
        record: run.record,
        step: step.name,
        attempt,
        durationMs,
      });
    return { ok: true };
  }
}

export async function compensateStep(
  run: RunState,
  name: string,
): Promise<{ ok: true } | { ok: false; error: StoredError }> {
  const step = run.def.steps.find((s) => s.name === name)!;
  for (let tries = 1; ; tries++) {
    const attempt = run.record.steps[name]!.compensationAttempts + 1;
    const attemptAt = run.ctx.now();
    await run.write((x) => {
      const s = x.steps[name]!;
      s.status = StepStatus.Compensating;
      s.compensationAttempts = attempt;
      s.compensationStartedAt = new Date(attemptAt).toISOString();
      delete s.compensationEndedAt;
    });
    const log = run.lazyLog({ step: name, attempt, phase: 'compensate' });
    if (run.ctx.listens(SagaEventName.CompensationStarted))
      run.ctx.emit(SagaEventName.CompensationStarted, {
        record: run.record,
        step: name,
        attempt,
      });
    const startedAt = run.ctx.now();
    try {
      const results = resultsOf(run.record);
      const ctx: CompensationContext<unknown, Record<string, unknown>, unknown> = {
        sagaId: run.record.sagaId,
        sagaName: run.def.name,
        step: name,
        input: run.record.input,
        result: run.record.steps[name]!.result,
        results,
        idempotencyKey: `${run.record.sagaId}:${name}:compensate`,
        attempt,
        // Compensation must finish even when the saga was cancelled: only its own timeout aborts it.
        signal: new AbortController().signal,
        get logger() {
          return log();
        },
      };
      const interceptors = run.ctx.interceptors;
      await (interceptors.length === 0
        ? callCompensate(step, ctx)
        : intercept(interceptors, invocationOf(run, ctx, 'compensate', log), () =>
            callCompensate(step, ctx),
          ));
    } catch (error) {
      const stored = toStoredError(error);
      const willRetry = tries < step.compensationRetry.attempts;
      log().warn({ err: error, willRetry }, 'compensation failed');
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
      await run.write((x) => {
        const s = x.steps[name]!;
        s.status = StepStatus.CompensationFailed;
        s.error = stored;
        s.compensationEndedAt = new Date(run.ctx.now()).toISOString();
      });
      return { ok: false, error: stored };
    }
    await run.write((x) => {
      const s = x.steps[name]!;
      s.status = StepStatus.Compensated;
      s.compensationEndedAt = new Date(run.ctx.now()).toISOString();
      delete s.error;
      x.compensationOrder.push(name);
    });
    if (run.ctx.logger.isLevelEnabled('info')) {
      log().info(
        { outcome: 'compensated', durationMs: run.ctx.now() - startedAt },
        'step compensated',
      );
    }
    if (run.ctx.listens(SagaEventName.StepCompensated))
      run.ctx.emit(SagaEventName.StepCompensated, { record: run.record, step: name, attempt });
    return { ok: true };
  }
}

/** The step's result, or a promise of it. */
function callRun(
  step: StepDefinition,
  ctx: StepContext<unknown, Record<string, unknown>>,
): unknown {
  return step.timeoutMs === undefined
    ? step.run(ctx)
    : callWithTimeout(step.name, step.timeoutMs, ctx.signal, (s) =>
        step.run({ ...ctx, signal: s }),
      );
}

/** Compensation runs without the saga's cancel signal: only its own timeout aborts it. */
function callCompensate(
  step: StepDefinition,
  ctx: CompensationContext<unknown, Record<string, unknown>, unknown>,
): unknown {
  return step.timeoutMs === undefined
    ? step.compensate!(ctx)
    : callWithTimeout(step.name, step.timeoutMs, undefined, (s) =>
        step.compensate!({ ...ctx, signal: s }),
      );
}

/** What interceptors see of a call (built only when there are interceptors). */
function invocationOf(
  run: RunState,
  ctx: StepContext<unknown, unknown> | CompensationContext<unknown, unknown, unknown>,
  kind: StepCallKind,
  log: () => Logger,
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
    signal: ctx.signal,
    get logger() {
      return log();
    },
  };
}

/** Results of the steps that completed (or are being compensated), by step name. */
export function resultsOf(record: SagaRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(record.steps)) {
    if (
      s.status !== StepStatus.Pending &&
      s.status !== StepStatus.Running &&
      s.status !== StepStatus.Failed
    ) {
      out[name] = s.result;
    }
  }
  return out;
}
