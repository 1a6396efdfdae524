import type { ClaimResult } from '../dedupe/DedupeStore.js';
import {
  abortContext,
  composeRun,
  createMessageContext,
  isLogged,
  SETTLED,
  slotsOf,
  stopLeaseOf,
  type ConsumerContext,
  type Middleware,
  type SharedClaim,
} from './context.js';
import { CONSUMER_DEAD_LETTER_CODES, HandlerTimeoutError } from './errors.js';
import {
  createIdempotentStep,
  idempotencyKeyFor,
  setPreclaim,
  takePendingMark,
  takePreclaim,
  type IdempotencyOptions,
  type IdempotentStep,
} from './idempotent/idempotent.js';
import type { LeaseGroup } from './idempotent/leaseKeeper.js';
import { decodeInto, routeByType, validateInto, type ValidateOptions } from './middleware.js';
import { classifyError, reportOutcome, type ClassifyPolicy } from './outcome.js';
import {
  resolvePipelineConfig,
  type ConsumerPipelineDependencies,
  type ConsumerPipelineOptions,
  type PipelineConfig,
  type UnhandledPolicy,
} from './pipelineOptions.js';
import type { RetryPolicy } from '../retry/backoff.js';
import { finishConsume, runConsume } from '../telemetry/messaging.js';
import { activeInstruments, activeTracer } from '../telemetry/provider.js';
import type { BatchOptions, Disposition, IncomingMessage, MessageProcessor } from './processor.js';

export { DEFAULT_CONSUMER_OPTIONS } from './pipelineOptions.js';
export type {
  ConsumerPipelineDependencies,
  ConsumerPipelineOptions,
  UnhandledPolicy,
} from './pipelineOptions.js';

/** A processor with its resolved configuration, for introspection and tests. */
export interface ConsumerPipeline extends MessageProcessor {
  processBatch(messages: IncomingMessage[], options?: BatchOptions): Promise<Disposition[]>;
  readonly name: string;
  readonly retry: Readonly<RetryPolicy>;
  readonly unhandled: UnhandledPolicy;
  /** Resolved idempotency settings, or undefined when the step is off. */
  readonly idempotency: Readonly<IdempotencyOptions> | undefined;
  /** Routed event types with the version each handler wants. */
  readonly routes: ReadonlyMap<string, number>;
}

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
 * `processBatch` (see {@link runBatch}) claims the batch's keys in one round trip, keeps those
 * leases alive while the batch runs, runs the messages in order, holds back what comes after a
 * redelivered message of the same partition (or key), and writes the done marks in one
 * `completeMany` before it returns. A message that comes twice in one batch (same dedupe key)
 * runs its handler once; the copy takes the first's outcome in the same batch (a duplicate once
 * the first's mark is durable), never a redelivery (see {@link openClaimWindow}).
 *
 * @throws {ConsumerConfigError} at construction, naming the invalid field.
 */
