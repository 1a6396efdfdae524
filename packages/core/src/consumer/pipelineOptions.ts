import type { DedupeStore } from '../dedupe/DedupeStore.js';
import { DEFAULT_ENVELOPE_LIMITS, type EnvelopeLimits } from '../envelope/codec.js';
import { createDefaultLogger, type Logger } from '../logging/logger.js';
import { resolveRetryPolicy, RetryPolicyError, type RetryPolicy } from '../retry/backoff.js';
import { EventRegistry } from '../schema/EventRegistry.js';
import type { ConsumerContext, Middleware } from './context.js';
import type { ConsumerSpy } from '../testing/ConsumerSpy.js';
import { ConsumerConfigError } from './errors.js';
import { resolveIdempotencyOptions, type IdempotencyOptions } from './idempotent/idempotent.js';
import type { HandlerRoute } from './middleware.js';

/** What to do with an event no handler routes. */
export type UnhandledPolicy = 'ignore' | 'dead-letter';

/** Options of {@link createConsumerPipeline}. */
export interface ConsumerPipelineOptions {
  /**
   * The consumer's name: scopes dedupe keys (two consumers of one event each process it once)
   * and appears in every log record. Usually the consumer group or queue name.
   */
  name: string;
  /** The routes, from `handle(Definition, fn, { version })`. At most one per event type. */
  handlers: readonly HandlerRoute[];
  /**
   * Your middleware (tracing, metrics, auth checks), run after decode + validate and before the
   * idempotency claim and the handler. @default []
   */
  middleware?: readonly Middleware[];
  /**
   * An event whose type no handler routes: `'ignore'` acknowledges it with an info log;
   * `'dead-letter'` parks it (code `BT_ERR_CONSUMER_UNHANDLED_EVENT`). The default dead-letters,
   * because after a rollback an unknown type usually means "written by a newer version": kept,
   * it can be replayed once the consumer knows the type again.
   * @default 'dead-letter'
   */
  unhandled?: UnhandledPolicy;
  /**
   * Handler retries: `attempts` is the total number of deliveries (first included) before the
   * message is dead-lettered; the delay before attempt n+1 is exponential with jitter.
   * @default { attempts: 5, initialDelayMs: 1_000, maxDelayMs: 60_000, factor: 2, jitter: 'full' }
   */
  retry?: Partial<RetryPolicy>;
  /** Envelope size limit. @default DEFAULT_ENVELOPE_LIMITS (1 MiB) */
  limits?: Partial<EnvelopeLimits>;
  /**
   * Idempotent consumer settings, used when `dependencies.dedupeStore` is given. `false` turns
   * the idempotency step off even with a store. `key` derives the key from the message.
   * @default DEFAULT_IDEMPOTENCY_OPTIONS
   */
  idempotency?:
    false | (Partial<IdempotencyOptions> & { key?: (context: ConsumerContext) => string });
  /**
   * Gives up on a message whose middleware and handler have not finished after this many ms:
   * `context.signal` is aborted and the message is retried (`BT_ERR_CONSUMER_HANDLER_TIMEOUT`,
   * counted against `retry.attempts`). A hung handler would otherwise block its partition.
   * `undefined` waits forever.
   * @default undefined
   */
  handlerTimeoutMs?: number;
  /**
   * `processBatch` runs up to this many handlers at once: messages of different keys (a Kafka
   * record key, else `partitionkey`, else `sagaid`) concurrently, the messages of one key (and
   * the keyless messages of one partition, or without partitions all keyless messages) one
   * after the other in input order. The batch is
   * still acknowledged only after every handler ran and the done marks are durable. 1 runs the
   * batch one message at a time.
   * @default 16
   */
  concurrency?: number;
}

