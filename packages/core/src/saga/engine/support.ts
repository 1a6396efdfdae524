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

/**
 * What a step attempt is cancelled by: `aborted` is read on every transition, `signal` only when
 * a step, an interceptor, a timeout or a backoff asks for it.
 */
export interface Cancellation {
  readonly aborted: boolean;
  readonly signal: AbortSignal;
}

/** Past the pivot: nothing cancels a step. */
export const NEVER_ABORTED: Cancellation = Object.freeze({
  aborted: false,
  signal: NEVER_ABORTED_SIGNAL,
});

/** A cancellation by an existing signal. */
export function cancelledBy(signal: AbortSignal): Cancellation {
  return {
    get aborted() {
      return signal.aborted;
    },
    signal,
  };
}

/**
 * An AbortController made only when its signal is asked for: most sagas are never cancelled, and
 * in Node 20 a controller and its signal cost about as much CPU as a whole transition.
 */
export class LazyAbortController implements Cancellation {
  #controller: AbortController | undefined;
  #aborted = false;
  #reason: unknown;

  get aborted(): boolean {
    return this.#aborted;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** Like `AbortController.abort`: the first reason wins. */
  abort(reason?: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}

/** `toISOString` remembered for the last two instants (a transition asks for now and now + lease). */
export function isoTimeCache(): (ms: number) => string {
  let a = NaN;
  let aIso = '';
  let b = NaN;
  let bIso = '';
  return (ms) => {
    if (ms === a) return aIso;
    if (ms === b) return bIso;
    b = a;
    bIso = aIso;
    a = ms;
    aIso = new Date(ms).toISOString();
    return aIso;
  };
}

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

export function safePolicy(
  step: StepDefinition,
  error: unknown,
  attempt: number,
  log: Logger,
): StepErrorPolicy {
  try {
    const p = step.onError(error, attempt);
    if (p === 'retry' || p === 'compensate' || p === 'fail') return p;
    log.error({ policy: p }, 'onError returned an unknown policy; compensating');
  } catch (e) {
    log.error({ err: e }, 'onError threw; compensating');
  }
  return 'compensate';
}

export async function callWithTimeout<T>(
  step: string,
  timeoutMs: number | undefined,
  parent: AbortSignal | undefined,
  fn: (signal: AbortSignal) => Promise<T> | T,
): Promise<T> {
  // Without a timeout nothing but the parent can abort: no combined signal (costly in Node 20).
  if (timeoutMs === undefined) return fn(parent ?? new AbortController().signal);
  const own = new AbortController();
  const signal = parent ? AbortSignal.any([parent, own.signal]) : own.signal;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new StepTimeoutError(step, timeoutMs);
      own.abort(error);
      reject(error);
    }, timeoutMs);
  });
  try {
    return await Promise.race([Promise.resolve().then(() => fn(signal)), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function toStoredError(error: unknown): StoredError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      name: error.name,
      message: error.message,
      ...(typeof code === 'string' ? { code } : {}),
    };
  }
  return { name: 'NonError', message: String(error) };
}

export function definitionKey(name: string, version: number): string {
  return `${name}@${version}`;
}
