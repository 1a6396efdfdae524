import { readFile, writeFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import cliProgress from 'cli-progress';
import {
  planRollback,
  summarizeRollback,
  type RollbackPlan,
  type RollbackPlanSummary,
  type RollbackRunResult,
} from '@backtrack/core';
import { requireRegistry } from '../config.js';
import type { CliContext } from '../context.js';
import { CliError, EXIT } from '../errors.js';
import { executePlan, getRunPlan, listRuns, runStatus } from '../operations/rollback.js';
import { table, type Output } from '../output.js';

type Run = (
  fn: (ctx: CliContext, out: Output, cmd: Command) => Promise<number | void>,
) => (...args: unknown[]) => Promise<void>;

interface SelectionFlags {
  service: string;
  version: string;
  since?: string;
  until?: string;
  strategy: 'compensate' | 'replay';
  target?: string[];
  types?: string;
  maxEffects?: number;
}

const positiveInt = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new CliError(`${name} must be a positive integer, got "${value}"`, EXIT.Usage);
  return n;
};

function selectionOptions(cmd: Command, required: boolean): Command {
  const service = new Option('--service <name>', 'the service whose deploy is rolled back');
  const version = new Option(
    '--version <version>',
    "the bad deploy's version (as given to the publisher)",
  );
  if (required) {
    service.makeOptionMandatory();
    version.makeOptionMandatory();
  }
  return cmd
    .addOption(service)
    .addOption(version)
    .option('--since <time>', 'only effects at or after this time (ISO 8601)')
    .option('--until <time>', 'only effects at or before this time (ISO 8601; default: now)')
    .addOption(
      new Option('--strategy <strategy>', 'compensate or replay')
        .choices(['compensate', 'replay'])
        .default('compensate'),
    )
    .option(
      '--target <type=version...>',
      'replay: schema version to write per type, e.g. order.placed=1',
    )
    .option('--types <list>', 'only these event types (comma-separated)')
    .option(
      '--max-effects <n>',
      'refuse to plan more effects than this',
      positiveInt('--max-effects'),
    );
}

