import type { Logger } from 'pino';
import type { Envelope, ExtensionValue } from '../envelope/types.js';
import type { Journal, JournalAppend } from '../journal/Journal.js';
import { createDefaultLogger } from '../logging/logger.js';
import type { EventInput, LatestVersion } from '../schema/defineEvent.js';
import type { AnyEventDefinition, EventRegistry } from '../schema/EventRegistry.js';
import { sealMessage } from '../transport/sealedMessage.js';
import type { Transport } from '../transport/Transport.js';
import { PublishFailedError, PublisherConfigError } from './errors.js';
import { prepareJournaledEvent } from './journaledEvent.js';
import { endPublish, startPublish } from '../telemetry/messaging.js';

/** Who publishes: fixed for one deploy of a service. */
export interface PublisherOptions {
  /** The producing service, for example `orders`. Journaled and sent as `producerservice`. */
  service: string;
  /**
   * The deployed version of the service, for example `2.4.0` or a git sha. Journaled and sent as
   * `producerversion`: a rollback selects the effects of a bad deploy by this string.
   */
  version: string;
  /** CloudEvents `source`. @default `//backtrack/<service>` */
  source?: string;
  /** The transport destination (Kafka topic, AMQP exchange) of an event type. @default () => service */
  topicFor?: (type: string) => string;
  /** How concurrent publishes share journal round trips. @default DEFAULT_PUBLISHER_BATCHING */
  batching?: PublisherBatchingOptions;
}

/**
 * Concurrent `publish` calls are journaled together: one `journal.appendMany` for the batch, every
 * message handed to the transport at once (which coalesces them into one produce request or one
 * confirm wait), then one `journal.markPublished` for the acknowledged ones. With a journal that
 * has `appendAndMarkPublished`, the acknowledged ones are instead marked by the next batch's
 * append, in the same journal call (see {@link PublisherBatchingOptions.markDelayMs}).
 */
export interface PublisherBatchingOptions {
  /**
   * How long the first publish of a batch waits for others, in ms. 0 = the publishes issued by
   * the same synchronous code and the promise reactions already queued (no added latency).
   * @default 0
   */
  lingerMs?: number;
  /** Most publishes in one batch; a full batch goes at once. 1 turns batching off. @default 256 */
  maxBatchSize?: number;
  /**
   * With a journal that has `appendAndMarkPublished`: how long the published marks of
   * acknowledged messages wait for the next batch's append to carry them (one journal call for
   * both), in ms. When no batch comes in time they are written on their own. 0 = until the end of
   * the current event-loop turn. Only the journal's state lags: `publish` resolves on the broker's
   * acknowledgement, and a crash before the mark leaves the record pending for the outbox relay
   * (keep its `olderThanMs` well above this), whose second copy consumers deduplicate.
   * @default 5
   */
  markDelayMs?: number;
}

/** Defaults of {@link PublisherBatchingOptions}. */
export const DEFAULT_PUBLISHER_BATCHING = {
  lingerMs: 0,
  maxBatchSize: 256,
  markDelayMs: 5,
} as const satisfies Required<PublisherBatchingOptions>;

/** Collaborators of {@link createPublisher}. */
export interface PublisherDependencies {
  transport: Transport;
  journal: Journal;
  /** Every published type MUST be registered: a rollback later needs its schema to read it. */
  registry: EventRegistry;
  /** @default createDefaultLogger() */
  logger?: Logger;
  /** Clock for envelope times. @default () => new Date() */
  now?: () => Date;
}

/** Per-message options of {@link Publisher.publish}. */
export interface PublishOptions<V extends number = number> {
  /** Ordering key (Kafka message key, CloudEvents `partitionkey`), for example an order id. */
  key?: string;
  /** The saga this event belongs to: a rollback hands it to saga compensation. */
  sagaId?: string;
  /** Id of the message that caused this one. */
  causationId?: string;
  /** Id shared by every message of one business flow. */
  correlationId?: string;
  /** The schema version to write; `data` is validated against it. @default the latest version */
  schemaVersion?: V;
  /**
   * The envelope id. Pass a deterministic one (see `deterministicId`) when the publish may be
   * retried, so a retry is the same event, not a second one. @default crypto.randomUUID()
   */
  id?: string;
  /** Overrides `topicFor(type)` for this message. */
  topic?: string;
  /** CloudEvents `subject`, for example `order/o-1`. */
  subject?: string;
  /** CloudEvents `dataschema`: the URI of the schema (a `.../vN` URI names the version). */
  dataschema?: string;
  /** Other CloudEvents extension attributes (`tenantid`, ...), lower-case alphanumeric names. */
  extensions?: Record<string, ExtensionValue>;
}