export function createConsumerPipeline(
  options: ConsumerPipelineOptions,
  dependencies: ConsumerPipelineDependencies = {},
): ConsumerPipeline {
  const config = resolvePipelineConfig(options, dependencies);
  const stages = buildStages(config);
  const runner = createRunner(config, stages);
  return {
    name: config.name,
    retry: config.retry,
    unhandled: config.unhandled,
    idempotency: config.idempotency,
    routes: config.routes,
    async process(message) {
      const context = runner.newContext(message);
      const disposition = runner.decideNow(context) ?? (await runner.execute(context));
      if (mayHoldPreclaim(context)) await releaseUnusedClaim(context, stages);
      reportOutcome(context, disposition, config.logger, config.spy);
      finishConsume(context, disposition); // telemetry (issue 18)
      return disposition;
    },
    processBatch(messages, batchOptions) {
      return runBatch(messages, batchOptions ?? {}, config, stages, runner);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Decode and route: the middleware chain, built once.

/** The chain of a pipeline, built once from its config. */
interface Stages {
  /**
   * decode + validate (and upcast) of routed types, synchronously: enough to know a message's
   * dedupe key. The chain's own decode and validate then find the work done.
   */
  prepare(context: ConsumerContext): void;
  /** decode → validate → user middleware → idempotent step → handlers, then `last`. */
  run: (
    context: ConsumerContext,
    last: (context: ConsumerContext) => Promise<void>,
  ) => Promise<void>;
  /** The idempotent step, when a store is configured. */
  idempotent: IdempotentStep | undefined;
  /**
   * True when a message of a type no handler routes meets only `prepare` and then the
   * unhandled policy in the chain (see {@link Runner.decideNow}).
   */
  decidesUnrouted: boolean;
}

function buildStages(config: PipelineConfig): Stages {
  const { routes, store, idempotency, idempotencyKey, limits, registry } = config;
  const routing: ValidateOptions = {
    versionFor: (type) => routes.get(type),
    only: (type) => routes.has(type),
  };
  const step =
    idempotency && store
      ? createIdempotentStep({
          ...idempotency,
          store,
          ...(idempotencyKey ? { key: idempotencyKey } : {}),
        })
      : undefined;
  // Events no handler routes never touch the dedupe store (no claim, no pause when it is down).
  const onlyRouted =
    (inner: Middleware): Middleware =>
    (context, next) =>
      context.envelope !== undefined && routes.has(context.envelope.type)
        ? inner(context, next)
        : next();
  // A foreign event without a schema version reads as its type's registry default.
  const decoding = {
    ...limits,
    defaultSchemaVersion: (type: string) => registry.defaultSchemaVersion(type),
  };
  const prepare = (context: ConsumerContext): void => {
    decodeInto(context, decoding);
    validateInto(context, registry, routing);
  };
  const routeLevels = routeByType(config.handlers);
  const run = composeRun(
    config.middleware.length === 0 && step !== undefined
      ? [
          // Nothing between them: decode + validate and the idempotent step in one level.
          (context, next) => {
            prepare(context);
            return routes.has(context.envelope!.type) ? step.middleware(context, next) : next();
          },
          ...routeLevels,
        ]
      : [
          // decode() then validate() in one level (each was one async level of the chain; in a
          // batch both are done before the chain, by prepare): what throws, and in which order,
          // is the same.
          (context, next) => {
            prepare(context);
            return next();
          },
          ...config.middleware,
          ...(step ? [onlyRouted(step.middleware)] : []),
          // One level for all routes (a Map from type to route), not one level per route.
          ...routeLevels,
        ],
  );
  return {
    prepare,
    run,
    idempotent: step,
    // Without user middleware and with the routes found by type, a message no route takes
    // never reaches anything but decode + validate and `noRoute`: decidable without the chain.
    decidesUnrouted:
      config.middleware.length === 0 && config.handlers.every((r) => r.onlyOwnType === true),
  };
}

// ---------------------------------------------------------------------------------------------
// Run: one message through the chain, with its timeout, to a disposition.

interface Runner {
  newContext(message: IncomingMessage): ConsumerContext;
  /** Runs the chain; never throws. The disposition is not final in a batch until the flush. */
  execute(context: ConsumerContext): Promise<Disposition>;
  /**
   * What {@link Runner.execute} awaits: the chain in the message's consumer span. Rejects with
   * what the chain threw (classify it with {@link Runner.policy}).
   */
  run(context: ConsumerContext): Promise<void>;
  /** The disposition of a message whose {@link Runner.run} resolved. */
  dispositionOf(context: ConsumerContext): Disposition;
  /**
   * The disposition {@link Runner.execute} would give, decided synchronously, for a message no
   * handler routes (see {@link Stages.decidesUnrouted}); undefined when it must run the chain.
   */
  decideNow(context: ConsumerContext): Disposition | undefined;
  /** What classifies errors (the batch uses its delays). */
  policy: ClassifyPolicy;
}

/** Redelivery delays used for lease/store errors thrown from inside handlers when no idempotency step is configured. */
const DEFAULT_INFRA_DELAYS = { inProgressDelayMs: 1_000, unavailableDelayMs: 5_000 } as const;

function createRunner(config: PipelineConfig, stages: Stages): Runner {
  const { name, logger, handlerTimeoutMs, unhandled } = config;
  const policy: ClassifyPolicy = {
    retry: config.retry,
    random: config.random,
    inProgressDelayMs:
      config.idempotency?.inProgressDelayMs ?? DEFAULT_INFRA_DELAYS.inProgressDelayMs,
    unavailableDelayMs:
      config.idempotency?.unavailableDelayMs ?? DEFAULT_INFRA_DELAYS.unavailableDelayMs,
  };

  // Reached only when no handler routed the type.
  function noRoute(context: ConsumerContext): Promise<void> {
    try {
      decideUnhandled(context);
    } catch (error) {
      return Promise.reject(error);
    }
    return RESOLVED;
  }
  function decideUnhandled(context: ConsumerContext): void {
    if (unhandled === 'ignore') {
      // Most services ignore many types: make the message's logger only when it writes.
      if (isLogged(context, 'info'))
        context.logger.info('no handler for this event type; acknowledged and ignored');
      context.ack('ignored');
    } else {
      context.deadLetter(
        `no handler for event type "${context.envelope?.type}" in consumer ${name}`,
        CONSUMER_DEAD_LETTER_CODES.UNHANDLED,
      );
    }
  }

  /** Runs the chain, abandoning it after `handlerTimeoutMs`. */
  function runChain(context: ConsumerContext): Promise<void> {
    const running = Promise.resolve(stages.run(context, noRoute));
    if (handlerTimeoutMs === undefined) return running;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        const error = new HandlerTimeoutError(handlerTimeoutMs, {
          messageId: context.envelope?.id,
        });
        abortContext(context, error);
        // An abandoned handler must not keep its lease alive: it expires, and a retry can run.
        const slots = slotsOf(context);
        if (slots !== undefined) stopLeaseOf(slots);
        reject(error);
      }, handlerTimeoutMs);
    });
    // The abandoned chain may still fail later: never let that become an unhandled rejection.
    running.catch(() => undefined);
    return Promise.race([running, timeout]).finally(() => clearTimeout(timer));
  }

  function run(context: ConsumerContext): Promise<void> {
    // Telemetry (issue 18): the chain and the handler run in the message's consumer span.
    return runConsume(context, runChain);
  }
  function dispositionOf(context: ConsumerContext): Disposition {
    return (
      context.disposition ??
      (context.handled ? { kind: 'ack', outcome: 'handled' } : { kind: 'ack', outcome: 'ignored' })
    );
  }

  const { decidesUnrouted, prepare } = stages;
  const { routes } = config;
  return {
    policy,
    newContext(message) {
      return createMessageContext(message, name, logger);
    },
    decideNow(context) {
      // What the chain would do (prepare, then noRoute), without its promises: only when no
      // telemetry wants a span or a duration for the run, and nothing else is in the chain.
      if (!decidesUnrouted || context.disposition !== undefined || telemetryOn()) return undefined;
      try {
        prepare(context);
      } catch {
        return undefined; // the chain meets the same error and classifies it
      }
      const { envelope } = context;
      if (envelope === undefined || routes.has(envelope.type)) return undefined;
      try {
        decideUnhandled(context);
      } catch (error) {
        return classifyError(error, context, policy);
      }
      return context.disposition ?? { kind: 'ack', outcome: 'ignored' };
    },
    async execute(context) {
      try {
        await run(context);
      } catch (error) {
        return classifyError(error, context, policy);
      }
      return dispositionOf(context);
    },
    run,
    dispositionOf,
  };
}

