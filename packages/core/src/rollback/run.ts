import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { BacktrackError } from '../errors/BacktrackError.js';
import { ConnectionAccessError } from '../errors/ConnectionAccessError.js';
import {
  appendAndMarkPublished,
  PublishState,
  type Journal,
  type JournalAppend,
} from '../journal/Journal.js';
import { createDefaultLogger } from '../logging/logger.js';
import type { OutgoingMessage, Transport } from '../transport/Transport.js';
import { RollbackConfigError, RollbackLeaseLostError, RollbackRunLockedError } from './errors.js';
import type { EventRegistry } from '../schema/EventRegistry.js';
import type { CompensationRegistry } from './compensations.js';
import {
  hasItems,
  plannedBody,
  planPages,
  rollbackVersion,
  type NeedsPersonItem,
  type RollbackPlan,
  type RollbackPlanItem,
  type RollbackPlanSummary,
  type SagaRollbackItem,
} from './plan.js';
import { totalItems } from './InMemoryRollbackProgressStore.js';
import { traceRollback } from '../telemetry/rollback.js';
import {
  ItemState,
  RunStatus,
  type ItemProgress,
  type ItemUpdate,
  type RollbackProgressStore,
  type RollbackSummary,
  type RunCheckpoint,
} from './RollbackProgressStore.js';

/**
 * What a rollback needs from the saga engine (`SagaEngine` satisfies it). `compensate`, when the
 * engine has it, compensates a saga whatever its state; otherwise `cancel` is used, which only
 * works while the saga has not passed its pivot.
 */
export interface SagaCompensator {
  cancel(sagaId: string, reason?: string): Promise<{ status: string }>;
  compensate?(sagaId: string, reason?: string): Promise<{ status: string }>;
  get?(sagaId: string): Promise<{ status: string } | undefined>;
}

/** Options of {@link runRollback}. */
export interface RunRollbackOptions {
  /** The run's id: resuming uses the same id. */
  runId: string;
  /** Who runs it, shown to a second runner that finds the run locked. @default `<hostname>:<pid>` */
  owner?: string;
  /** The run's lease, renewed in the background every third of it, in ms. A killed runner frees it after this. @default 30_000 */
  leaseMs?: number;
  /** How long to wait for a lease another runner holds before failing, in ms. @default 0 */
  waitForLeaseMs?: number;
  /** Items per transport call (and per progress write). @default 100 */
  batchSize?: number;
  /**
   * Batches published at once. Items that share an ordering key (a saga id, an original or a
   * compensating message key) always go through the same lane, one batch after the other, so
   * their order is the plan's order. @default 4
   */
  batchesInFlight?: number;
  /** Sagas compensated at once through the saga engine (their progress is written together). @default 8 */
  sagasInFlight?: number;
  /** Tries per batch before its items are marked failed. @default 3 */
  publishAttempts?: number;
  /**
   * Effects per page: the run plans (or takes from a plan in memory) this many effects, runs
   * them, then checkpoints past them in the progress store and forgets their finished items, so
   * memory and the stored state stay bounded whatever the plan's size. The next page is planned,
   * and its first batches prepared, while one runs, and a page's checkpoint is written while the
   * next one publishes: up to three pages are held at once. A page with failed items ends the run
   * (status `failed`; resume retries them).
   * @default 2_000
   */
  pageSize?: number;
  /** Plan only: nothing is published or stored; the result says what a run would do. */
  dryRun?: boolean;
  /** Called after every item changes state. Exceptions are ignored. */
  onProgress?: (event: RollbackProgressEvent) => void;
  /**
   * Aborting stops the run after the batches with the broker (a batch already prepared is left
   * `publishing`, not published); resume later with the same run id.
   */
  signal?: AbortSignal;
}

/** Defaults of {@link RunRollbackOptions}. */
export const DEFAULT_RUN_ROLLBACK_OPTIONS = {
  leaseMs: 30_000,
  waitForLeaseMs: 0,
  batchSize: 100,
  batchesInFlight: 4,
  sagasInFlight: 8,
  publishAttempts: 3,
  pageSize: 2_000,
} as const;

export interface RollbackProgressEvent {
  runId: string;
  itemId: string;
  state: ItemState;
  /** Items finished (done, skipped, failed or for a person) out of `total`. */
  finished: number;
  total: number;
}

/** Collaborators of {@link runRollback}. */
export interface RunRollbackDependencies {
  /** The rollback's own messages are journaled too (version `rollback:<planId>`). */
  journal: Journal;
  transport: Transport;
  progressStore: RollbackProgressStore;
  /**
   * Required to run a {@link RollbackPlanSummary} (from {@link summarizeRollback}, or a stored
   * run's plan): its items are planned again from the journal, page by page.
   */
  registry?: EventRegistry;
  /** With `registry`, for a summary of the compensate strategy. */
  compensations?: CompensationRegistry;
  /** Compensates the plan's sagas. Without it, they are handed to a person. */
  sagas?: SagaCompensator;
  /** @default createDefaultLogger() */
  logger?: Logger;
  /** @default setTimeout-based */
  sleep?: (ms: number) => Promise<void>;
}

export interface RollbackRunResult {
  runId: string;
  planId: string;
  /** `running` when aborted before the end (resume it); `dry-run` when nothing ran (`dryRun`). */
  status: RunStatus | 'dry-run';
  dryRun: boolean;
  summary: RollbackSummary;
  /** Item ids a person must look at, with the reason. */
  needsPerson: { itemId: string; reason: string }[];
  /** Item ids that failed, with the last error. */
  failed: { itemId: string; error: string }[];
}

const FINISHED: ReadonlySet<ItemState> = new Set([
  ItemState.Done,
  ItemState.Skipped,
  ItemState.NeedsPerson,
]);

/**
 * Applies a plan: publishes its messages in plan order, compensates its sagas, and records every
 * step in the progress store, so the run can be stopped (or killed) and resumed with the same
 * `runId` from where it was.
 *
 * The plan is run page by page (`pageSize` effects): a {@link RollbackPlan} from
 * {@link planRollback} is paged in memory; a {@link RollbackPlanSummary} (from
 * {@link summarizeRollback}, or a stored run's plan) is planned again from the journal page by
 * page, which needs `registry` (and `compensations`) in the dependencies and keeps memory bounded
 * whatever the plan's size. After each page the run checkpoints: the store keeps the cursor after
 * it and the page's totals, and forgets its done and skipped items. Pages run one after the
 * other, so the plan's order per saga and per key holds across pages.
 *
 * Guarantees:
 * - One runner at a time: a lease with a token guards the run; progress writes are fenced by the
 *   token, so a runner that lost its lease stops with `RollbackLeaseLostError` instead of
 *   overwriting the one that took over. A second runner gets `RollbackRunLockedError`.
 * - Every batch is journaled and fenced by the lease BEFORE its messages go out; its journal
 *   records are marked published AFTER the broker acknowledged them (with the lane's batch after
 *   next). A published item's progress is those marks: the progress store holds no entry for it
 *   (only failed items, items for a person, skipped ones, sagas, and the retries of items it
 *   already holds), and `done` items are counted in the checkpoint after their page. Resume starts
 *   at the checkpoint's page, reads the journal for the items of the pages a killed runner may
 *   have reached, skips those whose every record is marked published (or stored `done`), and
 *   publishes the others again. The only window for a second publish is a crash between the
 *   broker's acknowledgement and the journal mark; the second copy carries the SAME
 *   deterministic envelope id, so every idempotent consumer drops it: a compensation takes effect
 *   once.
 * - Sagas are compensated through the saga engine, which is itself idempotent per saga.
 */
