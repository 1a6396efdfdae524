import type { Logger } from '@backtrack/core';
import type { ChannelModel, ConfirmChannel, GetMessage, Message } from 'amqplib';
import { toAmqpMessage } from '../envelope/amqpBinding.js';
import { readDeadLetter, type DeadLetter } from '../envelope/deadLetter.js';
import {
  RABBIT_ERROR_CODES,
  RabbitConfigError,
  RabbitError,
  RabbitUnroutableError,
} from '../errors.js';

/**
 * Dead-letter queue tooling (the CLI's `dlq list` / `dlq redrive`, a web console): browse a
 * dead-letter queue without consuming it, and publish dead letters again.
 *
 * How browsing works: every message looked at is taken with `basic.get` (manual ack) and held,
 * unacknowledged, on one channel until the page is read; then the channel is closed, which puts
 * them all back in their places. Nothing is nacked one by one.
 *
 * What that costs on a quorum queue depends on the broker version (measured on 3.10.8, and the
 * RabbitMQ docs for 4.x):
 * - RabbitMQ 3.x: every return of a message to a quorum queue, a channel close as much as a
 *   `basic.nack`/`basic.reject` with requeue, adds 1 to its `x-delivery-count`; no delivery limit
 *   applies unless one is set.
 * - RabbitMQ 4.0 to 4.2: a quorum queue without `x-delivery-limit` gets 20, checked against every
 *   return (a channel close included).
 * - RabbitMQ 4.3 and later: the limit is checked against failed deliveries only: `basic.reject`
 *   with requeue counts, `basic.nack` with requeue and a channel close do not.
 * So on 3.x to 4.2 a browse still counts one delivery per message looked at; Backtrack's
 * dead-letter queues are declared with an explicit, large `x-delivery-limit`
 * (`deadLetter.deliveryLimit`), so browsing and re-drive runs never make the broker drop one.
 */

/** Options of {@link browseDeadLetters}. */
export interface BrowseDeadLettersOptions {
  /** The dead-letter queue. */
  queue: string;
  /** Only dead letters for which this returns true are returned (all are looked at). */
  filter?: (deadLetter: DeadLetter) => boolean;
  /** At most this many dead letters are returned. @default 100 */
  limit?: number;
}

/** Options of {@link redriveDeadLetters}. */
export interface RedriveDeadLettersOptions {
  /** The dead-letter queue to read. */
  from: string;
  /**
   * Exchange to publish each dead letter to. @default the exchange it was first published to
   * (`x-backtrack-original-exchange`); a dead letter without one is skipped.
   */
  to?: string;
  /** Only dead letters for which this returns true are re-driven; the others stay. */
  filter?: (deadLetter: DeadLetter) => boolean;
  /** At most this many are re-driven. @default 100 */
  limit?: number;
  /** How long one publish may wait for its confirm, in ms. @default 30_000 */
  confirmTimeoutMs?: number;
}

/** What {@link redriveDeadLetters} did. */
export interface RedriveDeadLettersResult {
  /** The dead letters re-driven (published, routed, confirmed, then removed), in order. */
  redriven: DeadLetter[];
  /** How many were looked at and left in the queue (filtered out, or no destination). */
  skipped: number;
}

const DEFAULT_LIMIT = 100;

/**
 * Reads up to `limit` dead letters from `queue` and leaves every one of them in the queue, in
 * its place (see the module comment for what a look costs on each broker version).
 *
 * @param model an amqplib connection (`amqplib.connect(url)`, or `transport.connection.model`).
 * @throws {RabbitError} `BT_ERR_AMQP_QUEUE_NOT_FOUND` when the queue does not exist.
 */
export async function browseDeadLetters(
  model: ChannelModel,
  options: BrowseDeadLettersOptions,
): Promise<DeadLetter[]> {
  const limit = checkLimit(options.limit);
  const items: DeadLetter[] = [];
  await withQueueChannel(model, options.queue, async (channel) => {
    while (items.length < limit) {
      const message = await channel.get(options.queue, { noAck: false });
      if (!message) break;
      const deadLetter = readDeadLetter(message);
      if (!options.filter || options.filter(deadLetter)) items.push(deadLetter);
    }
  });
  return items;
}

/**
 * Publishes dead letters again, each with its original bytes, properties and headers (the
 * dead-letter headers dropped, `x-backtrack-redriven-from` added), `mandatory` and persistent on a
 * confirm channel. A dead letter is removed from `from` only after its copy was routed to a queue
 * and confirmed by the broker; the others are left in place.
 *
 * @throws {RabbitError} `BT_ERR_AMQP_REDRIVE_FAILED` when a copy could not be delivered: the
 *   broker returned it as unroutable (`cause` is a `RabbitUnroutableError`), nacked it, did not
 *   confirm it in time, or the exchange does not exist. That dead letter and every one not yet
 *   re-driven stay in the queue; `details` has the counts so far and the message id.
 * @throws {RabbitError} `BT_ERR_AMQP_QUEUE_NOT_FOUND` when `from` does not exist.
 */
