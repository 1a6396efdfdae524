import { CORE_ERROR_CODES } from '../errors/codes.js';
import { ConfigError, type ConfigErrorOptions } from '../errors/ConfigError.js';

/**
 * How often and how far apart to try an operation again. Delays grow exponentially
 * (`initialDelayMs * factor^(attempt-1)`, capped at `maxDelayMs`), then jitter spreads them so
 * that many failing callers do not retry in lockstep.
 */
export interface RetryPolicy {
  /** Total attempts including the first one. 1 means no retry. @default 3 */
  attempts: number;
  /** Delay before the second attempt, in ms. @default 100 */
  initialDelayMs: number;
  /** Upper bound for any delay, in ms. @default 10_000 */
  maxDelayMs: number;
  /** Growth factor between attempts. @default 2 */
  factor: number;
  /**
   * `full`: a uniform random delay in [0, computed] (AWS "full jitter"); `equal`: half fixed,
   * half random; `none`: the computed delay. @default 'full'
   */
  jitter: 'full' | 'equal' | 'none';
}

export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  attempts: 3,
  initialDelayMs: 100,
  maxDelayMs: 10_000,
  factor: 2,
  jitter: 'full',
});

/** A retry policy option is out of range. */
export class RetryPolicyError extends ConfigError {
  static override readonly brand: string = '@backtrack/core.RetryPolicyError';
  constructor(field: string, expectation: string, value?: unknown, options?: ConfigErrorOptions) {
    super(
      CORE_ERROR_CODES.RETRY_CONFIG_INVALID,
      'retry policy',
      field,
      expectation,
      value,
      options,
    );
  }
}

/** Merges a partial policy over the defaults and validates it once (throws {@link RetryPolicyError}). */
export function resolveRetryPolicy(
  partial: Partial<RetryPolicy> | undefined,
  defaults: Readonly<RetryPolicy> = DEFAULT_RETRY_POLICY,
): Readonly<RetryPolicy> {
  const p = { ...defaults, ...partial };
  if (!Number.isInteger(p.attempts) || p.attempts < 1)
    throw new RetryPolicyError('attempts', 'must be an integer >= 1', p.attempts);
  if (!Number.isFinite(p.initialDelayMs) || p.initialDelayMs < 0)
    throw new RetryPolicyError('initialDelayMs', 'must be a number >= 0', p.initialDelayMs);
  if (!Number.isFinite(p.maxDelayMs) || p.maxDelayMs < p.initialDelayMs)
    throw new RetryPolicyError('maxDelayMs', 'must be a number >= initialDelayMs', p.maxDelayMs);
  if (!Number.isFinite(p.factor) || p.factor < 1)
    throw new RetryPolicyError('factor', 'must be a number >= 1', p.factor);
  if (!['full', 'equal', 'none'].includes(p.jitter))
    throw new RetryPolicyError('jitter', "must be 'full', 'equal' or 'none'", p.jitter);
  return Object.freeze(p);
}

/**
 * The delay before attempt `nextAttempt` (2 for the first retry), in ms.
 * @param random a source in [0, 1), injectable for deterministic tests.
 */
export function backoffDelayMs(
  nextAttempt: number,
  policy: Readonly<RetryPolicy>,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, nextAttempt - 2);
  const computed = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.factor ** exponent);
  switch (policy.jitter) {
    case 'none':
      return computed;
    case 'equal':
      return computed / 2 + random() * (computed / 2);
    default:
      return random() * computed;
  }
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
