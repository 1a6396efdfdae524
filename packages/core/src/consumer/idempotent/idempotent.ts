import type { ClaimResult, DedupeStore } from '../../dedupe/DedupeStore.js';
import { BacktrackError } from '../../errors/BacktrackError.js';
import { StoreUnavailableError } from '../../errors/StoreUnavailableError.js';
import type { Envelope } from '../../envelope/types.js';
import type { Logger } from '../../logging/logger.js';
import type { Disposition } from '../processor.js';
import {
  SETTLED,
  slotsOf,
  type ConsumerContext,
  type ContextSlots,
  type DedupeInfo,
  type Middleware,
  type PendingMark,
  type SharedClaim,
} from '../context.js';
import { ConsumerConfigError } from '../errors.js';
import { defaultIdempotencyKey, requireEnvelope } from '../middleware.js';
import { IdempotencyKeyError, LeaseHeldError } from './errors.js';
import { LeaseKeeper, type LogSource } from './leaseKeeper.js';

/** Tunables of the idempotent consumer. */
export interface IdempotencyOptions {
  /**
   * How long a `done` mark is kept, in ms: the dedupe retention window. A duplicate arriving
   * later than this runs the handler again. @default 86_400_000 (24 h)
   */
  ttlMs: number;
  /**
   * How long a claim holds before another consumer may take over, in ms. It should exceed the
   * handler's usual run time; with `extendLease` a live handler keeps extending it.
   * @default 30_000
   */
  leaseMs: number;
  /** Extend the lease every `leaseMs / 3` while the handler runs. @default true */
  extendLease: boolean;
  /**
   * Redelivery delay when another consumer holds the lease, in ms (no pause).
   * @default 1_000
   */
  inProgressDelayMs: number;
  /**
   * Redelivery delay, with a pause, when the dedupe store is down, in ms.
   * @default 5_000
   */
  unavailableDelayMs: number;
}

/** Defaults of {@link IdempotencyOptions}. */
export const DEFAULT_IDEMPOTENCY_OPTIONS: Readonly<IdempotencyOptions> = Object.freeze({
  ttlMs: 86_400_000,
  leaseMs: 30_000,
  extendLease: true,
  inProgressDelayMs: 1_000,
  unavailableDelayMs: 5_000,
});

/** Options of the {@link idempotent} middleware. */
export interface IdempotentMiddlewareOptions extends Partial<IdempotencyOptions> {
  /** The dedupe store (`InMemoryDedupeStore`, `RedisDedupeStore`, a Postgres inbox...). */
  store: DedupeStore;
  /**
   * Derives the key from the message, for example `(ctx) => (ctx.data as Order).orderId` to
   * dedupe by business id. Scoped by the consumer name automatically.
   * @default the envelope's `source` and `id` (the CloudEvents duplicate key)
   */
  key?: (context: ConsumerContext) => string;
}

/** Options of the {@link idempotent} wrapper. */
export interface IdempotentWrapperOptions<TInput> extends Partial<IdempotencyOptions> {
  store: DedupeStore;
  /** Scopes the keys: two consumers of one event each process it once. */
  consumer: string;
  /**
   * Derives the key from the input. Required unless the input is an envelope or has an
   * `envelope` (as a handler context has). Scoped by `consumer`.
   */
  key?: (input: TInput) => string;
  logger?: Logger;
}

/** What the wrapper passes to the wrapped function besides its input. */
export interface IdempotencyContext {
  /** The consumer-scoped dedupe key: pass it to your own side effects. */
  idempotencyKey: string;
}

/** The outcome of a wrapped call. */
export type IdempotentResult<R> =
  { status: 'handled'; value: R } | { status: 'duplicate'; result?: string };

const PRECLAIM = Symbol('backtrack.idempotent.preclaim');
const DUPLICATE = Symbol.for('backtrack.idempotent.duplicate');

type Preclaim = NonNullable<ContextSlots['preclaim']>;

/**
 * Internal: lets `processBatch` hand the middleware a claim made by `claimMany`. With
 * `deferMark`, the middleware leaves the done mark in the context (see {@link takePendingMark})
 * for the batch to write with one `completeMany`, and leaves the lease to the batch's keeper.
 * With `shared` (only with `deferMark`), several messages of the batch carry the key: the first
 * to reach the step runs the handler, the others take its outcome (see {@link SharedClaim}).
 */