/** Publishes events through the outbox journal. */
export interface Publisher {
  /**
   * Validates `data` against the event's schema, builds and encodes the envelope, appends it to
   * the journal, publishes it, and marks it published.
   *
   * - Resolves with the envelope once the broker acknowledged it. The record's published mark
   *   is written before (or, with a journal that has `appendAndMarkPublished`, shortly after:
   *   with the next batch's append, or on its own after `batching.markDelayMs`, or on `flush()`).
   * - Rejects with the schema error (nothing journaled, nothing published) on invalid data, with
   *   the store's error (nothing published) when the journal is down, and with
   *   {@link PublishFailedError} when the transport failed after the journal append: the outbox
   *   relay then delivers the record later.
   * - A failure to mark the record published after the broker acknowledged is only logged: the
   *   relay may publish it a second time under the same id, which consumers deduplicate.
   * - Concurrent calls share journal round trips (see {@link PublisherBatchingOptions}); each
   *   still resolves only once its own message is acknowledged and journaled, and a transport
   *   failure rejects only the calls whose messages it concerns.
   */
  publish<E extends AnyEventDefinition, V extends number = LatestVersion<E>>(
    event: E,
    data: EventInput<E, V>,
    options?: PublishOptions<V>,
  ): Promise<Envelope<unknown>>;
  /** The service and version this publisher stamps on every event. */
  readonly service: string;
  readonly version: string;
}

/** The publisher {@link createPublisher} returns: a {@link Publisher} whose journal writes can be flushed. */
export interface JournalingPublisher extends Publisher {
  /**
   * Resolves once every publish issued before the call has settled and the published marks held
   * back for the next append (see {@link PublisherBatchingOptions.markDelayMs}) are written (a
   * failed mark write is logged, as in `publish`). Never rejects.
   */
  flush(): Promise<void>;
  /**
   * {@link JournalingPublisher.flush}: call it before closing the journal's store client or
   * exiting, so no mark is left for the outbox relay. The publisher holds no connection of its
   * own; publishing after `close()` still works.
   */
  close(): Promise<void>;
}

/**
 * Creates the journaling publisher of one service deploy.
 *
 * @example
 * const publisher = createPublisher(
 *   { service: 'orders', version: process.env.GIT_SHA! },
 *   { transport, journal, registry },
 * );
 * await publisher.publish(OrderPlaced, { orderId: 'o-1', amountCents: 1250, currency: 'EUR' }, { key: 'o-1' });
 */
