import type {
  Disposition,
  IncomingMessage,
  Logger,
  MessageProcessor,
  Subscription,
} from '@backtrack/core';
import { BacktrackError, deadLetterReasonOf } from '@backtrack/core';
import type { Channel, ChannelModel, ConsumeMessage, Options } from 'amqplib';
import type { RabbitConnection } from '../connection/RabbitConnection.js';
import {
  BACKTRACK_HEADERS,
  fromAmqpMessage,
  headerToPositiveInt,
  headerToString,
} from '../envelope/amqpBinding.js';
import { RABBIT_ERROR_CODES, RabbitConfigError } from '../errors.js';
import { settleWithin } from '../timeouts.js';
import { isClosedChannel, type RabbitPublisher } from '../publisher/RabbitPublisher.js';
import {
  consumerTopology,
  declareTopology,
  type ConsumerTopology,
  type DeadLetterOptions,
  type QueueType,
} from '../topology/topology.js';
import { DEAD_LETTER_REASON_HEADER } from '@backtrack/core/adapter';

/** How a RabbitMQ subscription consumes, on top of the port's topics, group and processor. */
export interface RabbitConsumerOptions {
  /**
   * Unacknowledged messages the broker hands this consumer at once (`basic.qos`), and the
   * largest window of the batch path (see `batch`), which keeps delivery order. On the
   * per-message path they are processed concurrently, so order holds there only with
   * `prefetch: 1`.
   * @default 10
   */
  prefetch: number;
  /** Binding keys (topic patterns over the event type) on every exchange in `topics`. @default ['#'] */
  bindingKeys: readonly string[];
  /** @default 'quorum' */
  queueType: QueueType;
  /**
   * Quorum queues: the broker's `x-delivery-limit`. It counts only deliveries that came back
   * unacknowledged (a consumer crash, a dropped channel, a `redeliver` disposition), because
   * handler retries are re-published to a retry queue as new messages with an attempt header.
   * When it is reached the broker dead-letters the message to the dead-letter queue (at-least-once),
   * so a message that crashes every consumer is parked, not lost. Set explicitly because
   * RabbitMQ 4 otherwise applies 20. `null` leaves it unset (unbounded before RabbitMQ 4).
   * @default 50
   */
  deliveryLimit: number | null;
  /**
   * TTLs of the retry queues, in ms, ascending: a `retry` disposition waits in the smallest one at
   * least as long as the delay asked for (the largest when none is).
   * @default [1_000, 5_000, 30_000, 300_000]
   */
  retryDelaysMs: readonly number[];
  /** Dead-letter exchange and queue names. @default `${group}.dlx` and `${group}.dlq` */
  deadLetter: DeadLetterOptions;
  /**
   * Declare the exchanges, queues and bindings on subscribe and on every reconnect. Turn off when
   * the topology is owned elsewhere (it must then match {@link consumerTopology}).
   * @default true
   */
  declare: boolean;
  /** Largest wait before a `redeliver` nack, in ms. @default 30_000 */
  maxRedeliverDelayMs: number;
  /**
   * A processor that throws (instead of returning a disposition) is a bug; the message is retried
   * like a handler failure and dead-lettered at this attempt.
   * @default 5
   */
  processorErrorMaxAttempts: number;
  /** How long `close` waits for in-flight handlers, in ms. @default 30_000 */
  shutdownTimeoutMs: number;
  /**
   * With a processor that has `processBatch` (core's pipeline does): the deliveries that arrive
   * together, up to `prefetch`, go to it as one window, so one dedupe claim and one done-mark
   * round trip serve the window. Windows run one after the other; within a window the pipeline
   * runs messages of different keys (`partitionkey`, else `sagaid`) concurrently (its
   * `concurrency`) and the messages of one key in delivery order, so those never overtake each
   * other. The window is acknowledged after its dispositions were carried out (every handler
   * done and its done mark durable), contiguous acks as one multiple-ack. `false`, or a
   * processor without `processBatch`, processes each delivery on its own, concurrently.
   * @default true
   */
  batch: boolean;
}

/** Defaults of {@link RabbitConsumerOptions}. */
export const DEFAULT_RABBIT_CONSUMER_OPTIONS: Readonly<RabbitConsumerOptions> = Object.freeze({
  prefetch: 10,
  bindingKeys: Object.freeze(['#']),
  queueType: 'quorum',
  deliveryLimit: 50,
  retryDelaysMs: Object.freeze([1_000, 5_000, 30_000, 300_000]),
  deadLetter: Object.freeze({}),
  declare: true,
  maxRedeliverDelayMs: 30_000,
  processorErrorMaxAttempts: 5,
  shutdownTimeoutMs: 30_000,
  batch: true,
});