export function setPreclaim(
  context: ConsumerContext,
  key: string,
  claim: ClaimResult | Error,
  deferMark = false,
  shared?: SharedClaim,
): void {
  const preclaim: Preclaim =
    shared === undefined ? { key, claim, deferMark } : { key, claim, deferMark, shared };
  const slots = slotsOf(context);
  if (slots) slots.preclaim = preclaim;
  else context.state.set(PRECLAIM, preclaim);
}

/** Internal: removes and returns the batch claim the middleware did not use. */
export function takePreclaim(context: ConsumerContext): Preclaim | undefined {
  const slots = slotsOf(context);
  if (slots) {
    const pre = slots.preclaim;
    slots.preclaim = undefined;
    return pre;
  }
  const pre = context.state.get(PRECLAIM) as Preclaim | undefined;
  context.state.delete(PRECLAIM);
  return pre;
}

/** Internal: removes and returns the done mark a batch message's handler left to write. */
export function takePendingMark(context: ConsumerContext): PendingMark | undefined {
  const slots = slotsOf(context);
  const mark = slots?.pendingMark;
  if (slots) slots.pendingMark = undefined;
  return mark;
}

/** Resolves and validates idempotency options once. @throws {ConsumerConfigError} naming the field. */
export function resolveIdempotencyOptions(
  partial: Partial<IdempotencyOptions> & { store?: unknown },
  fieldPrefix = 'idempotency.',
): Readonly<IdempotencyOptions> {
  const store = partial.store as Partial<DedupeStore> | undefined;
  if (
    store === undefined ||
    typeof store.claim !== 'function' ||
    typeof store.complete !== 'function'
  ) {
    throw new ConsumerConfigError(`${fieldPrefix}store`, 'must be a DedupeStore');
  }
  const resolved = { ...DEFAULT_IDEMPOTENCY_OPTIONS };
  for (const field of ['ttlMs', 'leaseMs', 'inProgressDelayMs', 'unavailableDelayMs'] as const) {
    const value = partial[field];
    if (value === undefined) continue;
    const min = field === 'ttlMs' || field === 'leaseMs' ? 1 : 0;
    if (!Number.isSafeInteger(value) || value < min) {
      throw new ConsumerConfigError(
        `${fieldPrefix}${field}`,
        `must be an integer >= ${min} (ms)`,
        value,
      );
    }
    resolved[field] = value;
  }
  if (partial.extendLease !== undefined) {
    if (typeof partial.extendLease !== 'boolean') {
      throw new ConsumerConfigError(
        `${fieldPrefix}extendLease`,
        'must be a boolean',
        partial.extendLease,
      );
    }
    resolved.extendLease = partial.extendLease;
  }
  return Object.freeze(resolved);
}

/** Builds the consumer-scoped key for a context (the user's `key` function or source+id). */
export function idempotencyKeyFor(
  context: ConsumerContext,
  key?: (context: ConsumerContext) => string,
): string {
  const envelope = requireEnvelope(context, 'idempotent');
  if (key === undefined) return defaultIdempotencyKey(context.consumer, envelope);
  return scopedKey(context.consumer, () => key(context));
}

function scopedKey(consumer: string, derive: () => string): string {
  let derived: unknown;
  try {
    derived = derive();
  } catch (cause) {
    throw new IdempotencyKeyError(
      `the idempotency key function threw: ${(cause as Error)?.message}`,
      cause,
    );
  }
  if (typeof derived !== 'string' || derived.length === 0) {
    throw new IdempotencyKeyError(
      `the idempotency key function returned ${JSON.stringify(derived)}, not a non-empty string`,
    );
  }
  return `${encodeURIComponent(consumer)}:key:${derived}`;
}

/** True for a claim this consumer won. */
function isClaimed(claim: ClaimResult | Error): boolean {
  return !(claim instanceof Error) && claim.status === 'claimed';
}

