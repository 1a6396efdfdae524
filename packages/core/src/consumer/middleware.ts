import { decodeEnvelope, decodeHandedOver, type DecodeOptions } from '../envelope/codec.js';
import type { Envelope } from '../envelope/types.js';
import { replayOf } from '../envelope/replayOf.js';
import type { Logger } from '../logging/logger.js';
import type { EventData, EventDefinition, VersionSchemas } from '../schema/defineEvent.js';
import type { AnyEventDefinition, EventRegistry } from '../schema/EventRegistry.js';
import { bindEnvelope, type ConsumerContext, type DedupeInfo, type Middleware } from './context.js';
import { ConsumerConfigError } from './errors.js';
import type { IncomingMessage } from './processor.js';

const DUPLICATE = Symbol.for('backtrack.idempotent.duplicate');

/**
 * Decodes the raw message into `context.envelope` and gives `context.logger` the message's
 * messageId, type and sagaId. A malformed message throws `MalformedMessageError`, which the
 * pipeline turns into a dead letter with the original bytes.
 */
export function decode(limits: Partial<DecodeOptions> = {}): Middleware {
  return async function decodeMiddleware(context, next) {
    decodeInto(context, limits);
    await next();
  };
}

/** The work of {@link decode}, synchronously: sets `context.envelope` once. @throws MalformedMessageError */
export function decodeInto(context: ConsumerContext, limits: Partial<DecodeOptions>): void {
  if (context.envelope !== undefined) return;
  const message = context.message.message;
  // A message an in-process transport handed over from the journaling publisher: its headers
  // were checked when the envelope was built; only the body is decoded (same result).
  const envelope = decodeHandedOver(message, limits) ?? decodeEnvelope(message, limits);
  context.envelope = envelope;
  // Made only if something logs: most messages never do.
  bindEnvelope(context, envelope);
}

/** Options of {@link validate}. */
export interface ValidateOptions {
  /**
   * The version to convert the data to, per event type. Unset (or returning undefined): the
   * handler's version from `context.targetVersion`, else the type's latest version.
   */
  versionFor?: (type: string) => number | undefined;
  /** Validate only these types; others pass through unvalidated (the pipeline skips unrouted types). */
  only?: (type: string) => boolean;
}

/**
 * Validates `envelope.data` against its (type, version) in the registry and upcasts or
 * downcasts it to the version the handler wants, into `context.data`. Throws (and so
 * dead-letters) on an unknown type, an unknown version, invalid data or a missing transform.
 * Requires {@link decode} before it.
 */
export function validate(registry: EventRegistry, options: ValidateOptions = {}): Middleware {
  if (registry === undefined || typeof (registry as { get?: unknown }).get !== 'function') {
    throw new ConsumerConfigError('registry', 'must be an EventRegistry');
  }
  return async function validateMiddleware(context, next) {
    validateInto(context, registry, options);
    await next();
  };
}

/**
 * The work of {@link validate}, synchronously: sets `context.data` (at the version wanted) once.
 * @throws the registry's schema errors
 */
export function validateInto(
  context: ConsumerContext,
  registry: EventRegistry,
  options: ValidateOptions,
): void {
  const envelope = requireEnvelope(context, 'validate');
  if (options.only !== undefined && !options.only(envelope.type)) return;
  if (context.data !== undefined && context.definition !== undefined) return;
  const definition = registry.get(envelope.type);
  const target = options.versionFor?.(envelope.type) ?? context.targetVersion ?? definition.latest;
  context.definition = definition;
  context.data = definition.read(envelope.data, envelope.schemaversion, target);
  context.dataVersion = target;
}

/** What a handler receives: typed data, the envelope, and what it needs for its own effects. */
export interface HandlerContext<TData> {
  /** The event data at the version the handler asked for, validated. */
  data: TData;
  /** The envelope as received (its `data` is the data as written, possibly another version). */
  envelope: Envelope<unknown>;
  /** The version of `data`. */
  version: number;
  /** Delivery attempt, 1 for the first. */
  attempt: number;
  /** Logger with messageId, type and sagaId. */
  logger: Logger;
  /**
   * Pass this to your own side effects (payment idempotency keys, unique constraints): a dedupe
   * store is not atomic with your database, so after a crash between your effect and the
   * `done` mark, the handler runs again with the same key.
   */
  idempotencyKey: string;
  /** Aborted when the pipeline abandons the handler (`handlerTimeoutMs`). */
  signal: AbortSignal;
  /** Dedupe state, when `idempotent()` runs before the handler. */
  dedupe?: DedupeInfo;
  /** The raw message. */
  message: IncomingMessage;
}