/** Validates merged consumer options; throws {@link RabbitConfigError} naming the field. */
export function validateConsumerOptions(options: RabbitConsumerOptions): void {
  const positiveInt = (field: string, value: number, max = Number.MAX_SAFE_INTEGER): void => {
    if (!Number.isSafeInteger(value) || value < 1 || value > max) {
      throw new RabbitConfigError(field, `must be an integer from 1 to ${max}`, value);
    }
  };
  positiveInt('prefetch', options.prefetch, 65_535);
  if (options.deliveryLimit !== null) positiveInt('deliveryLimit', options.deliveryLimit);
  positiveInt('processorErrorMaxAttempts', options.processorErrorMaxAttempts);
  if (options.retryDelaysMs.length === 0) {
    throw new RabbitConfigError('retryDelaysMs', 'needs at least one delay');
  }
  let previous = 0;
  for (const delay of options.retryDelaysMs) {
    if (!Number.isSafeInteger(delay) || delay < 1 || delay <= previous) {
      throw new RabbitConfigError(
        'retryDelaysMs',
        'must be ascending positive integers (ms)',
        options.retryDelaysMs,
      );
    }
    previous = delay;
  }
  if (options.bindingKeys.length === 0) {
    throw new RabbitConfigError('bindingKeys', 'needs at least one binding key (use "#" for all)');
  }
  for (const field of ['maxRedeliverDelayMs', 'shutdownTimeoutMs'] as const) {
    if (!Number.isFinite(options[field]) || options[field] < 0) {
      throw new RabbitConfigError(field, 'must be a non-negative number of ms', options[field]);
    }
  }
  if (typeof options.batch !== 'boolean') {
    throw new RabbitConfigError('batch', 'must be true or false', options.batch);
  }
  if (!['quorum', 'classic'].includes(options.queueType)) {
    throw new RabbitConfigError('queueType', "must be 'quorum' or 'classic'", options.queueType);
  }
}

/** Counters of one subscription (tests and metrics). */
export interface RabbitSubscriptionStats {
  received: number;
  acked: number;
  retried: number;
  deadLettered: number;
  redelivered: number;
  /** Dispositions that could not be carried out because the channel died first (redelivered). */
  abandoned: number;
  /** Windows handed to `processBatch` (0 on the per-message path). */
  batches: number;
}

/**
 * A running consumer on one queue. Every delivery goes to the processor; the message is
 * acknowledged only after its disposition was carried out (a retry or dead letter confirmed by the
 * broker first), so a crash at any point leaves it unacknowledged and the broker delivers it again.
 */
export class RabbitSubscription implements Subscription {
  readonly queue: string;
  readonly topology: ConsumerTopology;
  readonly stats: RabbitSubscriptionStats = {
    received: 0,
    acked: 0,
    retried: 0,
    deadLettered: 0,
    redelivered: 0,
    abandoned: 0,
    batches: 0,
  };
  readonly #connection: RabbitConnection;
  readonly #publisher: RabbitPublisher;
  readonly #processor: MessageProcessor;
  readonly #options: RabbitConsumerOptions;
  readonly #logger: Logger;
  #channel: Channel | undefined;
  #consumerTag: string | undefined;
  #attaching: Promise<void> = Promise.resolve();
  #closing = false;
  #closed: Promise<void> | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  #pausedUntil = 0;
  #removeHook: (() => void) | undefined;
  #reattachTimer: NodeJS.Timeout | undefined;
  #reattachDelayMs = 100;
  readonly #batching: boolean;
  /** Batch path: the deliveries of each consumer channel waiting for their window. */
  readonly #lanes = new WeakMap<Channel, Lane>();
  /** The lanes in the order their channels were opened (closed ones dropped once inherited). */
  #laneList: Lane[] = [];

  constructor(
    params: {
      topics: readonly string[];
      group: string;
      processor: MessageProcessor;
      options: RabbitConsumerOptions;
    },
    dependencies: { connection: RabbitConnection; publisher: RabbitPublisher; logger: Logger },
  ) {
    validateConsumerOptions(params.options);
    this.queue = params.group;
    this.#processor = params.processor;
    this.#options = params.options;
    this.#connection = dependencies.connection;
    this.#publisher = dependencies.publisher;
    this.#logger = dependencies.logger.child({ queue: params.group });
    this.#batching = params.options.batch && typeof params.processor.processBatch === 'function';
    this.topology = consumerTopology({
      queue: params.group,
      exchanges: params.topics,
      bindingKeys: params.options.bindingKeys,
      queueType: params.options.queueType,
      deliveryLimit: params.options.deliveryLimit,
      retryDelaysMs: params.options.retryDelaysMs,
      deadLetter: params.options.deadLetter,
    });
  }