function parseTargets(targets: string[] | undefined): Record<string, number> | undefined {
  if (!targets?.length) return undefined;
  const out: Record<string, number> = {};
  for (const t of targets) {
    const m = /^([^=]+)=(\d+)$/.exec(t);
    if (!m) throw new CliError(`--target must look like type=version, got "${t}"`, EXIT.Usage);
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

function checkTime(value: string | undefined, flag: string): string | undefined {
  if (value !== undefined && Number.isNaN(Date.parse(value))) {
    throw new CliError(
      `${flag} is not a valid time: "${value}" (use ISO 8601, e.g. 2026-11-25T10:00:00Z)`,
      EXIT.Usage,
    );
  }
  return value;
}

async function makePlan(ctx: CliContext, flags: SelectionFlags): Promise<RollbackPlan>;
async function makePlan(
  ctx: CliContext,
  flags: SelectionFlags,
  summaryOnly: boolean,
): Promise<RollbackPlanSummary>;
async function makePlan(
  ctx: CliContext,
  flags: SelectionFlags,
  summaryOnly = false,
): Promise<RollbackPlanSummary> {
  const registry = requireRegistry(ctx.config);
  if (flags.strategy === 'compensate' && !ctx.config.compensations) {
    throw new CliError(
      'the compensate strategy needs your compensation registry',
      EXIT.Usage,
      undefined,
      'export `compensations` from backtrack.config.mjs, or use --strategy replay',
    );
  }
  return (summaryOnly ? summarizeRollback : planRollback)(
    {
      service: flags.service,
      version: flags.version,
      since: checkTime(flags.since, '--since'),
      until: checkTime(flags.until, '--until'),
      strategy: flags.strategy,
      targetVersions: parseTargets(flags.target),
      types: flags.types
        ?.split(',')
        .map((t) => t.trim())
        .filter(Boolean),
      maxEffects: flags.maxEffects,
    },
    { journal: await ctx.journal(), registry, compensations: ctx.config.compensations },
  );
}

/** A plan with its items (planRollback, a plan file), not a summary (a stored run's, a run's). */
function hasItems(plan: RollbackPlanSummary): plan is RollbackPlan {
  return Array.isArray((plan as Partial<RollbackPlan>).items);
}

function describePlan(plan: RollbackPlanSummary, rows = 20): string {
  const lines = [
    `Rollback plan ${plan.planId} (${plan.strategy}) for ${plan.service}@${plan.version}`,
    `window: ${plan.window.since ?? 'start of retention'} .. ${plan.window.until}`,
    `effects: ${plan.counts.effects}  to ${plan.strategy}: ${plan.counts.items} (${plan.counts.messages} messages)  sagas: ${plan.counts.sagas}  needs a person: ${plan.counts.needsPerson}  skipped: ${plan.counts.skipped}`,
  ];
  if (!hasItems(plan)) return lines.join('\n');
  if (plan.items.length) {
    lines.push(
      '',
      plan.strategy === 'compensate'
        ? 'To publish (newest effect first):'
        : 'To replay (publish order):',
    );
    lines.push(
      table(
        ['original', 'type', 'time', 'publishes'],
        plan.items
          .slice(0, rows)
          .map((i) => [
            i.original.id,
            `${i.original.type} v${i.original.schemaVersion}`,
            i.original.time,
            i.messages.map((m) => `${m.type} v${m.schemaVersion} ${m.id}`).join(', '),
          ]),
      ),
    );
    if (plan.items.length > rows)
      lines.push(`... ${plan.items.length - rows} more (see --json or --out)`);
  }
  if (plan.sagas.length) {
    lines.push('', 'Sagas to compensate through the saga engine:');
    lines.push(
      table(
        ['saga', 'effects'],
        plan.sagas.map((s) => [s.sagaId, s.effects.length]),
      ),
    );
  }
  if (plan.needsPerson.length) {
    lines.push('', 'Needs a person:');
    lines.push(
      table(
        ['original', 'type', 'reason', 'why'],
        plan.needsPerson.map((n) => [n.original.id, n.original.type, n.reason, n.message]),
      ),
    );
  }
  return lines.join('\n');
}

function describeResult(r: RollbackRunResult): string {
  const s = r.summary;
  const lines = [
    r.dryRun
      ? `Dry run of ${r.runId} (plan ${r.planId}): what a run would do`
      : `Rollback run ${r.runId} (plan ${r.planId}): ${r.status}`,
    `reversed: ${s.reversed}  replayed: ${s.replayed}  skipped: ${s.skipped}  failed: ${s.failed}  needs a person: ${s.needsPerson}  sagas compensated: ${s.sagasCompensated}  published now: ${s.published}`,
  ];
  if (r.failed.length) {
    lines.push('', 'Failed (run `backtrack rollback resume ' + r.runId + '` to retry):');
    lines.push(
      table(
        ['item', 'error'],
        r.failed.map((f) => [f.itemId, f.error]),
      ),
    );
  }
  if (r.needsPerson.length) {
    lines.push('', 'Needs a person:');
    lines.push(
      table(
        ['item', 'reason'],
        r.needsPerson.map((n) => [n.itemId, n.reason]),
      ),
    );
  }
  return lines.join('\n');
}

interface RunFlags {
  runId?: string;
  dryRun?: boolean;
  batchSize?: number;
  leaseMs?: number;
  waitForLeaseMs?: number;
  progress?: boolean;
}

/** Runs (or dry-runs) a plan with the run flags; exit code `Incomplete` unless it completed. */
async function execute(
  ctx: CliContext,
  out: Output,
  plan: RollbackPlanSummary,
  flags: RunFlags,
): Promise<number> {
  const runId = flags.runId ?? `run-${plan.planId}`;
  if (flags.dryRun) return dryRun(ctx, out, plan, runId);
  const progress = progressReporter(out, flags);
  // First Ctrl-C: finish the current batch, record it, and stop (resumable). A second one kills.
  const stop = new AbortController();
  const onSigint = () => {
    stop.abort();
    process.stderr.write('\nstopping after the current batch (Ctrl-C again to kill)...\n');
  };
  process.once('SIGINT', onSigint);
  try {
    const result = await executePlan(ctx, plan, {
      runId,
      batchSize: flags.batchSize,
      leaseMs: flags.leaseMs,
      waitForLeaseMs: flags.waitForLeaseMs,
      signal: stop.signal,
      onProgress: progress.onProgress,
    });
    progress.stop();
    out.result(result, () =>
      result.status === 'running'
        ? `${describeResult(result)}\nStopped before the end: resume with \`backtrack rollback resume ${runId}\`.`
        : describeResult(result),
    );
    return result.status === 'completed' ? EXIT.Ok : EXIT.Incomplete;
  } catch (error) {
    progress.stop();
    throw error;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** `--dry-run`: prints the plan and what a run would do; publishes nothing. */
async function dryRun(
  ctx: CliContext,
  out: Output,
  plan: RollbackPlanSummary,
  runId: string,
): Promise<number> {
  const result = await executePlan(ctx, plan, { runId, dryRun: true });
  out.result(
    { ...result, plan },
    () => `${describePlan(plan)}\n\n${describeResult(result)}\nNothing was published.`,
  );
  return EXIT.Ok;
}

interface ProgressReporter {
  onProgress: (e: { state: string; finished: number; total: number }) => void;
  stop: () => void;
}

/**
 * Shows a run's progress on stderr: a bar on a terminal, else a line per 10 %; nothing with
 * `--json` or `--no-progress` (then `onProgress` does nothing).
 */
function progressReporter(out: Output, flags: RunFlags): ProgressReporter {
  const bar =
    flags.progress !== false && !out.json && process.stderr.isTTY
      ? new cliProgress.SingleBar(
          {
            format: 'rollback [{bar}] {value}/{total} items | {state}',
            stream: process.stderr,
            hideCursor: true,
          },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
  let started = false;
  let lastPercent = -1;
  return {
    onProgress: (e) => {
      if (bar) {
        if (!started) bar.start(e.total, 0, { state: e.state });
        started = true;
        bar.update(e.finished, { state: e.state });
      } else if (!out.json && flags.progress !== false && e.total > 0) {
        const percent = Math.floor((e.finished / e.total) * 10) * 10;
        if (percent > lastPercent) {
          lastPercent = percent;
          process.stderr.write(`progress: ${e.finished}/${e.total} items\n`);
        }
      }
    },
    stop: () => bar?.stop(),
  };
}

function runOptions(cmd: Command, runId = true): Command {
  if (runId) {
    cmd.option(
      '--run-id <id>',
      'the run id (default: run-<planId>, so the same plan resumes the same run)',
    );
  }
  return cmd
    .option('--batch-size <n>', 'items per broker call', positiveInt('--batch-size'))
    .option(
      '--lease-ms <ms>',
      'run lease in ms (a killed runner frees the run after it)',
      positiveInt('--lease-ms'),
    )
    .option(
      '--wait-for-lease-ms <ms>',
      'wait this long for a lease another runner holds',
      positiveInt('--wait-for-lease-ms'),
    )
    .option('--no-progress', 'no progress bar');
}

export function registerRollback(program: Command, run: Run): void {
  const rollback = program
    .command('rollback')
    .description('reverse or replay what a bad deploy published');
  registerPlan(rollback, run);
  registerRun(rollback, run);
  registerResume(rollback, run);
  registerStatus(rollback, run);
}

/** `rollback plan`: plans from the journal, prints it, optionally writes it to a file. */
function registerPlan(rollback: Command, run: Run): void {
  selectionOptions(
    rollback.command('plan').description('plan a rollback from the journal; publishes nothing'),
    true,
  )
    .option('--out <file>', 'also write the plan (JSON) to this file, for `rollback run --plan`')
    .action(
      run(async (ctx, out, cmd) => {
        const flags = cmd.opts<SelectionFlags & { out?: string }>();
        const plan = await makePlan(ctx, flags);
        if (flags.out) await writeFile(flags.out, `${JSON.stringify(plan, null, 2)}\n`);
        out.result(
          plan,
          () => describePlan(plan) + (flags.out ? `\n\nPlan written to ${flags.out}` : ''),
        );
      }),
    );
}

type RunCommandFlags = Partial<SelectionFlags> & RunFlags & { plan?: string };

/** `rollback run`: runs a plan from `--plan`, or one made from the selection flags. */
function registerRun(rollback: Command, run: Run): void {
  runOptions(
    selectionOptions(
      rollback
        .command('run')
        .description('plan (or load a plan) and run it: publish, record progress, resumable')
        .option('--plan <file>', 'a plan written by `rollback plan --out`')
        .option('--dry-run', 'print the plan and what the run would do; publish nothing'),
      false,
    ),
  ).action(
    run(async (ctx, out, cmd) => {
      const flags = cmd.opts<RunCommandFlags>();
      return execute(ctx, out, await resolveRunPlan(ctx, flags), flags);
    }),
  );
}

/** The plan `rollback run` runs: `--plan` or `--service`/`--version`, exactly one of them. */
async function resolveRunPlan(
  ctx: CliContext,
  flags: RunCommandFlags,
): Promise<RollbackPlanSummary> {
  if (flags.plan) {
    if (flags.service || flags.version)
      throw new CliError('give either --plan or --service/--version, not both', EXIT.Usage);
    return readPlan(flags.plan);
  }
  if (!flags.service || !flags.version) {
    throw new CliError('rollback run needs --plan <file>, or --service and --version', EXIT.Usage);
  }
  // A dry run prints the items (the plan in memory); a run reads them page by page.
  return makePlan(ctx, flags as SelectionFlags, !flags.dryRun);
}

/** `rollback resume <runId>`: runs a stored run's plan again from where it stopped. */
function registerResume(rollback: Command, run: Run): void {
  runOptions(
    rollback
      .command('resume')
      .description('resume a stopped, killed or failed run')
      .argument('<runId>', 'the run to resume (see `rollback status`)'),
    false,
  ).action(
    run(async (ctx, out, cmd) => {
      const [runId] = cmd.args as [string];
      const plan = await getRunPlan(ctx, runId);
      return execute(ctx, out, plan, { ...cmd.opts<RunFlags>(), runId });
    }),
  );
}

/** `rollback status [runId]`: lists the runs, or shows one run's progress. */
function registerStatus(rollback: Command, run: Run): void {
  rollback
    .command('status')
    .description("list rollback runs, or show one run's progress")
    .argument('[runId]')
    .option('--limit <n>', 'runs to list', positiveInt('--limit'), 20)
    .action(
      run(async (ctx, out, cmd) => {
        const [runId] = cmd.args as [string | undefined];
        if (!runId) {
          const runs = await listRuns(ctx, cmd.opts<{ limit: number }>().limit);
          out.result(runs, () => describeRuns(runs));
          return;
        }
        const status = await runStatus(ctx, runId);
        out.result(status, () => describeRunStatus(status));
      }),
    );
}

function describeRuns(runs: Awaited<ReturnType<typeof listRuns>>): string {
  return runs.length === 0
    ? 'No rollback runs.'
    : table(
        ['run', 'service@version', 'strategy', 'status', 'items', 'updated', 'lease'],
        runs.map((r) => [
          r.runId,
          `${r.service}@${r.version}`,
          r.strategy,
          r.status,
          r.totalItems,
          r.updatedAt,
          r.lease?.owner,
        ]),
      );
}

function describeRunStatus({
  run: record,
  counts,
  attention,
}: Awaited<ReturnType<typeof runStatus>>): string {
  const { pending, ...byState } = counts;
  return [
    `Run ${record.runId}: ${record.status} (${record.service}@${record.version}, ${record.strategy}, plan ${record.planId})`,
    `items: ${record.totalItems}  pending: ${pending}  ${Object.entries(byState)
      .map(([k, v]) => `${k}: ${v}`)
      .join('  ')}`,
    record.lease
      ? `held by ${record.lease.owner} until ${new Date(record.lease.expiresAt).toISOString()}`
      : 'not running now',
    ...(attention.length
      ? [
          '',
          table(
            ['item', 'state', 'why'],
            attention.map((a) => [a.itemId, a.state, a.error]),
          ),
        ]
      : []),
  ].join('\n');
}

async function readPlan(file: string): Promise<RollbackPlan> {
  let plan: RollbackPlan;
  try {
    plan = JSON.parse(await readFile(file, 'utf8')) as RollbackPlan;
  } catch (error) {
    throw new CliError(
      `cannot read plan ${file}: ${error instanceof Error ? error.message : String(error)}`,
      EXIT.Usage,
    );
  }
  if (
    typeof plan?.planId !== 'string' ||
    !Array.isArray(plan.items) ||
    !Array.isArray(plan.sagas)
  ) {
    throw new CliError(
      `${file} is not a rollback plan (written by \`backtrack rollback plan --out\`)`,
      EXIT.Usage,
    );
  }
  return plan;
}
