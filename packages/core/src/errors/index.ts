export { BacktrackError, isRetriable } from './BacktrackError.js';
export type { BacktrackErrorOptions } from './BacktrackError.js';
export { StoreUnavailableError } from './StoreUnavailableError.js';
