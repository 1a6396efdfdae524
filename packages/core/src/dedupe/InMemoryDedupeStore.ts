import { randomUUID } from 'node:crypto';
import type {
  ClaimOptions,
  ClaimResult,
  CompleteEntry,
  CompleteManyOptions,
  CompleteOptions,
  DedupeStore,
} from './DedupeStore.js';
import { assertKey, assertPositiveMs } from './errors.js';

/** Collaborators of {@link InMemoryDedupeStore}, injected separately from options. */
export interface InMemoryDedupeStoreDependencies {
  /**
   * The clock, in epoch milliseconds. Inject a fake one in tests to expire leases and done marks
   * without waiting.
   * @default Date.now
   */
  now?: () => number;
}

type Entry =
  | { state: 'processing'; token: string; expiresAt: number }
  | { state: 'done'; result?: string; expiresAt: number };

/** Expired entries are dropped lazily on access, plus a full sweep every this many writes. */
const SWEEP_EVERY_WRITES = 1024;

/**
 * The in-process {@link DedupeStore}: the default for tests and single-process services.
 *
 * Guarantees, same as every DedupeStore: `claim` is atomic (JavaScript runs each call to
 * completion, so two concurrent claims of one key give exactly one `claimed`), every entry
 * expires (a lease after `leaseMs`, a done mark after `ttlMs`), and `complete`/`release`/`extend`
 * only act while `token` still owns a live lease.
 *
 * It cannot survive a restart and is not shared between processes: run several consumer
 * instances against a shared store (for example `RedisDedupeStore`) instead.
 *
 * @example
 * const store = new InMemoryDedupeStore();
 * const claim = await store.claim('orders:evt-1', { leaseMs: 30_000 });
 * if (claim.status === 'claimed') {
 *   await handle();
 *   await store.complete('orders:evt-1', claim.token, { ttlMs: 86_400_000 });
 * }
 */
export class InMemoryDedupeStore implements DedupeStore {
  readonly #entries = new Map<string, Entry>();
  readonly #now: () => number;
  #writesSinceSweep = 0;

  constructor(dependencies: InMemoryDedupeStoreDependencies = {}) {
    this.#now = dependencies.now ?? Date.now;
  }

  async claim(key: string, options: ClaimOptions): Promise<ClaimResult> {
    assertKey('key', key);
    assertPositiveMs('leaseMs', options.leaseMs);
    return this.#claim(key, options.leaseMs, this.#now());
  }

  async claimMany(keys: readonly string[], options: ClaimOptions): Promise<ClaimResult[]> {
    keys.forEach((key, i) => assertKey(`keys[${i}]`, key));
    assertPositiveMs('leaseMs', options.leaseMs);
    const now = this.#now();
    // A key repeated in one batch is claimed by its first occurrence; the later ones see
    // `in-progress`, exactly as two separate consumers would.
    return keys.map((key) => this.#claim(key, options.leaseMs, now));
  }

  async complete(key: string, token: string, options: CompleteOptions): Promise<boolean> {
    assertKey('key', key);
    assertPositiveMs('ttlMs', options.ttlMs);
    const now = this.#now();
    if (!this.#owns(key, token, now)) return false;
    const done: Entry = { state: 'done', expiresAt: now + options.ttlMs };
    if (options.result !== undefined) done.result = options.result;
    this.#write(key, done, now);
    return true;
  }

  async completeMany(
    entries: readonly CompleteEntry[],
    options: CompleteManyOptions,
  ): Promise<boolean[]> {
    entries.forEach((entry, i) => assertKey(`entries[${i}].key`, entry.key));
    assertPositiveMs('ttlMs', options.ttlMs);
    const now = this.#now();
    return entries.map(({ key, token, result }) => {
      if (!this.#owns(key, token, now)) return false;
      const done: Entry = { state: 'done', expiresAt: now + options.ttlMs };
      if (result !== undefined) done.result = result;
      this.#write(key, done, now);
      return true;
    });
  }

  async release(key: string, token: string): Promise<boolean> {
    assertKey('key', key);
    if (!this.#owns(key, token, this.#now())) return false;
    this.#entries.delete(key);
    return true;
  }

  async extend(key: string, token: string, leaseMs: number): Promise<boolean> {
    assertKey('key', key);
    assertPositiveMs('leaseMs', leaseMs);
    const now = this.#now();
    if (!this.#owns(key, token, now)) return false;
    this.#write(key, { state: 'processing', token, expiresAt: now + leaseMs }, now);
    return true;
  }

  /** Number of live (unexpired) entries. For tests and metrics. */
  get size(): number {
    this.#sweep(this.#now());
    return this.#entries.size;
  }

  /**
   * The remaining time to live of `key` in ms, or `undefined` when it has none (absent or
   * expired). For tests that check every key expires.
   */
  ttlOf(key: string): number | undefined {
    const now = this.#now();
    const entry = this.#live(key, now);
    return entry === undefined ? undefined : entry.expiresAt - now;
  }

  /** Drops every entry. */
  clear(): void {
    this.#entries.clear();
  }

  #claim(key: string, leaseMs: number, now: number): ClaimResult {
    const entry = this.#live(key, now);
    if (entry?.state === 'done') {
      return entry.result === undefined
        ? { status: 'done' }
        : { status: 'done', result: entry.result };
    }
    if (entry?.state === 'processing') return { status: 'in-progress' };
    const token = randomUUID();
    this.#write(key, { state: 'processing', token, expiresAt: now + leaseMs }, now);
    return { status: 'claimed', token };
  }

  #owns(key: string, token: string, now: number): boolean {
    const entry = this.#live(key, now);
    return entry?.state === 'processing' && entry.token === token;
  }

  #live(key: string, now: number): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= now) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  #write(key: string, entry: Entry, now: number): void {
    this.#entries.set(key, entry);
    if (++this.#writesSinceSweep >= SWEEP_EVERY_WRITES) this.#sweep(now);
  }

  #sweep(now: number): void {
    this.#writesSinceSweep = 0;
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt <= now) this.#entries.delete(key);
    }
  }
}