const RESOLVED = SETTLED;

/** True when a tracer or meter provider is registered: each run then gets its span or timer. */
function telemetryOn(): boolean {
  return activeTracer() !== undefined || activeInstruments() !== undefined;
}

/**
 * {@link releaseUnusedClaim} for a batch, concurrently, touching only contexts that need it;
 * undefined (no promise) when none does.
 */
function releaseUnusedClaims(
  contexts: readonly ConsumerContext[],
  stages: Stages,
): Promise<unknown> | undefined {
  let releases: Promise<void>[] | undefined;
  for (const context of contexts) {
    if (mayHoldPreclaim(context)) (releases ??= []).push(releaseUnusedClaim(context, stages));
  }
  return releases === undefined ? undefined : Promise.all(releases);
}

/** False when the context surely holds no batch claim (its slots have none). */
function mayHoldPreclaim(context: ConsumerContext): boolean {
  const slots = slotsOf(context);
  return slots === undefined || slots.preclaim !== undefined;
}

/** A middleware decided before the idempotent step: free the batch claim it never used. */
async function releaseUnusedClaim(context: ConsumerContext, stages: Stages): Promise<void> {
  const pre = takePreclaim(context);
  const step = stages.idempotent;
  if (pre === undefined || step === undefined) return;
  const claim = pre.claim;
  if (claim instanceof Error || claim.status !== 'claimed') return;
  const { shared } = pre;
  if (shared !== undefined) {
    // One claim for several copies: free it once, and only when none of them used it.
    if (shared.state !== 'unused') return;
    shared.state = 'released';
  }
  step.keeper?.drop(pre.key, claim.token);
  await step.store.release(pre.key, claim.token).catch(() => undefined);
}

// ---------------------------------------------------------------------------------------------
// The batch: claim window → run in order, with lanes → settle (one completeMany) → report.

/**
 * Processes a batch: decodes every message and claims every routed key in one `claimMany`,
 * keeps those leases alive while the batch runs, runs the messages one by one in input order
 * (holding back what follows a redelivered message of its partition or key), writes the done
 * marks in one `completeMany`, and only then returns the dispositions. A message whose mark
 * cannot be written is not acknowledged (redeliver; the dedupe store absorbs the repeat), and
 * neither is a copy that was acknowledged as its duplicate ({@link settleCopies}).
 */
async function runBatch(
  messages: IncomingMessage[],
  batchOptions: BatchOptions,
  config: PipelineConfig,
  stages: Stages,
  runner: Runner,
): Promise<Disposition[]> {
  // One elements kind for every batch (push onto a literal: always packed): `Array.map` makes a
  // packed or a holey array depending on how its callback ran, and every function the batch is
  // passed to was then optimised for one and thrown away for the other (a recompile each).
  const contexts: ConsumerContext[] = [];
  for (let i = 0; i < messages.length; i++) contexts.push(runner.newContext(messages[i]!));
  const window = stages.idempotent
    ? await openClaimWindow(contexts, config, stages, stages.idempotent)
    : undefined;
  try {
    const lanes = runInLanes(contexts, batchOptions, runner, config.concurrency, window?.copies);
    await lanes.done;
    const { dispositions } = lanes;
    if (window) await settleDoneMarks(contexts, dispositions, window, runner.policy);
    if (window?.shared) settleCopies(contexts, dispositions, window.shared, runner.policy);
    if (window) {
      const releasing = releaseUnusedClaims(contexts, stages);
      if (releasing !== undefined) await releasing;
    }
    for (let i = 0; i < contexts.length; i++) {
      reportOutcome(contexts[i]!, dispositions[i]!, config.logger, config.spy);
      finishConsume(contexts[i]!, dispositions[i]!); // telemetry (issue 18)
    }
    return dispositions;
  } finally {
    window?.close();
  }
}

/** The claims of one batch, kept alive from `claimMany` until the batch's done marks are written. */
class ClaimWindow {
  readonly step: IdempotentStep;
  /**
   * Copies within the batch whose key the batch claimed: `[copy, first]` input indexes (the
   * first message of the batch with that key), in input order. Undefined without any.
   */
  copies: [number, number][] | undefined = undefined;
  /** The shared claims of those keys, with the input indexes of every message carrying each. */
  shared: { claim: SharedClaim; indexes: number[] }[] | undefined = undefined;
  /** The leases this window keeps alive: key, token, key, token... */
  readonly held: string[] = [];
  /** Where the warnings of each held lease go (its first message's context). */
  readonly sources: ConsumerContext[] = [];
  /** The held leases in the step's keeper, once the claims are in. */
  group: LeaseGroup | undefined = undefined;