/** Collaborators of {@link createConsumerPipeline}, separate from options. */
export interface ConsumerPipelineDependencies {
  /**
   * Known event types. Every handler's definition is added to it (a different definition
   * object for the same type is a configuration error). @default a registry of the handlers'
   * definitions
   */
  registry?: EventRegistry;
  /** Enables the idempotent consumer step. */
  dedupeStore?: DedupeStore;
  /** @default createDefaultLogger() */
  logger?: Logger;
  /** Test spy: records every disposition. */
  spy?: ConsumerSpy;
  /** Random source for retry jitter, in [0, 1). @default Math.random */
  random?: () => number;
}

/** Defaults of {@link ConsumerPipelineOptions}. */
export const DEFAULT_CONSUMER_OPTIONS = Object.freeze({
  unhandled: 'dead-letter' as UnhandledPolicy,
  retry: Object.freeze({
    attempts: 5,
    initialDelayMs: 1_000,
    maxDelayMs: 60_000,
    factor: 2,
    jitter: 'full',
  } satisfies RetryPolicy),
  limits: DEFAULT_ENVELOPE_LIMITS,
  middleware: Object.freeze([]) as readonly Middleware[],
  concurrency: 16,
});

/** Options and dependencies of a pipeline, validated and resolved once. */
export interface PipelineConfig {
  name: string;
  unhandled: UnhandledPolicy;
  retry: Readonly<RetryPolicy>;
  handlerTimeoutMs: number | undefined;
  /** Handlers of one batch run at once (different keys). */
  concurrency: number;
  limits: EnvelopeLimits;
  handlers: readonly HandlerRoute[];
  /** Routed event types with the version each handler wants. */
  routes: Map<string, number>;
  registry: EventRegistry;
  middleware: readonly Middleware[];
  store: DedupeStore | undefined;
  /** Resolved idempotency settings, or undefined when the step is off. */
  idempotency: Readonly<IdempotencyOptions> | undefined;
  idempotencyKey: ((context: ConsumerContext) => string) | undefined;
  logger: Logger;
  random: () => number;
  spy: ConsumerSpy | undefined;
}

/**
 * Validates the options of `createConsumerPipeline` and resolves their defaults.
 * @throws {ConsumerConfigError} naming the invalid field.
 */
export function resolvePipelineConfig(
  options: ConsumerPipelineOptions,
  dependencies: ConsumerPipelineDependencies,
): PipelineConfig {
  if (typeof options !== 'object' || options === null)
    throw new ConsumerConfigError('options', 'must be an object');
  const { name } = options;
  if (typeof name !== 'string' || name.trim().length === 0) {
    throw new ConsumerConfigError('name', 'must be a non-empty string', name);
  }
  const unhandled = options.unhandled ?? DEFAULT_CONSUMER_OPTIONS.unhandled;
  if (unhandled !== 'ignore' && unhandled !== 'dead-letter') {
    throw new ConsumerConfigError('unhandled', "must be 'ignore' or 'dead-letter'", unhandled);
  }
  const retry = resolveRetry(options.retry);
  const handlerTimeoutMs = resolveHandlerTimeout(options.handlerTimeoutMs);
  const limits = resolveLimits(options.limits);
  const concurrency = options.concurrency ?? DEFAULT_CONSUMER_OPTIONS.concurrency;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new ConsumerConfigError('concurrency', 'must be a positive integer', concurrency);
  }
  const { routes, registry } = resolveRoutes(options.handlers, dependencies.registry);
  const middleware = options.middleware ?? DEFAULT_CONSUMER_OPTIONS.middleware;
  if (!Array.isArray(middleware) || middleware.some((m) => typeof m !== 'function')) {
    throw new ConsumerConfigError('middleware', 'must be an array of functions (context, next)');
  }
  const store = dependencies.dedupeStore;
  const { idempotency, idempotencyKey } = resolveIdempotency(options.idempotency, store);
  return {
    name,
    unhandled,
    retry,
    handlerTimeoutMs,
    concurrency,
    limits,
    handlers: options.handlers,
    routes,
    registry,
    middleware,
    store,
    idempotency,
    idempotencyKey,
    logger: (dependencies.logger ?? createDefaultLogger()).child({ consumer: name }),
    random: dependencies.random ?? Math.random,
    spy: dependencies.spy,
  };
}

