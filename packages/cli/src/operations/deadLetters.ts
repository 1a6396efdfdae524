/**
 * Dead-letter operations shared by `backtrack dlq ...` and the web console: Kafka through
 * `@backtrack/kafka`'s redriveDeadLetters, RabbitMQ through `@backtrack/rabbitmq`'s
 * browseDeadLetters / redriveDeadLetters (a dead letter is removed only after its copy was routed
 * and confirmed).
 */
import amqplib from 'amqplib';
import { redriveDeadLetters, type DeadLetter as KafkaDeadLetter } from '@backtrack/kafka';
import {
  browseDeadLetters as browseAmqpDeadLetters,
  redriveDeadLetters as redriveAmqpDeadLetters,
  RABBIT_ERROR_CODES,
  RabbitError,
  type DeadLetter as AmqpDeadLetter,
} from '@backtrack/rabbitmq';
import { classifyRabbitError } from '@backtrack/rabbitmq/adapter';
import { connectionFailure, type CliContext } from '../context.js';
import { CliError, EXIT } from '../errors.js';

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

/** A view with the message itself: its headers and the start of its body. */
export interface DeadLetterDetail extends DeadLetterView {
  headers: Record<string, string>;
  /** The body as UTF-8, cut at `previewBytes`. */
  bodyPreview: string;
  bodyBytes: number;
  truncated: boolean;
}

type AnyDeadLetter = KafkaDeadLetter | AmqpDeadLetter;

export function deadLetterView(dl: AnyDeadLetter): DeadLetterView {
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

export function deadLetterDetail(dl: AnyDeadLetter, previewBytes: number): DeadLetterDetail {
  const body = dl.message.body;
  const truncated = body.byteLength > previewBytes;
  return {
    ...deadLetterView(dl),
    headers: { ...dl.message.headers },
    bodyPreview: Buffer.from(body.subarray(0, previewBytes)).toString('utf8'),
    bodyBytes: body.byteLength,
    truncated,
  };
}

/** Opens a plain AMQP connection for the dead-letter tooling of `@backtrack/rabbitmq`. */
export async function withAmqp<T>(
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
    throw connectionFailure(
      `RabbitMQ at ${ctx.amqpUrl}`,
      error,
      classifyRabbitError(error),
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

export interface BrowseOptions {
  /** The dead-letter topic (Kafka) or queue (RabbitMQ). */
  from: string;
  code?: string;
  /** Only the dead letter with this message id. */
  id?: string;
  limit: number;
}

const matches = (options: { code?: string; id?: string }) => (d: AnyDeadLetter) =>
  (!options.code || d.code === options.code) &&
  (!options.id || d.message.headers.id === options.id);

/** Dead letters without consuming them (Kafka: a read-only pass; RabbitMQ: browsed in place). */
export async function browseDeadLetters(
  ctx: CliContext,
  options: BrowseOptions,
): Promise<AnyDeadLetter[]> {
  const keep = matches(options);
  if (ctx.transportKind === 'kafka') {
    const items: AnyDeadLetter[] = [];
    // The filter records each dead letter and re-drives none.
    await redriveDeadLetters(await ctx.kafkaTransport(), {
      from: options.from,
      timeoutMs: 30_000,
      filter: (d) => {
        if (items.length < options.limit && keep(d)) items.push(d);
        return false;
      },
    });
    return items;
  }
  return withAmqp(ctx, (model) =>
    browseAmqpDeadLetters(model, { queue: options.from, limit: options.limit, filter: keep }),
  );
}

export interface RedriveOptions extends BrowseOptions {
  /** Kafka topic or AMQP exchange to publish to. @default where each came from */
  to?: string;
}

export interface RedriveSummary {
  redriven: number;
  skipped: number;
  items: DeadLetterView[];
  /** Kafka only: see `@backtrack/kafka`'s RedriveResult. */
  byTopic?: Record<string, number>;
  complete?: boolean;
}

/** Publishes dead letters again to where they came from (or `to`). */
export async function redriveDeadLetterQueue(
  ctx: CliContext,
  options: RedriveOptions,
): Promise<RedriveSummary> {
  const keep = matches(options);
  if (ctx.transportKind === 'kafka') {
    const redriven: DeadLetterView[] = [];
    const result = await redriveDeadLetters(await ctx.kafkaTransport(), {
      from: options.from,
      to: options.to,
      limit: options.limit,
      filter: (d) => {
        const ok = keep(d);
        if (ok) redriven.push(deadLetterView(d));
        return ok;
      },
    });
    return { ...result, items: redriven.slice(0, result.redriven) };
  }
  const result = await withAmqp(ctx, (model) =>
    redriveAmqpDeadLetters(model, {
      from: options.from,
      to: options.to,
      limit: options.limit,
      filter: keep,
    }),
  );
  const items = result.redriven.map(deadLetterView);
  return { redriven: items.length, skipped: result.skipped, items };
}