  /** The consumer channel in use (diagnostics and tests: closing it makes the subscription recover). */
  get channel(): Channel | undefined {
    return this.#channel;
  }

  /** Handlers running now. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Declares the topology (unless `declare: false`) and starts consuming. */
  async start(): Promise<void> {
    // On a reconnect the topology goes first (before the publisher re-sends), the consumer last.
    // A subscription that cannot re-declare or re-attach must not keep the publisher and the
    // other consumers from reconnecting: it logs and retries on its own.
    const removeTopology = this.#options.declare
      ? this.#connection.addSetupHook(
          `topology of ${this.queue}`,
          (model) =>
            this.#declare(model).catch((error: unknown) =>
              this.#logger.error({ err: error }, 'amqp topology could not be re-declared'),
            ),
          'topology',
        )
      : () => undefined;
    const removeConsumer = this.#connection.addSetupHook(
      `subscription ${this.queue}`,
      (model) =>
        this.#attach(model, false).catch((error: unknown) => this.#scheduleReattach(error)),
      'consumers',
    );
    this.#removeHook = () => {
      removeTopology();
      removeConsumer();
    };
    try {
      await this.#attach(await this.#connection.waitForModel(), this.#options.declare);
    } catch (error) {
      // A subscription that never started must not come back on the next reconnect.
      this.#closing = true;
      this.#removeHook();
      throw error;
    }
  }

  async #declare(model: ChannelModel): Promise<void> {
    const channel = await model.createChannel();
    channel.on('error', () => undefined);
    try {
      await declareTopology(channel, this.topology.topology, this.#connection.capabilities);
    } finally {
      if (!isClosedChannel(channel)) await channel.close().catch(() => undefined);
    }
  }

  #attach(model: ChannelModel, declare: boolean): Promise<void> {
    const run = async (): Promise<void> => {
      if (this.#closing) return;
      if (this.#channel && !isClosedChannel(this.#channel) && modelOf(this.#channel) === model) {
        return;
      }
      if (declare) await this.#declare(model);
      const channel = await model.createChannel();
      (channel as unknown as Record<symbol, unknown>)[MODEL] = model;
      channel.on('error', (error: Error) =>
        this.#logger.warn({ err: error }, 'amqp consumer channel closed by the broker'),
      );
      channel.on('close', () => this.#onChannelClose(channel));
      await channel.prefetch(this.#options.prefetch);
      this.#channel = channel;
      const { consumerTag } = await channel.consume(
        this.queue,
        (message) => this.#onDelivery(channel, message),
        { noAck: false },
      );
      this.#consumerTag = consumerTag;
      this.#reattachDelayMs = 100;
      this.#connection.consumerStarted(this.queue);
      this.#logger.info({ consumerTag, prefetch: this.#options.prefetch }, 'amqp consumer started');
    };
    const next = this.#attaching.then(run, run);
    this.#attaching = next.catch(() => undefined);
    return next;
  }

  #onChannelClose(channel: Channel): void {
    if (this.#channel !== channel) return;
    this.#channel = undefined;
    this.#consumerTag = undefined;
    if (this.#closing) return;
    this.#scheduleReattach();
  }

  #scheduleReattach(error?: unknown): void {
    if (this.#closing) return;
    if (error) this.#logger.warn({ err: error }, 'amqp consumer could not start; retrying');
    clearTimeout(this.#reattachTimer);
    const delay = this.#reattachDelayMs;
    this.#reattachDelayMs = Math.min(delay * 2, 5_000);
    this.#connection.consumerCrashed(this.queue, error, delay);
    // When the whole connection dropped, the reconnect's setup hook re-attaches instead.
    this.#reattachTimer = setTimeout(() => {
      const model = this.#connection.model;
      if (this.#closing || !model || this.#channel) return;
      // The queue may be gone (deleted, or the broker cancelled the consumer): declare again.
      this.#attach(model, this.#options.declare).catch((e: unknown) => this.#scheduleReattach(e));
    }, delay);
    this.#reattachTimer.unref?.();
  }

  #onDelivery(channel: Channel, message: ConsumeMessage | null): void {
    if (message === null) {
      // The broker cancelled the consumer (queue deleted, or a quorum queue leader moved).
      this.#logger.warn('amqp consumer cancelled by the broker');
      if (this.#channel === channel) {
        this.#channel = undefined;
        void channel.close().catch(() => undefined);
        this.#scheduleReattach();
      }
      return;
    }
    if (this.#batching) {
      let lane = this.#lanes.get(channel);
      if (!lane) {
        lane = { channel, pending: [], draining: false, sentBack: this.#inheritSentBack() };
        this.#lanes.set(channel, lane);
        this.#laneList.push(lane);
      }
      lane.pending.push(message);
      if (!lane.draining) this.#track(this.#drain(lane));
      return;
    }
    const work = this.#handle(channel, message).catch((error: unknown) => {
      this.#logger.error(
        { err: error, messageId: message.properties.messageId },
        'amqp delivery handling failed',
      );
    });
    this.#inFlight.add(work);
    void work.finally(() => this.#inFlight.delete(work));
  }

  #track(work: Promise<void>): void {
    const tracked = work.catch((error: unknown) =>
      this.#logger.error({ err: error }, 'amqp batch handling failed'),
    );
    this.#inFlight.add(tracked);
    void tracked.finally(() => this.#inFlight.delete(tracked));
  }

  async #handle(channel: Channel, message: ConsumeMessage): Promise<void> {
    this.stats.received += 1;
    const wait = this.#pausedUntil - Date.now();
    if (wait > 0) await sleep(wait);
    const incoming = this.#incoming(message);
    let disposition: Disposition;
    if (incoming.undecodable) {
      disposition = incoming.undecodable;
    } else {
      try {
        disposition = await this.#processor.process(incoming);
      } catch (error) {
        disposition = this.#processorFailed(incoming.attempt, error, [message]);
      }
    }
    await this.#carryOut(channel, message, incoming.attempt, disposition);
  }

  /**
   * The delivery as the pipeline reads it. A delivery the binding cannot read (a CloudEvents
   * attribute of no string form) carries its dead-letter disposition instead: it never reaches
   * the processor, and its dead letter is the delivery as it came.
   */
  #incoming(message: ConsumeMessage): IncomingMessage & { undecodable?: Disposition } {
    const headers = message.properties.headers;
    const attempt = headers === undefined ? undefined : headers[BACKTRACK_HEADERS.attempt];
    const originalExchange =
      headers === undefined ? undefined : headers[BACKTRACK_HEADERS.originalExchange];
    const origin = {
      transport: 'rabbitmq',
      topic:
        (originalExchange === undefined ? undefined : headerToString(originalExchange)) ??
        message.fields.exchange,
      group: this.queue,
    };
    const first = attempt === undefined ? 1 : (headerToPositiveInt(attempt) ?? 1);
    try {
      return { attempt: first, origin, message: fromAmqpMessage(message) };
    } catch (error) {
      const code = error instanceof BacktrackError ? error.code : 'BT_ERR_MALFORMED_MESSAGE';
      return {
        attempt: first,
        origin,
        message: { headers: {}, body: message.content },
        undecodable: {
          kind: 'dead-letter',
          reason: error instanceof Error ? error.message : String(error),
          code,
          error,
        },
      };
    }
  }

  /** The disposition of a message whose processor threw (a bug): retried, then dead-lettered. */
  #processorFailed(attempt: number, error: unknown, messages: ConsumeMessage[]): Disposition {
    this.#logger.error(
      { err: error, messageIds: messages.map((m) => m.properties.messageId), attempt },
      'processor threw instead of returning a disposition',
    );
    return attempt >= this.#options.processorErrorMaxAttempts
      ? {
          kind: 'dead-letter',
          reason: `processor failed ${attempt} times: ${errorText(error)}`,
          code: RABBIT_ERROR_CODES.PROCESSOR_FAILED,
          error,
        }
      : {
          kind: 'retry',
          delayMs: this.#options.retryDelaysMs[0]!,
          reason: 'processor threw',
          error,
        };
  }

  /**
   * The batch path: takes windows of up to `prefetch` deliveries off a channel's lane, in
   * delivery order, one window at a time. The first wait lets the deliveries that arrived
   * together (one socket read) gather; later windows take what arrived while the last one ran.
   * Each channel has its own lane: after a channel died, the redeliveries on its successor do not
   * wait for the handlers still running on the old one (their leases answer for them).
   */
  async #drain(lane: Lane): Promise<void> {
    lane.draining = true;
    try {
      await new Promise<void>((resolve) => setImmediate(resolve));
      while (lane.pending.length > 0) {
        const window = lane.pending.splice(0, this.#options.prefetch);
        if (isClosedChannel(lane.channel)) {
          // The channel is gone: the broker has put these back already.
          this.stats.abandoned += window.length;
          continue;
        }
        lane.running = window;
        try {
          await this.#handleWindow(lane, window);
        } catch (error) {
          // Never expected (processBatch failures are dispositions already). The window may be
          // half settled, so give everything unacknowledged back the one safe way: close the
          // channel (the broker requeues, the subscription re-attaches).
          this.#logger.error(
            { err: error, messages: window.length },
            'amqp window could not be settled; closing the channel so the broker redelivers',
          );
          await settleWithin(lane.channel.close(), BROKER_REPLY_TIMEOUT_MS);
        }
      }
    } finally {
      lane.running = undefined;
      lane.draining = false;
    }
  }

  /**
   * The key order a new channel starts with. When a channel dies, the broker puts back every
   * delivery it had not settled (sent back and still awaited, the window running, the ones
   * waiting for a window) and redelivers them on the next channel in an order that is not each
   * key's: 12, 14, 16, 13, 15 for one key was seen. So the new lane awaits, per key, what the
   * closed lanes still owed, in their order: a later message of the key that comes back first
   * is held back behind the earlier ones (as after a nack, with the same time limit).
   */
  #inheritSentBack(): Map<string, { ids: string[]; until: number }> {
    const inherited = new Map<string, { ids: string[]; until: number }>();
    const closed = this.#laneList.filter((l) => isClosedChannel(l.channel));
    if (closed.length === 0) return inherited;
    this.#laneList = this.#laneList.filter((l) => !isClosedChannel(l.channel));
    const until = Date.now() + SENT_BACK_WAIT_MS;
    const owe = (key: string | undefined, id: string | undefined) => {
      if (key === undefined || id === undefined) return;
      const entry = inherited.get(key) ?? { ids: [], until };
      if (!entry.ids.includes(id)) entry.ids.push(id);
      inherited.set(key, entry);
    };
    for (const lane of closed) {
      for (const [key, out] of lane.sentBack) for (const id of out.ids) owe(key, id);
      for (const message of [...(lane.running ?? []), ...lane.pending]) {
        const incoming = this.#incoming(message);
        if (!incoming.undecodable) {
          const { key, id } = keyAndId(incoming);
          owe(key, id);
        }
      }
    }
    return inherited;
  }

  async #handleWindow(lane: Lane, window: ConsumeMessage[]): Promise<void> {
    const channel = lane.channel;
    this.stats.received += window.length;
    this.stats.batches += 1;
    const wait = this.#pausedUntil - Date.now();
    if (wait > 0) await sleep(wait);
    const incoming = new Array<IncomingMessage & { undecodable?: Disposition }>(window.length);
    // A delivery whose key has an earlier message sent back (not delivered again yet) goes back
    // behind it; undecodable deliveries keep their dead-letter disposition; the rest go to the
    // processor. The common window (every delivery readable, nothing sent back) goes as it is.
    let held: (Disposition | undefined)[] | undefined;
    let skipped = 0;
    for (let i = 0; i < window.length; i++) {
      const m = this.#incoming(window[i]!);
      incoming[i] = m;
      if (m.undecodable) {
        skipped += 1;
        continue;
      }
      const hold = lane.sentBack.size === 0 ? undefined : holdBehindSentBack(lane, m);
      if (hold) {
        (held ??= new Array<Disposition | undefined>(window.length))[i] = hold;
        skipped += 1;
      }
    }
    const readable =
      skipped === 0 ? incoming : incoming.filter((m, i) => !m.undecodable && !held?.[i]);
    let processed: Disposition[];
    try {
      processed = readable.length === 0 ? [] : await this.#processor.processBatch!(readable);
      if (!Array.isArray(processed) || processed.length !== readable.length) {
        throw new Error(
          `processBatch returned ${Array.isArray(processed) ? processed.length : 'no'} dispositions for ${readable.length} messages`,
        );
      }
    } catch (error) {
      processed = readable.map((m) => this.#processorFailed(m.attempt, error, window));
    }
    let dispositions = processed;
    if (skipped > 0) {
      let next = 0;
      dispositions = incoming.map((m, i) => m.undecodable ?? held?.[i] ?? processed[next++]!);
    }
    const back = await this.#settleWindow(channel, window, incoming, dispositions);
    if (back.length === 0) return; // (nothing to remember)
    rememberSentBack(
      lane,
      back.map((m) => window.indexOf(m)).map((i) => ({ message: incoming[i]!, held: !!held?.[i] })),
    );
  }

  /**
   * Carries out a window's dispositions: retries and dead letters are published (concurrently)
   * and confirmed first; then, in delivery order, acks go out (a contiguous run as one
   * multiple-ack), and messages to redeliver (or whose copy could not be published) are nacked
   * back after the longest `redeliver` delay. Once a nack is pending, later acks are sent one by
   * one so a multiple-ack never covers it.
   */
  async #settleWindow(
    channel: Channel,
    window: ConsumeMessage[],
    incoming: IncomingMessage[],
    dispositions: Disposition[],
  ): Promise<ConsumeMessage[]> {
    // A dead channel first: nothing is published for messages the broker is redelivering anyway.
    // (No copy to publish, the common window: no promise per message.)
    const forwarded = !dispositions.some((d) => d.kind === 'retry' || d.kind === 'dead-letter')
      ? undefined
      : isClosedChannel(channel)
        ? []
        : await Promise.all(
            dispositions.map((d, i) =>
              d.kind === 'retry' || d.kind === 'dead-letter'
                ? this.#forward(window[i]!, incoming[i]!.attempt, d)
                : Promise.resolve(true),
            ),
          );
    if (isClosedChannel(channel)) {
      this.stats.abandoned += window.length;
      this.#logger.info(
        { messages: window.length },
        'channel closed before the window was settled; the broker redelivers it',
      );
      return [];
    }
    const back: ConsumeMessage[] = [];
    let run: ConsumeMessage | undefined;
    let delayMs = 0;
    try {
      for (let i = 0; i < window.length; i++) {
        const message = window[i]!;
        const disposition = dispositions[i]!;
        if (disposition.kind === 'redeliver') {
          const delay = Math.min(
            Math.max(0, disposition.delayMs),
            this.#options.maxRedeliverDelayMs,
          );
          if (disposition.pause) {
            this.#pausedUntil = Math.max(this.#pausedUntil, Date.now() + delay);
          }
          delayMs = Math.max(delayMs, delay);
          this.#logger.info(
            {
              messageId: message.properties.messageId,
              reason: disposition.reason,
              delayMs: delay,
              pause: disposition.pause,
            },
            'message returned for redelivery',
          );
        }
        if (disposition.kind === 'redeliver' || (forwarded !== undefined && !forwarded[i])) {
          if (run) channel.ack(run, true);
          run = undefined;
          back.push(message);
          continue;
        }
        if (back.length > 0) channel.ack(message);
        else run = message;
        this.#count(disposition);
      }
      if (run) channel.ack(run, true);
    } catch {
      // The channel died while acking: the broker redelivers whatever was not acked.
      this.stats.abandoned += 1;
      return [];
    }
    if (back.length === 0) return back;
    if (delayMs > 0) await sleep(delayMs);
    for (const message of back) {
      await this.#nack(channel, message);
      this.stats.redelivered += 1;
    }
    return back;
  }

  #count(disposition: Disposition): void {
    if (disposition.kind === 'ack') this.stats.acked += 1;
    else if (disposition.kind === 'retry') this.stats.retried += 1;
    else if (disposition.kind === 'dead-letter') this.stats.deadLettered += 1;
  }

  async #carryOut(
    channel: Channel,
    message: ConsumeMessage,
    attempt: number,
    disposition: Disposition,
  ): Promise<void> {
    const log = { messageId: message.properties.messageId, type: message.properties.type, attempt };
    switch (disposition.kind) {
      case 'ack':
        if (this.#ack(channel, message)) this.stats.acked += 1;
        return;
      case 'retry':
      case 'dead-letter': {
        if (isClosedChannel(channel)) return this.#abandon(log, disposition.kind);
        if (!(await this.#forward(message, attempt, disposition))) {
          return this.#nack(channel, message);
        }
        if (this.#ack(channel, message)) this.#count(disposition);
        return;
      }
      case 'redeliver': {
        const delay = Math.min(Math.max(0, disposition.delayMs), this.#options.maxRedeliverDelayMs);
        if (disposition.pause) this.#pausedUntil = Math.max(this.#pausedUntil, Date.now() + delay);
        this.#logger.info(
          { ...log, reason: disposition.reason, delayMs: delay, pause: disposition.pause },
          'message returned for redelivery',
        );
        if (delay > 0) await sleep(delay);
        await this.#nack(channel, message);
        this.stats.redelivered += 1;
        return;
      }
    }
  }

  /**
   * Publishes the copy a `retry` (to the retry queue) or `dead-letter` (to the dead-letter
   * exchange) disposition asks for and waits for its confirm. False when it could not be
   * published: the caller nacks the message back to its queue instead of acking it.
   */
  async #forward(
    message: ConsumeMessage,
    attempt: number,
    disposition: Extract<Disposition, { kind: 'retry' | 'dead-letter' }>,
  ): Promise<boolean> {
    const log = { messageId: message.properties.messageId, type: message.properties.type, attempt };
    if (disposition.kind === 'retry') {
      const target = pickRetryQueue(this.topology.retryQueues, disposition.delayMs);
      const headers = this.#forwardHeaders(message, {
        [BACKTRACK_HEADERS.attempt]: attempt + 1,
        [BACKTRACK_HEADERS.retryDelayMs]: disposition.delayMs,
        [BACKTRACK_HEADERS.error]: truncate(
          disposition.error ? errorText(disposition.error) : disposition.reason,
        ),
      });
      try {
        await this.#publisher.publish(
          '',
          target.name,
          message.content,
          forwardProperties(message, headers),
        );
      } catch (error) {
        this.#logger.warn(
          { ...log, err: error },
          'retry could not be published; returning the message to the queue',
        );
        return false;
      }
      this.#logger.info(
        { ...log, delayMs: target.delayMs, reason: disposition.reason },
        'message scheduled for retry',
      );
      return true;
    }
    const headers = this.#forwardHeaders(message, {
      [BACKTRACK_HEADERS.attempt]: attempt,
      [DEAD_LETTER_REASON_HEADER]: deadLetterReasonOf(disposition.code, disposition.error),
      [BACKTRACK_HEADERS.deadLetterReason]: truncate(disposition.reason),
      [BACKTRACK_HEADERS.deadLetterCode]: disposition.code,
      [BACKTRACK_HEADERS.deadLetteredAt]: new Date().toISOString(),
      ...(disposition.error === undefined
        ? {}
        : { [BACKTRACK_HEADERS.error]: truncate(errorText(disposition.error)) }),
    });
    try {
      await this.#publisher.publish(
        this.topology.deadLetterExchange,
        this.topology.deadLetterRoutingKey,
        message.content,
        forwardProperties(message, headers),
      );
    } catch (error) {
      this.#logger.error(
        { ...log, err: error },
        'dead letter could not be published; returning the message to the queue',
      );
      return false;
    }
    this.#logger.warn(
      { ...log, reason: disposition.reason, code: disposition.code },
      'message dead-lettered',
    );
    return true;
  }

  #forwardHeaders(
    message: ConsumeMessage,
    extra: Record<string, unknown>,
  ): Record<string, unknown> {
    const headers: Record<string, unknown> = { ...message.properties.headers };
    // The broker sets the delivery count per queue; a copy would mislead the next queue.
    delete headers['x-delivery-count'];
    if (headers[BACKTRACK_HEADERS.originalExchange] === undefined) {
      headers[BACKTRACK_HEADERS.originalExchange] = message.fields.exchange;
      headers[BACKTRACK_HEADERS.originalRoutingKey] = message.fields.routingKey;
    }
    headers[BACKTRACK_HEADERS.queue] = this.queue;
    return { ...headers, ...extra };
  }

  #ack(channel: Channel, message: ConsumeMessage): boolean {
    if (isClosedChannel(channel)) {
      this.stats.abandoned += 1;
      return false;
    }
    try {
      channel.ack(message);
      return true;
    } catch {
      // The channel died between the check and the ack: the broker redelivers the message.
      this.stats.abandoned += 1;
      return false;
    }
  }

  async #nack(channel: Channel, message: ConsumeMessage): Promise<void> {
    if (isClosedChannel(channel)) return;
    try {
      channel.nack(message, false, true);
    } catch {
      // Channel gone: the broker requeues the message anyway.
    }
  }

  #abandon(log: Record<string, unknown>, what: string): void {
    this.stats.abandoned += 1;
    this.#logger.info(
      log,
      `channel closed before the ${what} was carried out; the broker redelivers the message`,
    );
  }

  /**
   * Stops consuming: cancels the consumer so no new message arrives, waits up to
   * `shutdownTimeoutMs` for in-flight handlers to finish and their acks to go out, then closes the
   * channel (anything still unacknowledged goes back to the queue).
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    this.#removeHook?.();
    clearTimeout(this.#reattachTimer);
    await this.#attaching;
    const channel = this.#channel;
    if (channel && this.#consumerTag && !isClosedChannel(channel)) {
      await settleWithin(channel.cancel(this.#consumerTag), BROKER_REPLY_TIMEOUT_MS);
    }
    const deadline = sleep(this.#options.shutdownTimeoutMs, true);
    while (this.#inFlight.size > 0) {
      const timedOut = await Promise.race([
        Promise.allSettled([...this.#inFlight]).then(() => false),
        deadline,
      ]);
      if (timedOut) {
        this.#logger.warn(
          { inFlight: this.#inFlight.size },
          'shutdown timeout: closing with handlers still running; their messages are redelivered',
        );
        break;
      }
    }
    this.#channel = undefined;
    if (channel && !isClosedChannel(channel)) {
      await settleWithin(channel.close(), BROKER_REPLY_TIMEOUT_MS);
    }
    this.#logger.info(this.stats, 'amqp consumer stopped');
  }
}

const MODEL = Symbol('backtrack.amqpChannelModel');

/** The deliveries of one consumer channel waiting for their window (acks go back on it). */
interface Lane {
  channel: Channel;
  pending: ConsumeMessage[];
  draining: boolean;
  /**
   * Per partition key, the ids of the messages this lane sent back (nacked) and has not run
   * since, in the key's order: only the first may run; a later message of that key delivered
   * before it (already on its way, or waiting in `pending`) goes back too.
   */
  sentBack: Map<string, { ids: string[]; until: number }>;
  /** The window being handled (not settled yet), if any. */
  running?: ConsumeMessage[];
}

