import { BacktrackError } from '../../errors/BacktrackError.js';
import type { Logger } from '../../logging/logger.js';
import type { SagaDefinition, StepDefinition } from '../definition.js';
import { SagaLeaseLostError } from '../errors.js';
import { SagaEventName } from '../events.js';
import { SagaStatus, StepStatus, type SagaRecord } from '../SagaStore.js';
import { compensateAll } from './compensation.js';
import type { RunContext, RunState } from './context.js';
import { RunLog } from './RunLog.js';
import { runStep } from './steps.js';
import {
  ChildCancellation,
  NEVER_ABORTED,
  pivotPassed,
  rethrowFirst,
  type Cancellation,
  type LazyAbortController,
} from './support.js';
import {
  renewed,
  SAGA_COMPLETES,
  stepCompletedThen,
  stepFailedCompensating,
  withOutcome,
  withStatus,
  type FollowOn,
  type Transition,
} from './transitions.js';

/**
 * One drive of one saga by the engine that holds its lease: the run loop. It reads nothing but
 * its own log, goes forward stage by stage (`steps.ts`), turns to compensation when a step
 * failed or a cancel, compensation request or deadline asks for it (`compensation.ts`), and
 * writes every transition through its {@link RunLog} (lease-fenced compare-and-set).
 */
export class SagaRun implements RunState {
  readonly #log: RunLog;
  #logger: Logger | undefined;
  readonly cancelled: Cancellation;
  /** Going forward is cancelled (the run's cancellation or the deadline); set by `drive`. */
  #forward: Cancellation = NEVER_ABORTED;
  #deadline: number | undefined;
  /** What the last completion written by {@link #completedThen} did in the same write. */
  #followed: FollowOn;
  /** The step `#followed` names. */
  #nextStep: StepDefinition | undefined;

  constructor(
    readonly ctx: RunContext,
    readonly def: SagaDefinition<unknown, Record<string, unknown>>,
    record: SagaRecord,
    private readonly abort: LazyAbortController,
    /**
     * `start` created the record with the first stage's one step already `running` (attempt 1,
     * started at `createdAt`, the time `writtenAt` says): the drive calls it without a write.
     */
    private readonly firstStarted = false,
    writtenAt?: number,
  ) {
    this.cancelled = abort;
    this.#log = new RunLog(ctx, record, abort, writtenAt);
  }

  get record(): SagaRecord {
    return this.#log.record;
  }

  write<A, B>(change: Transition<A, B>, a: A, b: B): Promise<void> {
    return this.#log.write(change, a, b);
  }

  get writtenAt(): number {
    return this.#log.writtenAt;
  }

