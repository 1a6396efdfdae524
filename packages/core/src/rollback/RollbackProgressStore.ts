import type { RollbackPlanSummary } from './plan.js';

/** Progress of one plan item (an effect, a saga, or an effect for a person). */
export const ItemState = {
  /**
   * Its messages are going to the transport: on resume the item is published again unless the
   * journal shows them published. A run stores it only for an item the store already holds (a
   * failed one retried, or one left by an earlier version's runner); other items' publishing is
   * fenced by the lease and recorded by the journal alone.
   */
  Publishing: 'publishing',
  /**
   * Its messages were acknowledged by the broker (or its saga compensated). Stored for sagas and
   * for items the store already holds; an item published cleanly is `done` once its journal
   * records are marked published, and is counted in the checkpoint's `forgotten.done` once its
   * page is finished (until then the store does not list it).
   */
  Done: 'done',
  /** Publishing (or saga compensation) failed; a resume retries it. */
  Failed: 'failed',
  /** A person must handle it (irreversible, unreadable, a saga the engine cannot compensate). */
  NeedsPerson: 'needs-person',
  /** Nothing to do. */
  Skipped: 'skipped',
} as const;
export type ItemState = (typeof ItemState)[keyof typeof ItemState];

export interface ItemProgress {
  state: ItemState;
  /** How many times the store recorded the item `publishing` (0 for an item published cleanly, whose progress is not stored). */
  attempts: number;
  /** The last error or the reason a person is needed. */
  error?: string;
  updatedAt: string;
}

export interface ItemUpdate {
  itemId: string;
  state: ItemState;
  error?: string;
}

export const RunStatus = {
  /** Created or being run (a runner may have died: look at the lease). */
  Running: 'running',
  /** Every item is done, skipped, or handed to a person. */
  Completed: 'completed',
  /** The last runner stopped with failed items; `resume` retries them. */
  Failed: 'failed',
} as const;
export type RunStatus = (typeof RunStatus)[keyof typeof RunStatus];

/** The totals a run ends with (see {@link runRollback}). */
export interface RollbackSummary {
  /** Effects reversed: compensated one by one, or through their saga's compensation. */
  reversed: number;
  /** Effects replayed in their target schema version. */
  replayed: number;
  /** Effects with nothing to do (their compensation returned no event). */
  skipped: number;
  /** Items whose publish or saga compensation failed (resume retries them). */
  failed: number;
  /** Effects a person must handle (irreversible, unreadable, uncompensatable saga). */
  needsPerson: number;
  /** Sagas compensated through the saga engine. */
  sagasCompensated: number;
  /** Messages published by THIS invocation (a resume counts only what it published). */
  published: number;
}

export interface RollbackRunRecord {
  runId: string;
  planId: string;
  service: string;
  version: string;
  strategy: RollbackPlanSummary['strategy'];
  status: RunStatus;
  createdAt: string;
  updatedAt: string;
  /** Items in the plan: effects + sagas + needs-person + skipped entries. */
  totalItems: number;
  /** Set once a runner finished (completed or failed). */
  summary?: RollbackSummary;
  /** The current lease holder, if the lease is live. */
  lease?: { owner: string; expiresAt: number };
}

/**
 * Where a run is, page by page (see {@link runRollback}): the pages before `cursor` are finished,
 * their done and skipped items forgotten, what they did summed in `totals`. Compact whatever the
 * plan's size.
 */
export interface RunCheckpoint {
  /** The cursor after the last finished page (opaque, from the plan's pages); absent before the first. */
  cursor?: string;
  /** Every page is finished. */
  complete: boolean;
  /** Pages finished. */
  pages: number;
  /** Items finished (done, skipped, for a person) on the finished pages. */
  finished: number;
  /** Of those, the items forgotten (no longer in the store's item progress), by state. */
  forgotten: { done: number; skipped: number };
  /** What the finished pages did. */
  totals: Omit<RollbackSummary, 'failed' | 'published'>;
}

export type LeaseResult =
  | { acquired: true; token: string; expiresAt: number }
  | { acquired: false; owner?: string; expiresAt?: number };

/**
 * Where a rollback run keeps its plan's summary, its checkpoint, the progress of the items of its
 * current pages (at most three: one being checkpointed, one publishing, one prepared ahead; and
 * of those a person must handle or that failed) and its lease: bounded whatever the plan's size,
 * as a run forgets each page's finished items when it checkpoints past it.
 *
 * Implementations:
 * - `createRun` MUST be idempotent on `runId` for the same `planId`, and MUST throw
 *   `RollbackRunConflictError` for a different plan under an existing run id.
 * - `acquireLease` MUST be atomic: of two concurrent callers at most one gets the lease while it
 *   is live. A lease MUST expire by itself after `leaseMs` (a killed runner frees it).
 * - `setItems`, `setCheckpoint`, `renewLease` and `finishRun` MUST be fenced: they MUST take effect only while
 *   `token` holds the lease, and MUST throw `RollbackLeaseLostError` otherwise, so a runner that
 *   lost its lease cannot overwrite the progress of the runner that took over.
 * - A write MUST be durable when it resolves; store failures MUST throw a retriable error.
 */
export interface RollbackProgressStore {
  /** Stores the plan's summary only (a plan with items is stored without them). */
  createRun(
    runId: string,
    plan: RollbackPlanSummary,
  ): Promise<{ created: boolean; run: RollbackRunRecord }>;
  getRun(runId: string): Promise<RollbackRunRecord | undefined>;
  /** The summary of the run's plan (never its items). */
  getPlan(runId: string): Promise<RollbackPlanSummary | undefined>;
  /** Runs, newest first. */
  listRuns(options?: { limit?: number }): Promise<RollbackRunRecord[]>;
  acquireLease(runId: string, owner: string, leaseMs: number): Promise<LeaseResult>;
  /** Extends the lease. @throws RollbackLeaseLostError */
  renewLease(runId: string, token: string, leaseMs: number): Promise<void>;
  /** Frees the lease if `token` still holds it (otherwise does nothing). */
  releaseLease(runId: string, token: string): Promise<void>;
  /** Records item states (`publishing` also counts an attempt). @throws RollbackLeaseLostError */
  setItems(runId: string, token: string, updates: readonly ItemUpdate[]): Promise<void>;
  /** The items the store holds: the current pages', and those failed or for a person. */
  getItems(runId: string): Promise<Record<string, ItemProgress>>;
  getCheckpoint(runId: string): Promise<RunCheckpoint | undefined>;
  /**
   * Records a finished page in one atomic write: stores `checkpoint` and forgets the progress of
   * the `forget` items (the page's done and skipped ones). @throws RollbackLeaseLostError
   */
  setCheckpoint(
    runId: string,
    token: string,
    checkpoint: RunCheckpoint,
    forget: readonly string[],
  ): Promise<void>;
  /** @throws RollbackLeaseLostError */
  finishRun(
    runId: string,
    token: string,
    status: RunStatus,
    summary: RollbackSummary,
  ): Promise<void>;
}
