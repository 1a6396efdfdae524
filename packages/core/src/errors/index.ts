export { BacktrackError, isRetriable } from './BacktrackError.js';
export type { BacktrackErrorOptions } from './BacktrackError.js';
export { StoreUnavailableError } from './StoreUnavailableError.js';
export { ConnectionAccessError } from './ConnectionAccessError.js';
export type { AccessFailure, AccessFailureReason } from './ConnectionAccessError.js';
export { CORE_ERROR_CODES } from './codes.js';
export type { CoreErrorCode } from './codes.js';
export { ConfigError } from './ConfigError.js';
export type { ConfigErrorOptions } from './ConfigError.js';
