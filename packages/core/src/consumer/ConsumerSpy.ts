import type { Disposition } from './processor.js';

/** One message the pipeline finished with. */
export interface SpyRecord {
  /** Envelope id, when the message could be decoded. */
  messageId?: string;
  type?: string;
  sagaId?: string;
  attempt: number;
  disposition: Disposition;
  /** Epoch ms when the pipeline returned the disposition. */
  at: number;
}

interface Waiter {
  messageId: string;
  kind?: Disposition['kind'];
  resolve: (record: SpyRecord) => void;
}

/**
 * A test spy for consumer pipelines (after MQT's HandlerSpy): pass it as
 * `dependencies.spy` and await a message's outcome instead of sleeping.
 *
 * @example
 * const spy = new ConsumerSpy();
 * const processor = createConsumerPipeline(options, { spy });
 * await transport.publish([...]);
 * const record = await spy.waitForMessage(envelope.id, { kind: 'ack' });
 */
export class ConsumerSpy {
  readonly #records: SpyRecord[] = [];
  #waiters: Waiter[] = [];

  /** Everything recorded so far, oldest first. */
  get records(): readonly SpyRecord[] {
    return this.#records;
  }

  /** Called by the pipeline. */
  record(record: SpyRecord): void {
    this.#records.push(record);
    this.#waiters = this.#waiters.filter((waiter) => {
      if (!matches(record, waiter.messageId, waiter.kind)) return true;
      waiter.resolve(record);
      return false;
    });
  }

  /** Records for one message id (every attempt), oldest first. */
  recordsFor(messageId: string): SpyRecord[] {
    return this.#records.filter((record) => record.messageId === messageId);
  }

  /**
   * Resolves with the first record of `messageId` (with disposition `kind`, if given), now if
   * it is already there, else when it arrives. Rejects after `timeoutMs`.
   */
  waitForMessage(
    messageId: string,
    options: { kind?: Disposition['kind']; timeoutMs?: number } = {},
  ): Promise<SpyRecord> {
    const found = this.#records.find((record) => matches(record, messageId, options.kind));
    if (found) return Promise.resolve(found);
    const timeoutMs = options.timeoutMs ?? 5_000;
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        messageId,
        ...(options.kind === undefined ? {} : { kind: options.kind }),
        resolve: (record) => {
          clearTimeout(timer);
          resolve(record);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(
          new Error(
            `ConsumerSpy: message ${messageId}${options.kind ? ` (${options.kind})` : ''} not seen within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  /** Forgets every record (pending waiters stay). */
  clear(): void {
    this.#records.length = 0;
  }
}

function matches(record: SpyRecord, messageId: string, kind?: Disposition['kind']): boolean {
  return record.messageId === messageId && (kind === undefined || record.disposition.kind === kind);
}
