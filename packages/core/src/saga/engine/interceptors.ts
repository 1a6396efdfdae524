/**
 * Step interceptors: functions the engine wraps around every call of a step's `run` and
 * `compensate` (tracing, metrics, tenancy, audit). The engine's events only observe; an
 * interceptor is in the call path, so it can time the call, read and change its result, and fail
 * it.
 */
import type { Logger } from '../../logging/logger.js';
import { SagaEngineConfigError } from '../errors.js';

/** Which function of a step an interceptor wraps. */
export type StepCallKind = 'run' | 'compensate';

/** What an interceptor sees of one call of a step's `run` or `compensate`. */
export interface StepInvocation {
  readonly sagaId: string;
  readonly sagaName: string;
  /** The version of the saga definition the saga runs with. */
  readonly definitionVersion: number;
  readonly step: string;
  readonly kind: StepCallKind;
  /** 1 for the first call of this `run` (or this `compensate`); counts across crashes. */
  readonly attempt: number;
  /** The saga's input. */
  readonly input: unknown;
  /** `compensate` only: the result `run` returned for this step. */
  readonly result?: unknown;
  /** The idempotency key the step receives (`<sagaId>:<step>:run` or `:compensate`). */
  readonly idempotencyKey: string;
  /**
   * The attempt's cancel signal (saga cancelled, deadline). A step's `timeoutMs` is applied
   * inside the interceptors: `next()` rejects with `StepTimeoutError` when it passes.
   */
  readonly signal: AbortSignal;
  /** The step attempt's logger (bound to saga id, step and attempt). */
  readonly logger: Logger;
}

/**
 * Calls the next interceptor, or the step itself for the innermost one. Resolves with the step's
 * result (`undefined` for `compensate`). Calling it twice calls the step once.
 */
export type StepNext = () => Promise<unknown>;

/**
 * Wraps one call of a step's `run` or `compensate`. Must call `next()` (or return without calling
 * the step, which then counts as done) and return what the call should resolve with: for `run`
 * that value is stored as the step's result, so an interceptor may tag it. A throw, here or from
 * `next()`, is the step's own failure: the step's retry policy and compensation apply as usual.
 *
 * @example
 * const timing: StepInterceptor = async (call, next) => {
 *   const started = performance.now();
 *   try {
 *     return await next();
 *   } finally {
 *     metrics.record(call.step, call.kind, performance.now() - started);
 *   }
 * };
 * createSagaEngine({ interceptors: [tracing, timing] }, { store }); // tracing is outermost
 */
export type StepInterceptor = (invocation: StepInvocation, next: StepNext) => Promise<unknown>;

/**
 * Runs `call` through `interceptors`, the first outermost. Only called when there is at least
 * one interceptor: without any the engine calls the step directly (no closure per step).
 */
export function intercept(
  interceptors: readonly StepInterceptor[],
  invocation: StepInvocation,
  call: () => unknown,
): Promise<unknown> {
  let inner: Promise<unknown> | undefined;
  const innermost: StepNext = () => (inner ??= Promise.resolve().then(call));
  const dispatch = (i: number): Promise<unknown> => {
    if (i === interceptors.length) return innermost();
    let nextCall: Promise<unknown> | undefined;
    // Promise.resolve().then: an interceptor that throws synchronously rejects like an async one.
    return Promise.resolve().then(() =>
      interceptors[i]!(invocation, () => (nextCall ??= dispatch(i + 1))),
    );
  };
  return dispatch(0);
}

/**
 * Checks the `interceptors` engine option.
 * @throws {SagaEngineConfigError} when it is not an array of functions.
 */
export function checkInterceptors(value: unknown): readonly StepInterceptor[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((i) => typeof i !== 'function')) {
    throw new SagaEngineConfigError('interceptors', 'must be an array of functions');
  }
  return Object.freeze([...(value as StepInterceptor[])]);
}