export function runRollback(
  plan: RollbackPlanSummary,
  options: RunRollbackOptions & { dryRun: true },
  dependencies?: RunRollbackDependencies,
): Promise<RollbackRunResult>;
export function runRollback(
  plan: RollbackPlanSummary,
  options: RunRollbackOptions,
  dependencies: RunRollbackDependencies,
): Promise<RollbackRunResult>;
export async function runRollback(
  plan: RollbackPlanSummary,
  options: RunRollbackOptions,
  dependencies?: RunRollbackDependencies,
): Promise<RollbackRunResult> {
  // Telemetry (issue 18): a span per run, its progress as span events (a no-op without an SDK).
  return traceRollback(plan, options, (traced) => runUntraced(plan, traced, dependencies));
}

async function runUntraced(
  plan: RollbackPlanSummary,
  options: RunRollbackOptions,
  dependencies: RunRollbackDependencies | undefined,
): Promise<RollbackRunResult> {
  const o = resolveRunOptions(plan, options);
  const runId = o.runId;
  // A dry run reads only the plan: it needs no journal, transport or progress store.
  if (o.dryRun) return dryRunResult(plan, runId);
  if (!dependencies) {
    throw new RollbackConfigError(
      'dependencies',
      'runRollback needs its dependencies (journal, transport, progressStore) unless dryRun is set',
    );
  }
  if (!hasItems(plan) && !dependencies.registry) {
    throw new RollbackConfigError(
      'registry',
      'a plan summary is planned again from the journal page by page: give the event registry (and the compensations) in the dependencies',
    );
  }

  const { progressStore: store } = dependencies;
  const sleep = dependencies.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const logger = (dependencies.logger ?? createDefaultLogger()).child({
    component: 'rollback',
    runId: runId,
    planId: plan.planId,
  });

  const { created } = await store.createRun(runId, plan);
  const lease = await holdLease(store, o, sleep, logger);
  try {
    const checkpoint = (await store.getCheckpoint(runId)) ?? {
      complete: false,
      pages: 0,
      finished: 0,
      forgotten: { done: 0, skipped: 0 },
      totals: emptyTotals(),
    };
    const { progress, write, writeLane, stored } = await loadProgress(
      store,
      o,
      lease.token,
      totalItems(plan),
      checkpoint.forgotten,
    );
    const stop = { fatal: false, failedBatchesInARow: 0 };
    const run: RunContext = {
      plan,
      o,
      journal: dependencies.journal,
      transport: dependencies.transport,
      sagas: dependencies.sagas,
      sleep,
      logger,
      checkLease: lease.check,
      progress,
      write,
      writeLane,
      stored,
      // A run that existed before (a resume) learns from the journal which items a killed runner
      // published (their progress is not stored, see `mustStore`).
      journalCheck: created ? 0 : JOURNAL_CHECK_PAGES,
      stop,
      stopped: () => stop.fatal || o.signal?.aborted === true || stop.failedBatchesInARow >= 3,
      sagasCounted: new Set(),
    };
    const { published, last } = await runPages(run, store, lease.token, checkpoint, dependencies);
    return await finish(run, store, lease.token, published, checkpoint, last);
  } finally {
    await lease.release();
  }
}

/** The items of one page, run together, then checkpointed past. */
interface RunPage {
  items: readonly RollbackPlanItem[];
  sagas: readonly SagaRollbackItem[];
  needsPerson: readonly NeedsPersonItem[];
  skipped: RollbackPlan['skipped'];
  /** Where the next page starts (absent after the last page). */
  cursor?: string;
}

/** A cursor into a plan held in memory, or into the journal. */
const MEMORY_CURSOR = 'plan:';
const JOURNAL_CURSOR = 'journal:';

/**
 * The plan's pages from a checkpoint's cursor: sliced from a plan in memory (needs-person and
 * skipped entries, then the items, then the sagas), or planned from the journal.
 */
async function* pagesOf(
  plan: RollbackPlanSummary,
  cursor: string | undefined,
  pageSize: number,
  dependencies: RunRollbackDependencies,
  runId: string,
): AsyncGenerator<RunPage> {
  const kind = hasItems(plan) ? MEMORY_CURSOR : JOURNAL_CURSOR;
  if (cursor !== undefined && !cursor.startsWith(kind)) {
    throw new RollbackConfigError(
      'plan',
      `run ${runId} was started from a plan ${kind === MEMORY_CURSOR ? 'summary (streamed from the journal)' : 'with its items (planRollback)'}: resume it with the same kind of plan`,
    );
  }
  const from = cursor?.slice(kind.length);
  if (hasItems(plan)) {
    const parts = [plan.needsPerson, plan.skipped, plan.items, plan.sagas] as const;
    const total = parts.reduce((n, p) => n + p.length, 0);
    for (let start = from === undefined ? 0 : Number(from); start < total; start += pageSize) {
      const end = Math.min(total, start + pageSize);
      const sliced = [] as unknown[][];
      let offset = 0;
      for (const part of parts) {
        sliced.push(
          part.slice(Math.max(0, start - offset), Math.max(0, end - offset)) as unknown[],
        );
        offset += part.length;
      }
      const page: RunPage = {
        needsPerson: sliced[0] as NeedsPersonItem[],
        skipped: sliced[1] as RollbackPlan['skipped'],
        items: sliced[2] as RollbackPlanItem[],
        sagas: sliced[3] as SagaRollbackItem[],
      };
      if (end < total) page.cursor = `${MEMORY_CURSOR}${end}`;
      yield page;
    }
    if (total === 0) yield { needsPerson: [], skipped: [], items: [], sagas: [] };
    return;
  }
  const deps = {
    journal: dependencies.journal,
    registry: dependencies.registry!,
    compensations: dependencies.compensations,
  };
  // The run's own pages: their messages' bodies are never serialised, so no base64 is made.
  for await (const page of planPages(plan, deps, from, pageSize, true)) {
    const { cursor: next, ...rest } = page;
    yield next === undefined ? rest : { ...rest, cursor: `${JOURNAL_CURSOR}${next}` };
  }
}

/** What one page did, once it ran. */
interface PageOutcome {
  totals: RunCheckpoint['totals'];
  /** Items of the page now finished (done, skipped, for a person). */
  finished: number;
  /** Items still to do (failed, or not reached): the run cannot checkpoint past the page. */
  unfinished: number;
  /** The page's items the checkpoint forgets: done and skipped. */
  forget: string[];
}

