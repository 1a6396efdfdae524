import { classifyRabbitError } from '../connection/connectionErrors.js';
import type { Logger } from '@backtrack/core';
import type { ChannelModel, ConfirmChannel, Message, Options } from 'amqplib';
import type { RabbitConnection } from '../connection/RabbitConnection.js';
import { settleWithin } from '../timeouts.js';
import { publishOn } from './publishFrames.js';
import {
  RABBIT_ERROR_CODES,
  RabbitClosedError,
  RabbitPublishError,
  RabbitUnroutableError,
} from '../errors.js';

/** Options of {@link RabbitPublisher}. */
export interface RabbitPublisherOptions {
  /**
   * How long a message may wait for its broker confirm, in ms, reconnects included. After it the
   * publish rejects with `BT_ERR_AMQP_PUBLISH_TIMEOUT` (retriable) and the message is no longer
   * re-sent; if it was on the wire (`details.maybeDelivered`), it may still arrive, so the
   * caller's retry can produce a duplicate, which idempotent consumers absorb.
   * @default 30_000
   */
  publishTimeoutMs: number;
  /**
   * A message whose channel the broker closed with an error (other than a missing exchange, which
   * fails at once) is re-sent on a new channel at most this many times.
   * @default 3
   */
  maxChannelFailures: number;
}

/** Counters of a {@link RabbitPublisher}. */
export interface RabbitPublisherStats {
  /** Messages handed to `publish`. */
  published: number;
  /** Messages the broker confirmed (their `publish` resolved). */
  confirmed: number;
  /** Sends of a message after its first (its channel or connection died before the confirm). */
  resent: number;
  /** Messages whose `publish` rejected. */
  failed: number;
}

interface Pending {
  readonly seq: number;
  readonly exchange: string;
  readonly routingKey: string;
  readonly content: Buffer;
  readonly options: Options.Publish;
  readonly messageId: string;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  /** The channel it is in flight on, or undefined while it waits to be (re-)sent. */
  channel: ConfirmChannel | undefined;
  returned: string | undefined;
  settled: boolean;
  sends: number;
  channelFailures: number;
  timer: NodeJS.Timeout | undefined;
}

const CHANNEL_REOPEN_DELAY_MS = 100;

/**
 * Publishes on one confirm channel and guarantees: a publish resolves only after the broker
 * confirmed the message; an unroutable (returned) message, a nack, a missing exchange or a timeout
 * rejects. Messages not yet confirmed when the channel or connection goes down are re-sent, in
 * their original order, on the next channel (so a confirmed message is never lost and an
 * unconfirmed one is never reported as sent; a re-send can duplicate a message the broker had
 * received but not yet confirmed).
 */
export class RabbitPublisher {
  /** Counters (tests and metrics). */
  readonly stats: RabbitPublisherStats = { published: 0, confirmed: 0, resent: 0, failed: 0 };
  readonly #connection: RabbitConnection;
  readonly #options: RabbitPublisherOptions;
  readonly #logger: Logger;
  #seq = 0;
  readonly #waiting: Pending[] = [];
  readonly #inFlight = new Set<Pending>();
  #channel: ConfirmChannel | undefined;
  #opening: Promise<void> | undefined;
  #pumping = false;
  #closed = false;
  readonly #closeErrors = new WeakMap<ConfirmChannel, Error & { code?: number }>();
  #removeHook: (() => void) | undefined;
  #reopenTimer: NodeJS.Timeout | undefined;

  constructor(connection: RabbitConnection, options: RabbitPublisherOptions, logger: Logger) {
    this.#connection = connection;
    this.#options = options;
    this.#logger = logger;
  }