  constructor(step: IdempotentStep) {
    this.step = step;
  }

  /** Stops keeping every claim of the window alive. */
  close(): void {
    if (this.group !== undefined) this.step.keeper?.dropGroup(this.group);
  }
}

/**
 * Decodes every message, claims every routed key in one round trip and keeps the claims alive.
 *
 * A key that several messages of the batch carry (the same message delivered twice: a producer
 * retry, a redrive, a replay) is claimed once. When this batch wins that claim, the messages share
 * it (a {@link SharedClaim}): the first to reach the idempotent step runs the handler, the copies
 * take its outcome without running theirs (see the idempotent step's `followRunner`), and
 * {@link runInLanes} runs each copy after its first in one lane. Claiming the key once per copy
 * would give every copy `in-progress` (the batch's own claim holds the key), and the copy would
 * be redelivered after `inProgressDelayMs`, holding back the rest of its partition or key.
 * When the claim is not this batch's (`done`, leased elsewhere, the store failing), every copy
 * meets the same result as its first, as before.
 */
async function openClaimWindow(
  contexts: readonly ConsumerContext[],
  config: PipelineConfig,
  stages: Stages,
  step: IdempotentStep,
): Promise<ClaimWindow> {
  /** Per routed message (a keyed entry), its input index and its dedupe key. */
  const keyedIndex: number[] = [];
  const keyedKey: string[] = [];
  for (let index = 0; index < contexts.length; index++) {
    const context = contexts[index]!;
    try {
      stages.prepare(context);
      if (context.envelope && config.routes.has(context.envelope.type)) {
        keyedKey.push(idempotencyKeyFor(context, config.idempotencyKey));
        keyedIndex.push(index);
      }
    } catch {
      // The full run meets the same error and turns it into a disposition.
    }
  }
  const window = new ClaimWindow(step);
  const { held } = window;
  const count = keyedKey.length;
  if (count === 0) return window;
  // Each distinct key once, in order of first appearance. Nearly every batch has no repeated
  // key: then `keys` is `keyedKey` and every entry is its key's first.
  let keys = keyedKey;
  /** Per distinct key, the keyed entry that carries it first (undefined: the identity). */
  let firstEntry: number[] | undefined;
  /** Per keyed entry, the position of its key in `keys` (undefined: the identity). */
  let slot: number[] | undefined;
  let repeated: number[] | undefined;
  if (count > 1) {
    // A small batch looks for an earlier entry with the same key among the entries before it
    // (no Map per batch); a large one keeps each key's position in a Map.
    const positionOf = count <= FEW_MESSAGES ? undefined : new Map<string, number>();
    for (let j = 0; j < count; j++) {
      const key = keyedKey[j]!;
      let seen: number | undefined;
      if (positionOf !== undefined) seen = positionOf.get(key);
      else {
        for (let x = 0; x < j; x++) {
          if (keyedKey[x] === key) {
            seen = slot === undefined ? x : slot[x]!;
            break;
          }
        }
      }
      if (seen === undefined) {
        positionOf?.set(key, positionOf.size);
        if (repeated !== undefined) {
          slot!.push(keys.length);
          keys.push(key);
          firstEntry!.push(j);
        }
        continue;
      }
      if (repeated === undefined) {
        // The first repeat: from here on, keep the mapping explicitly.
        keys = keyedKey.slice(0, j);
        slot = Array.from({ length: j }, (_, x) => x);
        firstEntry = Array.from({ length: j }, (_, x) => x);
        repeated = [];
      }
      slot!.push(seen);
      repeated.push(j);
    }
  }
  let claims: (ClaimResult | Error)[];
  try {
    // The step's resolved options carry `leaseMs` (no options object per batch).
    claims = await step.store.claimMany(keys, step.options);
  } catch (error) {
    const failure = error instanceof Error ? error : new Error(String(error));
    claims = keys.map(() => failure);
  }
  /** Per distinct key position, its shared claim, when the batch won a key it carries twice. */
  let sharedAt: Map<number, { claim: SharedClaim; indexes: number[] }> | undefined;
  for (const j of repeated ?? []) {
    const position = slot === undefined ? j : slot[j]!;
    const claim = claims[position];
    if (claim === undefined || claim instanceof Error || claim.status !== 'claimed') continue;
    const first = keyedIndex[firstEntry === undefined ? position : firstEntry[position]!]!;
    const copy = keyedIndex[j]!;
    (window.copies ??= []).push([copy, first]);
    let group = (sharedAt ??= new Map()).get(position);
    if (group === undefined) {
      group = { claim: unusedSharedClaim(), indexes: [first] };
      sharedAt.set(position, group);
      (window.shared ??= []).push(group);
    }
    group.indexes.push(copy);
  }
  const { keeper } = step;
  for (let j = 0; j < count; j++) {
    const context = contexts[keyedIndex[j]!]!;
    const key = keyedKey[j]!;
    const position = slot === undefined ? j : slot[j]!;
    const claim = claims[position];
    if (claim === undefined) continue;
    // Deferred marks need the context's slots: a context made elsewhere completes on its own.
    const deferMark = slotsOf(context) !== undefined;
    setPreclaim(context, key, claim, deferMark, sharedAt?.get(position)?.claim);
    if (
      keeper !== undefined &&
      !(claim instanceof Error) &&
      claim.status === 'claimed' &&
      (firstEntry === undefined ? position : firstEntry[position]) === j
    ) {
      // Held from now, not from when the message starts: a message late in a long batch still
      // owns its lease when it runs. Once per key: copies share their first's claim.
      held.push(key, claim.token);
      window.sources.push(context);
    }
  }
  // The batch's leases as one entry of the keeper (no object and map entry per key).
  if (keeper !== undefined && held.length > 0)
    window.group = keeper.holdGroup(held, window.sources);
  return window;
}

