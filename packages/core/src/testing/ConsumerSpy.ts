import type { Disposition } from '../consumer/processor.js';
import { matchesPartial, type PartialMatch } from './match.js';
import { SpyBuffer, type SpyOptions, type WaitForOptions } from './SpyBuffer.js';

/** One message the pipeline finished with. */
export interface SpyRecord {
  /** Envelope id, when the message could be decoded. */
  messageId?: string;
  type?: string;
  sagaId?: string;
  /** The event's data as the handler got it (decoded messages only). */
  data?: unknown;
  attempt: number;
  disposition: Disposition;
  /** Epoch ms when the pipeline returned the disposition. */
  at: number;
}

/** Which records a {@link ConsumerSpy} query takes; every field given must match. */
export interface ConsumerSpyMatch {
  messageId?: string;
  type?: string;
  sagaId?: string;
  /** The disposition's kind: `ack`, `retry`, `dead-letter`, `redeliver`. */
  kind?: Disposition['kind'];
  /** A partial pattern of the event data (see `matchesPartial`), or a predicate. */
  data?: PartialMatch<Record<string, unknown>> | ((data: unknown) => boolean);
}

/**
 * A test spy for consumer pipelines (after MQT's HandlerSpy): pass it as `dependencies.spy` and
 * await a message's outcome instead of sleeping. Matches by id, type, saga, disposition and a
 * partial payload; keeps at most `maxRecords` records; a wait that times out rejects with
 * {@link SpyTimeoutError} (`BT_ERR_SPY_TIMEOUT`), which lists the last records seen.
 *
 * @example
 * const spy = new ConsumerSpy({ maxRecords: 1_000 });
 * const processor = createConsumerPipeline(options, { spy });
 * await transport.publish([...]);
 * await spy.waitFor({ type: 'order.placed', data: { orderId: 'o-1' }, kind: 'ack' });
 * expect(spy.count({ kind: 'dead-letter' })).toBe(0);
 */
export class ConsumerSpy {
  readonly #buffer: SpyBuffer<SpyRecord>;

  constructor(options: SpyOptions = {}) {
    this.#buffer = new SpyBuffer('ConsumerSpy', options, describeRecord);
  }

  /** Everything held, oldest first (at most `maxRecords`). */
  get records(): readonly SpyRecord[] {
    return this.#buffer.records;
  }

  /** How many records were let go because the buffer was full. */
  get dropped(): number {
    return this.#buffer.dropped;
  }

  /** Called by the pipeline. */
  record(record: SpyRecord): void {
    this.#buffer.push(record);
  }

  /** The records held that match, oldest first. */
  filter(match: ConsumerSpyMatch = {}): SpyRecord[] {
    return this.#buffer.filter((r) => matchesConsumer(r, match));
  }

  /** The first record held that matches. */
  find(match: ConsumerSpyMatch): SpyRecord | undefined {
    return this.filter(match)[0];
  }

  /** How many records held match. */
  count(match: ConsumerSpyMatch = {}): number {
    return this.filter(match).length;
  }

  /** Records for one message id (every attempt), oldest first. */
  recordsFor(messageId: string): SpyRecord[] {
    return this.filter({ messageId });
  }

  /**
   * Resolves with the first record that matches, now if one is held, else when it arrives.
   * With `count`, waits for that many and resolves with the last of them.
   * @throws {SpyTimeoutError} after `timeoutMs`.
   */
  async waitFor(match: ConsumerSpyMatch, options: WaitForOptions = {}): Promise<SpyRecord> {
    const found = await this.#buffer.waitFor(
      (r) => matchesConsumer(r, match),
      describeMatch(match),
      options,
    );
    return found[found.length - 1]!;
  }

  /**
   * Resolves with the first `count` records that match.
   * @throws {SpyTimeoutError} after `timeoutMs`.
   */
  waitForCount(
    count: number,
    match: ConsumerSpyMatch = {},
    options: Omit<WaitForOptions, 'count'> = {},
  ): Promise<SpyRecord[]> {
    return this.#buffer.waitFor((r) => matchesConsumer(r, match), describeMatch(match), {
      ...options,
      count,
    });
  }

  /** {@link waitFor} by message id (and disposition kind). */
  waitForMessage(
    messageId: string,
    options: { kind?: Disposition['kind']; timeoutMs?: number } = {},
  ): Promise<SpyRecord> {
    return this.waitFor(
      { messageId, ...(options.kind === undefined ? {} : { kind: options.kind }) },
      options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs },
    );
  }

  /** Forgets every record (pending waiters stay). */
  clear(): void {
    this.#buffer.clear();
  }
}

function matchesConsumer(record: SpyRecord, match: ConsumerSpyMatch): boolean {
  return (
    (match.messageId === undefined || record.messageId === match.messageId) &&
    (match.type === undefined || record.type === match.type) &&
    (match.sagaId === undefined || record.sagaId === match.sagaId) &&
    (match.kind === undefined || record.disposition.kind === match.kind) &&
    (match.data === undefined || matchesPartial(record.data, match.data))
  );
}

function describeMatch(match: ConsumerSpyMatch): string {
  return `message ${JSON.stringify(match, (_k, v: unknown) => (typeof v === 'function' ? '<predicate>' : v))}`;
}

function describeRecord(record: SpyRecord): string {
  return `${record.type ?? '(undecoded)'} ${record.messageId ?? ''} ${record.disposition.kind}`.trim();
}
