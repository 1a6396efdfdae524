/** Small pure helpers of the saga engine: step policies, timeouts, errors, time strings. */
import type { Logger } from '../../logging/logger.js';
import type { SagaDefinition, StepDefinition, StepErrorPolicy } from '../definition.js';
import { StepTimeoutError } from '../errors.js';
import { SagaStatus, StepStatus, type SagaRecord, type StoredError } from '../SagaStore.js';

export type StepOutcome = { ok: true } | { ok: false; policy: StepErrorPolicy; error: StoredError };

export const TERMINAL: ReadonlySet<SagaStatus> = new Set([
  SagaStatus.Completed,
  SagaStatus.Compensated,
  SagaStatus.Failed,
]);

const NEVER_ABORTED_SIGNAL: AbortSignal = new AbortController().signal;

/** Called once with the reason when a {@link Cancellation} aborts. */
export type AbortListener = (reason: unknown) => void;

/**
 * What a step attempt is cancelled by: `aborted` is read on every transition, `signal` only when
 * a step, an interceptor, a timeout or a backoff asks for it. `onAbort` lets a child (a step
 * timeout, a deadline) follow its parent without an AbortSignal on either side: no
 * `AbortSignal.any`, and no controller until someone reads `signal`.
 */
export interface Cancellation {
  readonly aborted: boolean;
  /** Why it aborted (undefined while it has not). */
  readonly reason: unknown;
  readonly signal: AbortSignal;
  /**
   * Calls `listener` once when this aborts (at once when it already has); returns the function
   * that removes it.
   */
  onAbort(listener: AbortListener): () => void;
}

const NOTHING_TO_REMOVE = (): void => undefined;

/** Past the pivot: nothing cancels a step. */
export const NEVER_ABORTED: Cancellation = Object.freeze({
  aborted: false,
  reason: undefined,
  signal: NEVER_ABORTED_SIGNAL,
  onAbort: () => NOTHING_TO_REMOVE,
});

/**
 * The listeners of one cancellation: an array (a run has one or two at a time: a step timeout,
 * a deadline), called once in order and dropped when it aborts.
 */
class AbortListeners {
  #listeners: AbortListener[] | undefined;

  add(listener: AbortListener): () => void {
    (this.#listeners ??= []).push(listener);
    return () => {
      const listeners = this.#listeners;
      if (listeners === undefined) return;
      const at = listeners.indexOf(listener);
      if (at >= 0) listeners.splice(at, 1);
    };
  }

  fire(reason: unknown): void {
    const listeners = this.#listeners;
    this.#listeners = undefined;
    if (listeners !== undefined) for (const listener of listeners) listener(reason);
  }

  clear(): void {
    this.#listeners = undefined;
  }
}

/**
 * An AbortController made only when its signal is asked for: most sagas are never cancelled, and
 * in Node 20 a controller and its signal cost about as much CPU as a whole transition.
 */
export class LazyAbortController implements Cancellation {
  #controller: AbortController | undefined;
  #aborted = false;
  #reason: unknown;
  readonly #listeners = new AbortListeners();

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): unknown {
    return this.#reason;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  onAbort(listener: AbortListener): () => void {
    if (this.#aborted) {
      listener(this.#reason);
      return NOTHING_TO_REMOVE;
    }
    return this.#listeners.add(listener);
  }

  /** Like `AbortController.abort`: the first reason wins. */
  abort(reason?: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
    this.#listeners.fire(reason);
  }
}

/**
 * A cancellation aborted by its parent or by its own {@link abort} (a step timeout, a saga
 * deadline): what `AbortSignal.any([parent, own])` gives, without its cost (in Node 20 a
 * combined signal costs a weak reference per source and tens of µs of GC). Nothing is made until
 * asked for: it follows its parent only once something listens to it, and has an
 * AbortController only once a step reads `signal`. Call {@link dispose} when it is done with, so
 * that the parent (which lives as long as the run) does not keep it.
 */
export class ChildCancellation implements Cancellation {
  readonly #parent: Cancellation | undefined;
  #aborted = false;
  #reason: unknown;
  #controller: AbortController | undefined;
  readonly #listeners = new AbortListeners();
  #unfollow: (() => void) | undefined;