/** Wraps a store error so the pipeline pauses instead of retrying the handler. */
function storeFailure(error: unknown, operation: string): BacktrackError {
  if (error instanceof StoreUnavailableError) return error;
  if (error instanceof BacktrackError && !error.retriable) return error;
  return new StoreUnavailableError(
    'dedupe',
    operation,
    `dedupe store ${operation} failed: ${(error as Error)?.message}`,
    {
      cause: error,
    },
  );
}

/** How {@link runOnce} gets and keeps its claim. */
interface RunOnceOptions {
  /** A claim made before (a batch's `claimMany`), or the error that claim failed with. */
  preclaimed?: ClaimResult | Error | undefined;
  /**
   * Batch path: the batch already keeps the lease alive and writes the done mark itself; the
   * run returns the mark instead of calling `complete`.
   */
  deferMark?: boolean;
  /** Extends the lease while the run lasts (undefined with `extendLease: false`). */
  keeper: LeaseKeeper | undefined;
  /** Receives the function that stops extending, so a timeout can let the lease expire. */
  onHold?: (stop: () => void) => void;
}

type RunOnceResult<R> = IdempotentResult<R> | { status: 'handled'; value: R; mark: PendingMark };

/**
 * Runs `run` at most once per key: claim with a lease, run, mark done; release on failure.
 * Returns the run's value, or a duplicate marker. Throws {@link LeaseHeldError} when another
 * consumer holds the lease and a retriable {@link StoreUnavailableError} when the store is down.
 */
async function runOnce<R>(
  store: DedupeStore,
  key: string,
  options: Readonly<IdempotencyOptions>,
  logOf: () => Logger,
  run: (info: DedupeInfo) => Promise<{ value: R; result?: string } | { skip: true }>,
  how: RunOnceOptions,
): Promise<RunOnceResult<R>> {
  let claim: ClaimResult;
  try {
    if (how.preclaimed instanceof Error) throw how.preclaimed;
    claim = how.preclaimed ?? (await store.claim(key, { leaseMs: options.leaseMs }));
  } catch (error) {
    throw storeFailure(error, 'claim');
  }
  if (claim.status === 'done') {
    return claim.result === undefined
      ? { status: 'duplicate' }
      : { status: 'duplicate', result: claim.result };
  }
  if (claim.status === 'in-progress') throw new LeaseHeldError(key);

  const { token } = claim;
  const { keeper } = how;
  if (keeper && !how.deferMark) keeper.hold(key, token, logOf);
  const stop = keeper ? () => keeper.drop(key, token) : noop;
  how.onHold?.(stop);
  let outcome: { value: R; result?: string } | { skip: true };
  try {
    outcome = await run({ key, status: 'claimed' });
  } catch (error) {
    stop();
    await release(store, key, token, logOf);
    throw error;
  }
  if ('skip' in outcome) {
    stop();
    await release(store, key, token, logOf);
    return { status: 'handled', value: undefined as R };
  }
  if (how.deferMark) {
    // The batch keeps the lease alive until its one completeMany.
    const mark: PendingMark =
      outcome.result === undefined ? { key, token } : { key, token, result: outcome.result };
    return { status: 'handled', value: outcome.value, mark };
  }
  stop();
  let owned: boolean;
  try {
    owned = await store.complete(key, token, {
      ttlMs: options.ttlMs,
      ...(outcome.result === undefined ? {} : { result: outcome.result }),
    });
  } catch (error) {
    // The effect happened but its done mark is not durable: do not acknowledge (DESIGN: ack only
    // when both are durable). The lease expires and a redelivery runs the handler again, with
    // the same idempotency key, which is the handler's own defence.
    logOf().error({ key, err: error }, 'handler succeeded but the done mark could not be stored');
    throw storeFailure(error, 'complete');
  }
  if (!owned) {
    logOf().warn(
      { key, leaseMs: options.leaseMs },
      'dedupe lease expired before the handler finished; another consumer may run it too. Raise leaseMs',
    );
  }
  return { status: 'handled', value: outcome.value };
}

function noop(): void {}

