import type { DedupeStore } from '../../dedupe/DedupeStore.js';
import type { Logger } from '../../logging/logger.js';

/** Where a held lease's warnings go: a function that makes the logger, or its owner (a context). */
export type LogSource = (() => Logger) | { readonly logger: Logger };

interface Held {
  token: string;
  /** When the lease was last taken or extended (this process's clock). */
  since: number;
  logOf: LogSource | undefined;
}

function loggerOf(source: LogSource): Logger {
  return typeof source === 'function' ? source() : source.logger;
}

/**
 * Keeps dedupe leases alive for one consumer with ONE timer, whatever the number of messages in
 * flight: every `leaseMs / 3` it extends, in one burst of concurrent calls (pipelined into one
 * round trip on Redis), every held lease not extended in the last `leaseMs / 6`. A message that finishes in
 * microseconds costs a map insert and delete, no timer; a batch's pre-claims are held from the
 * moment they are claimed, so a message late in a long batch still owns its lease when it runs.
 * The timer stops at the first tick that finds nothing held.
 */
export class LeaseKeeper {
  readonly #store: DedupeStore;
  readonly #leaseMs: number;
  readonly #everyMs: number;
  readonly #held = new Map<string, Held>();
  readonly #now: () => number;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(store: DedupeStore, leaseMs: number, now: () => number = Date.now) {
    this.#store = store;
    this.#leaseMs = leaseMs;
    this.#everyMs = Math.max(1, Math.floor(leaseMs / 3));
    this.#now = now;
  }

  /** Starts keeping `key` alive, until {@link LeaseKeeper.drop}. */
  hold(key: string, token: string, logOf?: LogSource): void {
    const held: Held = { token, since: this.#now(), logOf };
    this.#held.set(key, held);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#tick(), this.#everyMs);
      this.#timer.unref();
    }
  }

  /**
   * Stops keeping `key` alive (when `token` still is the one held). The timer stays until its
   * next tick finds nothing held: a consumer whose batches end in microseconds would otherwise
   * make and clear an interval per batch.
   */
  drop(key: string, token: string): void {
    if (this.#held.get(key)?.token !== token) return;
    this.#held.delete(key);
  }

  /** Leases currently kept alive (tests, introspection). */
  get size(): number {
    return this.#held.size;
  }

  #tick(): void {
    if (this.#held.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    const now = this.#now();
    for (const [key, held] of this.#held) {
      // Half an interval of slack for timer jitter: the first extension comes within 1.5 intervals.
      if (now - held.since < this.#everyMs / 2) continue;
      held.since = now;
      this.#store.extend(key, held.token, this.#leaseMs).then(
        (owned) => {
          if (!owned && this.#held.get(key) === held) {
            if (held.logOf !== undefined)
              loggerOf(held.logOf).warn(
                { key },
                'dedupe lease lost while the handler runs; raise leaseMs',
              );
          }
        },
        (error: unknown) => {
          if (held.logOf !== undefined)
            loggerOf(held.logOf).warn({ key, err: error }, 'could not extend the dedupe lease');
        },
      );
    }
  }
}