function unusedSharedClaim(): SharedClaim {
  return {
    state: 'unused',
    runner: undefined,
    error: undefined,
    decision: undefined,
    result: undefined,
    followers: [],
  };
}

/**
 * Runs the batch's handlers, up to `concurrency` at once, in lanes that keep order: the messages
 * of one key (a Kafka record key, else the `partitionkey`, else the `sagaid`) run one after the
 * other in input order, and so do the keyless messages of one partition, or, without
 * partitions (RabbitMQ), all keyless messages; different lanes run concurrently. With
 * `concurrency` 1 everything runs one by one in input order.
 *
 * After a message is redelivered (or retried, with `holdAfterRetry`), the rest of its lane is
 * held back (except in the keyless lane without a partition, as before: nothing holds there;
 * held back = redelivered without running), and so is every later message of its partition that
 * has not started yet: the transport rewinds the partition to it, so their results would be
 * thrown away. What already ran is acknowledged only up to the first unfinished record
 * (the transport's rule); a later one that ran comes again and the dedupe store absorbs it.
 *
 * A copy within the batch (`copies`: `[copy, first]`, see {@link openClaimWindow}) takes its
 * first's outcome, so it must run after it: when the two are in different lanes (another record
 * key, a keyless copy), those lanes are joined into one that runs in input order, and what holds
 * back a message is still decided by its own key (a joined lane tracks a blocker per key). In
 * input order a copy never waits: its first has finished when the copy starts.
 *
 * A copy whose first was held back (it never ran: an earlier message of the first's key was
 * redelivered) is held back too, and holds back its own key's later messages: running it would
 * apply the message before that earlier message of the first's key (the copy would take the
 * shared claim as if nothing came before it), and the rest of the copy's key would then run
 * ahead of the copy, which comes again.
 */
function runInLanes(
  contexts: readonly ConsumerContext[],
  batchOptions: BatchOptions,
  runner: Runner,
  concurrency: number,
  copies?: readonly (readonly [number, number])[],
): LaneRun {
  return new LaneRun(contexts, batchOptions.holdAfterRetry === true, runner, concurrency, copies);
}

/**
 * One batch's run in lanes (see {@link runInLanes}). A class, so the helpers live on the
 * prototype instead of being closures made per batch (under tsx, each named closure also cost
 * an `Object.defineProperty` for its name). {@link LaneRun.done} settles once every lane ran.
 */
class LaneRun {
  readonly contexts: readonly ConsumerContext[];
  readonly dispositions: Disposition[];
  /** Resolves once every message has its disposition. */
  readonly done: Promise<void>;
  readonly #holdAfterRetry: boolean;
  readonly #runner: Runner;
  /** Per copy's input index, its first's (see `copies`). */
  #firstOf: Map<number, number> | undefined;
  /** Input indexes held back without running. */
  #heldIndexes: Set<number> | undefined;
  /** Per partition: the lowest input index that was redelivered, and its disposition. */
  #rewound: Map<string, { index: number; blocker: Blocker }> | undefined;
  /** The lanes, in the order of their first message. */
  #lanes: number[][];
  /** The lane of the keyless messages without a partition (they never hold each other back). */
  #keyless: number[] | undefined;
  /** Lanes that run one by one with a blocker per key: joined lanes, or the whole batch. */
  #byKey: Set<number[]> | undefined;
  /** The next lane a worker takes. */
  #next = 0;

  constructor(
    contexts: readonly ConsumerContext[],
    holdAfterRetry: boolean,
    runner: Runner,
    concurrency: number,
    copies: readonly (readonly [number, number])[] | undefined,
  ) {
    const n = contexts.length;
    this.contexts = contexts;
    this.dispositions = new Array<Disposition>(n);
    this.#holdAfterRetry = holdAfterRetry;
    this.#runner = runner;
    if (copies !== undefined) {
      const firstOf = new Map<number, number>();
      for (const [copy, first] of copies) firstOf.set(copy, first);
      this.#firstOf = firstOf;
    }
    if (concurrency <= 1 || n <= 1) {
      // One by one, in input order; a redeliver blocks its key lane (or, keyless, nothing more).
      const all = new Array<number>(n);
      for (let i = 0; i < n; i++) all[i] = i;
      this.#lanes = [all];
      this.#byKey = new Set([all]);
      this.done = this.#worker(undefined);
      return;
    }
    // Lanes in the order of their first message; each worker runs one lane at a time, in order.
    const grouped = groupLanes(contexts);
    let lanes = grouped.lanes;
    this.#keyless = grouped.keyless;
    const joined = copies === undefined ? undefined : joinLanes(lanes, copies, n);
    if (joined !== undefined) {
      lanes = joined.lanes;
      this.#byKey = joined.mixed;
    }
    this.#lanes = lanes;
    const workers = Math.min(concurrency, lanes.length);
    if (workers === 1) {
      this.done = this.#worker(undefined);
      return;
    }
    // One promise for all the workers (not Promise.all's array and closure per worker).
    const all = new Settlement(workers);
    this.done = all.promise;
    for (let w = 0; w < workers; w++) void this.#worker(all);
  }

