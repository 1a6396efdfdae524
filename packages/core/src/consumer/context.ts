import type { Logger } from '../logging/logger.js';
import type { Envelope } from '../envelope/types.js';
import type { AnyEventDefinition } from '../schema/EventRegistry.js';
import type { Disposition, IncomingMessage } from './processor.js';

/** What the idempotent middleware found for this message. */
export interface DedupeInfo {
  /** The full dedupe key (consumer-scoped). Also the handler's idempotency key. */
  key: string;
  /** `claimed`: this consumer runs the handler; `done`: a duplicate; `in-progress`: leased elsewhere. */
  status: 'claimed' | 'done' | 'in-progress';
  /** The stored result of an earlier run (status `done`). */
  result?: string;
}

/**
 * The context every middleware receives. Middleware fill it in as the message moves along:
 * `decode()` sets `envelope` (and adds messageId/type/sagaId to `logger`), `validate()` sets
 * `definition`, `data` and `dataVersion`, `idempotent()` sets `dedupe`, a handler sets `handled`.
 *
 * Ack control: a middleware that decides the outcome itself calls `ack`, `deadLetter`, `retry`
 * or `redeliver` and returns without calling `next()`.
 */
export interface ConsumerContext {
  /** The message as the transport handed it over. */
  readonly message: IncomingMessage;
  /** Delivery attempt, 1 for the first. */
  readonly attempt: number;
  /** The consumer name (scopes dedupe keys). */
  readonly consumer: string;
  /** A pino child logger; after `decode()` it carries messageId, type and sagaId. */
  logger: Logger;
  /** The decoded envelope (set by `decode()`). */
  envelope?: Envelope<unknown>;
  /** The event definition of `envelope.type` (set by `validate()`). */
  definition?: AnyEventDefinition;
  /** Validated data at `dataVersion` (set by `validate()`). */
  data?: unknown;
  /** The version `data` is at. */
  dataVersion?: number;
  /** The version the handler for this type wants (the pipeline sets it from `handle()` routes). */
  targetVersion?: number;
  /** Set by `idempotent()`. */
  dedupe?: DedupeInfo;
  /**
   * The key a handler should pass to its own side effects (a payment provider's idempotency
   * key, a unique constraint). The dedupe key when `idempotent()` ran, else consumer+source+id.
   */
  idempotencyKey?: string;
  /** True once a handler ran to completion. */
  handled: boolean;
  /** A small result the handler returned, stored with the `done` mark. */
  result?: string;
  /** The outcome, once a middleware decided it. */
  disposition?: Disposition;
  /**
   * Aborted when the pipeline gives up on the message (`handlerTimeoutMs` passed). Pass it to
   * your I/O so an abandoned handler stops instead of running on.
   */
  readonly signal: AbortSignal;
  /** Free space for user middleware (tracing spans, timers). */
  readonly state: Map<string | symbol, unknown>;
  /** Acknowledge now. */
  ack(outcome?: 'handled' | 'duplicate' | 'ignored'): void;
  /** Park the message in the dead-letter destination now. */
  deadLetter(reason: string, code: string, error?: unknown): void;
  /** Deliver again after `delayMs` with attempt + 1 (counts against the retry budget). */
  retry(reason: string, delayMs: number, error?: unknown): void;
  /** Do not acknowledge; let the message come again (optionally pausing the consumer). */
  redeliver(reason: string, options?: { delayMs?: number; pause?: boolean }): void;
}

/** `next` runs the rest of the chain. Call it at most once. */
export type Next = () => Promise<void>;

/** A consumer middleware, koa style: do work, `await next()`, do more work. */
export type Middleware = (context: ConsumerContext, next: Next) => Promise<void> | void;

/** Creates a fresh context for one message. */
export function createContext(
  message: IncomingMessage,
  consumer: string,
  logger: Logger,
  signal: AbortSignal = new AbortController().signal,
  logBindings?: Record<string, unknown>,
): ConsumerContext {
  const context = {
    message,
    attempt: message.attempt,
    consumer,
    signal,
    handled: false,
    state: new Map(),
    ack(outcome = 'handled') {
      context.disposition = { kind: 'ack', outcome };
    },
    deadLetter(reason, code, error) {
      context.disposition = {
        kind: 'dead-letter',
        reason,
        code,
        ...(error === undefined ? {} : { error }),
      };
    },
    retry(reason, delayMs, error) {
      context.disposition = {
        kind: 'retry',
        reason,
        delayMs,
        ...(error === undefined ? {} : { error }),
      };
    },
    redeliver(reason, options = {}) {
      context.disposition = {
        kind: 'redeliver',
        reason,
        delayMs: options.delayMs ?? 0,
        pause: options.pause ?? false,
      };
    },
  } as Omit<ConsumerContext, 'logger'> as ConsumerContext;
  // pino's child() costs microseconds per call: build the message's child logger only when
  // something logs, with every binding gathered so far (see bindLogger).
  let pending: Record<string, unknown> | undefined = logBindings;
  let current: Logger | undefined = logBindings === undefined ? logger : undefined;
  Object.defineProperty(context, 'logger', {
    enumerable: true,
    get: () => (current ??= logger.child(pending ?? {})),
    set: (value: Logger) => {
      current = value;
      pending = undefined;
    },
  });
  Object.defineProperty(context, BIND, {
    value: (fields: Record<string, unknown>) => {
      if (current === undefined) pending = { ...pending, ...fields };
      else current = current.child(fields);
    },
  });
  return context;
}

const BIND = Symbol('backtrack.context.bindLogger');

/** Adds fields to the context's logger (cheaply, before anything has logged). */
export function bindLogger(context: ConsumerContext, fields: Record<string, unknown>): void {
  const bind = (
    context as unknown as Record<symbol, ((f: Record<string, unknown>) => void) | undefined>
  )[BIND];
  if (bind) bind(fields);
  else context.logger = context.logger.child(fields);
}

/**
 * Composes middleware into one. Each runs in order; `next()` runs the rest. A middleware that
 * sets a disposition stops the chain: later middleware are skipped even if it calls `next()`.
 * Calling `next()` twice is a bug and throws.
 */
export function compose(middleware: readonly Middleware[]): Middleware {
  for (const [i, fn] of middleware.entries()) {
    if (typeof fn !== 'function') throw new TypeError(`middleware[${i}] is not a function`);
  }
  return (context, last) => {
    let index = -1;
    const dispatch = async (i: number): Promise<void> => {
      if (i <= index) throw new Error('next() called more than once in one middleware');
      index = i;
      if (context.disposition !== undefined) return;
      if (i === middleware.length) return last();
      const fn = middleware[i];
      if (fn === undefined) return;
      await fn(context, () => dispatch(i + 1));
    };
    return dispatch(0);
  };
}
