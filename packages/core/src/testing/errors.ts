import { BacktrackError, type BacktrackErrorOptions } from '../errors/BacktrackError.js';
import { CORE_ERROR_CODES } from '../errors/codes.js';

/** Codes of the testing helpers' errors. */
export const TESTING_ERROR_CODES = Object.freeze({
  SPY_TIMEOUT: CORE_ERROR_CODES.SPY_TIMEOUT,
} as const);

/**
 * A spy's `waitFor` saw no matching record in time. `details` says which spy, what it waited for
 * (`match`, `count`), how many matching records it had (`matched`), how many records it holds
 * (`recorded`) and the types of the last few, so a failing test says what did happen.
 */
export class SpyTimeoutError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.SpyTimeoutError';
  constructor(
    spy: string,
    description: string,
    timeoutMs: number,
    options?: BacktrackErrorOptions,
  ) {
    super(
      TESTING_ERROR_CODES.SPY_TIMEOUT,
      `${spy}: ${description} not seen within ${timeoutMs} ms`,
      { ...options, details: { spy, timeoutMs, ...options?.details } },
    );
  }
}
