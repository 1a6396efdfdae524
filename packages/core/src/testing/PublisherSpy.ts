import type { Envelope } from '../envelope/types.js';
import type { Publisher, PublishOptions } from '../publisher/Publisher.js';
import type { EventInput, LatestVersion } from '../schema/defineEvent.js';
import type { AnyEventDefinition } from '../schema/EventRegistry.js';
import { matchesPartial, type PartialMatch } from './match.js';
import { SpyBuffer, type SpyOptions, type WaitForOptions } from './SpyBuffer.js';

/** One `publish` call a {@link PublisherSpy} saw. */
export interface PublishedRecord {
  type: string;
  /** The data as validated by the event's schema (defaults applied). */
  data: unknown;
  /** The envelope published (or, standalone, the one that would have been). */
  envelope: Envelope<unknown>;
  options: PublishOptions;
  /** Epoch ms of the call. */
  at: number;
}

/** Which records a {@link PublisherSpy} query takes; every field given must match. */
export interface PublisherSpyMatch {
  /** The event type, or its definition. */
  type?: string | AnyEventDefinition;
  /** A partial pattern of the event data (see `matchesPartial`), or a predicate. */
  data?: PartialMatch<Record<string, unknown>> | ((data: unknown) => boolean);
  /** The publish options' key. */
  key?: string;
  sagaId?: string;
}

/** Options of {@link PublisherSpy}. */
export interface PublisherSpyOptions extends SpyOptions {
  /**
   * A publisher to pass every call on to (recorded once it resolved). Without one the spy is a
   * stand-alone fake: it validates the data, builds the envelope and resolves with it, sending
   * nothing.
   */
  delegate?: Publisher;
  /** Stand-alone only: the service stamped on envelopes. @default 'test' */
  service?: string;
  /** Stand-alone only: the version stamped on envelopes. @default '0.0.0-test' */
  version?: string;
  /** Stand-alone only: a publish that should fail (checked before anything is recorded). */
  failWith?: (event: AnyEventDefinition, data: unknown) => unknown;
}

/**
 * A {@link Publisher} for tests: records every event published through it, by type and payload,
 * and waits for one instead of sleeping. Stand-alone it is a fake publisher (schema validation
 * included, nothing sent); with `delegate` it wraps a real one.
 *
 * @example
 * const publisher = new PublisherSpy();
 * await placeOrder(publisher, { orderId: 'o-1' });       // code under test publishes
 * expect(publisher.count({ type: OrderPlaced })).toBe(1);
 * await publisher.waitFor({ type: 'order.placed', data: { orderId: 'o-1' } });
 */
export class PublisherSpy implements Publisher {
  readonly service: string;
  readonly version: string;
  readonly #buffer: SpyBuffer<PublishedRecord>;
  readonly #delegate: Publisher | undefined;
  readonly #failWith: PublisherSpyOptions['failWith'];

  constructor(options: PublisherSpyOptions = {}) {
    this.#delegate = options.delegate;
    this.service = options.delegate?.service ?? options.service ?? 'test';
    this.version = options.delegate?.version ?? options.version ?? '0.0.0-test';
    this.#failWith = options.failWith;
    this.#buffer = new SpyBuffer('PublisherSpy', options, (r) => `${r.type} ${r.envelope.id}`);
  }

  async publish<E extends AnyEventDefinition, V extends number = LatestVersion<E>>(
    event: E,
    data: EventInput<E, V>,
    options: PublishOptions<V> = {},
  ): Promise<Envelope<unknown>> {
    let envelope: Envelope<unknown>;
    if (this.#delegate) {
      envelope = await this.#delegate.publish(event, data, options);
    } else {
      const failure = this.#failWith?.(event, data);
      if (failure !== undefined) throw failure;
      envelope = event.envelope(data, {
        source: `//backtrack/${this.service}`,
        version: options.schemaVersion,
        id: options.id,
        sagaid: options.sagaId,
        causationid: options.causationId,
        correlationid: options.correlationId,
        producerservice: this.service,
        producerversion: this.version,
        partitionkey: options.key,
        subject: options.subject,
        dataschema: options.dataschema,
        extensions: options.extensions,
      }) as Envelope<unknown>;
    }
    this.#buffer.push({
      type: event.type,
      data: envelope.data,
      envelope,
      options: options as PublishOptions,
      at: Date.now(),
    });
    return envelope;
  }

  /** Everything held, oldest first (at most `maxRecords`). */
  get records(): readonly PublishedRecord[] {
    return this.#buffer.records;
  }

  /** How many records were let go because the buffer was full. */
  get dropped(): number {
    return this.#buffer.dropped;
  }

  /** The records held that match, oldest first. */
  filter(match: PublisherSpyMatch = {}): PublishedRecord[] {
    return this.#buffer.filter((r) => matchesPublished(r, match));
  }

  /** The first record held that matches. */
  find(match: PublisherSpyMatch): PublishedRecord | undefined {
    return this.filter(match)[0];
  }

  /** How many records held match. */
  count(match: PublisherSpyMatch = {}): number {
    return this.filter(match).length;
  }

  /**
   * Resolves with the first record that matches, now if one is held, else when it is published.
   * With `count`, waits for that many and resolves with the last of them.
   * @throws {SpyTimeoutError} after `timeoutMs`.
   */
  async waitFor(match: PublisherSpyMatch, options: WaitForOptions = {}): Promise<PublishedRecord> {
    const found = await this.#buffer.waitFor(
      (r) => matchesPublished(r, match),
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
    match: PublisherSpyMatch = {},
    options: Omit<WaitForOptions, 'count'> = {},
  ): Promise<PublishedRecord[]> {
    return this.#buffer.waitFor((r) => matchesPublished(r, match), describeMatch(match), {
      ...options,
      count,
    });
  }

  /** Forgets every record (pending waiters stay). */
  clear(): void {
    this.#buffer.clear();
  }
}

function matchesPublished(record: PublishedRecord, match: PublisherSpyMatch): boolean {
  const type = typeof match.type === 'object' ? match.type.type : match.type;
  return (
    (type === undefined || record.type === type) &&
    (match.key === undefined || record.options.key === match.key) &&
    (match.sagaId === undefined || record.options.sagaId === match.sagaId) &&
    (match.data === undefined || matchesPartial(record.data, match.data))
  );
}

function describeMatch(match: PublisherSpyMatch): string {
  const shown = { ...match, ...(typeof match.type === 'object' ? { type: match.type.type } : {}) };
  return `event ${JSON.stringify(shown, (_k, v: unknown) => (typeof v === 'function' ? '<predicate>' : v))}`;
}
