import type { DedupeStore } from '../dedupe/DedupeStore.js';
import { DEFAULT_ENVELOPE_LIMITS, type EnvelopeLimits } from '../envelope/codec.js';
import { MalformedMessageError } from '../envelope/errors.js';
import { BacktrackError } from '../errors/BacktrackError.js';
import { StoreUnavailableError } from '../errors/StoreUnavailableError.js';
import { createDefaultLogger, type Logger } from '../logging/logger.js';
import {
  backoffDelayMs,
  resolveRetryPolicy,
  RetryPolicyError,
  type RetryPolicy,
} from '../retry/backoff.js';
import { EventRegistry } from '../schema/EventRegistry.js';
import {
  MissingTransformError,
  SchemaValidationError,
  TransformFailedError,
  UnknownEventTypeError,
  UnknownSchemaVersionError,
} from '../schema/errors.js';
import { compose, createContext, type ConsumerContext, type Middleware } from './context.js';
import type { ConsumerSpy } from './ConsumerSpy.js';
import { CONSUMER_DEAD_LETTER_CODES, ConsumerConfigError, HandlerTimeoutError } from './errors.js';
import { IdempotencyKeyError, LeaseHeldError } from './idempotent/errors.js';
import {
  idempotencyKeyFor,
  idempotent,
  resolveIdempotencyOptions,
  setPreclaim,
  takePreclaim,
  type IdempotencyOptions,
} from './idempotent/idempotent.js';
import { decode, validate, type HandlerRoute } from './middleware.js';
import type { Disposition, IncomingMessage, MessageProcessor } from './processor.js';

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
});

/** A processor with its resolved configuration, for introspection and tests. */
export interface ConsumerPipeline extends MessageProcessor {
  processBatch(messages: IncomingMessage[]): Promise<Disposition[]>;
  readonly name: string;
  readonly retry: Readonly<RetryPolicy>;
  readonly unhandled: UnhandledPolicy;
  /** Resolved idempotency settings, or undefined when the step is off. */
  readonly idempotency: Readonly<IdempotencyOptions> | undefined;
  /** Routed event types with the version each handler wants. */
  readonly routes: ReadonlyMap<string, number>;
}

const BAD_MESSAGE_ERRORS = [
  MalformedMessageError,
  UnknownEventTypeError,
  UnknownSchemaVersionError,
  SchemaValidationError,
  MissingTransformError,
  TransformFailedError,
  IdempotencyKeyError,
] as const;

/**
 * Builds the consumer pipeline a transport runs for every message:
 * `decode → validate + upcast → your middleware → idempotent (with a store) → handlers`.
 *
 * Outcomes:
 * - a bad message (malformed, unknown type or version, invalid data, missing transform) is
 *   dead-lettered at once with its reason and error code;
 * - a handler error is retried (`retry` with backoff and jitter) up to `retry.attempts`
 *   deliveries, then dead-lettered (`BT_ERR_CONSUMER_RETRIES_EXHAUSTED`); a non-retriable
 *   `BacktrackError` from a handler is dead-lettered at once;
 * - the dedupe store (or any store) down (`StoreUnavailableError`) gives `redeliver` with a pause;
 * - a lease held by another consumer gives `redeliver` without a pause;
 * - a duplicate is acknowledged without calling the handler.
 * The processor never throws: every message gets a disposition.
 *
 * @throws {ConsumerConfigError} at construction, naming the invalid field.
 */
