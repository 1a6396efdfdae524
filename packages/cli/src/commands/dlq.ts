import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { CliError, EXIT } from '../errors.js';
import {
  browseDeadLetters,
  deadLetterView,
  redriveDeadLetterQueue,
  type DeadLetterView,
} from '../operations/deadLetters.js';
import { table, type Output } from '../output.js';

type Run = (
  fn: (ctx: CliContext, out: Output, cmd: Command) => Promise<number | void>,
) => (...args: unknown[]) => Promise<void>;

export type { DeadLetterView };

interface DlqFlags {
  topic?: string;
  queue?: string;
  code?: string;
  limit: number;
  to?: string;
}

function source(ctx: CliContext, flags: DlqFlags): string {
  const kind = ctx.transportKind;
  const name = kind === 'kafka' ? flags.topic : flags.queue;
  if (!name) {
    throw new CliError(
      kind === 'kafka'
        ? 'Kafka dead letters: pass --topic <dead-letter topic>'
        : 'RabbitMQ dead letters: pass --queue <dead-letter queue>',
      EXIT.Usage,
    );
  }
  return name;
}

const DESCRIBE = (items: DeadLetterView[]) =>
  items.length === 0
    ? 'No dead letters.'
    : table(
        ['id', 'type', 'why', 'code', 'attempt', 'from', 'reason'],
        items.map((d) => [d.id, d.type, d.reasonCode, d.code, d.attempt, d.origin, d.reason]),
      );

export function registerDlq(program: Command, run: Run): void {
  const dlq = program
    .command('dlq')
    .description('dead letters on Kafka (--topic) or RabbitMQ (--queue)');
  registerList(dlq, run);
  registerRedrive(dlq, run);
}

/** The options every `dlq` subcommand takes: where the dead letters are, which, how many. */
function dlqOptions(cmd: Command): Command {
  return cmd
    .option('--topic <topic>', 'Kafka: the dead-letter topic')
    .option('--queue <queue>', 'RabbitMQ: the dead-letter queue')
    .option(
      '--code <code>',
      'only dead letters with this code (e.g. BT_ERR_SCHEMA_VERSION_UNKNOWN)',
    )
    .option('--limit <n>', 'at most this many', positiveLimit, 100);
}

function positiveLimit(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new CliError(`--limit must be a positive integer, got "${v}"`, EXIT.Usage);
  return n;
}

/** The flags checked: `from` is the topic or queue the configured transport needs. */
function resolveDlqOptions(ctx: CliContext, flags: DlqFlags) {
  return { from: source(ctx, flags), code: flags.code, limit: flags.limit };
}

/** `dlq list`: shows dead letters without removing them. */
function registerList(dlq: Command, run: Run): void {
  dlqOptions(dlq.command('list').description('show dead letters without removing them')).action(
    run(async (ctx, out, cmd) => {
      const found = await browseDeadLetters(ctx, resolveDlqOptions(ctx, cmd.opts<DlqFlags>()));
      const items = found.map(deadLetterView);
      out.result(items, () => DESCRIBE(items));
    }),
  );
}

/** `dlq redrive`: publishes dead letters again to where they came from (or `--to`). */
function registerRedrive(dlq: Command, run: Run): void {
  dlqOptions(
    dlq
      .command('redrive')
      .description('publish dead letters again to where they came from (or --to)'),
  )
    .option(
      '--to <destination>',
      'Kafka topic or AMQP exchange to publish to (default: where each came from)',
    )
    .action(
      run(async (ctx, out, cmd) => {
        const flags = cmd.opts<DlqFlags>();
        const { from, code, limit } = resolveDlqOptions(ctx, flags);
        const result = await redriveDeadLetterQueue(ctx, { from, to: flags.to, code, limit });
        out.result(
          result,
          () => `Re-drove ${result.redriven} dead letters (${result.skipped} skipped).`,
        );
      }),
    );
}
