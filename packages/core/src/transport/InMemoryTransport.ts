import type { Disposition, IncomingMessage, MessageProcessor } from '../consumer/processor.js';
import type { EncodedMessage } from '../envelope/types.js';
import { BacktrackError } from '../errors/BacktrackError.js';
import { createDefaultLogger, type Logger } from '../logging/logger.js';
import type { OutgoingMessage, Subscription, SubscriptionOptions, Transport } from './Transport.js';
import { CORE_ERROR_CODES } from '../errors/codes.js';
import { ConfigError, type ConfigErrorOptions } from '../errors/ConfigError.js';
import { copyMessage, deliveredCopy, keptCopy } from './sealedMessage.js';
import { bindingKeyMatcher } from './bindingKeys.js';

/** Options of {@link InMemoryTransport}. */
export interface InMemoryTransportOptions {
  /**
   * Partitions per topic. Messages with one key always go to one partition and are processed
   * in publish order; different partitions run concurrently. @default 4
   */
  partitions?: number;
  /**
   * Most messages of one partition handed to the processor's `processBatch` at once: what is
   * queued in a partition when it is free to run goes in one call (the consumer pipeline then
   * claims them in one store round trip and runs different keys concurrently, one key in
   * order), like a Kafka fetch. A processor without `processBatch`, or 1, gets them one by one
   * through `process`. @default 256
   */
  batchSize?: number;
}

/** Collaborators of {@link InMemoryTransport}. */
export interface InMemoryTransportDependencies {
  /** @default createDefaultLogger() */
  logger?: Logger;
}

/** A message parked by a `dead-letter` disposition, as received (original headers and bytes). */
export interface InMemoryDeadLetter {
  topic: string;
  group: string;
  key?: string;
  partition: number;
  offset: number;
  /** The original message: the exact headers and body bytes that were published. */
  message: EncodedMessage;
  reason: string;
  code: string;
  error?: unknown;
  attempt: number;
  /** Epoch ms. */
  at: number;
}

/** A published message as the in-memory broker stores it. */
export interface InMemoryRecord {
  topic: string;
  key?: string;
  partition: number;
  offset: number;
  message: EncodedMessage;
}

/** A transport option is invalid. */
export class InMemoryTransportError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.InMemoryTransportError';
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(CORE_ERROR_CODES.IN_MEMORY_TRANSPORT, message, { details });
  }
}

/** An `InMemoryTransport` constructor option is invalid (`details.field` names it). */
export class InMemoryTransportConfigError extends ConfigError {
  static override readonly brand: string = '@backtrack/core.InMemoryTransportConfigError';
  constructor(field: string, expectation: string, value?: unknown, options?: ConfigErrorOptions) {
    super(
      CORE_ERROR_CODES.IN_MEMORY_TRANSPORT_CONFIG_INVALID,
      'in-memory transport',
      field,
      expectation,
      value,
      options,
    );
  }
}

/** Default of {@link InMemoryTransportOptions.batchSize}. */
const DEFAULT_IN_MEMORY_BATCH_SIZE = 256;

const RESOLVED: Promise<void> = Promise.resolve();

interface Delivery {
  record: InMemoryRecord;
  attempt: number;
}

interface Member {
  processor: MessageProcessor;
  topics: ReadonlySet<string>;
  /** The member's binding keys, or undefined: every type. */
  bindingKeys: readonly string[] | undefined;
  inFlight: Set<Promise<void>>;
  closed: boolean;
}

interface Queue {
  group: Group;
  topic: string;
  partition: number;
  /** Deliveries waiting, from `head` on (the consumed prefix is dropped in bulk, not per message). */
  items: Delivery[];
  head: number;
  running: boolean;
  blocked: boolean;
  /** A kick is queued for the end of the current synchronous code (see `#kickSoon`). */
  kickQueued: boolean;
}

interface Group {
  name: string;
  members: Member[];
  /** The topics some member reads (kept with `members`). */
  topics: Set<string>;
  /** Which types the group's queue gets (kept with `members`); undefined: every type. */
  accepts: TypeFilter | undefined;
  queues: Map<string, Queue>;
  /** The same queues by topic, then partition (the lookup per delivered record). */
  partitions: Map<string, Queue[]>;
  /** Next offset of each topic's log to hand to this group. */
  nextOffset: Map<string, number>;
  paused: boolean;
  roundRobin: number;
}

