/** Small pure helpers of the saga engine: step policies, timeouts, errors, time strings. */
import type { Logger } from '../../logging/logger.js';
import type { SagaDefinition, StepDefinition, StepErrorPolicy } from '../definition.js';
import { StepTimeoutError } from '../errors.js';
import {
  SagaStatus,
  StepStatus,
  type SagaRecord,
  type StoredError,
} from '../SagaStore.js';

export type StepOutcome = { ok: true } | { ok: false; policy: StepErrorPolicy; error: StoredError };

export const TERMINAL: ReadonlySet<SagaStatus> = new Set([
  SagaStatus.Completed,
  SagaStatus.Compensated,
  SagaStatus.Failed,
]);

export const NEVER_ABORTED: AbortSignal = new AbortController().signal;

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
