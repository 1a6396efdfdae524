// backoffDelayMs and sleep, for transports' retry loops: `@backtrack/core/adapter`.
export { DEFAULT_RETRY_POLICY, RetryPolicyError } from './backoff.js';
export type { RetryPolicy } from './backoff.js';