/**
 * How long a key waits for its sent-back messages: they come back at once when this is the
 * queue's only consumer; with competing consumers another may get them (no key order across
 * consumers), so the hold lapses rather than bouncing the key's messages until their delivery
 * limit.
 */
const SENT_BACK_WAIT_MS = 2_000;
/** The nack delay of a message held behind a sent-back one (bounds how fast it can bounce). */
const HELD_DELAY_MS = 50;

function keyAndId(message: IncomingMessage): { key?: string; id?: string } {
  return { key: message.message.headers['partitionkey'], id: message.message.headers['id'] };
}

/** A `redeliver` disposition when an earlier message of this key is still out (sent back). */
function holdBehindSentBack(lane: Lane, message: IncomingMessage): Disposition | undefined {
  const { key, id } = keyAndId(message);
  if (key === undefined || id === undefined) return undefined;
  const out = lane.sentBack.get(key);
  if (!out) return undefined;
  if (out.ids[0] === id || Date.now() > out.until) {
    // The first one awaited is back (it runs, and what follows it), or time is up.
    out.ids.shift();
    if (out.ids.length === 0 || Date.now() > out.until) lane.sentBack.delete(key);
    return undefined;
  }
  return {
    kind: 'redeliver',
    reason: `held back: an earlier message with key "${key}" was sent back and is not delivered again yet`,
    delayMs: HELD_DELAY_MS,
    pause: false,
  };
}

