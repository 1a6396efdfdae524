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
  /** Batches' claims, each held as one entry (see {@link LeaseKeeper.holdGroup}). */
  readonly #groups = new Set<LeaseGroup>();
  /** Grouped leases dropped one by one while their group is held: key → token. */
  #dropped: Map<string, string> | undefined;
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
    this.#start();
  }

  /**
   * Starts keeping the leases of a batch alive as one entry (`pairs`: key, token, key, token...;
   * `sources[i]`: where the warnings of pair i go), until {@link LeaseKeeper.dropGroup}; one of
   * them can stop earlier with {@link LeaseKeeper.drop}. A batch that ends in microseconds costs
   * a set insert and delete, not a map entry and an object per key.
   */
  holdGroup(pairs: readonly string[], sources: readonly LogSource[]): LeaseGroup {
    const group: LeaseGroup = { pairs, sources, since: this.#now() };
    this.#groups.add(group);
    this.#start();
    return group;
  }

  /** Stops keeping the leases of `group` alive. */
  dropGroup(group: LeaseGroup): void {
    if (!this.#groups.delete(group)) return;
    const dropped = this.#dropped;
    if (dropped === undefined) return;
    if (this.#groups.size === 0) {
      this.#dropped = undefined;
      return;
    }
    const { pairs } = group;
    for (let h = 0; h < pairs.length; h += 2) {
      if (dropped.get(pairs[h]!) === pairs[h + 1]) dropped.delete(pairs[h]!);
    }
  }

  /**
   * Stops keeping `key` alive (when `token` still is the one held). The timer stays until its
   * next tick finds nothing held: a consumer whose batches end in microseconds would otherwise
   * make and clear an interval per batch.
   */
  drop(key: string, token: string): void {
    const held = this.#held.get(key);
    if (held !== undefined) {
      if (held.token === token) this.#held.delete(key);
      return;
    }
    // A lease of a group (a batch's claim whose handler failed or timed out): skipped from now.
    if (this.#groups.size > 0) (this.#dropped ??= new Map()).set(key, token);
  }

  /** Leases currently kept alive (tests, introspection). */
  get size(): number {
    let size = this.#held.size;
    for (const { pairs } of this.#groups) {
      for (let h = 0; h < pairs.length; h += 2) {
        if (!this.#isDropped(pairs[h]!, pairs[h + 1]!)) size++;
      }
    }
    return size;
  }

  #isDropped(key: string, token: string): boolean {
    return this.#dropped !== undefined && this.#dropped.get(key) === token;
  }

  #start(): void {
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#tick(), this.#everyMs);
      this.#timer.unref();
    }
  }

  #tick(): void {
    if (this.#held.size === 0 && this.#groups.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    const now = this.#now();
    // Half an interval of slack for timer jitter: the first extension comes within 1.5 intervals.
    const due = this.#everyMs / 2;
    for (const [key, held] of this.#held) {
      if (now - held.since < due) continue;
      held.since = now;
      this.#extend(key, held.token, held.logOf, () => this.#held.get(key) === held);
    }
    for (const group of this.#groups) {
      if (now - group.since < due) continue;
      group.since = now;
      const { pairs, sources } = group;
      for (let h = 0; h < pairs.length; h += 2) {
        const key = pairs[h]!;
        const token = pairs[h + 1]!;
        if (this.#isDropped(key, token)) continue;
        this.#extend(
          key,
          token,
          sources[h / 2],
          () => this.#groups.has(group) && !this.#isDropped(key, token),
        );
      }
    }
  }

  #extend(
    key: string,
    token: string,
    logOf: LogSource | undefined,
    stillHeld: () => boolean,
  ): void {
    this.#store.extend(key, token, this.#leaseMs).then(
      (owned) => {
        if (!owned && stillHeld() && logOf !== undefined)
          loggerOf(logOf).warn({ key }, 'dedupe lease lost while the handler runs; raise leaseMs');
      },
      (error: unknown) => {
        if (logOf !== undefined)
          loggerOf(logOf).warn({ key, err: error }, 'could not extend the dedupe lease');
      },
    );
  }
}

/** A batch's leases held as one entry of a {@link LeaseKeeper}. */
export interface LeaseGroup {
  /** key, token, key, token... */
  readonly pairs: readonly string[];
  /** Where the warnings of pair i go. */
  readonly sources: readonly LogSource[];
  /** When the leases were last taken or extended (this process's clock). */
  since: number;
}
