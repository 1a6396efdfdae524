export type { BatchOptions, Disposition, IncomingMessage, MessageProcessor } from './processor.js';
export { compose, createContext } from './context.js';
export type { ConsumerContext, DedupeInfo, Middleware, Next } from './context.js';
export { decode, validate, handle, defaultIdempotencyKey } from './middleware.js';
export type { ValidateOptions, HandlerContext, HandlerFn, HandlerRoute } from './middleware.js';
export { createConsumerPipeline, DEFAULT_CONSUMER_OPTIONS } from './pipeline.js';
export type {
  ConsumerPipeline,
  ConsumerPipelineOptions,
  ConsumerPipelineDependencies,
  UnhandledPolicy,
} from './pipeline.js';
// ConsumerSpy: `@backtrack/core/testing`.
export { ConsumerConfigError, HandlerTimeoutError, CONSUMER_DEAD_LETTER_CODES } from './errors.js';
export {
  idempotent,
  idempotencyKeyFor,
  isDuplicateResult,
  resolveIdempotencyOptions,
  DEFAULT_IDEMPOTENCY_OPTIONS,
  LeaseHeldError,
  IdempotencyKeyError,
} from './idempotent/index.js';
export type {
  IdempotencyOptions,
  IdempotentMiddlewareOptions,
  IdempotentWrapperOptions,
  IdempotencyContext,
  IdempotentResult,
} from './idempotent/index.js';
