export { createDefaultLogger } from './logger.js';
export type { Logger } from './logger.js';
export {
  REDACTED,
  REDACT_PATHS,
  redactError,
  redactSecrets,
  redactText,
  redactionLoggerOptions,
} from './redact.js';