function resolveRetry(partial: Partial<RetryPolicy> | undefined): Readonly<RetryPolicy> {
  try {
    return resolveRetryPolicy(partial, DEFAULT_CONSUMER_OPTIONS.retry);
  } catch (error) {
    if (error instanceof RetryPolicyError) {
      throw new ConsumerConfigError(
        `retry.${String(error.details.field)}`,
        error.message.replace(/^retry policy: \S+ /, ''),
      );
    }
    throw error;
  }
}

function resolveHandlerTimeout(handlerTimeoutMs: number | undefined): number | undefined {
  if (
    handlerTimeoutMs !== undefined &&
    (!Number.isSafeInteger(handlerTimeoutMs) || handlerTimeoutMs < 1)
  ) {
    throw new ConsumerConfigError(
      'handlerTimeoutMs',
      'must be a positive integer (ms) or undefined',
      handlerTimeoutMs,
    );
  }
  return handlerTimeoutMs;
}

function resolveLimits(partial: Partial<EnvelopeLimits> | undefined): EnvelopeLimits {
  const limits = { ...DEFAULT_CONSUMER_OPTIONS.limits, ...partial };
  if (!Number.isSafeInteger(limits.maxBytes) || limits.maxBytes < 1) {
    throw new ConsumerConfigError(
      'limits.maxBytes',
      'must be a positive integer (bytes)',
      limits.maxBytes,
    );
  }
  return limits;
}

/** One route per event type; every handler's definition in the registry (the same object). */
function resolveRoutes(
  handlers: readonly HandlerRoute[],
  given: EventRegistry | undefined,
): { routes: Map<string, number>; registry: EventRegistry } {
  if (!Array.isArray(handlers))
    throw new ConsumerConfigError('handlers', 'must be an array of handle() routes');
  const routes = new Map<string, number>();
  let registry = given ?? new EventRegistry();
  if (!(registry instanceof EventRegistry))
    throw new ConsumerConfigError('dependencies.registry', 'must be an EventRegistry');
  for (const [i, route] of handlers.entries()) {
    if (typeof route !== 'function' || typeof (route as HandlerRoute).eventType !== 'string') {
      throw new ConsumerConfigError(`handlers[${i}]`, 'must be made by handle()');
    }
    if (routes.has(route.eventType)) {
      throw new ConsumerConfigError(
        `handlers[${i}]`,
        `routes "${route.eventType}" a second time; one handler per type`,
      );
    }
    routes.set(route.eventType, route.version);
    if (!registry.has(route.eventType)) registry = registry.with(route.definition);
    else if (registry.get(route.eventType) !== route.definition) {
      throw new ConsumerConfigError(
        `handlers[${i}]`,
        `uses a different definition of "${route.eventType}" than the registry; share one defineEvent() result`,
      );
    }
  }
  return { routes, registry };
}

function resolveIdempotency(
  option: ConsumerPipelineOptions['idempotency'],
  store: DedupeStore | undefined,
): Pick<PipelineConfig, 'idempotency' | 'idempotencyKey'> {
  if (option === false) return { idempotency: undefined, idempotencyKey: undefined };
  if (store === undefined) {
    if (option !== undefined) {
      throw new ConsumerConfigError(
        'dependencies.dedupeStore',
        'is required when idempotency options are given',
      );
    }
    return { idempotency: undefined, idempotencyKey: undefined };
  }
  const idempotency = resolveIdempotencyOptions({ ...(option ?? {}), store });
  const idempotencyKey = option?.key;
  if (idempotencyKey !== undefined && typeof idempotencyKey !== 'function') {
    throw new ConsumerConfigError('idempotency.key', 'must be a function (context) => string');
  }
  return { idempotency, idempotencyKey };
}
