import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { CliError, EXIT } from '../errors.js';
import type { Output } from '../output.js';
import { parseDurationMs } from './sagas.js';

type Run = (
  fn: (ctx: CliContext, out: Output, cmd: Command) => Promise<number | void>,
) => (...args: unknown[]) => Promise<void>;

interface PruneFlags {
  olderThan?: string;
  retentionMs?: string;
}

/** `backtrack journal prune`: deletes the Redis journal's records older than its retention now. */
export function registerJournal(program: Command, run: Run): void {
  const journal = program.command('journal').description('the effect journal (Redis)');
  journal
    .command('prune')
    .description(
      'delete journal records older than the retention window now (the journal also prunes a few on every append)',
    )
    .option(
      '--older-than <duration>',
      'delete records older than this: 7d, 12h, 90m, or ms, as `sagas prune` (default 7d, the journal default retention)',
    )
    .option('--retention-ms <ms>', 'the same in ms (kept for scripts written before --older-than)')
    .action(run(async (ctx, out, cmd) => prune(ctx, out, cmd.opts<PruneFlags>())));
}

async function prune(ctx: CliContext, out: Output, flags: PruneFlags): Promise<number> {
  if (flags.olderThan !== undefined && flags.retentionMs !== undefined) {
    throw new CliError(
      'give --older-than or --retention-ms, not both',
      EXIT.Usage,
      'BT_ERR_CLI_USAGE',
    );
  }
  let retentionMs = flags.retentionMs === undefined ? undefined : Number(flags.retentionMs);
  if (retentionMs !== undefined && (!Number.isSafeInteger(retentionMs) || retentionMs <= 0)) {
    throw new CliError('--retention-ms must be a positive integer', EXIT.Usage, 'BT_ERR_CLI_USAGE');
  }
  if (flags.olderThan !== undefined) retentionMs = parseDurationMs('--older-than', flags.olderThan);
  const { RedisJournal } = await import('@backtrack/redis');
  const keyPrefix = ctx.config.redis?.journalPrefix;
  const journal = new RedisJournal(
    {
      ...(keyPrefix ? { keyPrefix } : {}),
      ...(retentionMs === undefined ? {} : { retentionMs }),
    },
    { redis: await ctx.redis() },
  );
  const deleted = await journal.prune();
  out.result({ deleted, keyPrefix: journal.keyPrefix }, () => {
    return `deleted ${deleted} journal record(s) past retention under ${journal.keyPrefix}`;
  });
  return EXIT.Ok;
}