/**
 * A handler function. Return a short string to store it with the `done` mark (later duplicates
 * see it in `context.dedupe.result`), or nothing.
 */
export type HandlerFn<TData> = (context: HandlerContext<TData>) => unknown;

/** A route made by {@link handle}: a middleware that also says which type and version it wants. */
export interface HandlerRoute extends Middleware {
  readonly eventType: string;
  readonly version: number;
  readonly definition: AnyEventDefinition;
  /**
   * True when the route does nothing for a message of another type than `eventType` but call
   * `next()` (and, for its own type, does not call `next()`): the pipeline then finds it by type,
   * with one lookup, instead of passing each message down the routes in turn. {@link handle}
   * sets it; a wrapper of a route that keeps that contract may copy it. Without it, the
   * pipeline chains the routes in the order given.
   */
  readonly onlyOwnType?: boolean;
}

/**
 * Routes events of `definition.type` to `fn`, with data at `options.version` (default: the
 * definition's latest version). Other types pass to `next()`.
 *
 * @example
 * handle(OrderPlaced, async ({ data, idempotencyKey }) => { await charge(data.amountCents, idempotencyKey); }, { version: 2 })
 */
export function handle<
  TType extends string,
  TSchemas extends VersionSchemas,
  TLatest extends number,
  V extends keyof TSchemas & number = TLatest & keyof TSchemas,
>(
  definition: EventDefinition<TType, TSchemas, TLatest>,
  fn: HandlerFn<EventData<EventDefinition<TType, TSchemas, TLatest>, V>>,
  options: { version?: V } = {},
): HandlerRoute {
  if (typeof fn !== 'function')
    throw new ConsumerConfigError(`handler for ${definition?.type}`, 'must be a function');
  const version = options.version ?? definition.latest;
  if (!definition.hasVersion(version)) {
    throw new ConsumerConfigError(
      `version of handle(${definition.type})`,
      `must be one of ${definition.versions.join(', ')}`,
      version,
    );
  }
  // Not async: a handler that returns no promise (a synchronous one) finishes here, and the
  // route returns undefined (the chain reads it as settled), without an async frame and an
  // await per message; a promise is awaited in `finishHandled`. A synchronous throw (of the
  // handler or of the route) still comes back as a rejected promise, as from an async function.
  const route = function handleMiddleware(
    context: ConsumerContext,
    next: () => Promise<void>,
  ): Promise<void> | undefined {
    let result: unknown;
    try {
      const envelope = requireEnvelope(context, 'handle');
      if (envelope.type !== definition.type) return next();
      let data = context.data;
      if (
        data === undefined ||
        context.dataVersion !== version ||
        context.definition !== definition
      ) {
        data = definition.read(envelope.data, envelope.schemaversion, version);
      }
      const idempotencyKey =
        context.idempotencyKey ?? defaultIdempotencyKey(context.consumer, envelope);
      result = fn(
        new HandlerArgs(
          context,
          data as EventData<EventDefinition<TType, TSchemas, TLatest>, V>,
          envelope,
          version,
          idempotencyKey,
        ),
      );
    } catch (error) {
      return Promise.reject(error);
    }
    if (isThenable(result)) return finishHandled(context, result);
    handled(context, result);
    return undefined;
  };
  return Object.assign(route, {
    eventType: definition.type as string,
    version,
    definition: definition as AnyEventDefinition,
    onlyOwnType: true,
  });
}

/** What `handle` does once its handler returned (or its promise fulfilled). */
function handled(context: ConsumerContext, result: unknown): void {
  if (typeof result === 'string') context.result = result;
  context.handled = true;
  // An idempotent() wrapper inside the handler found the key done: acknowledge as a duplicate.
  if (
    typeof result === 'object' &&
    result !== null &&
    (result as Record<symbol, unknown>)[DUPLICATE] === true
  ) {
    context.ack('duplicate');
  }
}

async function finishHandled(
  context: ConsumerContext,
  pending: PromiseLike<unknown>,
): Promise<void> {
  handled(context, await pending);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value instanceof Promise ||
    ((typeof value === 'object' || typeof value === 'function') &&
      value !== null &&
      typeof (value as { then?: unknown }).then === 'function')
  );
}

