import type { Command } from 'commander';
import {
  FINISHED_SAGA_STATUSES,
  SagaStatus,
  type FinishedSagaStatus,
  type RecoverySummary,
  type SagaRecord,
} from '@backtrack/core';
import type { CliContext } from '../context.js';
import { CliError, EXIT } from '../errors.js';
import {
  SAGA_ORDER as ORDER,
  getSaga,
  listSagas,
  pruneSagas,
  requireDefinitions,
  resolveSaga,
  retrySaga,
} from '../operations/sagas.js';
import { table, type Output } from '../output.js';

type Run = (
  fn: (ctx: CliContext, out: Output, cmd: Command) => Promise<number | void>,
) => (...args: unknown[]) => Promise<void>;

function summaryRow(r: SagaRecord): (string | number | undefined)[] {
  const why = r.stuck
    ? `stuck at ${r.stuck.steps.join(', ')}: ${r.stuck.errors[0]?.message ?? ''}`
    : r.failure
      ? `${r.failure.reason}: ${r.failure.error.message}`
      : '';
  return [r.sagaId, `${r.sagaName} v${r.definitionVersion}`, r.status, r.updatedAt, why];
}

function describeSaga(r: SagaRecord): string {
  const lines = [
    `Saga ${r.sagaId}: ${r.sagaName} v${r.definitionVersion}, ${r.status}`,
    `created ${r.createdAt}, updated ${r.updatedAt}, revision ${r.revision}`,
  ];
  if (r.failure)
    lines.push(
      `stopped going forward: ${r.failure.reason}${r.failure.step ? ` at ${r.failure.step}` : ''}: ${r.failure.error.message}`,
    );
  if (r.stuck)
    lines.push(
      `STUCK at ${r.stuck.steps.join(', ')}: ${r.stuck.errors.map((e) => e.message).join('; ')}`,
    );
  lines.push(
    '',
    table(
      ['step', 'status', 'attempts', 'compensations', 'error / resolution'],
      Object.entries(r.steps).map(([name, s]) => [
        name,
        s.status,
        s.attempts,
        s.compensationAttempts,
        s.resolution ?? s.error?.message,
      ]),
    ),
  );
  if (r.operatorLog?.length) {
    lines.push(
      '',
      'operator log:',
      table(
        ['when', 'who', 'action', 'step', 'reason'],
        r.operatorLog.map((a) => [a.at, a.by, a.action, a.step, a.reason]),
      ),
    );
  }
  if (r.stuck) {
    lines.push(
      '',
      `retry: backtrack sagas retry ${r.sagaId}`,
      `resolve by hand: backtrack sagas resolve ${r.sagaId} --step ${r.stuck.steps[0]} --reason "<what you did>"`,
    );
  }
  if (r.status === SagaStatus.Running || r.status === SagaStatus.Compensating) {
    lines.push(
      '',
      `${r.status} since its last write at ${r.updatedAt}. A service's saga engine drives it while that service is up;`,
      `if none is (it crashed and was not restarted), resume it: backtrack sagas recover`,
    );
  }
  return lines.join('\n');
}

export function registerSagas(program: Command, run: Run): void {
  const sagas = program
    .command('sagas')
    .description('inspect and repair sagas in the saga store (stuck first)');

  registerList(sagas, run);
  registerShow(sagas, run);
  registerRetry(sagas, run);
  registerRecover(sagas, run);
  registerResolve(sagas, run);
  registerPrune(sagas, run);
}

/** `sagas list`: the sagas that need attention, stuck first (or every saga with `--all`). */
function registerList(sagas: Command, run: Run): void {
  sagas
    .command('list')
    .description('sagas that need attention (stuck first, then in flight); --all for every saga')
    .option('--status <status>', `only this status (${ORDER.join(', ')})`)
    .option('--all', 'include completed and compensated sagas')
    .option(
      '--limit <n>',
      'at most this many',
      (v) => {
        const n = Number(v);
        if (!Number.isSafeInteger(n) || n < 1)
          throw new CliError(`--limit must be a positive integer, got "${v}"`, EXIT.Usage);
        return n;
      },
      50,
    )
    .action(
      run(async (ctx, out, cmd) => {
        const flags = cmd.opts<{ status?: string; all?: boolean; limit: number }>();
        const found = await listSagas(ctx, flags);
        out.result(found, () =>
          found.length === 0
            ? flags.all || flags.status
              ? 'No sagas.'
              : 'No saga needs attention (none stuck, compensating, running or failed).'
            : table(['saga', 'definition', 'status', 'updated', 'why'], found.map(summaryRow)),
        );
      }),
    );
}

/** `sagas show <sagaId>`: one saga with its steps. */
function registerShow(sagas: Command, run: Run): void {
  sagas
    .command('show')
    .description('one saga with its steps')
    .argument('<sagaId>')
    .action(
      run(async (ctx, out, cmd) => {
        const [sagaId] = cmd.args as [string];
        const record = await getSaga(ctx, sagaId);
        out.result(record, () => describeSaga(record));
      }),
    );
}