/**
 * The {@link Transport} port in process: topics with partitions, consumer groups (every group
 * gets every message; members of one group share the partitions), per-key ordering, and every
 * {@link Disposition}:
 *
 * - `ack`: done;
 * - `retry`: delivered again after `delayMs` with `attempt + 1` (at the tail of its partition,
 *   like a retry topic: it does not block later messages);
 * - `dead-letter`: recorded in {@link InMemoryTransport.deadLetters} with the reason, code and
 *   the original headers and bytes;
 * - `redeliver`: not acknowledged; the message stays at the head of its partition and comes
 *   again after `delayMs` with the same attempt (`pause: true` stops the whole group meanwhile).
 *
 * A new group reads each topic from the beginning. `idle()` resolves when nothing is queued,
 * running or scheduled: tests and the in-memory example await it instead of sleeping.
 */
export class InMemoryTransport implements Transport {
  readonly name = 'in-memory';
  readonly #partitions: number;
  readonly #batchSize: number;
  readonly #logger: Logger;
  readonly #logs = new Map<string, InMemoryRecord[]>();
  readonly #groups = new Map<string, Group>();
  readonly #deadLetters: InMemoryDeadLetter[] = [];
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #idleWaiters: (() => void)[] = [];
  #closed = false;

  constructor(
    options: InMemoryTransportOptions = {},
    dependencies: InMemoryTransportDependencies = {},
  ) {
    const { partitions = 4, batchSize = DEFAULT_IN_MEMORY_BATCH_SIZE } = options;
    if (!Number.isSafeInteger(partitions) || partitions < 1) {
      throw new InMemoryTransportConfigError(
        'partitions',
        'must be a positive integer',
        partitions,
      );
    }
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
      throw new InMemoryTransportConfigError('batchSize', 'must be a positive integer', batchSize);
    }
    this.#partitions = partitions;
    this.#batchSize = batchSize;
    this.#logger = (dependencies.logger ?? createDefaultLogger()).child({ transport: this.name });
  }

  /** Every dead letter so far, oldest first. */
  get deadLetters(): readonly InMemoryDeadLetter[] {
    return this.#deadLetters;
  }

  /**
   * Every message published to `topic`, in offset order. The records are the broker's own (a
   * journaling publisher's message is shared with the in-memory journal): read them, do not
   * change them.
   */
  published(topic: string): readonly InMemoryRecord[] {
    return this.#logs.get(topic) ?? [];
  }

  /** Empties the dead-letter list and returns what it held. */
  takeDeadLetters(): InMemoryDeadLetter[] {
    return this.#deadLetters.splice(0);
  }

  async publish(messages: OutgoingMessage[]): Promise<void> {
    if (this.#closed) throw new InMemoryTransportError('transport is closed');
    for (const { topic } of messages) {
      if (typeof topic !== 'string' || topic.length === 0)
        throw new InMemoryTransportError('topic must be a non-empty string');
    }
    if (messages.length === 1) {
      // The usual call (the journaling publisher hands over one message per publish): no set of
      // touched topics, one topic to fill.
      const { topic } = messages[0]!;
      this.#store(messages[0]!);
      for (const group of this.#groups.values()) this.#fillTopic(group, topic, undefined);
      return;
    }
    const touched = new Set<string>();
    for (const message of messages) {
      this.#store(message);
      touched.add(message.topic);
    }
    for (const group of this.#groups.values()) this.#fill(group, touched);
  }

  /**
   * Appends one message to its topic's log, as the broker's own copy, which it never changes:
   * later changes by the caller do not reach consumers (as a real broker serialises). A message
   * the journaling publisher sealed is kept as it is (no one changes it), shared with the journal.
   */
  #store({ topic, key, message }: OutgoingMessage): void {
    let log = this.#logs.get(topic);
    if (log === undefined) this.#logs.set(topic, (log = []));
    const offset = log.length;
    const partition = this.#partitionOf(key, offset);
    const copy = keptCopy(message);
    log.push(
      key === undefined
        ? { topic, partition, offset, message: copy }
        : { topic, key, partition, offset, message: copy },
    );
  }

  /**
   * `bindingKeys` (optional, as on RabbitMQ with the default `type` routing key): the group gets
   * only the messages whose `type` header matches one of them (AMQP topic patterns: words split
   * by `.`, `*` one word, `#` zero or more). The group's queue binds the keys of all its members;
   * a member without `bindingKeys` binds every type. A message without a `type` header (a
   * structured-mode body) is delivered to every group. Messages published before a binding
   * existed are not delivered to it again (a new group still reads the topics from the start).
   */
  async subscribe(
    options: SubscriptionOptions & { bindingKeys?: readonly string[] },
  ): Promise<Subscription> {
    if (this.#closed) throw new InMemoryTransportError('transport is closed');
    if (!Array.isArray(options.topics) || options.topics.length === 0) {
      throw new InMemoryTransportError('topics must be a non-empty array', { field: 'topics' });
    }
    if (typeof options.group !== 'string' || options.group.length === 0) {
      throw new InMemoryTransportError('group must be a non-empty string', { field: 'group' });
    }
    if (typeof options.processor?.process !== 'function') {
      throw new InMemoryTransportError('processor must be a MessageProcessor', {
        field: 'processor',
      });
    }
    const bindingKeys = checkBindingKeys(options.bindingKeys);
    let group = this.#groups.get(options.group);
    if (group === undefined) {
      group = {
        name: options.group,
        members: [],
        topics: new Set(),
        accepts: undefined,
        queues: new Map(),
        partitions: new Map(),
        nextOffset: new Map(),
        paused: false,
        roundRobin: 0,
      };
      this.#groups.set(options.group, group);
    }
    const member: Member = {
      processor: options.processor,
      topics: new Set(options.topics),
      bindingKeys,
      inFlight: new Set(),
      closed: false,
    };
    group.members.push(member);
    group.topics = topicsOf(group.members);
    group.accepts = filterOf(group.members);
    this.#fill(group, group.topics);
    const owner = group;
    return {
      close: async () => {
        if (member.closed) return;
        member.closed = true;
        owner.members = owner.members.filter((m) => m !== member);
        owner.topics = topicsOf(owner.members);
        owner.accepts = filterOf(owner.members);
        await Promise.allSettled([...member.inFlight]);
        // The partitions it held go to the remaining members, if any.
        for (const queue of owner.queues.values()) this.#kick(queue);
        this.#checkIdle();
      },
    };
  }

  /** Stops every subscription (waiting for in-flight handlers) and cancels scheduled deliveries. */
  async close(): Promise<void> {
    this.#closed = true;
    const members = [...this.#groups.values()].flatMap((group) => group.members);
    for (const member of members) member.closed = true;
    await Promise.allSettled(members.flatMap((member) => [...member.inFlight]));
    for (const group of this.#groups.values()) {
      group.members = [];
      group.topics = new Set();
    }
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#checkIdle();
  }

  /**
   * Resolves when no message is queued for a live subscriber, none is being processed and no
   * retry or redelivery is scheduled. Rejects after `timeoutMs`.
   */
  idle(timeoutMs = 10_000): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#idleWaiters = this.#idleWaiters.filter((w) => w !== done);
        reject(
          new InMemoryTransportError(`not idle after ${timeoutMs} ms`, {
            pending: this.#pending(),
          }),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.#idleWaiters.push(done);
    });
  }

  #partitionOf(key: string | undefined, offset: number): number {
    if (key === undefined) return offset % this.#partitions;
    let hash = 0;
    for (let i = 0; i < key.length; i++) hash = (Math.imul(hash, 31) + key.charCodeAt(i)) | 0;
    return Math.abs(hash) % this.#partitions;
  }

  /**
   * Moves the records of `topics` the group has not seen yet into its partition queues, and
   * starts the queues that got some.
   */
  #fill(group: Group, topics: ReadonlySet<string>): void {
    const filled = new Set<Queue>();
    for (const topic of topics) this.#fillTopic(group, topic, filled);
    for (const queue of filled) this.#kick(queue);
  }

  /**
   * Moves the records of one topic the group has not seen yet into its partition queues; kicks
   * the queues that got some, or adds them to `filled` for the caller to kick.
   */
  #fillTopic(group: Group, topic: string, filled: Set<Queue> | undefined): void {
    if (!group.topics.has(topic)) return;
    const log = this.#logs.get(topic);
    if (log === undefined) return;
    const from = group.nextOffset.get(topic) ?? 0;
    if (from >= log.length) return;
    let partitions = group.partitions.get(topic);
    if (partitions === undefined) group.partitions.set(topic, (partitions = []));
    // Without a caller's set, the queues filled here are kicked here: one queue (a publish of one
    // message) needs no set at all.
    const kickHere = filled === undefined;
    let single: Queue | undefined;
    const accepts = group.accepts;
    for (let offset = from; offset < log.length; offset++) {
      const record = log[offset]!;
      // Not bound (as a RabbitMQ queue without a matching binding): never queued for this group.
      if (accepts !== undefined && !accepts.matches(record.message.headers['type'])) continue;
      const queue = (partitions[record.partition] ??= this.#queue(group, topic, record.partition));
      queue.items.push({ record, attempt: 1 });
      if (filled !== undefined) filled.add(queue);
      else if (single === undefined || single === queue) single = queue;
      else filled = new Set([single, queue]);
    }
    group.nextOffset.set(topic, log.length);
    if (!kickHere) return;
    if (filled === undefined) this.#kickSoon(single!);
    else for (const queue of filled) this.#kickSoon(queue);
  }

  #queue(group: Group, topic: string, partition: number): Queue {
    const id = `${topic}\u0000${partition}`;
    let queue = group.queues.get(id);
    if (queue === undefined) {
      queue = {
        group,
        topic,
        partition,
        items: [],
        head: 0,
        running: false,
        blocked: false,
        kickQueued: false,
      };
      group.queues.set(id, queue);
    }
    return queue;
  }

  #memberFor(queue: Queue): Member | undefined {
    // Counted, then picked: no array per call (the drain asks once per batch).
    const { members } = queue.group;
    let count = 0;
    let only: Member | undefined;
    for (const m of members) {
      if (m.closed || !m.topics.has(queue.topic)) continue;
      count++;
      only = m;
    }
    if (count <= 1) return only;
    let pick = (queue.partition + queue.group.roundRobin) % count;
    for (const m of members) {
      if (m.closed || !m.topics.has(queue.topic)) continue;
      if (pick-- === 0) return m;
    }
    return undefined;
  }

  /**
   * Kicks `queue` once the current synchronous code and the promise reactions queued before it
   * ran: the messages published one by one in that time (a publisher's batch, the replies of one
   * consumer batch) reach the consumer as one batch instead of a first batch of one.
   */
  #kickSoon(queue: Queue): void {
    if (queue.kickQueued || queue.running) return;
    queue.kickQueued = true;
    void RESOLVED.then(() => {
      queue.kickQueued = false;
      this.#kick(queue);
    });
  }

  #kick(queue: Queue): void {
    if (
      queue.running ||
      queue.blocked ||
      queue.group.paused ||
      queue.items.length === queue.head ||
      this.#closed
    )
      return;
    const member = this.#memberFor(queue);
    if (member === undefined) return;
    queue.running = true;
    const work = this.#drain(queue).finally(() => {
      member.inFlight.delete(work);
      queue.running = false;
      this.#kick(queue);
      this.#checkIdle();
    });
    member.inFlight.add(work);
  }

  async #drain(queue: Queue): Promise<void> {
    while (
      queue.items.length > queue.head &&
      !queue.blocked &&
      !queue.group.paused &&
      !this.#closed
    ) {
      const member = this.#memberFor(queue);
      if (member === undefined) return;
      const useBatch = this.#batchSize > 1 && typeof member.processor.processBatch === 'function';
      // What is queued now, up to batchSize, in one call: one claim round trip, keys in lanes.
      const batch = queue.items.slice(queue.head, queue.head + (useBatch ? this.#batchSize : 1));
      // A loop onto a literal, not `batch.map`: the processor gets one elements kind every time
      // (see runBatch in the consumer pipeline).
      const incoming: IncomingMessage[] = [];
      for (let i = 0; i < batch.length; i++) incoming.push(this.#incoming(queue, batch[i]!));
      let dispositions: Disposition[];
      try {
        dispositions = useBatch
          ? await member.processor.processBatch!(incoming)
          : [await member.processor.process(incoming[0]!)];
        if (dispositions.length !== batch.length) {
          throw new InMemoryTransportError(
            `processBatch returned ${dispositions.length} dispositions for ${batch.length} messages`,
          );
        }
      } catch (error) {
        // A processor must never throw; if it does, nothing is acknowledged: pause and retry.
        this.#logger.error(
          { err: error, topic: queue.topic, group: queue.group.name },
          'processor threw; redelivering',
        );
        dispositions = batch.map(() => ({
          kind: 'redeliver',
          reason: 'processor threw',
          delayMs: 100,
          pause: true,
        }));
      }
      let redeliver: Extract<Disposition, { kind: 'redeliver' }> | undefined;
      let keep: Delivery[] | undefined;
      for (let i = 0; i < batch.length; i++) {
        const delivery = batch[i]!;
        const disposition = dispositions[i]!;
        switch (disposition.kind) {
          case 'ack':
            break;
          case 'dead-letter':
            this.#deadLetters.push({
              topic: queue.topic,
              group: queue.group.name,
              ...(delivery.record.key === undefined ? {} : { key: delivery.record.key }),
              partition: delivery.record.partition,
              offset: delivery.record.offset,
              // A copy: the stored message may be the journal's record too (sealed).
              message: copyMessage(delivery.record.message),
              reason: disposition.reason,
              code: disposition.code,
              ...(disposition.error === undefined ? {} : { error: disposition.error }),
              attempt: delivery.attempt,
              at: Date.now(),
            });
            break;
          case 'retry':
            this.#retryLater(queue, delivery, disposition.delayMs);
            break;
          case 'redeliver':
            (keep ??= []).push(delivery);
            redeliver ??= disposition;
            break;
        }
      }
      // Consumed: the batch's place; redelivered ones stay at the head, in order.
      const kept = keep?.length ?? 0;
      queue.head += batch.length - kept;
      for (let i = 0; i < kept; i++) queue.items[queue.head + i] = keep![i]!;
      if (queue.head >= 1024 && queue.head * 2 >= queue.items.length) {
        queue.items = queue.items.slice(queue.head);
        queue.head = 0;
      }
      if (redeliver !== undefined) this.#hold(queue, redeliver);
    }
  }

  /** A `retry`: delivered again after `delayMs`, at the tail of its partition, attempt + 1. */
  #retryLater(queue: Queue, delivery: Delivery, delayMs: number): void {
    this.#later(delayMs, () => {
      queue.items.push({ record: delivery.record, attempt: delivery.attempt + 1 });
      this.#kick(queue);
    });
  }

  #hold(queue: Queue, disposition: Extract<Disposition, { kind: 'redeliver' }>): void {
    const delayMs = Math.max(0, disposition.delayMs);
    if (disposition.pause) {
      const group = queue.group;
      group.paused = true;
      this.#logger.warn(
        { group: group.name, delayMs, reason: disposition.reason },
        'consumer group paused',
      );
      this.#later(delayMs, () => {
        group.paused = false;
        group.roundRobin += 1;
        for (const q of group.queues.values()) this.#kick(q);
      });
    } else {
      queue.blocked = true;
      this.#later(delayMs, () => {
        queue.blocked = false;
        // Another member may take the partition on the next try, as after a rebalance.
        queue.group.roundRobin += 1;
        this.#kick(queue);
      });
    }
  }

  /**
   * What one delivery hands the processor: its own headers and body bytes (copied on handover,
   * the body into pooled memory: it lives as long as the delivery), so a consumer that changes
   * them changes nothing another consumer, a redelivery or the journal sees.
   */
  #incoming(queue: Queue, delivery: Delivery): IncomingMessage {
    const { record } = delivery;
    return {
      message: deliveredCopy(record.message),
      attempt: delivery.attempt,
      origin: {
        transport: this.name,
        topic: record.topic,
        partition: record.partition,
        offset: String(record.offset),
        group: queue.group.name,
      },
    };
  }

  #later(delayMs: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (!this.#closed) fn();
      this.#checkIdle();
    }, delayMs);
    this.#timers.add(timer);
  }

  #pending(): Record<string, number> {
    let queued = 0;
    let running = 0;
    for (const group of this.#groups.values()) {
      for (const queue of group.queues.values()) {
        if (queue.running) running += 1;
        if (this.#memberFor(queue) !== undefined) queued += queue.items.length - queue.head;
      }
    }
    return { queued, running, scheduled: this.#timers.size };
  }

  #isIdle(): boolean {
    const { queued, running, scheduled } = this.#pending();
    return this.#closed ? running === 0 : queued === 0 && running === 0 && scheduled === 0;
  }

  #checkIdle(): void {
    if (this.#idleWaiters.length === 0 || !this.#isIdle()) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

function topicsOf(members: readonly Member[]): Set<string> {
  const topics = new Set<string>();
  for (const member of members) for (const topic of member.topics) topics.add(topic);
  return topics;
}

/** Which event types a group's queue gets: the union of its members' binding keys. */
interface TypeFilter {
  matches(type: string | undefined): boolean;
}

function checkBindingKeys(keys: unknown): readonly string[] | undefined {
  if (keys === undefined) return undefined;
  if (
    !Array.isArray(keys) ||
    keys.length === 0 ||
    keys.some((k) => typeof k !== 'string' || k.length === 0)
  ) {
    throw new InMemoryTransportError(
      'bindingKeys must be a non-empty array of non-empty strings (use "#" for all)',
      { field: 'bindingKeys' },
    );
  }
  return [...(keys as string[])];
}

/** The filter of a group, or undefined when some member binds every type. */
function filterOf(members: readonly Member[]): TypeFilter | undefined {
  if (members.length === 0) return undefined;
  const keys: string[] = [];
  for (const member of members) {
    if (member.bindingKeys === undefined) return undefined;
    keys.push(...member.bindingKeys);
  }
  const matches = bindingKeyMatcher(keys);
  if (matches === undefined) return undefined;
  return { matches: (type) => typeof type !== 'string' || matches(type) };
}