  /**
   * Takes the next lane until none is left, and runs it in order. A plain lane has one blocker
   * (a redelivered message holds back the rest of its lane, except in the keyless lane); a
   * joined lane, or the whole batch run one by one, has one per key, as if each key were its own
   * lane (the keyless messages without a partition never block).
   */
  async #worker(all: Settlement | undefined): Promise<void> {
    // With `all`, the worker reports to it (its own promise is not awaited and never rejects).
    try {
      const lanes = this.#lanes;
      const { contexts } = this;
      while (this.#next < lanes.length) {
        const lane = lanes[this.#next++]!;
        const perKey = this.#byKey?.has(lane) === true;
        // Keyless deliveries without a partition keep their order but never hold each other back.
        const blocks = lane !== this.#keyless;
        let laneBlocker: Blocker | undefined;
        let blocked: Map<string, Blocker> | undefined;
        for (let x = 0; x < lane.length; x++) {
          const i = lane[x]!;
          const context = contexts[i]!;
          // A key's lane id is made only once something of the lane holds back what follows.
          const blocker = this.#heldBy(
            i,
            !perKey
              ? laneBlocker
              : blocked === undefined
                ? undefined
                : blocked.get(laneOf(context)),
          );
          if (blocker !== undefined) {
            this.#holdBack(i, blocker);
            continue;
          }
          const early = this.#settleWithoutRun(i);
          let holding: Blocker | undefined;
          if (early !== RUN) holding = early;
          else {
            // Runner.execute, inline: one async frame per message less; a chain that finished
            // synchronously (a synchronous handler) is not awaited.
            let disposition: Disposition;
            try {
              const running = this.#runner.run(context);
              if (running !== SETTLED) await running;
              disposition = this.#runner.dispositionOf(context);
            } catch (error) {
              disposition = classifyError(error, context, this.#runner.policy);
            }
            holding = this.#settle(i, disposition);
          }
          if (perKey) {
            if (holding !== undefined) {
              const own = laneOf(context);
              if (own !== KEYLESS) (blocked ??= new Map()).set(own, holding);
            }
          } else if (blocks) laneBlocker = holding;
        }
      }
    } catch (error) {
      if (all === undefined) throw error;
      all.fail(error);
      return;
    }
    all?.one();
  }

  #holds(d: Disposition): d is Blocker {
    return d.kind === 'redeliver' || (d.kind === 'retry' && this.#holdAfterRetry);
  }

  /** What holds message i back: its lane's blocker, or an earlier redeliver of its partition. */
  #heldBy(i: number, laneBlocker: Blocker | undefined): Blocker | undefined {
    const rewound = this.#rewound;
    if (laneBlocker !== undefined || rewound === undefined) return laneBlocker;
    const partition = partitionOf(this.contexts[i]!);
    const stop = partition === undefined ? undefined : rewound.get(partition);
    return stop !== undefined && stop.index < i ? stop.blocker : undefined;
  }

  /** Holds message i back behind `blocker` (it does not run). */
  #holdBack(i: number, blocker: Blocker): void {
    this.dispositions[i] = heldBack(this.contexts[i]!, blocker);
    (this.#heldIndexes ??= new Set()).add(i);
  }

  /**
   * Message i's outcome when it needs no run: a copy whose first was held back is held back as
   * its first is, as if it had been redelivered (it holds back what follows it in its own lane);
   * a message no handler routes is decided at once ({@link Runner.decideNow}). Returns `RUN`
   * when message i must run, else what {@link LaneRun.settle} returns.
   */
  #settleWithoutRun(i: number): Blocker | undefined | typeof RUN {
    const firstOf = this.#firstOf;
    if (firstOf !== undefined) {
      const first = firstOf.get(i);
      if (first !== undefined && this.#heldIndexes?.has(first) === true) {
        const held = this.dispositions[first] as Blocker;
        return this.#settle(i, {
          ...held,
          reason: `held back with the first delivery of this message in this batch (${held.reason})`,
        });
      }
    }
    const now = this.#runner.decideNow(this.contexts[i]!);
    return now === undefined ? RUN : this.#settle(i, now);
  }

  /** Records message i's disposition; returns it when it holds back what follows. */
  #settle(i: number, disposition: Disposition): Blocker | undefined {
    this.dispositions[i] = disposition;
    if (!this.#holds(disposition)) return undefined;
    const own = partitionOf(this.contexts[i]!);
    if (own !== undefined) {
      const rewound = (this.#rewound ??= new Map());
      const previous = rewound.get(own);
      if (previous === undefined || previous.index > i)
        rewound.set(own, { index: i, blocker: disposition });
    }
    return disposition;
  }
}

/** Up to this many messages, lanes are found by comparing keys, not through a Map of lane ids. */
const FEW_MESSAGES = 32;

/**
 * The lanes of a batch (see {@link laneOf}), in the order of their first message, and the lane
 * of the keyless messages without a partition. A small batch compares each message's partition
 * and key with the lanes found so far (no lane id string per message, no Map).
 */