/** `sagas retry <sagaId>`: runs the failed compensations (or forward step) again. */
function registerRetry(sagas: Command, run: Run): void {
  sagas
    .command('retry')
    .description('run the failed compensations (or failed forward step) of a stuck saga again')
    .argument('<sagaId>')
    .action(
      run(async (ctx, out, cmd) => {
        const [sagaId] = cmd.args as [string];
        const result = await retrySaga(ctx, sagaId);
        out.result(result, () => `Saga ${sagaId} is now ${result.status}.`);
        return result.status === SagaStatus.Stuck ? EXIT.Incomplete : EXIT.Ok;
      }),
    );
}

/** `sagas recover`: resumes the sagas a gone process left running or compensating. */
function registerRecover(sagas: Command, run: Run): void {
  sagas
    .command('recover')
    .description(
      "resume every saga left running or compensating by a process that is gone (the engine's recover())",
    )
    .action(
      run(async (ctx, out) => {
        requireDefinitions(ctx);
        const summary = await (await ctx.sagaEngine()).recover();
        out.result(summary, () => describeRecovery(summary));
        const stuck = summary.results.some((r) => r.status === SagaStatus.Stuck);
        return summary.errors.length > 0 ? EXIT.Error : stuck ? EXIT.Incomplete : EXIT.Ok;
      }),
    );
}

/** `sagas resolve <sagaId>`: marks a stuck step handled by hand, with the reason. */
function registerResolve(sagas: Command, run: Run): void {
  sagas
    .command('resolve')
    .description('mark a stuck step as handled by hand, with the reason kept in the saga log')
    .argument('<sagaId>')
    .requiredOption('--step <name>', 'the stuck step')
    .requiredOption('--reason <text>', 'what was done by hand (kept in the saga log)')
    .action(
      run(async (ctx, out, cmd) => {
        const [sagaId] = cmd.args as [string];
        const { step, reason } = cmd.opts<{ step: string; reason: string }>();
        const result = await resolveSaga(ctx, sagaId, step, reason);
        out.result(
          result,
          () => `Step ${step} of saga ${sagaId} resolved; the saga is now ${result.status}.`,
        );
      }),
    );
}

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** `30d`, `12h`, `90m`, `45s`, `500ms` or a plain number of milliseconds. */
export function parseDurationMs(flag: string, value: string): number {
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(value.trim());
  const n = match ? Number(match[1]) * DURATION_UNITS[match[2] ?? 'ms']! : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new CliError(
      `${flag} must be a positive duration such as 30d, 12h, 90m or a number of ms, got "${value}"`,
      EXIT.Usage,
      'BT_ERR_CLI_USAGE',
    );
  }
  return n;
}

function registerPrune(sagas: Command, run: Run): void {
  sagas
    .command('prune')
    .description(
      'delete finished sagas (completed, compensated, failed) last written before a cut; running, compensating and stuck ones are kept',
    )
    .requiredOption(
      '--older-than <duration>',
      'how old the last write must be: 30d, 12h, 90m, or ms',
    )
    .option(
      '--status <list>',
      `only these finished statuses, comma-separated (${FINISHED_SAGA_STATUSES.join(', ')})`,
    )
    .option('--limit <n>', 'delete at most this many in this run')
    .action(
      run(async (ctx, out, cmd) => {
        const flags = cmd.opts<{ olderThan: string; status?: string; limit?: string }>();
        const olderThanMs = parseDurationMs('--older-than', flags.olderThan);
        const statuses = flags.status?.split(',').map((s) => s.trim());
        for (const s of statuses ?? []) {
          if (!(FINISHED_SAGA_STATUSES as readonly string[]).includes(s)) {
            throw new CliError(
              `--status takes finished statuses only (${FINISHED_SAGA_STATUSES.join(', ')}), got "${s}"`,
              EXIT.Usage,
              'BT_ERR_CLI_USAGE',
            );
          }
        }
        const limit = flags.limit === undefined ? undefined : Number(flags.limit);
        if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) {
          throw new CliError(
            `--limit must be a positive integer, got "${flags.limit}"`,
            EXIT.Usage,
            'BT_ERR_CLI_USAGE',
          );
        }
        const result = await pruneSagas(ctx, {
          olderThanMs,
          ...(statuses ? { statuses: statuses as FinishedSagaStatus[] } : {}),
          ...(limit === undefined ? {} : { limit }),
        });
        out.result(
          result,
          () =>
            `deleted ${result.deleted} finished saga(s) last written before ${result.updatedBefore}`,
        );
      }),
    );
}

function describeRecovery(summary: RecoverySummary): string {
  if (summary.found === 0)
    return 'No saga in flight (running or compensating): nothing to recover.';
  const lines = [
    `Recovered ${summary.results.length} of ${summary.found} sagas in flight.`,
    '',
    table(
      ['saga', 'status now'],
      summary.results.map((r) => [r.sagaId, r.status]),
    ),
  ];
  if (summary.owned.length) {
    lines.push(
      '',
      'Left to the engine that owns them (their lease has not expired; run again after it does if that engine is gone):',
      table(
        ['saga', 'owner', 'lease expires'],
        summary.owned.map((o) => [o.sagaId, o.owner, o.expiresAt]),
      ),
    );
  }
  if (summary.errors.length) {
    lines.push(
      '',
      'Not recovered now:',
      table(
        ['saga', 'error'],
        summary.errors.map((e) => [e.sagaId, e.error.message]),
      ),
    );
  }
  return lines.join('\n');
}