  /** The run's logger, made on first use (a pino child costs more than a whole transition). */
  get logger(): Logger {
    return (this.#logger ??= this.ctx.logger.child({
      sagaId: this.record.sagaId,
      saga: this.def.name,
      sagaVersion: this.def.version,
    }));
  }

  /** Heartbeat: a write that only renews the lease, when nothing was written for `idleMs`. */
  renewIfIdle(idleMs: number): void {
    if (!this.#log.idleFor(idleMs)) return;
    this.write(renewed, undefined, undefined).catch((error: unknown) => {
      this.logger.warn({ err: error }, 'could not renew the saga lease');
      if (error instanceof SagaLeaseLostError) this.abort.abort(error);
    });
  }

  /**
   * The completion of a one-step stage the loop runs inline: one write that also records what the
   * loop would write next when nothing is asked of it meanwhile (see {@link #next}). On a revision
   * conflict RunLog applies it again to the fresh record, so a request that came by the store is
   * seen (then only the completion is written).
   */
  readonly #completedThen: Transition<string, unknown> = (r, at, name, result) =>
    stepCompletedThen(r, at, name, result, this.#next);

  /**
   * What the loop's next turn would write after `completed` (a completion), when it is certain
   * with no check in between: start the next stage's one step (first attempt, nothing asked,
   * pivot or not) or complete the saga. Undefined whenever the loop's turn would do anything else
   * (a cancel or compensate request, the deadline, a parallel stage, a retry, a step in doubt or
   * failed): then the loop writes it as before.
   */
  readonly #next = (completed: SagaRecord): FollowOn => {
    this.#followed = undefined;
    if (
      completed.status !== SagaStatus.Running ||
      completed.cancelRequested ||
      this.cancelled.aborted ||
      this.#forward.aborted ||
      (this.#deadline !== undefined && this.ctx.now() >= this.#deadline)
    ) {
      return undefined;
    }
    const stage = nextStage(this.def, completed);
    if (stage === undefined) return (this.#followed = SAGA_COMPLETES);
    if (stage.length !== 1) return undefined;
    const name = stage[0]!.name;
    const step = completed.steps[name];
    if (step?.status !== StepStatus.Pending || step.attempts !== 0) return undefined;
    this.#nextStep = stage[0]!;
    return (this.#followed = name);
  };

  async drive(): Promise<SagaRecord> {
    const deadline = this.record.deadline ? Date.parse(this.record.deadline) : undefined;
    // With a deadline, going forward is cancelled by the run's cancellation or the deadline,
    // whichever comes first (no AbortSignal.any: a child that follows its parent).
    const forward: Cancellation =
      deadline === undefined ? this.cancelled : new ChildCancellation(this.cancelled);
    this.#forward = forward;
    this.#deadline = deadline;
    // The creation wrote the first step `running` (only without a deadline, before anything
    // could ask the run to stop): call it, as the turn after its start write would have.
    let first = this.firstStarted ? this.def.stages[0]![0] : undefined;
    const timer =
      deadline === undefined
        ? undefined
        : setTimeout(
            () =>
              (forward as ChildCancellation).abort(
                new BacktrackError('BT_ERR_SAGA_DEADLINE', 'saga deadline passed'),
              ),
            Math.max(0, deadline - this.ctx.now()),
          );
    try {
      for (;;) {
        if (first !== undefined) {
          const step = first;
          first = undefined;
          await this.#runInline(step, forward, true);
          continue;
        }
        const r = this.record;
        if (r.status === SagaStatus.Running) {
          if (
            (r.cancelRequested ||
              this.cancelled.aborted ||
              (deadline !== undefined && this.ctx.now() >= deadline)) &&
            (await this.#stopForwardIfAsked(deadline))
          ) {
            continue;
          }
          const stage = nextStage(this.def, r);
          if (!stage) {
            await this.write(withStatus, SagaStatus.Completed, undefined);
            this.#completed();
            continue;
          }
          // Past the pivot nothing stops the saga going forward, not even a deadline.
          const cancel = pivotPassed(this.def, r) ? NEVER_ABORTED : forward;
          if (stage.length === 1 && !cancel.aborted) {
            // The usual stage, one step, inline: no stage promise per step.
            const name = stage[0]!.name;
            const before = r.steps[name]!.status;
            // A step the log says failed stays failed (a crash may have come before the saga's own write).
            if (before !== StepStatus.Failed) {
              await this.#runInline(stage[0]!, cancel);
              continue;
            }
          }
          await this.#runStage(stage, cancel);
        } else if (r.status === SagaStatus.Compensating) {
          await compensateAll(this);
        } else {
          return this.record;
        }
      }
    } finally {
      if (timer) clearTimeout(timer);
      if (forward instanceof ChildCancellation) forward.dispose();
    }
  }

  /**
   * Runs a one-step stage and, while each completion's write also started the next one-step stage
   * (or completed the saga), goes straight on: what the loop's turn would have done, minus its
   * write. A step that failed is left to `#runStage` (it writes what the failure does).
   */
  async #runInline(
    first: StepDefinition,
    firstCancel: Cancellation,
    firstStarted = false,
  ): Promise<void> {
    let step = first;
    let cancel = firstCancel;
    let started = firstStarted;
    for (;;) {
      this.#followed = undefined;
      await runStep(this, step, cancel, false, this.#completedThen, started);
      const followed = this.#followed;
      this.#followed = undefined;
      if (this.record.steps[step.name]!.status === StepStatus.Failed) {
        await this.#runStage([step], cancel);
        return;
      }
      if (followed === undefined) return;
      if (followed === SAGA_COMPLETES) {
        this.#completed();
        return;
      }
      step = this.#nextStep!;
      // As the loop's turn would: past the pivot nothing stops the saga going forward.
      cancel = pivotPassed(this.def, this.record) ? NEVER_ABORTED : this.#forward;
      started = true;
    }
  }

  /** The saga's completion was written: its log line and event. */
  #completed(): void {
    if (this.ctx.logger.isLevelEnabled('info')) {
      this.logger.info({ outcome: 'completed' }, 'saga completed');
    }
    if (this.ctx.listens(SagaEventName.SagaCompleted))
      this.ctx.emit(SagaEventName.SagaCompleted, { record: this.record });
  }

  /** Turns to compensation when cancel, compensate or the deadline asked for it (never past the pivot). */
  async #stopForwardIfAsked(deadline: number | undefined): Promise<boolean> {
    const r = this.record;
    const cancelled = r.cancelRequested || this.cancelled.aborted;
    const late = deadline !== undefined && this.ctx.now() >= deadline;
    if (!cancelled && !late) return false;
    if (pivotPassed(this.def, r)) {
      this.logger.warn(
        { cancelled, late },
        'saga passed its pivot: ignoring cancel/deadline, going forward',
      );
      return false;
    }
    // A step a crashed run left `running` may have had its effect: call it again (same
    // idempotency key) so that its outcome is logged and, if it completed, compensated.
    const inDoubt = this.def.steps.filter((s) => r.steps[s.name]?.status === StepStatus.Running);
    if (inDoubt.length > 0) {
      if (this.ctx.logger.isLevelEnabled('info')) {
        this.logger.info({ steps: inDoubt.map((s) => s.name) }, 'settling steps in doubt first');
      }
      rethrowFirst(
        await Promise.allSettled(inDoubt.map((s) => runStep(this, s, NEVER_ABORTED, true))),
      );
    }
    const request = this.record.request;
    await this.write(withOutcome, SagaStatus.Compensating, {
      failure: !cancelled
        ? { reason: 'deadline', error: { name: 'DeadlineExceeded', message: 'saga deadline' } }
        : request?.kind === 'compensate'
          ? {
              reason: 'compensation-requested',
              error: { name: 'CompensationRequested', message: request.reason },
            }
          : {
              reason: 'cancelled',
              error: { name: 'Cancelled', message: request?.reason ?? 'saga cancelled' },
            },
    });
    // The run's logger (a pino child) is made only when the line is written.
    if (this.ctx.logger.isLevelEnabled('info')) {
      this.logger.info(
        { reason: this.record.failure?.reason },
        'saga stops going forward; compensating',
      );
    }
    return true;
  }

  async #runStage(stage: readonly StepDefinition[], signal: Cancellation): Promise<void> {
    // Once cancelled (or past the deadline) start nothing new: the loop turns to compensation.
    if (signal.aborted) return;
    const pending = stage.filter((s) => !SETTLED.has(this.record.steps[s.name]!.status));
    if (pending.length > 0) {
      // allSettled: a store failure in one branch must not leave the others running unobserved.
      rethrowFirst(await Promise.allSettled(pending.map((s) => runStep(this, s, signal))));
    }
    const failures = stage.flatMap((s) => {
      const rec = this.record.steps[s.name]!;
      return rec.status === StepStatus.Failed
        ? [
            {
              step: s.name,
              policy: rec.policy ?? 'compensate',
              error: rec.error ?? { name: 'Error', message: 'step failed' },
            },
          ]
        : [];
    });
    if (failures.length === 0) return;
    const first = failures[0]!;
    if (failures.some((f) => f.policy === 'fail')) {
      const failed = failures.find((f) => f.policy === 'fail')!;
      await this.write(withOutcome, SagaStatus.Failed, {
        failure: { step: failed.step, error: failed.error, reason: 'step-failed' },
      });
      this.logger.error(
        { step: failed.step, err: failed.error, outcome: 'failed' },
        'saga failed without compensation',
      );
      if (this.ctx.listens(SagaEventName.SagaFailed))
        this.ctx.emit(SagaEventName.SagaFailed, {
          record: this.record,
          step: failed.step,
          error: failed.error,
        });
      return;
    }
    if (pivotPassed(this.def, this.record)) {
      // Past the pivot nothing can be undone: park the saga for a person instead of half-undoing it.
      await this.write(withOutcome, SagaStatus.Stuck, {
        failure: { step: first.step, error: first.error, reason: 'step-failed' },
        stuck: {
          phase: 'forward',
          steps: failures.map((f) => f.step),
          errors: failures.map((f) => f.error),
        },
      });
      this.logger.error(
        { steps: failures.map((f) => f.step) },
        'saga stuck: a step after the pivot exhausted its retries',
      );
      if (this.ctx.listens(SagaEventName.SagaStuck))
        this.ctx.emit(SagaEventName.SagaStuck, {
          record: this.record,
          step: first.step,
          error: first.error,
        });
      return;
    }
    await this.write(stepFailedCompensating, first.step, first.error);
    if (this.ctx.logger.isLevelEnabled('warn')) {
      this.logger.warn({ step: first.step, err: first.error }, 'step failed; compensating');
    }
  }
}

/** Step statuses a stage does not run again: done, or failed (the log's word is final). */
const SETTLED: ReadonlySet<string> = new Set([StepStatus.Completed, StepStatus.Failed]);

/** The first stage with a step not completed yet; undefined when every step completed. */
function nextStage(
  def: SagaDefinition<unknown, Record<string, unknown>>,
  r: SagaRecord,
): readonly StepDefinition[] | undefined {
  for (const stage of def.stages) {
    for (const s of stage) {
      if (r.steps[s.name]?.status !== StepStatus.Completed) return stage;
    }
  }
  return undefined;
}
