import type { ClaimResult } from '../dedupe/DedupeStore.js';
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

/**
 * Internal slots of a context, for the pipeline and the idempotent step (not part of the
 * public `ConsumerContext`): a batch claim handed to the idempotent step, a done mark it left
 * for the batch to write, the abort controller once something asked for `signal`.
 */
export const SLOTS = Symbol('backtrack.context.slots');

/** A done mark the batch path writes with one `completeMany` after its handlers. */
export interface PendingMark {
  key: string;
  token: string;
  result?: string;
}

/**
 * One batch claim shared by the messages of a batch that carry the same dedupe key (the same
 * message delivered twice in one batch). `claimMany` claims the key once; the first of them to
 * reach the idempotent step runs the handler with it (the runner), and the later ones (the
 * copies) do not run their handler: each takes the runner's outcome (see the idempotent step).
 */
export interface SharedClaim {
  /**
   * `unused`: no message used the claim yet; `running`: the runner's handler runs (or was
   * abandoned by a timeout); `marked`: it succeeded and left its done mark for the batch to
   * write; `failed`: it threw `error`; `decided`: it chose another outcome itself (`decision`);
   * `released`: nothing used it and the batch freed it.
   */
  state: 'unused' | 'running' | 'marked' | 'failed' | 'decided' | 'released';
  /** The context whose idempotent step used the claim. */
  runner: ConsumerContext | undefined;
  /** `failed`: what the runner's handler threw. */
  error: unknown;
  /** `decided`: the runner's own disposition (undefined: nothing handled it, an `ignored` ack). */
  decision: Disposition | undefined;
  /** `marked`: the result stored with the done mark. */
  result: string | undefined;
  /**
   * Copies acknowledged as duplicates of the runner's mark before it is durable: the batch turns
   * them into a `redeliver` when the runner ends unacknowledged after all.
   */
  followers: ConsumerContext[];
}

/** What the internal slots hold. */
export interface ContextSlots {
  preclaim:
    | { key: string; claim: ClaimResult | Error; deferMark: boolean; shared?: SharedClaim }
    | undefined;
  pendingMark: PendingMark | undefined;
  controller: AbortController | undefined;
  /** Stops extending the message's lease (set by the idempotent step). */
  stopLease: (() => void) | undefined;
  /**
   * The lease a batch keeps alive for the message while its handler runs (set by the idempotent
   * step on a batch's claim, instead of a `stopLease` closure per message).
   */
  leaseKeeper: { drop(key: string, token: string): void } | undefined;
  /** With `leaseKeeper`: the key and token of that lease. */
  leaseKey: string;
  leaseToken: string;
}

/** Stops extending the lease of the message whose slots these are (a timed-out handler's). */
export function stopLeaseOf(slots: ContextSlots): void {
  slots.stopLease?.();
  slots.leaseKeeper?.drop(slots.leaseKey, slots.leaseToken);
}

/**
 * One message's context. A class, so the disposition methods, the lazy logger and the lazy
 * abort signal live on the prototype instead of being per-message closures.
 */
class MessageContext implements ConsumerContext {
  readonly message: IncomingMessage;
  readonly attempt: number;
  readonly consumer: string;
  envelope?: Envelope<unknown>;
  definition?: AnyEventDefinition;
  data?: unknown;
  dataVersion?: number;
  targetVersion?: number;
  dedupe?: DedupeInfo;
  idempotencyKey?: string;
  handled = false;
  result?: string;
  disposition?: Disposition;
  #baseLogger: Logger;
  /** Bindings gathered before anything logged; merged once, when the logger is first made. */
  /** Bindings not yet applied: objects, or functions that make them (only if something logs). */
  #pending: LogBindings[] | undefined;
  /** The message's place (topic, partition, offset, attempt) still to bind, first. */
  #origin: boolean;
  /**
   * The decoded envelope whose messageId, type and sagaId the logger still has to bind, right
   * after the origin (set by decode when nothing else was pending: no closure, no array).
   */
  #envelope: Envelope<unknown> | undefined;
  #logger: Logger | undefined;
  #signal: AbortSignal | undefined;
  #state: Map<string | symbol, unknown> | undefined;
  [SLOTS]: ContextSlots;

  constructor(
    message: IncomingMessage,
    consumer: string,
    logger: Logger,
    signal: AbortSignal | undefined,
    logBindings: LogBindings | undefined,
    origin = false,
  ) {
    this.message = message;
    this.attempt = message.attempt;
    this.consumer = consumer;
    this.#baseLogger = logger;
    this.#pending = logBindings === undefined ? undefined : [logBindings];
    this.#origin = origin;
    this.#logger = logBindings === undefined && !origin ? logger : undefined;
    this.#signal = signal;
    this[SLOTS] = {
      preclaim: undefined,
      pendingMark: undefined,
      controller: undefined,
      stopLease: undefined,
      leaseKeeper: undefined,
      leaseKey: '',
      leaseToken: '',
    };
  }