/**
 * Records a window's sent-back messages, keeping each key's order: those that ran (or were
 * let through) precede every message still awaited; held ones keep their place (or, new, go last).
 */
function rememberSentBack(
  lane: Lane,
  back: readonly { message: IncomingMessage; held: boolean }[],
): void {
  const ran = new Map<string, string[]>();
  const added = new Map<string, string[]>();
  for (const { message, held } of back) {
    const { key, id } = keyAndId(message);
    if (key === undefined || id === undefined) continue;
    const into = held ? added : ran;
    into.set(key, [...(into.get(key) ?? []), id]);
  }
  for (const key of new Set([...ran.keys(), ...added.keys()])) {
    const waiting = lane.sentBack.get(key)?.ids ?? [];
    const fresh = (added.get(key) ?? []).filter((id) => !waiting.includes(id));
    lane.sentBack.set(key, {
      ids: [...(ran.get(key) ?? []), ...waiting, ...fresh],
      until: Date.now() + SENT_BACK_WAIT_MS,
    });
  }
}
/** How long shutdown waits for one broker reply (a dead connection never answers). */
const BROKER_REPLY_TIMEOUT_MS = 5_000;

function modelOf(channel: Channel): unknown {
  return (channel as unknown as Record<symbol, unknown>)[MODEL];
}

