import { BacktrackError, type BacktrackErrorOptions } from './BacktrackError.js';
import { CORE_ERROR_CODES } from './codes.js';

/**
 * A store (dedupe store, saga store, journal) cannot be reached or did not answer in time.
 *
 * Always retriable: the operation did not happen (or its outcome is unknown and the operation is
 * safe to repeat), so a consumer MUST pause and redeliver instead of processing without a
 * dedupe guarantee, and MUST NOT acknowledge anything it did not process.
 * Code: `BT_ERR_STORE_UNAVAILABLE`. `details.store` names the store (for example `redis`),
 * `details.operation` the call that failed.
 */
export class StoreUnavailableError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.StoreUnavailableError';
  constructor(
    store: string,
    operation: string,
    message?: string,
    options?: Omit<BacktrackErrorOptions, 'retriable'>,
  ) {
    super(
      CORE_ERROR_CODES.STORE_UNAVAILABLE,
      message ?? `${store} store is unavailable (${operation})`,
      {
        ...options,
        details: { store, operation, ...options?.details },
        retriable: true,
      },
    );
  }
}
