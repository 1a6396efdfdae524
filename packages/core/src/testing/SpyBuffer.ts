import { SpyTimeoutError } from './errors.js';

/** Options every spy takes. */
export interface SpyOptions {
  /**
   * Records kept, oldest dropped first, so a spy left on in a long test does not grow without
   * bound. `dropped` counts what was let go. @default 10_000
   */
  maxRecords?: number;
  /** Default timeout of `waitFor`, in ms. @default 5_000 */
  timeoutMs?: number;
}

/** Defaults of {@link SpyOptions}. */
export const DEFAULT_SPY_OPTIONS: Readonly<Required<SpyOptions>> = Object.freeze({
  maxRecords: 10_000,
  timeoutMs: 5_000,
});

/** Options of a spy's `waitFor`. */
export interface WaitForOptions {
  /** @default the spy's `timeoutMs` */
  timeoutMs?: number;
  /** Resolve once this many records match. @default 1 */
  count?: number;
}

interface Waiter<T> {
  test: (record: T) => boolean;
  count: number;
  found: T[];
  resolve: (records: T[]) => void;
}

/**
 * The record buffer and waiters behind {@link ConsumerSpy} and {@link PublisherSpy}: bounded,
 * and a waiter counts matches as they arrive, so records dropped from the buffer still count.
 * @internal
 */
export class SpyBuffer<T> {
  readonly #records: T[] = [];
  #head = 0;
  #dropped = 0;
  #waiters: Waiter<T>[] = [];
  readonly #maxRecords: number;
  readonly timeoutMs: number;

  constructor(
    readonly spy: string,
    options: SpyOptions,
    readonly describe: (record: T) => string,
  ) {
    const maxRecords = options.maxRecords ?? DEFAULT_SPY_OPTIONS.maxRecords;
    const timeoutMs = options.timeoutMs ?? DEFAULT_SPY_OPTIONS.timeoutMs;
    if (!Number.isInteger(maxRecords) || maxRecords < 1)
      throw new RangeError(`${spy}: maxRecords must be an integer >= 1, got ${String(maxRecords)}`);
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0)
      throw new RangeError(`${spy}: timeoutMs must be a number >= 0, got ${String(timeoutMs)}`);
    this.#maxRecords = maxRecords;
    this.timeoutMs = timeoutMs;
  }

  /** Records held, oldest first. */
  get records(): T[] {
    return this.#records.slice(this.#head);
  }

  get size(): number {
    return this.#records.length - this.#head;
  }

  get dropped(): number {
    return this.#dropped;
  }

  push(record: T): void {
    this.#records.push(record);
    if (this.size > this.#maxRecords) {
      this.#head++;
      this.#dropped++;
      // Compact now and then instead of shifting on every push.
      if (this.#head >= this.#maxRecords) {
        this.#records.splice(0, this.#head);
        this.#head = 0;
      }
    }
    if (this.#waiters.length === 0) return;
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.test(record)) return true;
      w.found.push(record);
      if (w.found.length < w.count) return true;
      w.resolve(w.found);
      return false;
    });
  }

  filter(test: (record: T) => boolean): T[] {
    const out: T[] = [];
    for (let i = this.#head; i < this.#records.length; i++) {
      const r = this.#records[i]!;
      if (test(r)) out.push(r);
    }
    return out;
  }

  /** Resolves with the first `count` matching records (those held now count). */
  waitFor(
    test: (record: T) => boolean,
    description: string,
    options: WaitForOptions,
  ): Promise<T[]> {
    const count = options.count ?? 1;
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const found = this.filter(test).slice(0, count);
    if (found.length >= count) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const waiter: Waiter<T> = {
        test,
        count,
        found,
        resolve: (records) => {
          clearTimeout(timer);
          resolve(records);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        const last = this.records.slice(-5).map(this.describe);
        reject(
          new SpyTimeoutError(
            this.spy,
            count === 1
              ? description
              : `${count} × ${description} (matched ${waiter.found.length})`,
            timeoutMs,
            {
              details: {
                match: description,
                count,
                matched: waiter.found.length,
                recorded: this.size,
                dropped: this.#dropped,
                last,
              },
            },
          ),
        );
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  /** Forgets the records (pending waiters stay, with what they matched so far). */
  clear(): void {
    this.#records.length = 0;
    this.#head = 0;
  }
}