function groupLanes(contexts: readonly ConsumerContext[]): {
  lanes: number[][];
  keyless: number[] | undefined;
} {
  const n = contexts.length;
  const lanes: number[][] = [];
  let keyless: number[] | undefined;
  if (n <= FEW_MESSAGES) {
    const partitions: (string | undefined)[] = [];
    const keys: (string | undefined)[] = [];
    for (let i = 0; i < n; i++) {
      const context = contexts[i]!;
      const partition = partitionOf(context);
      const key = keyOf(context);
      let l = 0;
      while (l < lanes.length && (partitions[l] !== partition || keys[l] !== key)) l++;
      if (l < lanes.length) {
        lanes[l]!.push(i);
        continue;
      }
      const created = [i];
      if (partition === undefined && key === undefined) keyless = created;
      lanes.push(created);
      partitions.push(partition);
      keys.push(key);
    }
    return { lanes, keyless };
  }
  // A batch is nearly always one partition: the keyed lanes of the first message's partition
  // are found by their key alone (no lane id string per message); any other by its lane id.
  const firstPartition = partitionOf(contexts[0]!);
  const ofFirst = new Map<string, number[]>();
  const byKey = new Map<string, number[]>();
  for (let i = 0; i < n; i++) {
    const context = contexts[i]!;
    const key = keyOf(context);
    if (
      key !== undefined &&
      firstPartition !== undefined &&
      partitionOf(context) === firstPartition
    ) {
      const lane = ofFirst.get(key);
      if (lane !== undefined) lane.push(i);
      else {
        const created = [i];
        ofFirst.set(key, created);
        lanes.push(created);
      }
      continue;
    }
    const id = laneOf(context);
    const lane = id === KEYLESS ? keyless : byKey.get(id);
    if (lane !== undefined) lane.push(i);
    else {
      const created = [i];
      if (id === KEYLESS) keyless = created;
      else byKey.set(id, created);
      lanes.push(created);
    }
  }
  return { lanes, keyless };
}

/** Resolves once `count` workers resolved; rejects with the first that rejects. */
class Settlement {
  readonly promise: Promise<void>;
  #left: number;
  #resolve!: () => void;
  #reject!: (error: unknown) => void;

