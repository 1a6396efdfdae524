export {
  idempotent,
  idempotencyKeyFor,
  isDuplicateResult,
  resolveIdempotencyOptions,
  DEFAULT_IDEMPOTENCY_OPTIONS,
} from './idempotent.js';
export type {
  IdempotencyOptions,
  IdempotentMiddlewareOptions,
  IdempotentWrapperOptions,
  IdempotencyContext,
  IdempotentResult,
} from './idempotent.js';
export { LeaseHeldError, IdempotencyKeyError } from './errors.js';