/**
 * Runs the pages from the checkpoint on, the next page planned while one runs, checkpointing
 * after each finished page. Stops at a page with unfinished items (failed, aborted, stopped).
 * Resolves with the messages published and the outcome of the last page when it was not
 * checkpointed (its totals still belong in the summary).
 *
 * A page whose every batch the broker acknowledged (no failure, not stopped, no sagas) is closed
 * in the background: its lanes' last `done` marks, then its checkpoint, are written while the next
 * page publishes, so the broker does not wait for those writes between pages. The next page still
 * publishes only after every publish of this one was acknowledged (order per key and saga across
 * pages), and checkpoints stay in page order (the next one waits for this one).
 */
async function runPages(
  run: RunContext,
  store: RollbackProgressStore,
  token: string,
  checkpoint: RunCheckpoint,
  dependencies: RunRollbackDependencies,
): Promise<{ published: number; last?: PageOutcome }> {
  if (checkpoint.complete) return { published: 0 };
  const { o, progress } = run;
  const pages = pagesOf(run.plan, checkpoint.cursor, o.pageSize, dependencies, o.runId);
  let next: Promise<IteratorResult<RunPage, undefined>> = pages.next();
  let published = 0;
  // The checkpoint of the page closed in the background, if any: awaited before the next one.
  let closing: Promise<void> = Promise.resolve();
  // Writes the checkpoint past a page whose items all finished (after the previous checkpoint).
  const checkpointPast = async (page: RunPage, outcome: PageOutcome): Promise<void> => {
    const done: RunCheckpoint = {
      complete: page.cursor === undefined,
      pages: checkpoint.pages + 1,
      finished: checkpoint.finished + outcome.finished,
      forgotten: {
        done: checkpoint.forgotten.done + outcome.forget.length - page.skipped.length,
        skipped: checkpoint.forgotten.skipped + page.skipped.length,
      },
      totals: addTotals(checkpoint.totals, outcome.totals),
    };
    if (page.cursor !== undefined) done.cursor = page.cursor;
    run.checkLease();
    // The store forgets the entries it holds; the others (a lane's done marks) were never stored.
    const held = outcome.forget.filter((id) => run.stored.has(id));
    await store.setCheckpoint(o.runId, token, done, held);
    for (const id of outcome.forget) delete progress[id];
    for (const id of held) run.stored.delete(id);
    Object.assign(checkpoint, done);
  };
  // The page publishing now, and the one after it, started early when this one has no sagas: its
  // lanes prepare their first batch (`publishing` marks, journal append) during this page's last
  // publishes, and publish nothing before every publish of this page ended clean (`gate`).
  let ahead: { page: RunPage; ran: Promise<PageRun>; nearEnd: Promise<void> } | undefined;
  const startPage = (page: RunPage, gate: Promise<boolean>) => {
    // Planning the next page (journal reads, encoding) overlaps this page's publishing.
    next =
      page.cursor === undefined ? Promise.resolve({ done: true, value: undefined }) : pages.next();
    next.catch(() => undefined);
    let lastBatches = () => {};
    const nearEnd = new Promise<void>((r) => (lastBatches = r));
    const ran = runPage(run, page, gate, lastBatches);
    // Resolved also when the page ends early (no lanes, a failure).
    ran.then(lastBatches, lastBatches);
    return { page, ran, nearEnd };
  };
  try {
    for (;;) {
      let current = ahead;
      ahead = undefined;
      if (current === undefined) {
        const step = await next;
        if (step.done) {
          await closing;
          return { published };
        }
        current = startPage(step.value, CLEAN);
      }
      const { page } = current;
      if (page.cursor !== undefined && page.sagas.length === 0 && !run.stopped()) {
        // Not before every lane of this page publishes its last batch: earlier, the next page's
        // preparation would only compete with this page's for the CPU and the store.
        await current.nearEnd;
        const step = await next;
        if (!step.done) {
          const gate = current.ran.then(
            (r) => r.clean && !run.stopped(),
            () => false,
          );
          ahead = startPage(step.value, gate);
        }
      }
      let ran: PageRun;
      try {
        ran = await current.ran;
      } catch (error) {
        // The page started ahead publishes nothing (its gate is closed); its writes end first.
        if (ahead) await ahead.ran.catch(() => undefined);
        ahead = undefined;
        throw error;
      }
      published += ran.published;
      // One macrotask turn per page: with stores that answer at once (in memory), the lease
      // heartbeat and other timers still run during a long run.
      await new Promise<void>((r) => setImmediate(r));
      if (ran.clean && page.cursor !== undefined && !run.stopped()) {
        // Every item of the page was acknowledged: only its last marks and its checkpoint are
        // left, written while the next page publishes. A failure there (a lost lease, the store
        // down) surfaces at the next page's end, or at the run's; the next page's own fenced
        // writes fail on a lost lease before it publishes.
        const previous = closing;
        closing = (async () => {
          await previous;
          await ran.settled;
          const outcome = pageOutcome(run, page);
          if (outcome.unfinished > 0) {
            // Cannot happen for a clean page; kept so a checkpoint never skips an item.
            throw new Error(
              `rollback page ended with ${outcome.unfinished} unfinished items after every batch was acknowledged`,
            );
          }
          await checkpointPast(page, outcome);
        })();
        closing.catch(() => undefined);
        continue;
      }
      // The page started ahead (if any) saw its gate closed: it published nothing.
      const aheadRan = ahead?.ran;
      ahead = undefined;
      // All ended before the run goes on or stops (no write of this run lands after it).
      await Promise.allSettled([closing, ran.settled, aheadRan]);
      if (aheadRan) await aheadRan.then((r) => r.settled);
      await closing;
      await ran.settled;
      const outcome = pageOutcome(run, page);
      if (outcome.unfinished > 0) return { published, last: outcome };
      await checkpointPast(page, outcome);
      if (checkpoint.complete || run.stopped()) return { published };
    }
  } finally {
    // A page closed in the background is waited for (a failure of it is already the run's).
    await closing.catch(() => undefined);
    if (ahead) await ahead.ran.then((r) => r.settled).catch(() => undefined);
    await pages.return(undefined).catch(() => undefined);
  }
}

/** A gate already open: the first page (or one after a page closed in place) publishes at once. */
const CLEAN: Promise<boolean> = Promise.resolve(true);

/** The smallest first batch of a lane on a page that publishes at once (see {@link runLane}). */
const FIRST_BATCH_MIN = 25;

/**
 * A lane's first batch on a page started with the broker idle: a quarter of `batchSize`, at
 * least {@link FIRST_BATCH_MIN} (so small batch sizes are unchanged), at most `batchSize`.
 */
function firstBatchSize(batchSize: number): number {
  return Math.min(batchSize, Math.max(FIRST_BATCH_MIN, Math.ceil(batchSize / 4)));
}