/**
 * The idempotent step of a copy: a message whose key an earlier message of the same batch
 * (the runner) claimed with the batch's one `claimMany` and already took through this step. The
 * copy never runs its handler; it takes the runner's outcome, as if its own handler had done
 * what the runner's did:
 * - the runner succeeded and left its done mark: the copy is a duplicate (`ack` `duplicate`, with
 *   the runner's result). The batch writes that mark before it returns any disposition; if the
 *   mark does not become durable (or the runner ends unacknowledged for another reason), the
 *   batch turns the copy into a `redeliver` as well (see `SharedClaim.followers`), so a copy is
 *   never acknowledged on a mark that is not durable.
 * - the runner's handler threw: the copy throws the same error, so its own middleware and the
 *   error classification treat it as the copy's: a retriable error is retried with the copy's
 *   own attempt count and backoff (dead-lettered once the copy's attempts are exhausted), a
 *   non-retriable one is dead-lettered, a store outage is redelivered with a pause. Each record
 *   then carries the message on (two retries, or two dead letters, never a record dropped for
 *   an effect that did not happen); whichever succeeds first marks the key done and the other
 *   is absorbed as a duplicate. Running the copy's handler instead would be an immediate retry
 *   without backoff, and a second run of a poison message.
 * - the runner decided itself (`ctx.retry`, `ctx.deadLetter`, `ctx.redeliver`, an `ignored` ack
 *   or nothing handled it): the copy gets the same decision.
 * - the runner has not finished (only when `handlerTimeoutMs` abandoned it): the copy is
 *   redelivered as for a key leased elsewhere.
 */
function followRunner(
  context: ConsumerContext,
  key: string,
  shared: SharedClaim,
): RunOnceResult<void> {
  switch (shared.state) {
    case 'marked':
      shared.followers.push(context);
      return shared.result === undefined
        ? { status: 'duplicate' }
        : { status: 'duplicate', result: shared.result };
    case 'failed':
      context.dedupe = { key, status: 'in-progress' };
      throw shared.error;
    case 'decided':
      context.dedupe = { key, status: 'in-progress' };
      if (shared.decision !== undefined) context.disposition = copyOf(shared.decision);
      return { status: 'handled', value: undefined };
    default:
      throw new LeaseHeldError(key);
  }
}

function copyOf(disposition: Disposition): Disposition {
  return { ...disposition };
}

async function release(
  store: DedupeStore,
  key: string,
  token: string,
  logOf: LogSource,
): Promise<void> {
  try {
    await store.release(key, token);
  } catch (error) {
    // Not fatal: the lease expires on its own and a retry then claims again.
    (typeof logOf === 'function' ? logOf() : logOf.logger).warn(
      { key, err: error },
      'could not release the dedupe claim; it expires with its lease',
    );
  }
}

/**
 * The idempotent consumer, as middleware (`idempotent({ store, ... })`) or as a wrapper around
 * any function (`idempotent(fn, { store, consumer, ... })`).
 *
 * Semantics (DedupeStore port): claim the key with a lease; a `done` key acknowledges without
 * calling the handler; a key leased by someone else is redelivered (never dropped); on success
 * the key is marked `done` for `ttlMs` (with the handler's string result, if any); on failure
 * the claim is released so a retry can run. If the process dies, the lease expires and a
 * redelivery runs the handler again.
 *
 * The store is not atomic with the handler's own writes: a crash after the effect and before
 * the `done` mark runs the handler again. Use `idempotencyKey` (in the handler context, or the
 * wrapper's second argument) for your own effects.
 */
export function idempotent(options: IdempotentMiddlewareOptions): Middleware;
export function idempotent<TInput, R>(
  fn: (input: TInput, context: IdempotencyContext) => Promise<R> | R,
  options: IdempotentWrapperOptions<TInput>,
): (input: TInput) => Promise<IdempotentResult<R>>;
export function idempotent<TInput, R>(
  fnOrOptions:
    IdempotentMiddlewareOptions | ((input: TInput, context: IdempotencyContext) => Promise<R> | R),
  maybeOptions?: IdempotentWrapperOptions<TInput>,
): Middleware | ((input: TInput) => Promise<IdempotentResult<R>>) {
  if (typeof fnOrOptions === 'function') return idempotentWrapper(fnOrOptions, maybeOptions);
  return idempotentMiddleware(fnOrOptions);
}