/**
 * The routes as one middleware: the route of `envelope.type`, found in a Map, else `next()`.
 * The same as chaining the routes (each passes other types to `next()`), as long as no two
 * route one type (the pipeline refuses that) and every route says so (`onlyOwnType`, as
 * {@link handle}'s do); otherwise the routes are chained as given.
 */
export function routeByType(routes: readonly HandlerRoute[]): Middleware[] {
  if (routes.length === 0) return [];
  const byType = new Map<string, HandlerRoute>();
  for (const route of routes) {
    if (route.onlyOwnType !== true || byType.has(route.eventType)) return [...routes];
    byType.set(route.eventType, route);
  }
  const first = routes[0]!;
  return [
    function routeMiddleware(context, next) {
      const envelope = context.envelope;
      // Without an envelope the first route throws what a chain would (decode() missing).
      if (envelope === undefined) return first(context, next);
      const route = byType.get(envelope.type);
      return route === undefined ? next() : route(context, next);
    },
  ];
}

/**
 * What a handler receives. `logger` and `signal` are read from the message's context only when
 * the handler asks: most handlers never log nor abort, and each costs a few µs to make.
 */
class HandlerArgs<TData> implements HandlerContext<TData> {
  readonly #context: ConsumerContext;
  readonly data: TData;
  readonly envelope: Envelope<unknown>;
  readonly version: number;
  readonly attempt: number;
  readonly idempotencyKey: string;
  readonly message: IncomingMessage;
  readonly dedupe?: DedupeInfo;

  constructor(
    context: ConsumerContext,
    data: TData,
    envelope: Envelope<unknown>,
    version: number,
    idempotencyKey: string,
  ) {
    this.#context = context;
    this.data = data;
    this.envelope = envelope;
    this.version = version;
    this.attempt = context.attempt;
    this.idempotencyKey = idempotencyKey;
    this.message = context.message;
    if (context.dedupe !== undefined) this.dedupe = context.dedupe;
  }

  get logger(): Logger {
    return this.#context.logger;
  }

  get signal(): AbortSignal {
    return this.#context.signal;
  }
}

/**
 * The default dedupe (and idempotency) key: consumer name, then the CloudEvents duplicate key
 * `(source, id)`. Parts are URI-encoded so no two different triples give one key.
 * A rollback's replay (a `replayof` extension, see {@link replayOf}) takes the id of the effect it
 * replays: it is that effect again, so a consumer that handled the original drops it.
 */
export function defaultIdempotencyKey(
  consumer: string,
  envelope: Pick<Envelope<unknown>, 'source' | 'id' | 'extensions'>,
): string {
  const id = replayOf(envelope) ?? envelope.id;
  return `${encodedConsumer(consumer)}:${encodedSource(envelope.source)}:${encodeKeyPart(id)}`;
}

/** The characters `encodeURIComponent` leaves as they are (RFC 3986 unreserved plus `!*'()`). */
const URI_COMPONENT_SAFE = /^[A-Za-z0-9\-_.!~*'()]*$/;

/**
 * `encodeURIComponent(part)`, skipped when it would return `part` unchanged: most ids (UUIDs,
 * ULIDs, counters) have nothing to escape, and the test is cheaper than the encoding.
 */
export function encodeKeyPart(part: string): string {
  return URI_COMPONENT_SAFE.test(part) ? part : encodeURIComponent(part);
}

let lastConsumer = '';
let lastEncoded = '';
/** `encodeURIComponent(consumer)`, remembered: a pipeline asks for its own name on every message. */
function encodedConsumer(consumer: string): string {
  if (consumer !== lastConsumer) {
    lastEncoded = encodeURIComponent(consumer);
    lastConsumer = consumer;
  }
  return lastEncoded;
}

let lastSource = '';
let lastEncodedSource = '';
/** `encodeURIComponent(source)`, remembered: one producer's messages share their source. */
function encodedSource(source: string): string {
  if (source !== lastSource) {
    lastEncodedSource = encodeURIComponent(source);
    lastSource = source;
  }
  return lastEncodedSource;
}

export function requireEnvelope(context: ConsumerContext, who: string): Envelope<unknown> {
  if (context.envelope === undefined) {
    throw new ConsumerConfigError(`middleware order`, `must put decode() before ${who}()`);
  }
  return context.envelope;
}