  /** Opens the confirm channel now and again on every reconnect. */
  async start(): Promise<void> {
    this.#removeHook = this.#connection.addSetupHook(
      'publisher',
      (model) => this.#attach(model),
      'publisher',
    );
    await this.#attach(await this.#connection.waitForModel());
  }

  /** Messages handed to `publish` and not yet confirmed or failed. */
  get pendingCount(): number {
    return this.#waiting.length + this.#inFlight.size;
  }

  /** The confirm channel in use (diagnostics and tests). */
  get channel(): ConfirmChannel | undefined {
    return this.#channel;
  }

  /**
   * Publishes one message; resolves once the broker confirmed it.
   * @throws {RabbitUnroutableError} returned by the broker (`mandatory`, nothing bound).
   * @throws {RabbitPublishError} nacked, exchange missing, channel errors, timeout.
   * @throws {RabbitClosedError} the publisher is closed.
   */
  publish(
    exchange: string,
    routingKey: string,
    content: Buffer,
    options: Options.Publish,
  ): Promise<void> {
    if (this.#closed) return Promise.reject(new RabbitClosedError('the RabbitMQ publisher'));
    this.stats.published += 1;
    return new Promise<void>((resolve, reject) => {
      const pending: Pending = {
        seq: ++this.#seq,
        exchange,
        routingKey,
        content,
        options,
        messageId: options.messageId ?? '',
        resolve,
        reject,
        channel: undefined,
        returned: undefined,
        settled: false,
        sends: 0,
        channelFailures: 0,
        timer: undefined,
      };
      pending.timer = setTimeout(() => this.#timeout(pending), this.#options.publishTimeoutMs);
      pending.timer.unref?.();
      this.#waiting.push(pending);
      this.#pump();
    });
  }

  async #attach(model: ChannelModel): Promise<void> {
    if (this.#closed) return;
    if (
      this.#channel &&
      !isClosedChannel(this.#channel) &&
      channelModelOf(this.#channel) === model
    ) {
      return;
    }
    const channel = await model.createConfirmChannel();
    (channel as unknown as { [MODEL]: ChannelModel })[MODEL] = model;
    channel.on('error', (error: Error & { code?: number }) => {
      this.#closeErrors.set(channel, error);
      this.#logger.warn({ err: error }, 'amqp publisher channel closed by the broker');
    });
    channel.on('return', (message: Message) => this.#onReturn(channel, message));
    channel.on('close', () => this.#onClose(channel));
    this.#channel = channel;
    // Anything still in flight on an older channel can no longer be confirmed there.
    for (const pending of [...this.#inFlight]) {
      if (pending.channel !== channel) this.#requeue(pending);
    }
    this.#pump();
  }

  #onReturn(channel: ConfirmChannel, message: Message): void {
    const { exchange, routingKey, replyText } = message.fields as Message['fields'] & {
      replyText?: string;
    };
    const messageId = message.properties.messageId as string | undefined;
    for (const pending of this.#inFlight) {
      if (
        pending.channel === channel &&
        pending.returned === undefined &&
        pending.messageId === (messageId ?? '') &&
        pending.exchange === exchange &&
        pending.routingKey === routingKey
      ) {
        pending.returned = replyText ?? 'NO_ROUTE';
        return;
      }
    }
  }

  #onClose(channel: ConfirmChannel): void {
    // amqplib has already failed this channel's unconfirmed callbacks (see #confirmed).
    if (this.#channel !== channel) return;
    this.#channel = undefined;
    if (this.#closed) return;
    clearTimeout(this.#reopenTimer);
    // Deferred: when the whole connection dropped, its 'disconnect' has fired by then and the
    // reconnect's setup hook re-opens the channel; otherwise only this channel died.
    this.#reopenTimer = setTimeout(() => this.#reopen(), CHANNEL_REOPEN_DELAY_MS);
    this.#reopenTimer.unref?.();
  }

  #reopen(): void {
    if (this.#closed || this.#channel || this.#opening) return;
    const model = this.#connection.model;
    if (!model) return;
    this.#opening = this.#attach(model)
      .catch((error: unknown) => {
        this.#logger.warn({ err: error }, 'amqp publisher channel could not be re-opened');
        this.#reopenTimer = setTimeout(() => this.#reopen(), CHANNEL_REOPEN_DELAY_MS * 10);
        this.#reopenTimer.unref?.();
      })
      .finally(() => {
        this.#opening = undefined;
      });
  }

  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    void this.#drainQueue().finally(() => {
      this.#pumping = false;
      if (this.#waiting.length > 0 && this.#channel && !isClosedChannel(this.#channel))
        this.#pump();
    });
  }

  async #drainQueue(): Promise<void> {
    while (this.#waiting.length > 0) {
      const channel = this.#channel;
      if (!channel || isClosedChannel(channel)) {
        if (!channel) this.#reopen();
        return;
      }
      const pending = this.#waiting.shift()!;
      if (pending.settled) continue;
      pending.channel = channel;
      pending.returned = undefined;
      pending.sends += 1;
      if (pending.sends > 1) this.stats.resent += 1;
      this.#inFlight.add(pending);
      let writable: boolean;
      try {
        writable = publishOn(
          channel,
          pending.exchange,
          pending.routingKey,
          pending.content,
          pending.options,
          (error: Error | null) => this.#confirmed(channel, pending, error),
        );
      } catch (error) {
        if (
          isClosedChannel(channel) ||
          (error instanceof Error && error.name === 'IllegalOperationError')
        ) {
          this.#requeue(pending);
          return;
        }
        this.#inFlight.delete(pending);
        pending.channel = undefined;
        this.#settle(
          pending,
          new RabbitPublishError(
            RABBIT_ERROR_CODES.MESSAGE_INVALID,
            `message ${pending.messageId} could not be encoded: ${error instanceof Error ? error.message : String(error)}`,
            { cause: error, details: this.#details(pending), retriable: false },
          ),
        );
        continue;
      }
      if (!writable) await waitForDrain(channel);
    }
  }

  #confirmed(channel: ConfirmChannel, pending: Pending, error: Error | null): void {
    if (pending.channel !== channel) return; // a stale callback of a channel it left
    pending.channel = undefined;
    this.#inFlight.delete(pending);
    if (pending.settled) return;
    if (!error) {
      if (pending.returned !== undefined) {
        this.#settle(
          pending,
          new RabbitUnroutableError({
            messageId: pending.messageId,
            exchange: pending.exchange,
            routingKey: pending.routingKey,
            replyText: pending.returned,
          }),
        );
      } else {
        this.#settle(pending);
      }
      return;
    }
    if (error.message === 'message nacked') {
      this.#settle(
        pending,
        new RabbitPublishError(
          RABBIT_ERROR_CODES.PUBLISH_NACKED,
          `the broker nacked message ${pending.messageId} (a queue rejected it, for example x-overflow reject-publish at its max length)`,
          { details: this.#details(pending), retriable: true },
        ),
      );
      return;
    }
    // The channel closed before the confirm arrived.
    const closeError = this.#closeErrors.get(channel);
    if (closeError?.code === 404 && closeError.message.includes(`exchange '${pending.exchange}'`)) {
      this.#settle(
        pending,
        new RabbitPublishError(
          RABBIT_ERROR_CODES.EXCHANGE_NOT_FOUND,
          `exchange "${pending.exchange}" does not exist: declare it (transport.declare or subscribe) before publishing`,
          { cause: closeError, details: this.#details(pending), retriable: false },
        ),
      );
      return;
    }
    const denied = closeError && classifyRabbitError(closeError);
    if (denied) {
      this.#settle(pending, denied);
      return;
    }
    if (closeError) {
      pending.channelFailures += 1;
      if (pending.channelFailures >= this.#options.maxChannelFailures) {
        this.#settle(
          pending,
          new RabbitPublishError(
            RABBIT_ERROR_CODES.CHANNEL_ERROR,
            `message ${pending.messageId} was on ${pending.channelFailures} channels the broker closed: ${closeError.message}`,
            { cause: closeError, details: this.#details(pending), retriable: false },
          ),
        );
        return;
      }
    }
    this.#requeue(pending);
  }

  #requeue(pending: Pending): void {
    pending.channel = undefined;
    this.#inFlight.delete(pending);
    if (pending.settled) return;
    // Keep publish order: insert by sequence number.
    let i = this.#waiting.length;
    while (i > 0 && this.#waiting[i - 1]!.seq > pending.seq) i -= 1;
    this.#waiting.splice(i, 0, pending);
    this.#pump();
  }

  #timeout(pending: Pending): void {
    if (pending.settled) return;
    const maybeDelivered = pending.sends > 0;
    const i = this.#waiting.indexOf(pending);
    if (i >= 0) this.#waiting.splice(i, 1);
    this.#settle(
      pending,
      new RabbitPublishError(
        RABBIT_ERROR_CODES.PUBLISH_TIMEOUT,
        `message ${pending.messageId} was not confirmed within ${this.#options.publishTimeoutMs} ms`,
        { details: { ...this.#details(pending), maybeDelivered }, retriable: true },
      ),
    );
  }

  #settle(pending: Pending, error?: Error): void {
    if (pending.settled) return;
    pending.settled = true;
    clearTimeout(pending.timer);
    if (error) {
      this.stats.failed += 1;
      pending.reject(error);
    } else {
      this.stats.confirmed += 1;
      pending.resolve();
    }
  }

  #details(pending: Pending): Record<string, unknown> {
    return {
      messageId: pending.messageId,
      exchange: pending.exchange,
      routingKey: pending.routingKey,
      sends: pending.sends,
    };
  }

  /**
   * Stops accepting messages, waits up to `timeoutMs` for the pending ones to be confirmed, fails
   * the rest with {@link RabbitClosedError}, and closes the channel.
   */
  async close(timeoutMs: number): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#removeHook?.();
    clearTimeout(this.#reopenTimer);
    const deadline = Date.now() + timeoutMs;
    while (this.pendingCount > 0 && Date.now() < deadline && this.#connection.model) {
      await sleep(20);
    }
    for (const pending of [...this.#waiting, ...this.#inFlight]) {
      this.#settle(
        pending,
        new RabbitClosedError('the RabbitMQ publisher', this.#details(pending)),
      );
    }
    this.#waiting.length = 0;
    this.#inFlight.clear();
    const channel = this.#channel;
    this.#channel = undefined;
    if (channel && !isClosedChannel(channel)) await settleWithin(channel.close(), 5_000);
  }
}

const MODEL = Symbol('backtrack.amqpChannelModel');

function channelModelOf(channel: ConfirmChannel): ChannelModel | undefined {
  return (channel as unknown as { [MODEL]?: ChannelModel })[MODEL];
}

/** amqplib has no public "is closed" flag. */
export function isClosedChannel(channel: object): boolean {
  // amqplib sets `pending` to null when the channel reaches its closed state.
  return (channel as { pending?: unknown }).pending === null;
}

function waitForDrain(channel: ConfirmChannel): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      channel.removeListener('drain', done);
      channel.removeListener('close', done);
      resolve();
    };
    channel.once('drain', done);
    channel.once('close', done);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