  constructor(parent?: Cancellation) {
    this.#parent = parent;
  }

  get aborted(): boolean {
    return this.#aborted || (this.#parent?.aborted ?? false);
  }

  get reason(): unknown {
    return this.#aborted ? this.#reason : this.#parent?.reason;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      // Aborted by `abort` itself (no listener of its own), which the parent's abort reaches.
      const controller = new AbortController();
      this.#controller = controller;
      if (this.aborted) controller.abort(this.reason);
      else this.#follow();
    }
    return this.#controller.signal;
  }

  onAbort(listener: AbortListener): () => void {
    if (this.aborted) {
      listener(this.reason);
      return NOTHING_TO_REMOVE;
    }
    const remove = this.#listeners.add(listener);
    this.#follow();
    return remove;
  }

  /** Follows the parent (once): its abort aborts this. */
  #follow(): void {
    if (this.#unfollow === undefined && this.#parent !== undefined) {
      this.#unfollow = this.#parent.onAbort((reason) => this.abort(reason));
    }
  }

  /** Aborts it and what follows it. The first reason wins, the parent's included. */
  abort(reason?: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    // The parent aborted first (unnoticed, nobody listened): its reason stands.
    this.#reason = this.#parent?.aborted === true ? this.#parent.reason : reason;
    this.#unfollow?.();
    this.#unfollow = undefined;
    this.#controller?.abort(this.#reason);
    this.#listeners.fire(this.#reason);
  }

  /** Stops following the parent and drops the listeners (nothing is aborted). */
  dispose(): void {
    this.#unfollow?.();
    this.#unfollow = undefined;
    this.#listeners.clear();
  }
}

/** `.000Z` to `.999Z`: the end of an ISO time, by millisecond. */
const MS_SUFFIXES: readonly string[] = Array.from(
  { length: 1000 },
  (_, ms) => `.${String(ms).padStart(3, '0')}Z`,
);

/**
 * `new Date(ms).toISOString()`, remembered for the last two instants (a transition asks for now
 * and now + lease), and built from the last two seconds' `YYYY-MM-DDTHH:MM:SS` and the
 * millisecond's `.mmmZ` otherwise (one string concatenation instead of a Date and its
 * formatting). Fractional or invalid times go to `toISOString` (its truncation, its RangeError).
 */
export function isoTimeCache(): (ms: number) => string {
  let a = NaN;
  let aIso = '';
  let b = NaN;
  let bIso = '';
  let secA = NaN;
  let prefixA = '';
  let secB = NaN;
  let prefixB = '';
  return (ms) => {
    if (ms === a) return aIso;
    if (ms === b) return bIso;
    let iso: string;
    if (!Number.isInteger(ms) || ms > MAX_TIME || ms < -MAX_TIME) {
      iso = new Date(ms).toISOString(); // truncates a fraction; throws when out of range
    } else {
      const sec = Math.floor(ms / 1000);
      let prefix: string;
      if (sec === secA) prefix = prefixA;
      else if (sec === secB) prefix = prefixB;
      else {
        prefix = new Date(sec * 1000).toISOString().slice(0, -5);
        secB = secA;
        prefixB = prefixA;
        secA = sec;
        prefixA = prefix;
      }
      iso = prefix + MS_SUFFIXES[ms - sec * 1000]!;
    }
    // Remembered only once made (a time that threw is not remembered).
    b = a;
    bIso = aIso;
    a = ms;
    aIso = iso;
    return iso;
  };
}

/** The largest time a Date holds, in ms either side of 1970. */
const MAX_TIME = 8.64e15;

export function rethrowFirst<T>(settled: PromiseSettledResult<T>[]): T[] {
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}

export function progressOf(r: SagaRecord): string {
  return JSON.stringify([
    r.status,
    r.steps,
    r.completionOrder,
    r.compensationOrder,
    r.stuck ?? null,
  ]);
}

