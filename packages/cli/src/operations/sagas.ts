/**
 * Saga operations shared by `backtrack sagas ...` and the web console (`backtrack ui`): both
 * read and act through the saga store and the saga engine, nothing else.
 */
import {
  SagaNotFoundError,
  SagaStatus,
  type FinishedSagaStatus,
  type OperatorNote,
  type SagaRecord,
  type SagaResult,
} from '@backtrack/core';
import { userInfo } from 'node:os';
import type { CliContext } from '../context.js';
import { CliError, EXIT } from '../errors.js';

/** List order: what needs a person first, then what is in flight, then the rest. */
export const SAGA_ORDER: SagaStatus[] = [
  SagaStatus.Stuck,
  SagaStatus.Compensating,
  SagaStatus.Running,
  SagaStatus.Failed,
  SagaStatus.Compensated,
  SagaStatus.Completed,
];
export const SAGA_ATTENTION: SagaStatus[] = [
  SagaStatus.Stuck,
  SagaStatus.Compensating,
  SagaStatus.Running,
  SagaStatus.Failed,
];

export interface ListSagasOptions {
  status?: string;
  all?: boolean;
  limit: number;
}

/** Sagas in {@link SAGA_ORDER} (stuck first); without `all` or `status`, those needing attention. */
export async function listSagas(ctx: CliContext, options: ListSagasOptions): Promise<SagaRecord[]> {
  if (options.status && !SAGA_ORDER.includes(options.status as SagaStatus)) {
    throw new CliError(
      `--status must be one of ${SAGA_ORDER.join(', ')}, got "${options.status}"`,
      EXIT.Usage,
    );
  }
  const store = await ctx.sagaStore();
  const statuses = options.status
    ? [options.status as SagaStatus]
    : options.all
      ? SAGA_ORDER
      : SAGA_ATTENTION;
  const found: SagaRecord[] = [];
  for (const status of statuses) {
    let cursor: string | undefined;
    do {
      const page = await store.list({
        status,
        limit: Math.min(100, options.limit - found.length),
        cursor,
      });
      found.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor && found.length < options.limit);
    if (found.length >= options.limit) break;
  }
  return found;
}

/**
 * How many sagas are in each status, counting at most `cap` per status (the store pages through
 * its status index; a count of `cap` means "at least").
 */
export async function countSagas(
  ctx: CliContext,
  cap = 1_000,
): Promise<Record<SagaStatus, number>> {
  const store = await ctx.sagaStore();
  const counts = {} as Record<SagaStatus, number>;
  for (const status of SAGA_ORDER) {
    let n = 0;
    let cursor: string | undefined;
    do {
      const page = await store.list({ status, limit: Math.min(100, cap - n), cursor });
      n += page.items.length;
      cursor = page.nextCursor;
    } while (cursor && n < cap);
    counts[status] = n;
  }
  return counts;
}

/** One saga's record. @throws SagaNotFoundError */
export async function getSaga(ctx: CliContext, sagaId: string): Promise<SagaRecord> {
  const record = await (await ctx.sagaStore()).get(sagaId);
  if (!record) throw new SagaNotFoundError(sagaId);
  return record;
}

/** Runs the failed compensations (or failed forward step) of a stuck saga again. */
export async function retrySaga(
  ctx: CliContext,
  sagaId: string,
  note: OperatorNote = {},
): Promise<SagaResult> {
  requireDefinitions(ctx);
  return (await ctx.sagaEngine()).retry(sagaId, { by: operatorName('cli'), ...note });
}

/** Who acts, for the saga's operator log: the OS user, and the tool they used. */
export function operatorName(tool: 'cli' | 'ui', name?: string): string {
  let user = name;
  if (!user) {
    try {
      user = userInfo().username;
    } catch {
      user = 'unknown';
    }
  }
  return `${user} via backtrack ${tool}`;
}

/** Marks a stuck step handled by hand; `reason` is kept in the saga log (the step's resolution). */
export async function resolveSaga(
  ctx: CliContext,
  sagaId: string,
  step: string,
  reason: string,
  by: string = operatorName('cli'),
): Promise<SagaResult> {
  requireDefinitions(ctx);
  return (await ctx.sagaEngine()).resolve(sagaId, step, reason, { by });
}

/** Stops a running saga and compensates its completed steps; `reason` is kept in the saga log. */
export async function cancelSaga(
  ctx: CliContext,
  sagaId: string,
  reason: string,
  by: string = operatorName('cli'),
): Promise<SagaResult> {
  requireDefinitions(ctx);
  return (await ctx.sagaEngine()).cancel(sagaId, reason, { by });
}

export function requireDefinitions(ctx: CliContext): void {
  if (!ctx.config.sagas?.length) {
    throw new CliError(
      'this command drives the saga engine, which needs your saga definitions',
      EXIT.Usage,
      undefined,
      'export `sagas` (the built definitions) from backtrack.config.mjs',
    );
  }
}

export interface PruneSagasOptions {
  /** Finished sagas last written more than this long ago are deleted. */
  olderThanMs: number;
  /** Which finished statuses. @default completed, compensated and failed */
  statuses?: readonly FinishedSagaStatus[];
  /** Delete at most this many in all (in store calls of up to 1,000). @default no bound */
  limit?: number;
  /** Milliseconds since the epoch. @default Date.now */
  now?: number;
}

/**
 * Retention for the saga log: deletes finished sagas (completed, compensated, failed) last
 * written before `now - olderThanMs`, in bounded store calls. Running, compensating and stuck
 * sagas are never deleted. Returns how many were deleted and the cut used.
 */
export async function pruneSagas(
  ctx: CliContext,
  options: PruneSagasOptions,
): Promise<{ deleted: number; updatedBefore: string }> {
  const store = await ctx.sagaStore();
  const updatedBefore = new Date((options.now ?? Date.now()) - options.olderThanMs);
  const total = options.limit ?? Number.POSITIVE_INFINITY;
  let deleted = 0;
  while (deleted < total) {
    const step = await store.prune({
      updatedBefore,
      limit: Math.min(1_000, total - deleted),
      ...(options.statuses ? { statuses: options.statuses } : {}),
    });
    deleted += step;
    if (step === 0) break;
  }
  return { deleted, updatedBefore: updatedBefore.toISOString() };
}