export function createPublisher(
  options: PublisherOptions,
  dependencies: PublisherDependencies,
): JournalingPublisher {
  for (const field of ['service', 'version'] as const) {
    if (typeof options?.[field] !== 'string' || options[field].length === 0) {
      throw new PublisherConfigError(field, 'must be a non-empty string', options?.[field]);
    }
  }
  if (options.topicFor !== undefined && typeof options.topicFor !== 'function') {
    throw new PublisherConfigError('topicFor', 'must be a function');
  }
  for (const field of ['transport', 'journal', 'registry'] as const) {
    if (!dependencies?.[field]) {
      throw new PublisherConfigError(field, 'is a required dependency');
    }
  }
  const batching = { ...DEFAULT_PUBLISHER_BATCHING, ...options.batching };
  /** The batching delays are milliseconds from 0 to 1000. */
  const requireDelay = (field: 'lingerMs' | 'markDelayMs'): void => {
    const value = batching[field];
    if (!Number.isFinite(value) || value < 0 || value > 1000) {
      throw new PublisherConfigError(`batching.${field}`, 'must be from 0 to 1000', value);
    }
  };
  requireDelay('lingerMs');
  if (!Number.isInteger(batching.maxBatchSize) || batching.maxBatchSize < 1) {
    throw new PublisherConfigError(
      'batching.maxBatchSize',
      'must be an integer >= 1',
      batching.maxBatchSize,
    );
  }
  requireDelay('markDelayMs');
  const { service, version } = options;
  const source = options.source ?? `//backtrack/${service}`;
  const topicFor = options.topicFor ?? (() => service);
  const { transport, journal, registry } = dependencies;
  const now = dependencies.now ?? (() => new Date());
  const stamp = { service, version, source, topicFor, registry, now, writer: 'publisher' };
  const logger = (dependencies.logger ?? createDefaultLogger()).child({
    component: 'publisher',
    service,
    version,
  });

  let queue: Pending[] = [];
  /** lingerMs > 0: the batch's timer. */
  let timer: ReturnType<typeof setTimeout> | undefined;
  /** lingerMs 0: a flush is queued as a microtask (one per batch, no closure per publish). */
  let flushQueued = false;
  const lingerMs = batching.lingerMs;
  /** Journal calls and batches not settled yet: what `flush()` waits for. */
  const inFlight = new Set<Promise<void>>();

  function track(work: Promise<void>): void {
    inFlight.add(work);
    const done = () => void inFlight.delete(work);
    work.then(done, done);
  }

  function flush(): void {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    const batch = queue;
    queue = [];
    if (batch.length > 0) track(publishBatch(batch));
  }

  // Mark folding: the ids of acknowledged messages wait in `held` for the next batch's append
  // (`appendAndMarkPublished`: one journal call for both), or for `markDelayMs`, whichever comes
  // first. An id is held only after the transport confirmed its message, so nothing is ever
  // marked published unsent; a crash while held leaves the record pending for the relay.
  const folds = typeof journal.appendAndMarkPublished === 'function';
  let held: string[] = [];
  let heldTimer: Cancel | undefined;

  function flushQueuedBatch(): void {
    flushQueued = false;
    flush();
  }

  function takeHeld(): string[] {
    heldTimer?.();
    heldTimer = undefined;
    const ids = held;
    held = [];
    return ids;
  }

  function hold(id: string): void {
    held.push(id);
    heldTimer ??= afterTurn(batching.markDelayMs, () => {
      heldTimer = undefined;
      writeHeld();
    });
  }

  function writeHeld(): void {
    const ids = takeHeld();
    if (ids.length > 0) track(markIds(ids));
  }

  async function markIds(ids: string[]): Promise<void> {
    try {
      await journal.markPublished(ids);
    } catch (err) {
      logger.warn(
        { messageIds: ids, err },
        'published but not marked in the journal; the relay may publish them again (same ids)',
      );
    }
  }

  async function publishBatch(batch: Pending[]): Promise<void> {
    const records = new Array<JournalAppend>(batch.length);
    for (let i = 0; i < batch.length; i++) records[i] = batch[i]!.record;
    const carried = folds ? takeHeld() : [];
    try {
      if (carried.length > 0) await journal.appendAndMarkPublished!(records, carried);
      else await journal.appendMany(records);
    } catch (err) {
      // Nothing of the batch was published: each call rejects with the store's error. The marks
      // it carried (whether written or not) are written again on their own (marking is idempotent).
      for (const p of batch) p.reject(err);
      if (carried.length > 0) track(markIds(carried));
      return;
    }
    const debug = logger.isLevelEnabled('debug');
    // Each message settles on its own acknowledgement: the acknowledged ones of one event-loop
    // turn share one markPublished round trip (or the next append), so a slow confirm holds back
    // only itself. A batch of one (the common case under request/reply) awaits its send as it is.
    if (batch.length === 1) {
      await send(batch[0]!, debug);
      return;
    }
    const sends: Promise<void>[] = new Array<Promise<void>>(batch.length);
    for (let i = 0; i < batch.length; i++) sends[i] = send(batch[i]!, debug);
    await Promise.all(sends);
  }

  /** Hands one journaled message to the transport and settles its publish; never rejects. */
  async function send(p: Pending, debug: boolean): Promise<void> {
    try {
      await transport.publish([
        { topic: p.record.topic, key: p.record.key, message: p.record.message },
      ]);
    } catch (cause) {
      logger.warn(
        { messageId: p.envelope.id, type: p.envelope.type, err: cause },
        'publish failed after journaling; the outbox relay will deliver it',
      );
      p.reject(new PublishFailedError(p.envelope.id, p.envelope.type, cause));
      return;
    }
    if (!folds) return markSoon(p);
    hold(p.envelope.id);
    settle(p, debug);
  }

  let acked: Pending[] = [];
  let markScheduled = false;

  function markSoon(p: Pending): void {
    acked.push(p);
    if (markScheduled) return;
    markScheduled = true;
    void RESOLVED.then(markAcked);
  }

  function markAcked(): void {
    markScheduled = false;
    const marked = acked;
    acked = [];
    track(markPublished(marked));
  }

  async function markPublished(marked: Pending[]): Promise<void> {
    await markIds(marked.map((p) => p.envelope.id));
    const debug = logger.isLevelEnabled('debug');
    for (const p of marked) settle(p, debug);
  }

  function settle(p: Pending, debug: boolean): void {
    if (debug) {
      logger.debug(
        { messageId: p.envelope.id, type: p.envelope.type, topic: p.record.topic },
        'published',
      );
    }
    p.resolve(p.envelope);
  }

  async function flushAll(): Promise<void> {
    flush();
    // Batches in flight hold marks back when they settle: wait for them, then write what is held.
    while (inFlight.size > 0 || held.length > 0) {
      writeHeld();
      await Promise.allSettled([...inFlight]);
    }
  }

  return {
    service,
    version,
    flush: flushAll,
    close: flushAll,
    publish(event, data, publishOptions = {}) {
      // Telemetry (issue 18): a producer span, its trace context sent as the CloudEvents
      // distributed-tracing extension. Undefined (nothing allocated) without an OpenTelemetry SDK.
      const telemetry = startPublish(
        transport.name,
        event.type,
        publishOptions.topic,
        topicFor,
        publishOptions.extensions,
      );
      if (telemetry?.span !== undefined) {
        publishOptions = { ...publishOptions, extensions: telemetry.extensions };
      }
      let prepared: ReturnType<typeof prepareJournaledEvent>;
      try {
        prepared = prepareJournaledEvent(stamp, event, data, publishOptions);
      } catch (err) {
        if (telemetry !== undefined) endPublish(telemetry, undefined, err);
        return Promise.reject(err);
      }
      // The journal and the transport may keep the message as it is: nothing changes it hereafter.
      prepared.record.message = sealMessage(prepared.record.message, prepared.envelope);
      const published = new Promise<Envelope<unknown>>((resolve, reject) => {
        queue.push({ envelope: prepared.envelope, record: prepared.record, resolve, reject });
        if (queue.length >= batching.maxBatchSize) flush();
        else if (lingerMs > 0) timer ??= setTimeout(flush, lingerMs);
        else if (!flushQueued) {
          // Once the current synchronous code and the promise reactions queued before it ran:
          // what is published together, is batched together. A promise reaction, not
          // queueMicrotask (an AsyncResource per call in Node).
          flushQueued = true;
          void RESOLVED.then(flushQueuedBatch);
        }
      });
      if (telemetry === undefined) return published;
      return published.then(
        (envelope) => {
          endPublish(telemetry, envelope);
          return envelope;
        },
        (err: unknown) => {
          endPublish(telemetry, undefined, err);
          throw err;
        },
      );
    },
  };
}

type Cancel = () => void;

const RESOLVED: Promise<void> = Promise.resolve();

/** Runs `fn` after `ms`, or with 0 at the end of the current event-loop turn (`setImmediate`). */
function afterTurn(ms: number, fn: () => void): Cancel {
  if (ms > 0) {
    const handle = setTimeout(fn, ms);
    return () => clearTimeout(handle);
  }
  const handle = setImmediate(fn);
  return () => clearImmediate(handle);
}

/** A publish waiting for its batch. */
interface Pending {
  envelope: Envelope<unknown>;
  record: JournalAppend;
  resolve: (envelope: Envelope<unknown>) => void;
  reject: (error: unknown) => void;
}