  constructor(count: number) {
    this.#left = count;
    this.promise = new Promise<void>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  /** One worker finished. */
  one(): void {
    if (--this.#left === 0) this.#resolve();
  }

  fail(error: unknown): void {
    this.#reject(error);
  }
}

type Blocker = Disposition & { kind: 'redeliver' | 'retry' };

/** {@link runInLanes}: the message must run its chain. */
const RUN = Symbol('run');

/**
 * Joins the lanes of every copy and its first (see {@link runInLanes}). Returns the lanes in the
 * order of their first message, each joined one in input order, and the set of joined lanes;
 * undefined when every copy already shares its first's lane.
 */
function joinLanes(
  lanes: readonly number[][],
  copies: readonly (readonly [number, number])[],
  n: number,
): { lanes: number[][]; mixed: Set<number[]> } | undefined {
  const laneAt = new Array<number>(n);
  lanes.forEach((lane, l) => {
    for (const i of lane) laneAt[i] = l;
  });
  // Union-find over lane numbers; the root is the lane whose first message comes first.
  const parent = lanes.map((_, l) => l);
  const root = (l: number): number => {
    while (parent[l] !== l) l = parent[l] = parent[parent[l]!]!;
    return l;
  };
  let any = false;
  for (const [copy, first] of copies) {
    const a = root(laneAt[copy]!);
    const b = root(laneAt[first]!);
    if (a === b) continue;
    any = true;
    if (a < b) parent[b] = a;
    else parent[a] = b;
  }
  if (!any) return undefined;
  const members = new Map<number, number[][]>();
  for (let l = 0; l < lanes.length; l++) {
    const r = root(l);
    const group = members.get(r);
    if (group === undefined) members.set(r, [lanes[l]!]);
    else group.push(lanes[l]!);
  }
  const result: number[][] = [];
  const mixed = new Set<number[]>();
  for (const [, group] of members) {
    if (group.length === 1) {
      result.push(group[0]!);
      continue;
    }
    const lane = group.flat().sort((x, y) => x - y);
    mixed.add(lane);
    result.push(lane);
  }
  return { lanes: result, mixed };
}

function heldBack(context: ConsumerContext, blocker: Blocker): Disposition {
  return {
    kind: 'redeliver',
    reason: `held back: an earlier message of ${describeLane(context)} in this batch is ${blocker.kind === 'retry' ? 'retried' : 'redelivered'}`,
    delayMs: blocker.delayMs,
    // A held-back message shares its blocker's fate: when the store is down (a pause), it is
    // paused too, so the transport never reads it as a reason to keep fetching.
    pause: blocker.kind === 'redeliver' && blocker.pause,
  };
}

/** The topic-partition of a message, when its transport has partitions. */
function partitionOf(context: ConsumerContext): string | undefined {
  const { origin } = context.message;
  if (origin?.partition === undefined) return undefined;
  // A batch is nearly always one partition: reuse its id instead of building it per message.
  if (origin.topic !== lastTopic || origin.partition !== lastPartition) {
    lastTopic = origin.topic;
    lastPartition = origin.partition;
    lastPartitionId = `${origin.topic}\u0000${origin.partition}`;
  }
  return lastPartitionId;
}
let lastTopic = '';
let lastPartition = Number.NaN; // never equal: the first call always builds its id
let lastPartitionId = '';

/** The ordering key of a message: the transport's record key, else `partitionkey`, else `sagaid`. */
function keyOf(context: ConsumerContext): string | undefined {
  const { envelope, message } = context;
  return (
    message.origin?.key ??
    envelope?.partitionkey ??
    envelope?.sagaid ??
    message.message.headers['partitionkey'] ??
    message.message.headers['sagaid']
  );
}

/** The lane of the keyless messages without a partition (RabbitMQ): in order, never blocking. */
const KEYLESS = '';

/**
 * The order lane of a message: its key within its partition (keyless messages of a partition
 * share one lane); without a partition, its key, and the keyless ones share {@link KEYLESS}.
 */
function laneOf(context: ConsumerContext): string {
  const partition = partitionOf(context);
  const key = keyOf(context);
  if (partition === undefined) return key === undefined ? KEYLESS : `k\u0000${key}`;
  return key === undefined ? `p\u0000${partition}` : `p\u0000${partition}\u0000k${key}`;
}

function describeLane(context: ConsumerContext): string {
  const { origin } = context.message;
  const key = keyOf(context);
  const where =
    origin?.partition === undefined ? '' : `partition ${origin.topic}[${origin.partition}]`;
  if (key === undefined) return where;
  return where === '' ? `key "${key}"` : `key "${key}" of ${where}`;
}

/**
 * Writes the done marks the batch's handlers left, in ONE `completeMany`, and turns the
 * dispositions of messages whose mark is not durable into `redeliver`: a lost lease (someone
 * else may run it; the dedupe store absorbs the repeat) without a pause, a store failure with one.
 */
async function settleDoneMarks(
  contexts: readonly ConsumerContext[],
  dispositions: Disposition[],
  window: ClaimWindow,
  policy: ClassifyPolicy,
): Promise<void> {
  const indexes: number[] = [];
  const entries: { key: string; token: string; result?: string }[] = [];
  for (let i = 0; i < contexts.length; i++) {
    const mark = takePendingMark(contexts[i]!);
    if (mark === undefined) continue;
    const d = dispositions[i];
    if (d?.kind !== 'ack' || d.outcome !== 'handled') {
      // A middleware outside the idempotent step decided otherwise after the handler, or a
      // timed-out handler finished late: the message comes again, so free the key, do not mark it.
      await window.step.store.release(mark.key, mark.token).catch(() => undefined);
      continue;
    }
    indexes.push(i);
    entries.push(mark);
  }
  if (entries.length === 0) return;
  let owned: boolean[];
  try {
    // The step's resolved options carry `ttlMs` (no options object per batch).
    owned = await window.step.store.completeMany(entries, window.step.options);
  } catch (error) {
    // The effects happened but their marks are not durable: acknowledge none of them. Their
    // leases expire and the redelivery runs them again, with the same idempotency keys.
    const reason = `handler succeeded but the done mark could not be stored: ${error instanceof Error ? error.message : String(error)}`;
    for (const i of indexes) {
      contexts[i]!.logger.error({ err: error }, 'done marks of the batch could not be stored');
      dispositions[i] = {
        kind: 'redeliver',
        reason,
        delayMs: policy.unavailableDelayMs,
        pause: true,
      };
    }
    return;
  }
  for (let j = 0; j < indexes.length; j++) {
    if (owned[j] === true) continue;
    const i = indexes[j]!;
    contexts[i]!.logger.warn(
      { key: entries[j]!.key, leaseMs: window.step.options.leaseMs },
      'dedupe lease lost before the done mark was written; not acknowledged. Raise leaseMs',
    );
    dispositions[i] = {
      kind: 'redeliver',
      reason: 'the dedupe lease was lost before the done mark was written',
      delayMs: policy.inProgressDelayMs,
      pause: false,
    };
  }
}

/**
 * After the done marks: a copy acknowledged as a duplicate of its runner's mark keeps that only
 * when the runner's own disposition is still `ack` `handled` (its mark is durable). Otherwise
 * (the mark lost its lease or could not be written, or a middleware decided otherwise after the
 * handler) the copy is not acknowledged either: it is redelivered as its runner is (or, when the
 * runner was retried or dead-lettered after its handler, redelivered without a pause), and the
 * dedupe store decides when it comes again.
 */
function settleCopies(
  contexts: readonly ConsumerContext[],
  dispositions: Disposition[],
  shared: readonly { claim: SharedClaim; indexes: number[] }[],
  policy: ClassifyPolicy,
): void {
  for (const { claim, indexes } of shared) {
    if (claim.followers.length === 0) continue;
    const runnerIndex = indexes.find((i) => contexts[i] === claim.runner);
    const final = runnerIndex === undefined ? undefined : dispositions[runnerIndex];
    if (final?.kind === 'ack' && final.outcome === 'handled') continue;
    for (const follower of claim.followers) {
      const i = indexes.find((x) => contexts[x] === follower);
      const d = i === undefined ? undefined : dispositions[i];
      if (i === undefined || d?.kind !== 'ack' || d.outcome !== 'duplicate') continue;
      dispositions[i] = {
        kind: 'redeliver',
        reason: `a copy of a message of this batch that was not acknowledged (${final === undefined ? 'unknown' : final.kind === 'redeliver' ? final.reason : final.kind})`,
        delayMs: final?.kind === 'redeliver' ? final.delayMs : policy.inProgressDelayMs,
        pause: final?.kind === 'redeliver' && final.pause,
      };
    }
  }
}
