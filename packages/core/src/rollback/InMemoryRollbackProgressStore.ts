import { randomUUID } from 'node:crypto';
import { RollbackLeaseLostError, RollbackRunConflictError } from './errors.js';
import { summaryOf, type RollbackPlanSummary } from './plan.js';
import {
  RunStatus,
  type ItemProgress,
  type ItemUpdate,
  type LeaseResult,
  type RollbackProgressStore,
  type RollbackRunRecord,
  type RollbackSummary,
  type RunCheckpoint,
} from './RollbackProgressStore.js';

interface Run {
  record: RollbackRunRecord;
  plan: RollbackPlanSummary;
  items: Map<string, ItemProgress>;
  checkpoint?: RunCheckpoint;
  lease?: { token: string; owner: string; expiresAt: number };
}

/** A {@link RollbackProgressStore} in process memory (tests; a run cannot resume after a crash). */
export class InMemoryRollbackProgressStore implements RollbackProgressStore {
  readonly #runs = new Map<string, Run>();
  readonly #now: () => number;
  readonly #runTtlMs: number;

  /**
   * `runTtlMs`: a run (plan, progress, lease) is deleted this long after its last write, as with
   * `RedisRollbackProgressStore`. @default 2_592_000_000 (30 days)
   */
  constructor(options: { now?: () => number; runTtlMs?: number } = {}) {
    this.#now = options.now ?? Date.now;
    this.#runTtlMs = options.runTtlMs ?? 30 * 24 * 60 * 60 * 1000;
  }

  /** Deletes the runs last written more than runTtlMs ago. */
  #expire(): void {
    const cut = this.#now() - this.#runTtlMs;
    for (const [id, run] of this.#runs) {
      if (Date.parse(run.record.updatedAt) <= cut) this.#runs.delete(id);
    }
  }

  async createRun(runId: string, plan: RollbackPlanSummary) {
    this.#expire();
    const existing = this.#runs.get(runId);
    if (existing) {
      if (existing.plan.planId !== plan.planId) {
        throw new RollbackRunConflictError(runId, existing.plan.planId, plan.planId);
      }
      return { created: false, run: this.#view(existing) };
    }
    const at = new Date(this.#now()).toISOString();
    const run: Run = {
      record: {
        runId,
        planId: plan.planId,
        service: plan.service,
        version: plan.version,
        strategy: plan.strategy,
        status: RunStatus.Running,
        createdAt: at,
        updatedAt: at,
        totalItems: totalItems(plan),
      },
      plan: summaryOf(plan),
      items: new Map(),
    };
    this.#runs.set(runId, run);
    return { created: true, run: this.#view(run) };
  }

  async getRun(runId: string) {
    this.#expire();
    const run = this.#runs.get(runId);
    return run ? this.#view(run) : undefined;
  }

  async getPlan(runId: string) {
    const run = this.#runs.get(runId);
    return run ? structuredClone(run.plan) : undefined;
  }

  async listRuns(options: { limit?: number } = {}) {
    this.#expire();
    return [...this.#runs.values()]
      .map((r) => this.#view(r))
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt))
      .slice(0, options.limit ?? 100);
  }

  async acquireLease(runId: string, owner: string, leaseMs: number): Promise<LeaseResult> {
    const run = this.#runs.get(runId);
    if (!run) return { acquired: false };
    const now = this.#now();
    if (run.lease && run.lease.expiresAt > now) {
      return { acquired: false, owner: run.lease.owner, expiresAt: run.lease.expiresAt };
    }
    run.lease = { token: randomUUID(), owner, expiresAt: now + leaseMs };
    return { acquired: true, token: run.lease.token, expiresAt: run.lease.expiresAt };
  }

  async renewLease(runId: string, token: string, leaseMs: number) {
    const run = this.#fenced(runId, token);
    run.lease!.expiresAt = this.#now() + leaseMs;
  }

  async releaseLease(runId: string, token: string) {
    const run = this.#runs.get(runId);
    if (run?.lease?.token === token) delete run.lease;
  }

  async setItems(runId: string, token: string, updates: readonly ItemUpdate[]) {
    const run = this.#fenced(runId, token);
    const at = new Date(this.#now()).toISOString();
    for (const u of updates) {
      const previous = run.items.get(u.itemId);
      const attempts = (previous?.attempts ?? 0) + (u.state === 'publishing' ? 1 : 0);
      const next: ItemProgress = { state: u.state, attempts, updatedAt: at };
      if (u.error !== undefined) next.error = u.error;
      run.items.set(u.itemId, next);
    }
    run.record.updatedAt = at;
  }

  async getItems(runId: string) {
    return Object.fromEntries(
      [...(this.#runs.get(runId)?.items ?? new Map<string, ItemProgress>())].map(([k, v]) => [
        k,
        { ...v },
      ]),
    );
  }

  async getCheckpoint(runId: string) {
    const checkpoint = this.#runs.get(runId)?.checkpoint;
    return checkpoint ? structuredClone(checkpoint) : undefined;
  }

  async setCheckpoint(
    runId: string,
    token: string,
    checkpoint: RunCheckpoint,
    forget: readonly string[],
  ) {
    const run = this.#fenced(runId, token);
    run.checkpoint = structuredClone(checkpoint);
    for (const id of forget) run.items.delete(id);
    run.record.updatedAt = new Date(this.#now()).toISOString();
  }

  async finishRun(runId: string, token: string, status: RunStatus, summary: RollbackSummary) {
    const run = this.#fenced(runId, token);
    run.record.status = status;
    run.record.summary = { ...summary };
    run.record.updatedAt = new Date(this.#now()).toISOString();
  }

  #fenced(runId: string, token: string): Run {
    const run = this.#runs.get(runId);
    if (!run?.lease || run.lease.token !== token || run.lease.expiresAt <= this.#now()) {
      throw new RollbackLeaseLostError(runId);
    }
    return run;
  }

  #view(run: Run): RollbackRunRecord {
    const view = structuredClone(run.record);
    if (run.lease && run.lease.expiresAt > this.#now()) {
      view.lease = { owner: run.lease.owner, expiresAt: run.lease.expiresAt };
    }
    return view;
  }
}

/** Items a run tracks: effects, sagas, needs-person and skipped entries. */
export function totalItems(plan: RollbackPlanSummary): number {
  const { items, sagas, needsPerson, skipped } = plan.counts;
  return items + sagas + needsPerson + skipped;
}
