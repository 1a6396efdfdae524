import type { Command } from 'commander';
import amqplib from 'amqplib';
import { redriveDeadLetters, type DeadLetter as KafkaDeadLetter } from '@backtrack/kafka';
import {
  browseDeadLetters as browseAmqpDeadLetters,
  redriveDeadLetters as redriveAmqpDeadLetters,
  RABBIT_ERROR_CODES,
  RabbitError,
  type DeadLetter as AmqpDeadLetter,
} from '@backtrack/rabbitmq';
import { messageOf, type CliContext } from '../context.js';
import { CliError, EXIT } from '../errors.js';
import { table, type Output } from '../output.js';

type Run = (
  fn: (ctx: CliContext, out: Output, cmd: Command) => Promise<number | void>,
) => (...args: unknown[]) => Promise<void>;

/** One dead letter as the CLI shows it, whatever the broker. */
export interface DeadLetterView {
  id?: string;
  type?: string;
  code: string;
  /** The machine-readable reason (`x-backtrack-reason`, docs/dead-letters.md). */
  reasonCode: string;
  reason: string;
  error?: string;
  attempt: number;
  origin?: string;
  deadLetteredAt?: string;
}

interface DlqFlags {
  topic?: string;
  queue?: string;
  code?: string;
  limit: number;
  to?: string;
}

function view(dl: KafkaDeadLetter | AmqpDeadLetter): DeadLetterView {
  const origin = 'originalTopic' in dl ? dl.originalTopic : (dl as AmqpDeadLetter).originalExchange;
  return {
    id: dl.message.headers.id,
    type: dl.message.headers.type,
    code: dl.code,
    reasonCode: dl.reasonCode,
    reason: dl.reason,
    error: dl.error,
    attempt: dl.attempt,
    origin,
    deadLetteredAt: dl.deadLetteredAt,
  };
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

/** Opens a plain AMQP connection for the dead-letter tooling of `@backtrack/rabbitmq`. */
async function withAmqp<T>(
  ctx: CliContext,
  fn: (model: amqplib.ChannelModel) => Promise<T>,
): Promise<T> {
  let connection: amqplib.ChannelModel;
  try {
    connection = await amqplib.connect(ctx.amqpUrl, {
      ...ctx.config.rabbitmq?.socketOptions,
      timeout: 3_000,
    });
  } catch (error) {
    throw new CliError(
      `cannot connect to RabbitMQ at ${ctx.amqpUrl}: ${messageOf(error)}`,
      EXIT.Error,
      'BT_ERR_CLI_CONNECTION',
      'set --amqp-url or AMQP_URL',
    );
  }
  connection.on('error', () => undefined);
  try {
    return await fn(connection);
  } catch (error) {
    if (error instanceof RabbitError && error.code === RABBIT_ERROR_CODES.QUEUE_NOT_FOUND)
      throw new CliError(error.message, EXIT.Error);
    if (error instanceof RabbitError && error.code === RABBIT_ERROR_CODES.REDRIVE_FAILED)
      throw new CliError(error.message, EXIT.Error, error.code);
    throw error;
  } finally {
    await connection.close().catch(() => undefined);
  }
}

export function registerDlq(program: Command, run: Run): void {
  const dlq = program
    .command('dlq')
    .description('dead letters on Kafka (--topic) or RabbitMQ (--queue)');
  const common = (cmd: Command) =>
    cmd
      .option('--topic <topic>', 'Kafka: the dead-letter topic')
      .option('--queue <queue>', 'RabbitMQ: the dead-letter queue')
      .option(
        '--code <code>',
        'only dead letters with this code (e.g. BT_ERR_SCHEMA_VERSION_UNKNOWN)',
      )
      .option(
        '--limit <n>',
        'at most this many',
        (v) => {
          const n = Number(v);
          if (!Number.isSafeInteger(n) || n < 1)
            throw new CliError(`--limit must be a positive integer, got "${v}"`, EXIT.Usage);
          return n;
        },
        100,
      );

  common(dlq.command('list').description('show dead letters without removing them')).action(
    run(async (ctx, out, cmd) => {
      const flags = cmd.opts<DlqFlags>();
      const from = source(ctx, flags);
      const items: DeadLetterView[] = [];
      if (ctx.transportKind === 'kafka') {
        // A read-only pass: the filter records each dead letter and re-drives none.
        await redriveDeadLetters(await ctx.kafkaTransport(), {
          from,
          timeoutMs: 30_000,
          filter: (d) => {
            if (items.length < flags.limit && (!flags.code || d.code === flags.code))
              items.push(view(d));
            return false;
          },
        });
      } else {
        // Browses without consuming: see @backtrack/rabbitmq's browseDeadLetters.
        const found = await withAmqp(ctx, (model) =>
          browseAmqpDeadLetters(model, {
            queue: from,
            limit: flags.limit,
            filter: (d) => !flags.code || d.code === flags.code,
          }),
        );
        items.push(...found.map(view));
      }
      out.result(items, () => DESCRIBE(items));
    }),
  );

  common(
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
        const from = source(ctx, flags);
        const redriven: DeadLetterView[] = [];
        if (ctx.transportKind === 'kafka') {
          const result = await redriveDeadLetters(await ctx.kafkaTransport(), {
            from,
            to: flags.to,
            limit: flags.limit,
            filter: (d) => {
              const ok = !flags.code || d.code === flags.code;
              if (ok) redriven.push(view(d));
              return ok;
            },
          });
          out.result(
            { ...result, items: redriven.slice(0, result.redriven) },
            () => `Re-drove ${result.redriven} dead letters (${result.skipped} skipped).`,
          );
          return;
        }
        // A dead letter is removed only after its copy was routed and confirmed.
        const result = await withAmqp(ctx, (model) =>
          redriveAmqpDeadLetters(model, {
            from,
            to: flags.to,
            limit: flags.limit,
            filter: (d) => !flags.code || d.code === flags.code,
          }),
        );
        const skipped = result.skipped;
        redriven.push(...result.redriven.map(view));
        out.result(
          { redriven: redriven.length, skipped, items: redriven },
          () => `Re-drove ${redriven.length} dead letters (${skipped} skipped).`,
        );
      }),
    );
}
