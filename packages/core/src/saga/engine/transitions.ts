/**
 * The transitions a run writes, as pure functions: each takes the record the run last read or
 * wrote (never changed: stores may hand out frozen, shared records), the ISO time of the write,
 * and up to two arguments, and returns a new top-level record that shares every part it does not
 * change. `RunLog.write` then sets `updatedAt` and the lease on that new object (nothing else
 * has seen it yet) and stores it. Module-level functions with their arguments passed alongside:
 * a transition allocates no closure.
 */
import {
  SagaStatus,
  StepStatus,
  type SagaRecord,
  type StepRecord,
  type StoredError,
} from '../SagaStore.js';
import { frozenCopy } from '../clone.js';

/** A transition: `(record, at, a, b) => next record` (a fresh top-level object). */
export type Transition<A, B> = (record: SagaRecord, at: string, a: A, b: B) => SagaRecord;

/** The same record, written again: renews the lease (heartbeat). */
export function renewed(r: SagaRecord): SagaRecord {
  return copyOf(r);
}

/** The saga's status changes (and nothing else). */
export function withStatus(r: SagaRecord, _at: string, status: SagaStatus): SagaRecord {
  const next = copyOf(r);
  next.status = status;
  return next;
}

/** The saga's status changes with the fields that say why (`failure`, `stuck`). */
export function withOutcome(
  r: SagaRecord,
  _at: string,
  status: SagaStatus,
  why: Pick<SagaRecord, 'failure' | 'stuck'>,
): SagaRecord {
  return { ...r, status, ...why };
}

/** A failed step turns the saga to compensation (the reason says whether a cancel came first). */
export function stepFailedCompensating(
  r: SagaRecord,
  _at: string,
  step: string,
  error: StoredError,
): SagaRecord {
  return {
    ...r,
    status: SagaStatus.Compensating,
    failure: { step, error, reason: r.cancelRequested ? 'cancelled' : 'step-failed' },
  };
}

/** `run` is about to be called: attempt `attempt`, started `at`. */
export function stepStarted(r: SagaRecord, at: string, name: string, attempt: number): SagaRecord {
  const s = r.steps[name]!;
  const step: StepRecord = {
    ...without(s, 'endedAt'),
    status: StepStatus.Running,
    attempts: attempt,
  };
  step.startedAt = at;
  const next = copyOf(r);
  next.steps = withStep(r.steps, name, step);
  return next;
}

/** `run` returned `result`. */
export function stepCompleted(
  r: SagaRecord,
  at: string,
  name: string,
  result: unknown,
): SagaRecord {
  const step: StepRecord = { ...without(r.steps[name]!, 'error'), status: StepStatus.Completed };
  // From a frozen record the next one is handed over to the store as it is (RunLog): the result,
  // the caller's value, is copied here, where a store would otherwise copy it.
  step.result = Object.isFrozen(r) ? frozenCopy(result) : result;
  step.endedAt = at;
  const next = copyOf(r);
  next.steps = withStep(r.steps, name, step);
  next.completionOrder = appended(r.completionOrder, name);
  return next;
}

/** What a run does, in the same write, right after a step completed (see {@link stepCompletedThen}). */
export type FollowOn = string | typeof SAGA_COMPLETES | undefined;
/** {@link FollowOn}: the saga completes in the write that completes its last step. */
export const SAGA_COMPLETES: unique symbol = Symbol('saga completes');

/**
 * `run` returned `result`, and what the run would write next with nothing observable in between,
 * in the same write: `then(completed)`, asked of the record the completion makes, names the
 * next step to start (its first attempt, started `at`), says {@link SAGA_COMPLETES}, or says
 * nothing (then this is `stepCompleted` alone). Every state this write can leave is one the
 * two writes it replaces passed through (the second half without the first is never written).
 */
export function stepCompletedThen(
  r: SagaRecord,
  at: string,
  name: string,
  result: unknown,
  then: (completed: SagaRecord) => FollowOn,
): SagaRecord {
  const next = stepCompleted(r, at, name, result);
  const follow = then(next);
  if (follow === undefined) return next;
  if (follow === SAGA_COMPLETES) {
    next.status = SagaStatus.Completed;
    return next;
  }
  // `next.steps` was made by stepCompleted for this write: one more step replaced in it.
  const step: StepRecord = {
    ...without(next.steps[follow]!, 'endedAt'),
    status: StepStatus.Running,
    attempts: 1,
  };
  step.startedAt = at;
  next.steps[follow] = step;
  return next;
}

