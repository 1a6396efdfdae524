export {
  DEFAULT_RETRY_POLICY,
  RetryPolicyError,
  backoffDelayMs,
  resolveRetryPolicy,
  sleep,
} from './backoff.js';
export type { RetryPolicy } from './backoff.js';