/** What one page's run did: its messages published and whether all of them were acknowledged. */
interface PageRun {
  published: number;
  /** Every batch of the page acknowledged, the run not stopped, no sagas in the page. */
  clean: boolean;
  /** The lanes' last writes (their `done` marks and journal marks): the page's progress after it. */
  settled: Promise<void>;
}

/** One page: its needs-person and skipped entries recorded, its items published, its sagas compensated. */
async function runPage(
  run: RunContext,
  page: RunPage,
  gate: Promise<boolean>,
  lastBatches: () => void,
): Promise<PageRun> {
  await recordUnpublished(run, page);
  const lanes = await publishLanes(run, page.items, gate, lastBatches);
  if (page.sagas.length > 0) {
    // The sagas' progress is read with the items' after them: close the lanes first.
    await lanes.settled;
    if (!run.stopped() && (await gate)) await compensateSagas(run, page.sagas);
    return { ...lanes, clean: false };
  }
  return lanes;
}

/** What a page did, from the progress its items reached. */
function pageOutcome(run: RunContext, page: RunPage): PageOutcome {
  const { progress } = run;
  const totals = emptyTotals();
  const forget: string[] = [];
  let finished = 0;
  let unfinished = 0;
  for (const item of page.items) {
    const state = progress[item.itemId]?.state;
    if (state === ItemState.Done) {
      totals[item.action === 'compensate' ? 'reversed' : 'replayed']++;
      forget.push(item.itemId);
      finished++;
    } else unfinished++;
  }
  for (const saga of page.sagas) {
    const state = progress[saga.itemId]?.state;
    if (state === ItemState.Done) {
      totals.reversed += saga.effects.length;
      // A saga whose effects span pages is compensated (and counted) once.
      if (!run.sagasCounted.has(saga.sagaId)) {
        run.sagasCounted.add(saga.sagaId);
        totals.sagasCompensated++;
      }
      forget.push(saga.itemId);
      finished++;
    } else if (state === ItemState.NeedsPerson) {
      totals.needsPerson += saga.effects.length;
      finished++;
    } else unfinished++;
  }
  for (const n of page.needsPerson) {
    if (progress[n.itemId]?.state === ItemState.NeedsPerson) {
      totals.needsPerson++;
      finished++;
    } else unfinished++;
  }
  for (const s of page.skipped) {
    if (progress[s.itemId]?.state === ItemState.Skipped) {
      totals.skipped++;
      forget.push(s.itemId);
      finished++;
    } else unfinished++;
  }
  return { totals, finished, unfinished, forget };
}

function emptyTotals(): RunCheckpoint['totals'] {
  return { reversed: 0, replayed: 0, skipped: 0, needsPerson: 0, sagasCompensated: 0 };
}

function addTotals(
  a: RunCheckpoint['totals'],
  b: RunCheckpoint['totals'],
): RunCheckpoint['totals'] {
  return {
    reversed: a.reversed + b.reversed,
    replayed: a.replayed + b.replayed,
    skipped: a.skipped + b.skipped,
    needsPerson: a.needsPerson + b.needsPerson,
    sagasCompensated: a.sagasCompensated + b.sagasCompensated,
  };
}

/** {@link RunRollbackOptions} with every default applied, checked. */
type ResolvedRunOptions = RunRollbackOptions & {
  -readonly [K in keyof typeof DEFAULT_RUN_ROLLBACK_OPTIONS]: number;
};

/** Applies the defaults and checks the options and the plan once, naming each bad field. */
function resolveRunOptions(
  plan: RollbackPlanSummary,
  options: RunRollbackOptions,
): ResolvedRunOptions {
  const o = { ...DEFAULT_RUN_ROLLBACK_OPTIONS, ...withoutUndefined(options) };
  const runId: string = options.runId;
  if (typeof runId !== 'string' || runId.length === 0) {
    throw new RollbackConfigError('runId', 'must be a non-empty string', o.runId);
  }
  for (const field of [
    'leaseMs',
    'batchSize',
    'batchesInFlight',
    'sagasInFlight',
    'publishAttempts',
    'pageSize',
  ] as const) {
    if (!Number.isSafeInteger(o[field]) || o[field] < 1) {
      throw new RollbackConfigError(field, 'must be a positive integer', o[field]);
    }
  }
  if (!plan || typeof plan.planId !== 'string' || typeof plan.counts !== 'object') {
    throw new RollbackConfigError('plan', 'must be a plan from planRollback or summarizeRollback');
  }
  return { ...o, runId };
}

/** The run's lease while this runner holds it. */
interface HeldLease {
  token: string;
  /** Throws the renewal's `RollbackLeaseLostError` once the lease was taken over. */
  check: () => void;
  /** Stops the heartbeat and releases the lease (a failure is only logged). */
  release: () => Promise<void>;
}

/**
 * Acquires the run's lease and renews it every third of its length (the heartbeat), so a long
 * batch or a slow saga compensation does not lose it. A failed renewal (taken over) stops the run
 * at the next check.
 */
async function holdLease(
  store: RollbackProgressStore,
  o: ResolvedRunOptions,
  sleep: (ms: number) => Promise<void>,
  logger: Logger,
): Promise<HeldLease> {
  const { runId } = o;
  const owner = o.owner ?? `${hostname()}:${process.pid}`;
  const { token } = await acquire(store, runId, owner, o.leaseMs, o.waitForLeaseMs, sleep);
  let leaseError: unknown;
  const heartbeat = setInterval(
    () => {
      store.renewLease(runId, token, o.leaseMs).catch((error: unknown) => {
        if (error instanceof RollbackLeaseLostError) leaseError = error;
        else logger.warn({ err: error }, 'could not renew the run lease; will retry');
      });
    },
    Math.max(50, Math.floor(o.leaseMs / 3)),
  );
  heartbeat.unref();
  return {
    token,
    // Off the hot path: the heartbeat renews the lease, and every progress write is fenced by the
    // token (a runner that lost the lease fails there, before it publishes anything more).
    check: () => {
      if (leaseError) throw leaseError;
    },
    release: async () => {
      clearInterval(heartbeat);
      await store
        .releaseLease(runId, token)
        .catch((err: unknown) => logger.warn({ err }, 'could not release the run lease'));
    },
  };
}

/** The run's progress as this runner knows it, and how to change it. */
interface RunProgress {
  progress: Record<string, ItemProgress>;
  /** Stores the updates (fenced by the lease token), then applies and reports them. */
  write: (updates: ItemUpdate[]) => Promise<void>;
  /**
   * A lane's marks: stores only those the store must hold (see {@link mustStore}), then applies
   * and reports them all. With `fence`, a call with nothing to store still checks (and renews) the
   * lease, so a runner that lost it publishes nothing more. `silent`: counted, not reported to
   * `onProgress` (items a killed runner finished, already reported by it).
   */
  writeLane: (updates: ItemUpdate[], fence: boolean, silent?: boolean) => Promise<void>;
}