/** `run` failed for good (no retry left, or its policy said so). */
export function stepFailed(
  r: SagaRecord,
  at: string,
  name: string,
  failure: { error: StoredError; policy: 'compensate' | 'fail' },
): SagaRecord {
  const step: StepRecord = { ...r.steps[name]!, status: StepStatus.Failed };
  step.error = failure.error;
  step.policy = failure.policy;
  step.endedAt = at;
  return { ...r, steps: withStep(r.steps, name, step) };
}

/** `compensate` is about to be called: attempt `attempt`, started `at`. */
export function compensationStarted(
  r: SagaRecord,
  at: string,
  name: string,
  attempt: number,
): SagaRecord {
  const step: StepRecord = {
    ...without(r.steps[name]!, 'compensationEndedAt'),
    status: StepStatus.Compensating,
    compensationAttempts: attempt,
  };
  step.compensationStartedAt = at;
  return { ...r, steps: withStep(r.steps, name, step) };
}

/** `compensate` returned. */
export function stepCompensated(r: SagaRecord, at: string, name: string): SagaRecord {
  const step: StepRecord = { ...without(r.steps[name]!, 'error'), status: StepStatus.Compensated };
  step.compensationEndedAt = at;
  return {
    ...r,
    steps: withStep(r.steps, name, step),
    compensationOrder: appended(r.compensationOrder, name),
  };
}

/** {@link stepCompensatedThen}: the saga ends `compensated` in the write of its last compensation. */
export const SAGA_COMPENSATED: unique symbol = Symbol('saga compensated');

/**
 * `compensate` returned, and in the same write what compensation does next (nothing can change
 * it: a compensating saga takes no request): `then` names the next step to compensate alone
 * (its next attempt, started `at`), says {@link SAGA_COMPENSATED}, or is undefined (this is
 * `stepCompensated` alone).
 */
export function stepCompensatedThen(
  r: SagaRecord,
  at: string,
  name: string,
  then: string | typeof SAGA_COMPENSATED | undefined,
): SagaRecord {
  const next = stepCompensated(r, at, name);
  if (then === undefined) return next;
  if (then === SAGA_COMPENSATED) {
    next.status = SagaStatus.Compensated;
    return next;
  }
  // `next.steps` was made by stepCompensated for this write: one more step replaced in it.
  const s = next.steps[then]!;
  const step: StepRecord = {
    ...without(s, 'compensationEndedAt'),
    status: StepStatus.Compensating,
    compensationAttempts: s.compensationAttempts + 1,
  };
  step.compensationStartedAt = at;
  next.steps[then] = step;
  return next;
}

/** `compensate` exhausted its retries. */
export function compensationFailed(
  r: SagaRecord,
  at: string,
  name: string,
  error: StoredError,
): SagaRecord {
  const step: StepRecord = { ...r.steps[name]!, status: StepStatus.CompensationFailed };
  step.error = error;
  step.compensationEndedAt = at;
  return { ...r, steps: withStep(r.steps, name, step) };
}

/** The step records with one replaced (the others shared). */
function withStep(
  steps: Record<string, StepRecord>,
  name: string,
  step: StepRecord,
): Record<string, StepRecord> {
  const next = Object.assign({}, steps);
  next[name] = step;
  return next;
}

function appended(list: readonly string[], name: string): string[] {
  const next = list.slice();
  next.push(name);
  return next;
}

/**
 * A shallow copy of a record, the same keys in the same order as `{ ...r }`. `Object.assign`, not
 * a spread: a spread of a frozen record (what the in-memory and Redis stores hand out) gives an
 * object with a map of its own every time, which costs `JSON.stringify` (the Redis store's write)
 * about 2 µs more per record in Node 20; `Object.assign({}, r)` does not.
 */
function copyOf(r: SagaRecord): SagaRecord {
  return Object.assign({}, r);
}

/** `s` itself when it has no `key`, else a copy without it (records are never changed in place). */
function without<K extends keyof StepRecord>(s: StepRecord, key: K): StepRecord {
  if (s[key] === undefined) return s;
  const { [key]: _dropped, ...rest } = s;
  return rest as StepRecord;
}