function idempotentMiddleware(options: IdempotentMiddlewareOptions): Middleware {
  return createIdempotentStep(options).middleware;
}

/** The idempotent middleware and the lease keeper it shares with a batch's pre-claims. */
export interface IdempotentStep {
  middleware: Middleware;
  /** Undefined with `extendLease: false`. */
  keeper: LeaseKeeper | undefined;
  options: Readonly<IdempotencyOptions>;
  store: DedupeStore;
}

/** Internal: builds the idempotent middleware with its lease keeper (the pipeline's batch path uses both). */
export function createIdempotentStep(options: IdempotentMiddlewareOptions): IdempotentStep {
  if (typeof options !== 'object' || options === null)
    throw new ConsumerConfigError('idempotent options', 'must be an object');
  const resolved = resolveIdempotencyOptions(options, '');
  if (options.key !== undefined && typeof options.key !== 'function') {
    throw new ConsumerConfigError('key', 'must be a function (context) => string');
  }
  const { store } = options;
  const keeper = resolved.extendLease ? new LeaseKeeper(store, resolved.leaseMs) : undefined;
  const middleware: Middleware = function idempotentMiddleware(context, next) {
    let pre: Preclaim | undefined;
    let key: string;
    try {
      pre = takePreclaim(context);
      key = pre?.key ?? idempotencyKeyFor(context, options.key);
    } catch (error) {
      return Promise.reject(error);
    }
    context.idempotencyKey = key;
    const slots = slotsOf(context);
    const shared = pre?.shared;
    const claim = pre?.claim;
    if (
      (shared === undefined || shared.state === 'unused') &&
      pre?.deferMark === true &&
      slots !== undefined &&
      claim !== undefined &&
      !(claim instanceof Error) &&
      claim.status === 'claimed'
    ) {
      // A batch's claim (the common case): what runOnce does with a pre-claim and a deferred
      // mark, in one small async frame, without its callbacks and their promises.
      return runClaimed(context, next, key, claim.token, slots, shared);
    }
    if (shared === undefined && claim !== undefined && !isClaimed(claim)) {
      // The batch's claim found the key done, leased elsewhere, or the store failing: decided
      // now, as runOnce would decide it, without running the rest of the chain.
      try {
        notClaimed(context, key, claim);
      } catch (error) {
        return Promise.reject(error);
      }
      return SETTLED;
    }
    return runStep(context, next, pre, key, slots, shared);
  };

  /** {@link runStep}'s outcome for a pre-claim this consumer did not win, synchronously. */
  function notClaimed(context: ConsumerContext, key: string, claim: ClaimResult | Error): void {
    if (claim instanceof Error) {
      stepFailed(context, key, undefined, storeFailure(claim, 'claim'));
      return;
    }
    if (claim.status === 'in-progress') {
      stepFailed(context, key, undefined, new LeaseHeldError(key));
      return;
    }
    if (claim.status !== 'done') return;
    context.dedupe =
      claim.result === undefined
        ? { key, status: 'done' }
        : { key, status: 'done', result: claim.result };
    if (context.logger.isLevelEnabled('debug'))
      context.logger.debug({ key }, 'duplicate message acknowledged without calling the handler');
    context.ack('duplicate');
  }

  /** The step for anything but a batch's own claim: no claim yet, a copy, a failed claim... */
  async function runStep(
    context: ConsumerContext,
    next: () => Promise<void>,
    pre: Preclaim | undefined,
    key: string,
    slots: ContextSlots | undefined,
    shared: SharedClaim | undefined,
  ): Promise<void> {
    let outcome: RunOnceResult<void>;
    try {
      if (shared !== undefined && shared.state !== 'unused') {
        // A copy of a message this batch already ran: no second handler run.
        outcome = followRunner(context, key, shared);
      } else {
        if (shared !== undefined) {
          shared.state = 'running';
          shared.runner = context;
        }
        outcome = await runOnce<void>(
          store,
          key,
          resolved,
          () => context.logger,
          async (info) => {
            context.dedupe = info;
            await next();
            const d = context.disposition;
            // Only a handled message becomes `done`; anything else (retry, dead letter, ignored,
            // a middleware's own decision) frees the key.
            if (
              context.handled &&
              (d === undefined || (d.kind === 'ack' && d.outcome === 'handled'))
            ) {
              return context.result === undefined
                ? { value: undefined }
                : { value: undefined, result: context.result };
            }
            if (shared !== undefined) {
              shared.state = 'decided';
              shared.decision = d;
            }
            return { skip: true };
          },
          {
            preclaimed: pre?.claim,
            deferMark: pre?.deferMark === true && slots !== undefined,
            keeper,
            // A timed-out handler must not keep its lease alive forever: the pipeline stops it.
            onHold: (stop) => {
              if (slots) slots.stopLease = stop;
              else context.signal.addEventListener('abort', stop, { once: true });
            },
          },
        );
        if (shared !== undefined && 'mark' in outcome) {
          shared.state = 'marked';
          shared.result = outcome.mark.result;
        }
      }
    } catch (error) {
      stepFailed(context, key, shared, error);
      return;
    }
    if ('mark' in outcome && slots) slots.pendingMark = outcome.mark;
    if (outcome.status === 'duplicate') {
      context.dedupe = {
        key,
        status: 'done',
        ...(outcome.result === undefined ? {} : { result: outcome.result }),
      };
      if (context.logger.isLevelEnabled('debug'))
        context.logger.debug({ key }, 'duplicate message acknowledged without calling the handler');
      context.ack('duplicate');
    }
  }

  /**
   * The rest of the chain on a batch's claim: the handler's done mark is left in `slots` for the
   * batch's one `completeMany`; anything else (an error, another outcome) stops keeping the lease
   * and frees the key, as runOnce does. The batch holds the lease.
   */
  function runClaimed(
    context: ConsumerContext,
    next: () => Promise<void>,
    key: string,
    token: string,
    slots: ContextSlots,
    shared: SharedClaim | undefined,
  ): Promise<void> {
    if (shared !== undefined) {
      shared.state = 'running';
      shared.runner = context;
    }
    // A timed-out handler must not keep its lease alive forever: the pipeline stops it.
    if (keeper !== undefined) {
      slots.leaseKeeper = keeper;
      slots.leaseKey = key;
      slots.leaseToken = token;
    }
    context.dedupe = { key, status: 'claimed' };
    let running: Promise<void>;
    try {
      running = next();
    } catch (error) {
      return claimedFailed(context, key, token, shared, error);
    }
    // The rest of the chain finished synchronously (a synchronous handler): go on at once,
    // without an async frame and an await per message.
    if (running === SETTLED) return claimedDone(context, key, token, slots, shared);
    return awaitClaimed(running, context, key, token, slots, shared);
  }

  async function awaitClaimed(
    running: Promise<void>,
    context: ConsumerContext,
    key: string,
    token: string,
    slots: ContextSlots,
    shared: SharedClaim | undefined,
  ): Promise<void> {
    try {
      await running;
    } catch (error) {
      return claimedFailed(context, key, token, shared, error);
    }
    return claimedDone(context, key, token, slots, shared);
  }

  /** The chain threw: stop keeping the lease, free the key, then the step's error handling. */
  async function claimedFailed(
    context: ConsumerContext,
    key: string,
    token: string,
    shared: SharedClaim | undefined,
    error: unknown,
  ): Promise<void> {
    keeper?.drop(key, token);
    try {
      await release(store, key, token, context);
    } catch (releaseError) {
      stepFailed(context, key, shared, releaseError);
      return;
    }
    stepFailed(context, key, shared, error);
  }

  /**
   * After the chain: only a handled message becomes `done` (its mark is left in `slots` for the
   * batch's `completeMany`); anything else (retry, dead letter, ignored, a middleware's own
   * decision) stops keeping the lease and frees the key.
   */
  function claimedDone(
    context: ConsumerContext,
    key: string,
    token: string,
    slots: ContextSlots,
    shared: SharedClaim | undefined,
  ): Promise<void> {
    const d = context.disposition;
    if (context.handled && (d === undefined || (d.kind === 'ack' && d.outcome === 'handled'))) {
      const { result } = context;
      if (shared !== undefined) {
        shared.state = 'marked';
        shared.result = result;
      }
      slots.pendingMark = result === undefined ? { key, token } : { key, token, result };
      return SETTLED;
    }
    if (shared !== undefined) {
      shared.state = 'decided';
      shared.decision = d;
    }
    keeper?.drop(key, token);
    return release(store, key, token, context).catch((error: unknown) =>
      stepFailed(context, key, shared, error),
    );
  }

  /**
   * What the step does with an error of its claim or of the rest of the chain: a key leased
   * elsewhere or the store down gives a redelivery, anything else is thrown on.
   */
  function stepFailed(
    context: ConsumerContext,
    key: string,
    shared: SharedClaim | undefined,
    error: unknown,
  ): void {
    if (shared?.runner === context && shared.state === 'running') {
      shared.state = 'failed';
      shared.error = error;
    }
    if (error instanceof LeaseHeldError) {
      context.dedupe = { key, status: 'in-progress' };
      if (context.logger.isLevelEnabled('debug'))
        context.logger.debug({ key }, 'dedupe key leased by another consumer; redelivering');
      context.redeliver(error.message, { delayMs: resolved.inProgressDelayMs, pause: false });
      return;
    }
    if (error instanceof StoreUnavailableError) {
      // Either the claim failed (nothing ran) or the handler ran and `complete` failed (see
      // runOnce): in both cases do not acknowledge; pause, and let the message come again.
      context.logger.warn(
        { key, err: error },
        'dedupe store unavailable; pausing and redelivering',
      );
      context.redeliver(error.message, { delayMs: resolved.unavailableDelayMs, pause: true });
      return;
    }
    throw error;
  }

  return { middleware, keeper, options: resolved, store };
}