/** Loads the stored progress (a resumed run starts from it) and keeps the finished count. */
async function loadProgress(
  store: RollbackProgressStore,
  o: ResolvedRunOptions,
  token: string,
  total: number,
  forgotten: { done: number; skipped: number },
): Promise<RunProgress & { stored: Set<string> }> {
  const { runId } = o;
  const progress = await store.getItems(runId);
  // What a killed runner finished counts from the start: the items checkpointed pages forgot,
  // and every finished item the store still holds (the current page's, and earlier pages' items
  // for a person, which are kept). A resumed run's progress never goes backwards.
  let finished =
    forgotten.done +
    forgotten.skipped +
    Object.values(progress).filter((p) => FINISHED.has(p.state)).length;
  const report = (updates: readonly ItemUpdate[], silent = false) => {
    for (const u of updates) {
      const before = progress[u.itemId]?.state;
      if (FINISHED.has(u.state) && !(before && FINISHED.has(before))) finished++;
      // Two of these per effect: an entry without an error is one shared (frozen) object per state.
      let p: ItemProgress;
      if (u.error) p = { state: u.state, attempts: 0, updatedAt: '', error: u.error };
      else p = plainProgress(u.state);
      progress[u.itemId] = p;
      if (o.onProgress === undefined || silent) continue;
      try {
        o.onProgress({ runId: runId, itemId: u.itemId, state: u.state, finished, total });
      } catch {
        // A progress callback never stops a rollback.
      }
    }
  };
  // The items the store holds an entry of (loaded, or written since): their later marks are
  // stored too, so the store never shows a stale `failed` (or an earlier version's `publishing`).
  const stored = new Set(Object.keys(progress));
  const write = async (updates: ItemUpdate[]) => {
    if (updates.length === 0) return;
    await store.setItems(runId, token, updates);
    for (const u of updates) stored.add(u.itemId);
    report(updates);
  };
  const writeLane = async (updates: ItemUpdate[], fence: boolean, silent = false) => {
    const kept = updates.filter((u) => mustStore(u, stored));
    if (kept.length > 0) {
      await store.setItems(runId, token, kept);
      for (const u of kept) stored.add(u.itemId);
    } else if (fence) await store.renewLease(runId, token, o.leaseMs);
    report(updates, silent);
  };
  return { progress, write, writeLane, stored };
}

/**
 * Whether a lane's mark goes to the store. A plain `publishing` or `done` mark does not (issue 14:
 * two hash entries per effect were a third of the run's Redis time): an item is done once its
 * journal records are marked published, which {@link appendAndMarkPublished} writes with the next
 * batch, and a resumed run reads the journal to learn it (see {@link journalDone}). Errors, and
 * marks of an item the store already holds (a failed one retried), are stored.
 */
function mustStore(u: ItemUpdate, stored: ReadonlySet<string>): boolean {
  return (
    u.error !== undefined ||
    (u.state !== ItemState.Publishing && u.state !== ItemState.Done) ||
    stored.has(u.itemId)
  );
}

/** The run's own progress entry of an item in `state` with no error: read only, shared. */
const PLAIN_PROGRESS = new Map<ItemState, ItemProgress>();

function plainProgress(state: ItemState): ItemProgress {
  let p = PLAIN_PROGRESS.get(state);
  if (p === undefined) {
    p = Object.freeze({ state, attempts: 0, updatedAt: '' }) as ItemProgress;
    PLAIN_PROGRESS.set(state, p);
  }
  return p;
}

/** What the phases of one run share. */
interface RunContext extends RunProgress {
  plan: RollbackPlanSummary;
  o: ResolvedRunOptions;
  journal: Journal;
  transport: Transport;
  sagas: SagaCompensator | undefined;
  sleep: (ms: number) => Promise<void>;
  logger: Logger;
  checkLease: () => void;
  /** `fatal`: a lane failed; `failedBatchesInARow`: across lanes, reset by a good batch. */
  stop: { fatal: boolean; failedBatchesInARow: number };
  /** True once the run must stop: a lane failed, the signal aborted, or the broker looks down. */
  stopped: () => boolean;
  /** Sagas counted as compensated by this runner (a saga's effects may span pages). */
  sagasCounted: Set<string>;
  /** The items the store holds an entry of. */
  stored: Set<string>;
  /**
   * Pages left to check against the journal before they publish (a resume): reset to
   * {@link JOURNAL_CHECK_PAGES} by a page with an item found published, so the check ends two
   * pages after the last one a killed runner reached.
   */
  journalCheck: number;
}

/** See {@link RunContext.journalCheck}. */
const JOURNAL_CHECK_PAGES = 2;

/** Journal reads in flight at once while a resumed run checks a page. */
const JOURNAL_CHECK_READS = 256;

/**
 * The items of `items` whose every message's journal record is marked published: a killed runner
 * published them (the broker acknowledged each batch before its marks were written). An item with
 * a record not found or still pending is published again, under the same ids.
 */
async function journalDone(
  journal: Journal,
  items: readonly RollbackPlanItem[],
): Promise<RollbackPlanItem[]> {
  const ids = items.flatMap((i) => i.messages.map((m) => m.id));
  const published = new Set<string>();
  for (let start = 0; start < ids.length; start += JOURNAL_CHECK_READS) {
    const records = await Promise.all(
      ids.slice(start, start + JOURNAL_CHECK_READS).map((id) => journal.get(id)),
    );
    for (const r of records) if (r?.state === PublishState.Published) published.add(r.id);
  }
  return items.filter((i) => i.messages.length > 0 && i.messages.every((m) => published.has(m.id)));
}

/** Entries that need no publishing are recorded first, so `status` shows them at once. */
async function recordUnpublished({ progress, write }: RunContext, page: RunPage): Promise<void> {
  await write([
    ...page.needsPerson
      .filter((n) => progress[n.itemId]?.state !== ItemState.NeedsPerson)
      .map((n) => ({
        itemId: n.itemId,
        state: ItemState.NeedsPerson,
        error: `${n.reason}: ${n.message}`,
      })),
    ...page.skipped
      .filter((s) => progress[s.itemId]?.state !== ItemState.Skipped)
      .map((s) => ({ itemId: s.itemId, state: ItemState.Skipped, error: s.message })),
  ]);
}

/**
 * Publishes the items not done yet through `batchesInFlight` lanes; resolves once every lane's
 * publishes ended, with the messages published and the lanes' last writes (`settled`, not
 * awaited). A lane that throws (a lost lease, a store down) stops the others.
 */
