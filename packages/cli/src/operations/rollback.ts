/**
 * Rollback-run operations shared by `backtrack rollback ...` and the web console: they read and
 * act through the rollback progress store and `runRollback`, nothing else.
 */
import {
  BacktrackError,
  RollbackRunNotFoundError,
  runRollback,
  type RollbackPlanSummary,
  type RollbackProgressEvent,
  type RollbackRunResult,
  type SagaCompensator,
} from '@backtrack/core';
import type { CliContext } from '../context.js';
import { CliError, EXIT } from '../errors.js';

export interface ExecuteOptions {
  runId?: string;
  dryRun?: boolean;
  batchSize?: number;
  leaseMs?: number;
  waitForLeaseMs?: number;
  signal?: AbortSignal;
  onProgress?: (event: RollbackProgressEvent) => void;
}

/**
 * Runs a plan (publishing, recording progress; resumable), or with `dryRun` says what a run
 * would do without touching anything. @throws CliError (exit 3) while another runner holds it.
 */
export async function executePlan(
  ctx: CliContext,
  plan: RollbackPlanSummary,
  options: ExecuteOptions,
): Promise<RollbackRunResult> {
  const runId = options.runId ?? `run-${plan.planId}`;
  if (options.dryRun) return runRollback(plan, { runId, dryRun: true });
  const [journal, transport, progressStore] = [
    await ctx.journal(),
    await ctx.transport(),
    await ctx.progressStore(),
  ];
  const sagas: SagaCompensator | undefined = ctx.config.sagas?.length
    ? await ctx.sagaEngine()
    : undefined;
  try {
    return await runRollback(
      plan,
      {
        runId,
        batchSize: options.batchSize,
        leaseMs: options.leaseMs,
        waitForLeaseMs: options.waitForLeaseMs,
        signal: options.signal,
        onProgress: options.onProgress,
      },
      {
        journal,
        transport,
        progressStore,
        sagas,
        logger: ctx.logger,
        // A plan summary (a stored run's, or `rollback run`'s) is planned again page by page.
        ...(ctx.config.registry ? { registry: ctx.config.registry } : {}),
        ...(ctx.config.compensations ? { compensations: ctx.config.compensations } : {}),
      },
    );
  } catch (error) {
    if (error instanceof BacktrackError && error.code === 'BT_ERR_ROLLBACK_RUN_LOCKED') {
      throw new CliError(
        error.message,
        EXIT.Locked,
        error.code,
        'wait for the other runner, or for its lease to expire (--wait-for-lease-ms)',
      );
    }
    throw error;
  }
}

/** The stored plan summary of a run. @throws RollbackRunNotFoundError */
export async function getRunPlan(ctx: CliContext, runId: string): Promise<RollbackPlanSummary> {
  const plan = await (await ctx.progressStore()).getPlan(runId);
  if (!plan) throw new RollbackRunNotFoundError(runId);
  return plan;
}

/** Resumes a stopped, killed or failed run from its stored plan (or dry-runs that plan). */
export async function resumeRun(
  ctx: CliContext,
  runId: string,
  options: Omit<ExecuteOptions, 'runId'> = {},
): Promise<RollbackRunResult> {
  return executePlan(ctx, await getRunPlan(ctx, runId), { ...options, runId });
}

export async function listRuns(ctx: CliContext, limit: number) {
  return (await ctx.progressStore()).listRuns({ limit });
}

/** One run: its record, item counts by state (and pending), and the items needing attention. */
export async function runStatus(ctx: CliContext, runId: string) {
  const store = await ctx.progressStore();
  const record = await store.getRun(runId);
  if (!record) throw new RollbackRunNotFoundError(runId);
  const [items, checkpoint] = await Promise.all([
    store.getItems(runId),
    store.getCheckpoint(runId),
  ]);
  const byState: Record<string, number> = {};
  for (const p of Object.values(items)) byState[p.state] = (byState[p.state] ?? 0) + 1;
  // Finished pages' done and skipped items are forgotten by the store: the checkpoint counts them.
  for (const state of ['done', 'skipped'] as const) {
    const n = checkpoint?.forgotten[state] ?? 0;
    if (n > 0) byState[state] = (byState[state] ?? 0) + n;
  }
  const pending = record.totalItems - Object.values(byState).reduce((a, b) => a + b, 0);
  const attention = Object.entries(items)
    .filter(([, p]) => p.state === 'failed' || p.state === 'needs-person')
    .map(([itemId, p]) => ({ itemId, state: p.state, error: p.error }));
  return { run: record, counts: { ...byState, pending } as Record<string, number>, attention };
}