export async function redriveDeadLetters(
  model: ChannelModel,
  options: RedriveDeadLettersOptions,
  logger?: Logger,
): Promise<RedriveDeadLettersResult> {
  const limit = checkLimit(options.limit);
  const timeoutMs = options.confirmTimeoutMs ?? 30_000;
  const result: RedriveDeadLettersResult = { redriven: [], skipped: 0 };
  await withQueueChannel(model, options.from, async (channel) => {
    while (result.redriven.length < limit) {
      const message = await channel.get(options.from, { noAck: false });
      if (!message) break;
      const deadLetter = readDeadLetter(message);
      const exchange = options.to ?? deadLetter.originalExchange;
      if (!exchange || (options.filter && !options.filter(deadLetter))) {
        result.skipped += 1; // held unacknowledged: back in its place when the channel closes
        continue;
      }
      const routingKey = deadLetter.originalRoutingKey ?? deadLetter.message.headers.type ?? '';
      try {
        await publishRouted(channel, exchange, routingKey, deadLetter, options.from, timeoutMs);
      } catch (cause) {
        throw new RabbitError(
          RABBIT_ERROR_CODES.REDRIVE_FAILED,
          `re-driving ${options.from} stopped at message ${deadLetter.message.headers.id ?? '?'}: ${textOf(cause)}; it and the dead letters after it are still in ${options.from}`,
          {
            cause,
            retriable: !(cause instanceof RabbitUnroutableError),
            details: {
              from: options.from,
              exchange,
              routingKey,
              messageId: deadLetter.message.headers.id,
              redriven: result.redriven.length,
              skipped: result.skipped,
            },
          },
        );
      }
      channel.ack(message as GetMessage);
      result.redriven.push(deadLetter);
    }
  });
  logger?.info(
    { from: options.from, redriven: result.redriven.length, skipped: result.skipped },
    'dead letters re-driven',
  );
  return result;
}

/**
 * Publishes one copy and resolves only when the broker routed it and confirmed it. A `mandatory`
 * message nobody is bound for comes back as `basic.return` before its confirm (the broker sends
 * the return first), so the confirm alone says nothing about delivery.
 */
async function publishRouted(
  channel: ConfirmChannel,
  exchange: string,
  routingKey: string,
  deadLetter: DeadLetter,
  from: string,
  timeoutMs: number,
): Promise<void> {
  const { content, options } = toAmqpMessage(deadLetter.message);
  options.headers = { ...options.headers, 'x-backtrack-redriven-from': from };
  options.mandatory = true;
  options.persistent = true;
  let returned: Message | undefined;
  const onReturn = (message: Message) => {
    returned = message;
  };
  channel.on('return', onReturn);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new RabbitError(
              RABBIT_ERROR_CODES.PUBLISH_TIMEOUT,
              `no confirm within ${timeoutMs} ms`,
              { retriable: true },
            ),
          ),
        timeoutMs,
      );
      const settle = (error: unknown) => {
        clearTimeout(timer);
        if (error) reject(error instanceof Error ? error : new Error(String(error)));
        else resolve();
      };
      const onClose = () =>
        settle(new Error(`channel closed before the confirm (does exchange "${exchange}" exist?)`));
      channel.once('close', onClose);
      try {
        channel.publish(exchange, routingKey, content, options, (error: unknown) => {
          channel.off('close', onClose);
          settle(
            error
              ? new RabbitError(RABBIT_ERROR_CODES.PUBLISH_NACKED, 'the broker nacked the copy', {
                  retriable: true,
                })
              : undefined,
          );
        });
      } catch (error) {
        channel.off('close', onClose);
        settle(error);
      }
    });
  } finally {
    channel.off('return', onReturn);
  }
  if (returned) {
    throw new RabbitUnroutableError({
      messageId: deadLetter.message.headers.id ?? '?',
      exchange,
      routingKey,
      replyText: (returned.fields as { replyText?: string }).replyText ?? 'NO_ROUTE',
    });
  }
}

/**
 * Checks that `queue` exists, then runs `fn` on one confirm channel and closes it: every message
 * taken and not acknowledged goes back to its place in the queue. The close comes before the
 * connection's, so the broker has processed the acks sent on it.
 */
async function withQueueChannel(
  model: ChannelModel,
  queue: string,
  fn: (channel: ConfirmChannel) => Promise<void>,
): Promise<void> {
  const check = await model.createChannel();
  check.on('error', () => undefined);
  try {
    await check.checkQueue(queue);
  } catch (cause) {
    throw new RabbitError(RABBIT_ERROR_CODES.QUEUE_NOT_FOUND, `queue ${queue} does not exist`, {
      cause,
      retriable: false,
      details: { queue },
    });
  } finally {
    await check.close().catch(() => undefined);
  }
  const channel = await model.createConfirmChannel();
  channel.on('error', () => undefined);
  try {
    await fn(channel);
  } finally {
    await channel.close().catch(() => undefined);
  }
}

function checkLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_LIMIT;
  if (!Number.isSafeInteger(limit) || limit < 0)
    throw new RabbitConfigError('limit', 'must be an integer >= 0', limit);
  return limit;
}

function textOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