async function publishLanes(
  run: RunContext,
  items: readonly RollbackPlanItem[],
  gate: Promise<boolean>,
  lastBatches: () => void,
): Promise<PageRun> {
  const { progress, logger, o } = run;
  let todo = items.filter((i) => progress[i.itemId]?.state !== ItemState.Done);
  if (run.journalCheck > 0 && todo.length > 0) {
    const published = await journalDone(run.journal, todo);
    run.journalCheck = published.length > 0 ? JOURNAL_CHECK_PAGES : run.journalCheck - 1;
    if (published.length > 0) {
      await run.writeLane(
        published.map((i) => ({ itemId: i.itemId, state: ItemState.Done })),
        false,
        true,
      );
      todo = todo.filter((i) => progress[i.itemId]?.state !== ItemState.Done);
    }
  }
  if (todo.length < items.length) {
    logger.info(
      { alreadyDone: items.length - todo.length, left: todo.length },
      'resuming rollback',
    );
  }
  let published = 0;
  let clean = true;
  const settled: Promise<void>[] = [];
  const lanes = lanesOf(todo, o.batchesInFlight);
  // Called once every lane publishes its last batch (or ended).
  let left = lanes.length;
  const laneAtEnd = () => {
    if (--left === 0) lastBatches();
  };
  if (left === 0) lastBatches();
  try {
    await inParallel(
      lanes,
      async (items) => {
        const lane = await runLane(run, items, gate, laneAtEnd);
        // Not `published += (await ...).published`: that reads `published` before the others add.
        published += lane.published;
        if (!lane.clean) clean = false;
        lane.settled.catch(() => undefined);
        settled.push(lane.settled);
      },
      () => {
        run.stop.fatal = true;
      },
    );
  } catch (error) {
    // The other lanes' last writes end before the run does (as when they were awaited in the lane).
    await Promise.allSettled(settled);
    throw error;
  }
  const all = Promise.all(settled).then(() => undefined);
  // Observed here: a caller that stops on an earlier error may never await it.
  all.catch(() => undefined);
  return { published, clean: clean && !run.stopped(), settled: all };
}

/**
 * One lane publishes its batches one after the other (their order is the plan's), and prepares
 * the next batch while one is with the broker: its `publishing` marks (in ONE progress write with
 * the `done` or `failed` marks of the batch acknowledged before) and its journal append (which
 * also carries the journal's `published` marks of that batch, see
 * {@link appendAndMarkPublished}) are written during the publish, and the next publish waits for
 * both. A batch's `done` marks are thus written with the batch after next, always after the
 * broker acknowledged it; the lane's last marks are written when it ends. Resolves with the
 * messages published.
 */
async function runLane(
  run: RunContext,
  items: readonly RollbackPlanItem[],
  gate: Promise<boolean>,
  atEnd: () => void,
): Promise<{ published: number; clean: boolean; settled: Promise<void> }> {
  const { o, stop, stopped } = run;
  let published = 0;
  // Every batch acknowledged and the lane not stopped early.
  let clean = true;
  let threw = true;
  let settled: Promise<void> = Promise.resolve();
  let ended = false;
  const atLastBatch = () => {
    if (ended) return;
    ended = true;
    atEnd();
  };
  // The progress marks of the last batch the broker answered, not written yet.
  let carry: ItemUpdate[] = [];
  // The journal's `published` marks of the last acknowledged batch, for the next append.
  let marks: JournalMarks = { ids: [], done: true };
  // Every set of marks handed to an append: those no append carried are written at the end.
  const handed: JournalMarks[] = [];
  const prepare = (start: number, size: number): PreparedBatch => {
    run.checkLease();
    handed.push(marks);
    const prepared = prepareBatch(run, items.slice(start, start + size), carry, marks);
    carry = [];
    marks = { ids: [], done: true };
    return prepared;
  };
  // With nothing else publishing (the run's first page), the broker waits for this lane's first
  // batch: a smaller one is written (progress, journal) and sent sooner.
  const first = gate === CLEAN ? firstBatchSize(o.batchSize) : o.batchSize;
  let next: PreparedBatch | undefined = stopped() ? undefined : prepare(0, first);
  try {
    for (let start = 0; next !== undefined;) {
      const current: PreparedBatch = next;
      next = undefined;
      // The batch's `publishing` marks must be stored (fenced by the lease) before it goes out.
      await current.written;
      // The page before this one (if it started ahead) must have ended clean before any publish.
      if (start === 0 && !(await gate)) {
        clean = false;
        break;
      }
      // Aborted (or another lane failed) while the marks were written: publish nothing more.
      if (stopped()) {
        clean = false;
        break;
      }
      const following = start + current.batch.length;
      start = following;
      const { batch } = current;
      // The publish leaves first: the next batch's preparation (building its records and
      // writes) waits one macrotask turn, so the transport's send, run in microtasks, is not
      // queued behind it with the broker idle.
      const publishing = publishPrepared(run, current);
      publishing.catch(() => undefined);
      if (following < items.length) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        next = prepare(following, o.batchSize);
      } else atLastBatch();
      const error = await publishing;
      // Added to what no prepared batch took yet (the lane's last batches).
      if (error === undefined) {
        published += current.messages.length;
        for (const i of batch) carry.push({ itemId: i.itemId, state: ItemState.Done });
        for (const r of current.records) marks.ids.push(r.id);
        marks.done = false;
        stop.failedBatchesInARow = 0;
      } else {
        clean = false;
        for (const i of batch) carry.push({ itemId: i.itemId, state: ItemState.Failed, error });
        // A broker that rejected three batches in a row is down: stop instead of failing the rest.
        ++stop.failedBatchesInARow;
      }
      if (next !== undefined && stopped()) {
        clean = false;
        break;
      }
    }
    threw = false;
  } finally {
    atLastBatch();
    // A batch prepared and not published: its marks are settled (a failure there is this lane's
    // failure only if it was awaited), its items stay `publishing` for a resume.
    if (next !== undefined) {
      await Promise.allSettled([next.written, next.appended]);
      carry = [...next.carried, ...carry];
    }
    handed.push(marks);
    // The lane's last marks: awaited here when the lane throws; otherwise handed to the page,
    // which writes its checkpoint after them (while the next page publishes, if this one is clean).
    settled = Promise.all([run.writeLane(carry, false), markLeft(run, handed)]).then(
      () => undefined,
    );
    if (threw) await settled;
  }
  return { published, clean, settled };
}

/**
 * Journal ids to mark published with the next append; `done` once an append carried them (a
 * failed append leaves them for the next one).
 */
interface JournalMarks {
  ids: string[];
  done: boolean;
}

/** The marks no append carried (the lane's last batches, or a lane that stopped): written alone. */
async function markLeft(run: RunContext, handed: readonly JournalMarks[]): Promise<void> {
  const ids = handed.flatMap((marks) => (marks.done ? [] : marks.ids));
  if (ids.length === 0) return;
  await run.journal.markPublished(ids).then(
    () => undefined,
    // The records stay pending: the outbox relay publishes them again under the same ids.
    (err: unknown) => run.logger.warn({ err }, 'could not mark rollback messages published'),
  );
}