function idempotentWrapper<TInput, R>(
  fn: (input: TInput, context: IdempotencyContext) => Promise<R> | R,
  options: IdempotentWrapperOptions<TInput> | undefined,
): (input: TInput) => Promise<IdempotentResult<R>> {
  if (options === undefined)
    throw new ConsumerConfigError('idempotent options', 'are required with a wrapped function');
  const resolved = resolveIdempotencyOptions(options, '');
  if (typeof options.consumer !== 'string' || options.consumer.length === 0) {
    throw new ConsumerConfigError(
      'consumer',
      'must be a non-empty string (it scopes the dedupe keys)',
      options.consumer,
    );
  }
  if (options.key !== undefined && typeof options.key !== 'function') {
    throw new ConsumerConfigError('key', 'must be a function (input) => string');
  }
  const logger = options.logger;
  const silent = { warn() {}, error() {}, debug() {} } as unknown as Logger;
  const keeper = resolved.extendLease
    ? new LeaseKeeper(options.store, resolved.leaseMs)
    : undefined;
  return async function idempotentCall(input: TInput): Promise<IdempotentResult<R>> {
    const key =
      options.key === undefined
        ? defaultIdempotencyKey(options.consumer, envelopeOf(input))
        : scopedKey(options.consumer, () => options.key!(input));
    const result = await runOnce<R>(
      options.store,
      key,
      resolved,
      () => logger ?? silent,
      async () => {
        const value = await fn(input, { idempotencyKey: key });
        return typeof value === 'string' ? { value, result: value } : { value };
      },
      { keeper },
    );
    if (result.status === 'duplicate') Object.defineProperty(result, DUPLICATE, { value: true });
    return result;
  };
}

/** True for a wrapper result that says "already processed" (the `handle()` route acks it as a duplicate). */
export function isDuplicateResult(value: unknown): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<symbol, unknown>)[DUPLICATE] === true
  );
}

function envelopeOf(input: unknown): Pick<Envelope<unknown>, 'source' | 'id' | 'extensions'> {
  const candidate =
    typeof input === 'object' && input !== null && 'envelope' in input
      ? (input as { envelope: unknown }).envelope
      : input;
  if (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof (candidate as Envelope).source === 'string' &&
    typeof (candidate as Envelope).id === 'string'
  ) {
    return candidate as Envelope;
  }
  throw new IdempotencyKeyError(
    'idempotent(): the input has no envelope (source, id); pass a key function',
  );
}