export function createConsumerPipeline(
  options: ConsumerPipelineOptions,
  dependencies: ConsumerPipelineDependencies = {},
): ConsumerPipeline {
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
  let retry: Readonly<RetryPolicy>;
  try {
    retry = resolveRetryPolicy(options.retry, DEFAULT_CONSUMER_OPTIONS.retry);
  } catch (error) {
    if (error instanceof RetryPolicyError) {
      throw new ConsumerConfigError(
        `retry.${String(error.details.field)}`,
        error.message.replace(/^retry policy: \S+ /, ''),
      );
    }
    throw error;
  }
  const { handlerTimeoutMs } = options;
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
  const limits = { ...DEFAULT_CONSUMER_OPTIONS.limits, ...options.limits };
  if (!Number.isSafeInteger(limits.maxBytes) || limits.maxBytes < 1) {
    throw new ConsumerConfigError(
      'limits.maxBytes',
      'must be a positive integer (bytes)',
      limits.maxBytes,
    );
  }
  if (!Array.isArray(options.handlers))
    throw new ConsumerConfigError('handlers', 'must be an array of handle() routes');
  const routes = new Map<string, number>();
  let registry = dependencies.registry ?? new EventRegistry();
  if (!(registry instanceof EventRegistry))
    throw new ConsumerConfigError('dependencies.registry', 'must be an EventRegistry');
  for (const [i, route] of options.handlers.entries()) {
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
  const middleware = options.middleware ?? DEFAULT_CONSUMER_OPTIONS.middleware;
  if (!Array.isArray(middleware) || middleware.some((m) => typeof m !== 'function')) {
    throw new ConsumerConfigError('middleware', 'must be an array of functions (context, next)');
  }
  const store = dependencies.dedupeStore;
  let idempotency: Readonly<IdempotencyOptions> | undefined;
  let idempotencyKey: ((context: ConsumerContext) => string) | undefined;
  if (options.idempotency !== false && store !== undefined) {
    idempotency = resolveIdempotencyOptions({ ...(options.idempotency ?? {}), store });
    idempotencyKey = options.idempotency?.key;
    if (idempotencyKey !== undefined && typeof idempotencyKey !== 'function') {
      throw new ConsumerConfigError('idempotency.key', 'must be a function (context) => string');
    }
  } else if (
    options.idempotency !== undefined &&
    options.idempotency !== false &&
    store === undefined
  ) {
    throw new ConsumerConfigError(
      'dependencies.dedupeStore',
      'is required when idempotency options are given',
    );
  }
  const logger = (dependencies.logger ?? createDefaultLogger()).child({ consumer: name });
  const random = dependencies.random ?? Math.random;
  const spy = dependencies.spy;

  const early = compose([
    decode({ ...limits, defaultSchemaVersion: (type) => registry.defaultSchemaVersion(type) }),
    validate(registry, {
      versionFor: (type) => routes.get(type),
      only: (type) => routes.has(type),
    }),
  ]);
  const chain = compose([
    early,
    ...middleware,
    ...(idempotency && store
      ? [
          onlyRouted(
            idempotent({
              ...idempotency,
              store,
              ...(idempotencyKey ? { key: idempotencyKey } : {}),
            }),
          ),
        ]
      : []),
    ...options.handlers,
  ]);
  // Events no handler routes never touch the dedupe store (no claim, no pause when it is down).
  function onlyRouted(inner: Middleware): Middleware {
    return (context, next) =>
      context.envelope !== undefined && routes.has(context.envelope.type)
        ? inner(context, next)
        : next();
  }
  const inProgressDelayMs =
    idempotency?.inProgressDelayMs ?? DEFAULT_INFRA_DELAYS.inProgressDelayMs;
  const unavailableDelayMs =
    idempotency?.unavailableDelayMs ?? DEFAULT_INFRA_DELAYS.unavailableDelayMs;

  const controllers = new WeakMap<ConsumerContext, AbortController>();
  function newContext(message: IncomingMessage): ConsumerContext {
    const controller = new AbortController();
    const context = createContext(message, name, logger, controller.signal, {
      topic: message.origin?.topic,
      ...(message.origin?.partition === undefined ? {} : { partition: message.origin.partition }),
      ...(message.origin?.offset === undefined ? {} : { offset: message.origin.offset }),
      attempt: message.attempt,
    });
    controllers.set(context, controller);
    return context;
  }

  /** Runs the chain, abandoning it after `handlerTimeoutMs`. */
  function runChain(context: ConsumerContext, last: () => Promise<void>): Promise<void> {
    const running = Promise.resolve(chain(context, last));
    if (handlerTimeoutMs === undefined) return running;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        const error = new HandlerTimeoutError(handlerTimeoutMs, {
          messageId: context.envelope?.id,
        });
        controllers.get(context)?.abort(error);
        reject(error);
      }, handlerTimeoutMs);
    });
    // The abandoned chain may still fail later: never let that become an unhandled rejection.
    running.catch(() => undefined);
    return Promise.race([running, timeout]).finally(() => clearTimeout(timer));
  }

  function classify(error: unknown, context: ConsumerContext): Disposition {
    const message = error instanceof Error ? error.message : String(error);
    if (BAD_MESSAGE_ERRORS.some((type) => error instanceof type)) {
      return { kind: 'dead-letter', reason: message, code: (error as BacktrackError).code, error };
    }
    if (error instanceof LeaseHeldError) {
      return { kind: 'redeliver', reason: message, delayMs: inProgressDelayMs, pause: false };
    }
    if (error instanceof StoreUnavailableError) {
      return { kind: 'redeliver', reason: message, delayMs: unavailableDelayMs, pause: true };
    }
    if (error instanceof BacktrackError && !error.retriable) {
      return {
        kind: 'dead-letter',
        reason: `handler rejected the message: ${message}`,
        code: error.code,
        error,
      };
    }
    if (context.attempt < retry.attempts) {
      const delayMs = Math.round(backoffDelayMs(context.attempt + 1, retry, random));
      return {
        kind: 'retry',
        reason: `handler failed on attempt ${context.attempt}: ${message}`,
        delayMs,
        error,
      };
    }
    return {
      kind: 'dead-letter',
      reason: `handler failed on all ${context.attempt} attempts (retry.attempts ${retry.attempts}): ${message}`,
      code: CONSUMER_DEAD_LETTER_CODES.RETRIES_EXHAUSTED,
      error,
    };
  }

  async function run(context: ConsumerContext): Promise<Disposition> {
    let disposition: Disposition;
    try {
      await runChain(context, async () => {
        // Reached only when no handler routed the type.
        if (unhandled === 'ignore') {
          context.logger.info('no handler for this event type; acknowledged and ignored');
          context.ack('ignored');
        } else {
          context.deadLetter(
            `no handler for event type "${context.envelope?.type}" in consumer ${name}`,
            CONSUMER_DEAD_LETTER_CODES.UNHANDLED,
          );
        }
      });
      disposition =
        context.disposition ??
        (context.handled
          ? { kind: 'ack', outcome: 'handled' }
          : { kind: 'ack', outcome: 'ignored' });
    } catch (error) {
      disposition = classify(error, context);
    }
    const pre = takePreclaim(context);
    if (pre?.claim && !(pre.claim instanceof Error) && pre.claim.status === 'claimed' && store) {
      // A middleware decided before the idempotent step: free the batch claim it never used.
      await store.release(pre.key, pre.claim.token).catch(() => undefined);
    }
    log(context, disposition);
    spy?.record({
      ...(context.envelope === undefined
        ? {}
        : {
            messageId: context.envelope.id,
            type: context.envelope.type,
            ...(context.envelope.sagaid === undefined ? {} : { sagaId: context.envelope.sagaid }),
          }),
      attempt: context.attempt,
      disposition,
      at: Date.now(),
    });
    return disposition;
  }

  function log(context: ConsumerContext, disposition: Disposition): void {
    const { error, ...fields } = disposition as Disposition & { error?: unknown };
    switch (disposition.kind) {
      case 'ack':
        if (logger.isLevelEnabled('debug'))
          context.logger.debug({ disposition: fields }, 'message processed');
        break;
      case 'retry':
        context.logger.warn({ disposition: fields, err: error }, 'handler failed; retrying later');
        break;
      case 'redeliver':
        context.logger[disposition.pause ? 'warn' : 'debug'](
          { disposition: fields },
          'message will be redelivered',
        );
        break;
      case 'dead-letter':
        context.logger.error({ disposition: fields, err: error }, 'message dead-lettered');
        break;
    }
  }

  return {
    name,
    retry,
    unhandled,
    idempotency,
    routes,
    process(message) {
      return run(newContext(message));
    },
    async processBatch(messages) {
      const contexts = messages.map(newContext);
      if (idempotency && store) {
        // Decode and validate every message first, to claim every key in one round trip.
        const keyed: { context: ConsumerContext; key: string }[] = [];
        for (const context of contexts) {
          try {
            await early(context, async () => undefined);
            if (context.envelope && routes.has(context.envelope.type)) {
              keyed.push({ context, key: idempotencyKeyFor(context, idempotencyKey) });
            }
          } catch {
            // The full run below meets the same error and turns it into a disposition.
          }
        }
        if (keyed.length > 0) {
          let claims: (Awaited<ReturnType<DedupeStore['claimMany']>>[number] | Error)[];
          try {
            claims = await store.claimMany(
              keyed.map((k) => k.key),
              { leaseMs: idempotency.leaseMs },
            );
          } catch (error) {
            claims = keyed.map(() => (error instanceof Error ? error : new Error(String(error))));
          }
          keyed.forEach(({ context, key }, i) => {
            const claim = claims[i];
            if (claim !== undefined) setPreclaim(context, key, claim);
          });
        }
      }
      // In order, one at a time: the batch keeps the per-key order the broker gave it.
      const dispositions: Disposition[] = [];
      for (const context of contexts) dispositions.push(await run(context));
      return dispositions;
    },
  };
}

/** Redelivery delays used for lease/store errors thrown from inside handlers when no idempotency step is configured. */
const DEFAULT_INFRA_DELAYS = { inProgressDelayMs: 1_000, unavailableDelayMs: 5_000 } as const;
