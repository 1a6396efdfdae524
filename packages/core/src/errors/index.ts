export { BacktrackError, isRetriable } from './BacktrackError.js';
export type { BacktrackErrorOptions } from './BacktrackError.js';
export { StoreUnavailableError } from './StoreUnavailableError.js';
export {
  ConnectionAccessError,
  accessErrorOf,
  errorChain,
  tlsFailureOf,
} from './ConnectionAccessError.js';
export type { AccessFailure, AccessFailureReason } from './ConnectionAccessError.js';