export function pivotPassed(
  def: SagaDefinition<unknown, Record<string, unknown>>,
  r: SagaRecord,
): boolean {
  for (const s of def.steps) {
    if (s.pivot && r.steps[s.name]?.status === StepStatus.Completed) return true;
  }
  return false;
}

/** `log`: the attempt's logger, made only when a bad policy has to be reported. */
export function safePolicy(
  step: StepDefinition,
  error: unknown,
  attempt: number,
  log: () => Logger,
): StepErrorPolicy {
  try {
    const p = step.onError(error, attempt);
    if (p === 'retry' || p === 'compensate' || p === 'fail') return p;
    log().error({ policy: p }, 'onError returned an unknown policy; compensating');
  } catch (e) {
    log().error({ err: e }, 'onError threw; compensating');
  }
  return 'compensate';
}

/**
 * Calls `fn` with a cancellation that aborts when `parent` does or after `timeoutMs`, and
 * rejects with {@link StepTimeoutError} at the timeout whether `fn` stops or not. One timer per
 * call; no AbortController unless `fn` reads the signal, no `AbortSignal.any`, no
 * `Promise.race`. `fn` is called at once (a synchronous throw rejects the returned promise).
 */
export function callWithTimeout<T>(
  step: string,
  timeoutMs: number,
  parent: Cancellation | undefined,
  fn: (cancel: Cancellation) => Promise<T> | T,
): Promise<T> {
  const call = new TimedCall(step, timeoutMs, parent);
  let result: Promise<T> | T;
  try {
    result = fn(call.cancel);
  } catch (error) {
    call.settleFirst();
    return Promise.reject(error);
  }
  if (!isThenable<T>(result)) {
    call.settleFirst();
    return Promise.resolve(result);
  }
  const pending = result;
  // The timer cannot fire before the executor ran (no turn in between): resolve and reject are
  // in place when it does.
  return new Promise<T>((resolve, reject) => {
    call.reject = reject;
    pending.then(
      (value) => {
        if (call.settleFirst()) resolve(value);
      },
      (error: unknown) => {
        if (call.settleFirst()) reject(error);
      },
    );
  });
}

/** One call of {@link callWithTimeout}: its timer, its cancellation, its first outcome. */
class TimedCall {
  readonly cancel: ChildCancellation;
  readonly #timer: NodeJS.Timeout;
  #settled = false;
  /** The returned promise's reject (set once it exists), for the timeout. */
  reject: ((error: unknown) => void) | undefined;

  constructor(
    readonly step: string,
    readonly timeoutMs: number,
    parent: Cancellation | undefined,
  ) {
    this.cancel = new ChildCancellation(parent);
    this.#timer = setTimeout(timeUp, timeoutMs, this);
  }

  /** True for the first outcome only: it stops the timer and lets go of the parent. */
  settleFirst(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    clearTimeout(this.#timer);
    this.cancel.dispose();
    return true;
  }

  timeUp(): void {
    if (this.#settled) return;
    this.#settled = true;
    const error = new StepTimeoutError(this.step, this.timeoutMs);
    this.cancel.abort(error);
    this.reject?.(error);
  }
}

function timeUp(call: { timeUp(): void }): void {
  call.timeUp();
}

export function isThenable<T = unknown>(value: unknown): value is PromiseLike<T> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** What V8 says when code changes a frozen object (the in-memory store's records are frozen). */
const FROZEN_WRITE = /object is not extensible|read only property|Cannot delete property/;

export function toStoredError(error: unknown): StoredError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const stored: StoredError = {
      name: error.name,
      // A step that changed `input` or `results` in place works on a store that decodes a fresh
      // copy and fails on one that hands out frozen records: say why, where it is read.
      message:
        error instanceof TypeError && FROZEN_WRITE.test(error.message)
          ? `${error.message} (if this object is the step's input or results: they are the saga record's own data and read-only; copy them before changing anything)`
          : error.message,
    };
    // Set after the literal: no spread of a temporary object per failed attempt.
    if (typeof code === 'string') stored.code = code;
    return stored;
  }
  return { name: 'NonError', message: String(error) };
}

export function definitionKey(name: string, version: number): string {
  return `${name}@${version}`;
}