/** The saga phase: compensates the plan's sagas, `sagasInFlight` at a time, one write per group. */
async function compensateSagas(run: RunContext, sagas: readonly SagaRollbackItem[]): Promise<void> {
  const { plan, progress, o } = run;
  const sagasTodo = sagas.filter(
    (saga) =>
      progress[saga.itemId]?.state !== ItemState.Done &&
      progress[saga.itemId]?.state !== ItemState.NeedsPerson,
  );
  for (let start = 0; start < sagasTodo.length; start += o.sagasInFlight) {
    if (run.stopped()) break;
    run.checkLease();
    const group = sagasTodo.slice(start, start + o.sagasInFlight);
    const updates = await Promise.all(
      group.map((saga) =>
        compensateSaga(saga.sagaId, plan, run.sagas, run.logger).then((r) => ({
          itemId: saga.itemId,
          ...r,
        })),
      ),
    );
    await run.write(updates);
  }
}

/** Summarises the run, and records its end unless it is still `running` (aborted, to resume). */
async function finish(
  { plan, progress, o, logger }: RunContext,
  store: RollbackProgressStore,
  token: string,
  published: number,
  checkpoint: RunCheckpoint,
  last: PageOutcome | undefined,
): Promise<RollbackRunResult> {
  const totals = last ? addTotals(checkpoint.totals, last.totals) : checkpoint.totals;
  const needsPerson: RollbackRunResult['needsPerson'] = [];
  const failed: RollbackRunResult['failed'] = [];
  for (const [itemId, p] of Object.entries(progress)) {
    if (p.state === ItemState.NeedsPerson) needsPerson.push({ itemId, reason: p.error ?? '' });
    else if (p.state === ItemState.Failed) failed.push({ itemId, error: p.error ?? '' });
  }
  const summary: RollbackSummary = { ...totals, failed: failed.length, published };
  const status =
    failed.length > 0
      ? RunStatus.Failed
      : checkpoint.complete && !o.signal?.aborted
        ? RunStatus.Completed
        : RunStatus.Running;
  if (status !== RunStatus.Running) await store.finishRun(o.runId, token, status, summary);
  logger.info({ status, ...summary }, 'rollback run ended');
  return {
    runId: o.runId,
    planId: plan.planId,
    dryRun: false,
    summary,
    needsPerson,
    failed,
    status,
  };
}

async function acquire(
  store: RollbackProgressStore,
  runId: string,
  owner: string,
  leaseMs: number,
  waitMs: number,
  sleep: (ms: number) => Promise<void>,
): Promise<{ token: string }> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const lease = await store.acquireLease(runId, owner, leaseMs);
    if (lease.acquired) return lease;
    if (Date.now() >= deadline) {
      throw new RollbackRunLockedError(runId, { owner: lease.owner, expiresAt: lease.expiresAt });
    }
    await sleep(Math.min(500, Math.max(10, deadline - Date.now())));
  }
}

/** A batch made ready to publish: its messages and journal records, and their first writes. */
interface PreparedBatch {
  batch: readonly RollbackPlanItem[];
  messages: OutgoingMessage[];
  records: JournalAppend[];
  /** The marks the batch's progress write carried for the batch before it. */
  carried: ItemUpdate[];
  /** The progress write: those marks and the batch's `publishing` marks. Fenced by the lease. */
  written: Promise<void>;
  /** The first journal append (with `marks`); a failed one is tried again by the publish. */
  appended: Promise<void>;
  marks: JournalMarks;
}

/**
 * Builds one batch's messages and journal records and starts its two writes: the progress write
 * (`carry`, the previous batch's end marks, and this batch's `publishing` marks) and the journal
 * append, carrying the `published` marks of `marks` (`marks.done` once an append carried them).
 * Neither is awaited here; both are observed, so a failure is never unhandled.
 */
function prepareBatch(
  run: RunContext,
  batch: readonly RollbackPlanItem[],
  carry: ItemUpdate[],
  marks: JournalMarks,
): PreparedBatch {
  const { plan } = run;
  const version = rollbackVersion(plan.planId);
  const messages: OutgoingMessage[] = [];
  const records: JournalAppend[] = [];
  const updates: ItemUpdate[] = carry.slice();
  for (const item of batch) {
    updates.push({ itemId: item.itemId, state: ItemState.Publishing });
    for (const m of item.messages) {
      // The plan's own headers, not a copy: neither the journal (it stores its own copy) nor a
      // transport changes a message it is handed.
      const encoded = { headers: m.headers, body: plannedBody(m) };
      messages.push(
        m.key === undefined
          ? { topic: m.topic, message: encoded }
          : { topic: m.topic, key: m.key, message: encoded },
      );
      // Journal first (idempotent on the deterministic id), like every Backtrack publish.
      const record: JournalAppend = {
        id: m.id,
        type: m.type,
        schemaVersion: m.schemaVersion,
        topic: m.topic,
        service: plan.service,
        version,
        time: encoded.headers.time ?? new Date().toISOString(),
        causationId: item.original.id,
        message: encoded,
      };
      if (m.key !== undefined) record.key = m.key;
      records.push(record);
    }
  }
  // Fenced by the lease before the batch goes out, even when nothing of it is stored.
  const written = run.writeLane(updates, true);
  const appended = appendOnce(run.journal, records, marks);
  written.catch(() => undefined);
  appended.catch(() => undefined);
  return { batch, messages, records, carried: carry, written, appended, marks };
}

/** One journal append of `records`, carrying `marks` unless an append already did. */
function appendOnce(
  journal: Journal,
  records: JournalAppend[],
  marks: JournalMarks,
): Promise<void> {
  // The records are not needed back: a journal with `appendAndMarkPublished` does not build them.
  return appendAndMarkPublished(journal, records, marks.done ? [] : marks.ids).then(() => {
    marks.done = true;
  });
}

/**
 * Publishes a prepared batch once its journal append is stored, retrying both (the append is
 * idempotent on the deterministic ids). Resolves with the last error when every attempt failed,
 * undefined once the broker acknowledged.
 */
async function publishPrepared(
  run: RunContext,
  prepared: PreparedBatch,
): Promise<string | undefined> {
  const { o, logger } = run;
  let lastError = '';
  for (let attempt = 1; attempt <= o.publishAttempts; attempt++) {
    try {
      await (attempt === 1
        ? prepared.appended
        : appendOnce(run.journal, prepared.records, prepared.marks));
      await run.transport.publish(prepared.messages);
      return undefined;
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
      if (error instanceof RollbackLeaseLostError) throw error;
      // Bad credentials, a missing permission or a refused certificate: no retry and no later
      // batch can succeed, so the run stops with that error (its items stay `publishing`, which a
      // resume with the fixed configuration publishes again under the same ids) instead of
      // marking every item failed one batch after another.
      if (error instanceof ConnectionAccessError) throw error;
      logger.warn({ err: error, attempt, items: prepared.batch.length }, 'rollback batch failed');
      if (attempt < o.publishAttempts) await run.sleep(Math.min(5_000, 200 * 2 ** (attempt - 1)));
    }
  }
  return lastError;
}

