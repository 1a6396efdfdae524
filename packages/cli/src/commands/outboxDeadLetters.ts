import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { CliError, EXIT } from '../errors.js';
import { table, type Output } from '../output.js';
import { databaseUrlFrom } from './postgres.js';

type Run = (
  fn: (ctx: CliContext, out: Output, cmd: Command) => Promise<number | void>,
) => (...args: unknown[]) => Promise<void>;

interface Flags {
  databaseUrl?: string;
  schema?: string;
  limit?: string;
  requeue?: string[];
}

/**
 * `backtrack outbox-dead-letters`: the PostgreSQL outbox records the relay gave up on
 * (`PostgresOutboxRelay` option `maxAttempts`), and `--requeue <id...>` to put them back.
 */
export function registerOutboxDeadLetters(program: Command, run: Run): void {
  program
    .command('outbox-dead-letters')
    .description(
      'list the PostgreSQL outbox records the relay moved to its dead-letter table, or requeue some',
    )
    .option('--database-url <url>', 'PostgreSQL connection string (env DATABASE_URL)')
    .option('--schema <name>', 'the outbox schema (env BACKTRACK_PG_SCHEMA)', undefined)
    .option('--limit <n>', 'most records listed', '100')
    .option('--requeue <id...>', 'move these records back into the outbox as pending')
    .action(run(async (ctx, out, cmd) => command(ctx, out, cmd.opts<Flags>())));
}

async function command(_ctx: CliContext, out: Output, flags: Flags): Promise<number> {
  const { url, limit, schema } = resolveOutboxDeadLetterOptions(flags);
  const [{ PostgresOutbox }, { default: pg }] = await Promise.all([
    import('@backtrack/postgres'),
    import('pg'),
  ]);
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  try {
    const outbox = new PostgresOutbox({ pool }, { schema, notify: false });
    if (flags.requeue !== undefined && flags.requeue.length > 0) {
      const requeued = await outbox.requeueDeadLetters(flags.requeue);
      out.result({ schema, requeued }, () => `requeued ${requeued} record(s) into the outbox`);
      return EXIT.Ok;
    }
    const dead = await outbox.deadLetters({ limit });
    const items = dead.map((d) => ({
      id: d.record.id,
      seq: d.record.seq,
      type: d.record.type,
      topic: d.record.topic,
      service: d.record.service,
      version: d.record.version,
      failedAttempts: d.failedAttempts,
      lastError: d.lastError,
      deadLetteredAt: d.deadLetteredAt.toISOString(),
    }));
    out.result({ schema, items }, () =>
      items.length === 0
        ? `no dead-lettered outbox records in schema "${schema}"`
        : table(
            ['ID', 'TYPE', 'TOPIC', 'ATTEMPTS', 'LAST ERROR', 'DEAD-LETTERED'],
            items.map((i) => [
              i.id,
              i.type,
              i.topic,
              i.failedAttempts,
              (i.lastError ?? '').slice(0, 60),
              i.deadLetteredAt,
            ]),
          ),
    );
    return EXIT.Ok;
  } finally {
    await pool.end();
  }
}

/** The connection string, limit and schema from the flags (or the environment), checked. */
function resolveOutboxDeadLetterOptions(flags: Flags): {
  url: string;
  limit: number;
  schema: string;
} {
  const url = databaseUrlFrom(flags);
  const limit = Number(flags.limit ?? '100');
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) {
    throw new CliError(
      '--limit must be an integer from 1 to 10000',
      EXIT.Usage,
      'BT_ERR_CLI_USAGE',
    );
  }
  const schema = flags.schema ?? process.env.BACKTRACK_PG_SCHEMA ?? 'backtrack';
  return { url, limit, schema };
}