/** The retry queue for a delay: the smallest TTL at least `delayMs`, else the largest. */
export function pickRetryQueue<T extends { delayMs: number }>(
  queues: readonly T[],
  delayMs: number,
): T {
  for (const queue of queues) if (queue.delayMs >= delayMs) return queue;
  return queues[queues.length - 1]!;
}

function forwardProperties(
  message: ConsumeMessage,
  headers: Record<string, unknown>,
): Options.Publish {
  const p = message.properties;
  const options: Options.Publish = { persistent: true, mandatory: true, headers };
  if (p.messageId !== undefined) options.messageId = p.messageId as string;
  if (p.type !== undefined) options.type = p.type as string;
  if (p.contentType !== undefined) options.contentType = p.contentType as string;
  if (p.contentEncoding !== undefined) options.contentEncoding = p.contentEncoding as string;
  if (p.timestamp !== undefined) options.timestamp = p.timestamp as number;
  if (p.correlationId !== undefined) options.correlationId = p.correlationId as string;
  if (p.appId !== undefined) options.appId = p.appId as string;
  return options;
}

function errorText(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}

function truncate(text: string, max = 1_000): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function sleep(ms: number): Promise<void>;
function sleep(ms: number, value: true): Promise<true>;
function sleep(ms: number, value?: true): Promise<true | void> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(value), ms);
    // Only the shutdown deadline may let the process exit; a pause holds real messages.
    if (value) t.unref?.();
  });
}