async function compensateSaga(
  sagaId: string,
  plan: RollbackPlanSummary,
  sagas: SagaCompensator | undefined,
  logger: Logger,
): Promise<{ state: ItemState; error?: string }> {
  if (!sagas) {
    return {
      state: ItemState.NeedsPerson,
      error: 'no saga engine given to the rollback: compensate this saga by hand',
    };
  }
  const reason = `rollback of ${plan.service}@${plan.version} (plan ${plan.planId})`;
  try {
    const current = await sagas.get?.(sagaId);
    if (current?.status === 'compensated') return { state: ItemState.Done };
    const result = sagas.compensate
      ? await sagas.compensate(sagaId, reason)
      : await sagas.cancel(sagaId, reason);
    if (result.status === 'compensated') return { state: ItemState.Done };
    if (result.status === 'stuck') {
      return {
        state: ItemState.NeedsPerson,
        error: 'the saga is stuck in compensation: backtrack sagas show/retry/resolve',
      };
    }
    return { state: ItemState.Failed, error: `the saga ended ${result.status}, not compensated` };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    logger.warn({ sagaId, err: error }, 'saga compensation failed');
    // A saga the engine refuses to compensate (finished, past its pivot) needs a person.
    if (error instanceof BacktrackError && !error.retriable)
      return { state: ItemState.NeedsPerson, error: message };
    return { state: ItemState.Failed, error: message };
  }
}

function dryRunResult(plan: RollbackPlanSummary, runId: string): RollbackRunResult {
  const { counts } = plan;
  const compensate = plan.strategy === 'compensate';
  const needsPerson = hasItems(plan)
    ? plan.needsPerson.map((n) => ({ itemId: n.itemId, reason: `${n.reason}: ${n.message}` }))
    : [];
  return {
    runId,
    planId: plan.planId,
    status: 'dry-run',
    dryRun: true,
    summary: {
      // Every effect that is neither for a person nor skipped: one by one or through its saga.
      reversed: compensate ? counts.effects - counts.needsPerson - counts.skipped : 0,
      replayed: compensate ? 0 : counts.items,
      skipped: counts.skipped,
      failed: 0,
      needsPerson: counts.needsPerson,
      sagasCompensated: counts.sagas,
      published: 0,
    },
    needsPerson,
    failed: [],
  };
}

/**
 * Splits the items into at most `lanes` lists, keeping plan order inside each, such that items
 * that share an ordering key (saga id, original key, any of their messages' keys) share a lane.
 */
export function lanesOf(items: readonly RollbackPlanItem[], lanes: number): RollbackPlanItem[][] {
  if (lanes <= 1 || items.length === 0) return [items.slice()];
  const groups = singleKeyGroups(items) ?? numbered(linkedGroups(items));
  // Groups go to the lane with the fewest items so far, in order of first appearance.
  const { of, count } = groups;
  const groupSize = new Array<number>(count).fill(0);
  for (let i = 0; i < of.length; i++) groupSize[of[i]!]!++;
  const laneOfGroup = new Array<number>(count).fill(-1);
  const sizes = new Array<number>(lanes).fill(0);
  const out: RollbackPlanItem[][] = Array.from({ length: lanes }, () => []);
  for (let i = 0; i < items.length; i++) {
    const group = of[i]!;
    let lane = laneOfGroup[group]!;
    if (lane === -1) {
      // The first lane with the fewest items.
      lane = 0;
      for (let l = 1; l < lanes; l++) if (sizes[l]! < sizes[lane]!) lane = l;
      laneOfGroup[group] = lane;
      sizes[lane]! += groupSize[group]!;
    }
    out[lane]!.push(items[i]!);
  }
  return out.filter((lane) => lane.length > 0);
}

/** Each item's group as a number (0, 1, ... in order of first appearance), and their count. */
interface Groups {
  of: number[];
  count: number;
}

function numbered(roots: readonly string[]): Groups {
  const numbers = new Map<string, number>();
  const of = new Array<number>(roots.length);
  for (let i = 0; i < roots.length; i++) {
    let n = numbers.get(roots[i]!);
    if (n === undefined) numbers.set(roots[i]!, (n = numbers.size));
    of[i] = n;
  }
  return { of, count: numbers.size };
}

/**
 * The common plan (no saga, every message keyed as its original, or not at all): each item has
 * at most one ordering key, so its group is that key (or the item alone), with no union-find.
 * Undefined as soon as an item links two keys.
 */
function singleKeyGroups(items: readonly RollbackPlanItem[]): Groups | undefined {
  const of = new Array<number>(items.length);
  const byKey = new Map<string, number>();
  let count = 0;
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    if (item.original.sagaId !== undefined) return undefined;
    let key = item.original.key;
    for (const m of item.messages) {
      if (m.key === undefined || m.key === key) continue;
      if (key !== undefined) return undefined;
      key = m.key;
    }
    if (key === undefined) {
      // Item ids are unique in a plan: an item without a key is a group of its own.
      of[i] = count++;
      continue;
    }
    let n = byKey.get(key);
    if (n === undefined) byKey.set(key, (n = count++));
    of[i] = n;
  }
  return { of, count };
}

/** Each item's group (a root key) by union-find over every ordering key it touches. */
function linkedGroups(items: readonly RollbackPlanItem[]): string[] {
  const parent = new Map<string, string>();
  const find = (k: string): string => {
    let root = k;
    while (parent.get(root) !== root) root = parent.get(root)!;
    let node = k;
    while (node !== root) {
      const next = parent.get(node)!;
      parent.set(node, root);
      node = next;
    }
    return root;
  };
  // An item's own id joins it to nothing else (ids are unique in a plan): it is a key only for an
  // item without any ordering key. A message key equal to the original's is the same key (the
  // common compensation): it is not looked up twice.
  const keysOf = (item: RollbackPlanItem): string[] => {
    const keys: string[] = [];
    const original = item.original.key;
    if (item.original.sagaId !== undefined) keys.push(`saga:${item.original.sagaId}`);
    if (original !== undefined) keys.push(`key:${original}`);
    for (const m of item.messages) {
      if (m.key !== undefined && m.key !== original) keys.push(`key:${m.key}`);
    }
    if (keys.length === 0) keys.push(`item:${item.itemId}`);
    return keys;
  };
  const itemKeys = items.map(keysOf);
  for (const keys of itemKeys) {
    for (const k of keys) if (!parent.has(k)) parent.set(k, k);
    const first = find(keys[0]!);
    for (let i = 1; i < keys.length; i++) {
      const root = find(keys[i]!);
      if (root !== first) parent.set(root, first);
    }
  }
  return itemKeys.map((keys) => find(keys[0]!));
}

/** Runs `fn` on every part at once; the first failure calls `onFailure` (to stop the others) and is rethrown once all ended. */
async function inParallel<T>(
  parts: readonly T[],
  fn: (part: T) => Promise<void>,
  onFailure: () => void,
): Promise<void> {
  let failure: { error: unknown } | undefined;
  await Promise.all(
    parts.map((part) =>
      fn(part).catch((error: unknown) => {
        failure ??= { error };
        onFailure();
      }),
    ),
  );
  if (failure) throw failure.error;
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