  // pino's child() costs microseconds per call: build the message's child logger only when
  // something logs, with every binding gathered so far (see bindLogger).
  get logger(): Logger {
    if (this.#logger === undefined) {
      const bindings: Record<string, unknown> = this.#origin ? originBindings(this.message) : {};
      if (this.#envelope !== undefined) Object.assign(bindings, envelopeBindings(this.#envelope));
      for (const fields of this.#pending ?? [])
        Object.assign(bindings, typeof fields === 'function' ? fields() : fields);
      this.#logger = this.#baseLogger.child(bindings);
      this.#pending = undefined;
      this.#origin = false;
      this.#envelope = undefined;
    }
    return this.#logger;
  }

  set logger(value: Logger) {
    this.#logger = value;
    this.#pending = undefined;
    this.#origin = false;
    this.#envelope = undefined;
  }

  /** @internal see bindEnvelope */
  bindEnvelope(envelope: Envelope<unknown>): void {
    if (this.#logger === undefined && this.#pending === undefined && this.#envelope === undefined)
      this.#envelope = envelope;
    else this.bindLogger(() => envelopeBindings(envelope));
  }

  /** @internal see isLogged */
  isLogged(level: string): boolean {
    // The child not made yet has its base's level (its bindings never set one).
    return (this.#logger ?? this.#baseLogger).isLevelEnabled(level);
  }

  /** @internal see bindLogger */
  bindLogger(fields: LogBindings): void {
    if (this.#logger !== undefined)
      this.#logger = this.#logger.child(typeof fields === 'function' ? fields() : fields);
    else if (this.#pending === undefined) this.#pending = [fields];
    else this.#pending.push(fields);
  }

  // Most handlers never look at their signal: the AbortController is made on first use.
  get signal(): AbortSignal {
    if (this.#signal === undefined) {
      const controller = new AbortController();
      this[SLOTS].controller = controller;
      this.#signal = controller.signal;
    }
    return this.#signal;
  }

  get state(): Map<string | symbol, unknown> {
    return (this.#state ??= new Map());
  }

  ack(outcome: 'handled' | 'duplicate' | 'ignored' = 'handled'): void {
    this.disposition = { kind: 'ack', outcome };
  }

  deadLetter(reason: string, code: string, error?: unknown): void {
    this.disposition =
      error === undefined
        ? { kind: 'dead-letter', reason, code }
        : { kind: 'dead-letter', reason, code, error };
  }

  retry(reason: string, delayMs: number, error?: unknown): void {
    this.disposition =
      error === undefined
        ? { kind: 'retry', reason, delayMs }
        : { kind: 'retry', reason, delayMs, error };
  }

  redeliver(reason: string, options: { delayMs?: number; pause?: boolean } = {}): void {
    this.disposition = {
      kind: 'redeliver',
      reason,
      delayMs: options.delayMs ?? 0,
      pause: options.pause ?? false,
    };
  }
}

/**
 * Creates a fresh context for one message. Without `signal`, the context makes its own
 * AbortController the first time `signal` is read (abort it with {@link abortContext}).
 */
export function createContext(
  message: IncomingMessage,
  consumer: string,
  logger: Logger,
  signal?: AbortSignal,
  logBindings?: LogBindings,
): ConsumerContext {
  return new MessageContext(message, consumer, logger, signal, logBindings);
}

/**
 * Internal: the pipeline's context of one message, whose logger (made only when something
 * logs) carries the message's place: topic, partition, offset and attempt.
 */
export function createMessageContext(
  message: IncomingMessage,
  consumer: string,
  logger: Logger,
): ConsumerContext {
  return new MessageContext(message, consumer, logger, undefined, undefined, true);
}

/** A message's place, for its logger. */
function originBindings(message: IncomingMessage): Record<string, unknown> {
  const { origin } = message;
  const fields: Record<string, unknown> = { topic: origin?.topic };
  if (origin?.partition !== undefined) fields['partition'] = origin.partition;
  if (origin?.offset !== undefined) fields['offset'] = origin.offset;
  fields['attempt'] = message.attempt;
  return fields;
}

/** Internal: the slots of a context made by {@link createContext}, or undefined for another object. */
export function slotsOf(context: ConsumerContext): ContextSlots | undefined {
  return (context as Partial<MessageContext>)[SLOTS];
}

/** Aborts the context's signal, if anything ever asked for it. */
export function abortContext(context: ConsumerContext, reason: unknown): void {
  const slots = slotsOf(context);
  if (slots === undefined) return;
  // Made now if nobody asked yet: an abandoned handler that looks later sees it aborted.
  if (slots.controller === undefined) void context.signal;
  slots.controller?.abort(reason);
}

/**
 * Adds a decoded envelope's messageId, type, schemaVersion and sagaId to the context's logger
 * (cheaply, before anything has logged), as `bindLogger` with those fields would.
 */
export function bindEnvelope(context: ConsumerContext, envelope: Envelope<unknown>): void {
  if (context instanceof MessageContext) context.bindEnvelope(envelope);
  else context.logger = context.logger.child(envelopeBindings(envelope));
}

/** The logger fields of a decoded envelope. */
function envelopeBindings(envelope: Envelope<unknown>): Record<string, unknown> {
  const fields: Record<string, unknown> = {
    messageId: envelope.id,
    type: envelope.type,
    schemaVersion: envelope.schemaversion,
  };
  if (envelope.sagaid !== undefined) fields['sagaId'] = envelope.sagaid;
  return fields;
}

/** Adds fields to the context's logger (cheaply, before anything has logged). */
export function bindLogger(context: ConsumerContext, fields: LogBindings): void {
  if (context instanceof MessageContext) context.bindLogger(fields);
  else context.logger = context.logger.child(typeof fields === 'function' ? fields() : fields);
}

/**
 * Whether `context.logger` would write at `level`, without making the message's child logger
 * when nothing made it yet (a pino child costs microseconds and allocates).
 */
export function isLogged(context: ConsumerContext, level: string): boolean {
  return context instanceof MessageContext
    ? context.isLogged(level)
    : context.logger.isLevelEnabled(level);
}

/** Logger bindings, or a function that makes them when something first logs. */
export type LogBindings = Record<string, unknown> | (() => Record<string, unknown>);

/**
 * Composes middleware into one. Each runs in order; `next()` runs the rest. A middleware that
 * sets a disposition stops the chain: later middleware are skipped even if it calls `next()`.
 * Calling `next()` twice is a bug and throws.
 */
export function compose(middleware: readonly Middleware[]): Middleware {
  checkMiddleware(middleware);
  // No async level per middleware: each level returns what its middleware returns (a promise,
  // as a resolved one when it returned nothing), so a chain of k middleware costs one small
  // object and one `next` closure per level, not k more async frames and awaits.
  return (context, last) => new Dispatch(middleware, context, last, false).run(0);
}

/**
 * Internal: {@link compose} for the pipeline, whose last step takes the context (one function
 * for every message instead of a `() => last(context)` closure per message).
 */
export function composeRun(
  middleware: readonly Middleware[],
): (context: ConsumerContext, last: (context: ConsumerContext) => Promise<void>) => Promise<void> {
  checkMiddleware(middleware);
  return (context, last) => new Dispatch(middleware, context, last, true).run(0);
}

function checkMiddleware(middleware: readonly Middleware[]): void {
  for (const [i, fn] of middleware.entries()) {
    if (typeof fn !== 'function') throw new TypeError(`middleware[${i}] is not a function`);
  }
}

/** One run of a composed chain: which level ran last (`next()` twice is a bug). */
class Dispatch {
  readonly #middleware: readonly Middleware[];
  readonly #context: ConsumerContext;
  readonly #last: Next | ((context: ConsumerContext) => Promise<void>);
  /** True when `#last` takes the context ({@link composeRun}). */
  readonly #lastOfContext: boolean;
  #index = -1;

  constructor(
    middleware: readonly Middleware[],
    context: ConsumerContext,
    last: Next | ((context: ConsumerContext) => Promise<void>),
    lastOfContext: boolean,
  ) {
    this.#middleware = middleware;
    this.#context = context;
    this.#last = last;
    this.#lastOfContext = lastOfContext;
  }

  run(i: number): Promise<void> {
    if (i <= this.#index)
      return Promise.reject(new Error('next() called more than once in one middleware'));
    this.#index = i;
    const context = this.#context;
    if (context.disposition !== undefined) return RESOLVED;
    try {
      const middleware = this.#middleware;
      if (i === middleware.length)
        return settled(
          this.#lastOfContext
            ? (this.#last as (context: ConsumerContext) => Promise<void>)(context)
            : (this.#last as Next)(),
        );
      const fn = middleware[i];
      if (fn === undefined) return RESOLVED;
      return settled(fn(context, () => this.run(i + 1)));
    } catch (error) {
      return Promise.reject(error);
    }
  }
}

/**
 * The one already-fulfilled promise the chain hands back for a level that finished
 * synchronously (internal). The pipeline and the idempotent step compare with it: a chain that
 * returns it is done, so what follows runs at once, without an `await` and an async frame per
 * message.
 */
export const SETTLED: Promise<void> = Promise.resolve();
const RESOLVED = SETTLED;

/** A middleware's return as a promise of nothing (a native promise as it is: no new one). */
function settled(value: Promise<void> | void): Promise<void> {
  if (value instanceof Promise) return value;
  // A thenable that is not a native promise, or nothing.
  return value === undefined ? RESOLVED : Promise.resolve(value).then(noop);
}

function noop(): void {}
