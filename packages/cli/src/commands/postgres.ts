import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { CliError, EXIT } from '../errors.js';
import { table, type Output } from '../output.js';

type Run = (
  fn: (ctx: CliContext, out: Output, cmd: Command) => Promise<number | void>,
) => (...args: unknown[]) => Promise<void>;

interface MigrateFlags {
  databaseUrl?: string;
  schema?: string;
  dryRun?: boolean;
}

/** `backtrack postgres ...`: set up the tables of @backtrack/postgres. */
export function registerPostgres(program: Command, run: Run): void {
  const postgres = program
    .command('postgres')
    .description('PostgreSQL inbox, outbox and saga store (@backtrack/postgres)');

  postgres
    .command('migrate')
    .description(
      'create or upgrade the Backtrack tables in a schema (idempotent; safe to run from every instance)',
    )
    .option('--database-url <url>', 'PostgreSQL connection string (env DATABASE_URL)')
    .option('--schema <name>', 'the schema to migrate (env BACKTRACK_PG_SCHEMA)', undefined)
    .option('--dry-run', 'list the migrations that would be applied, change nothing')
    .action(run(async (ctx, out, cmd) => migrateCommand(ctx, out, cmd.opts<MigrateFlags>())));
}

async function migrateCommand(ctx: CliContext, out: Output, flags: MigrateFlags): Promise<number> {
  const url = databaseUrlFrom(flags);
  const schema = flags.schema ?? process.env.BACKTRACK_PG_SCHEMA ?? 'backtrack';
  const { migrateDatabase } = await import('@backtrack/postgres');
  // Library logs go to the CLI's stderr logger: stdout stays clean for --json.
  const result = await migrateDatabase({
    url,
    schema,
    dryRun: flags.dryRun === true,
    logger: ctx.logger,
  });
  out.result({ ...result, dryRun: flags.dryRun === true }, () => {
    const verb = flags.dryRun ? 'would apply' : 'applied';
    const rows = [
      ...result.alreadyApplied.map((id) => [id, 'already applied']),
      ...result.applied.map((id) => [id, verb]),
    ];
    const summary =
      result.applied.length === 0
        ? `schema "${schema}" is up to date`
        : `schema "${schema}": ${verb} ${result.applied.length} migration(s)`;
    return rows.length === 0 ? summary : `${table(['MIGRATION', 'STATE'], rows)}\n${summary}`;
  });
  return EXIT.Ok;
}

/** The PostgreSQL connection string of `--database-url`, else `DATABASE_URL`; a usage error without one. */
export function databaseUrlFrom(flags: { databaseUrl?: string }): string {
  const url = flags.databaseUrl ?? process.env.DATABASE_URL;
  if (url === undefined || url.length === 0) {
    throw new CliError(
      'no PostgreSQL connection string',
      EXIT.Usage,
      'BT_ERR_CLI_USAGE',
      'pass --database-url or set DATABASE_URL',
    );
  }
  return url;
}
