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

/**
 * One key's state, updated in place (a claim's entry becomes its done mark) so `complete` is one
 * map lookup and no allocation. One shape for both states keeps property access monomorphic.
 */
interface Entry {
  state: 'processing' | 'done';
  /** The claim's token while processing; `''` once done. */
  token: string;
  result: string | undefined;
  expiresAt: number;
}

/**
 * Expired entries are dropped lazily on access, plus a full sweep once the writes since the last
 * one reach this many or the map's size, whichever is larger: a sweep costs O(size), so spacing
 * them by at least `size` writes keeps every write amortised O(1) however many marks are live.
 */
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
  /**
   * Claim tokens are this random prefix plus a counter: unique across stores and processes (the
   * prefix) without drawing random bytes per claim.
   */
  readonly #tokenPrefix = `${randomUUID()}:`;
  #tokens = 0;

  constructor(dependencies: InMemoryDedupeStoreDependencies = {}) {
    this.#now = dependencies.now ?? Date.now;
  }

  async claim(key: string, options: ClaimOptions): Promise<ClaimResult> {
    assertKey('key', key);
    assertPositiveMs('leaseMs', options.leaseMs);
    return this.#claim(key, options.leaseMs, this.#now());
  }

  async claimMany(keys: readonly string[], options: ClaimOptions): Promise<ClaimResult[]> {
    // The field name is built only for a key that fails (not a string per key).
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      if (typeof key !== 'string' || key.length === 0) assertKey(`keys[${i}]`, key);
    }
    assertPositiveMs('leaseMs', options.leaseMs);
    const now = this.#now();
    // A key repeated in one batch is claimed by its first occurrence; the later ones see
    // `in-progress`, exactly as two separate consumers would.
    const { leaseMs } = options;
    const results = new Array<ClaimResult>(keys.length);
    for (let i = 0; i < keys.length; i++) results[i] = this.#claim(keys[i]!, leaseMs, now);
    return results;
  }

  async complete(key: string, token: string, options: CompleteOptions): Promise<boolean> {
    assertKey('key', key);
    assertPositiveMs('ttlMs', options.ttlMs);
    return this.#complete(key, token, options.result, options.ttlMs, this.#now());
  }

  async completeMany(
    entries: readonly CompleteEntry[],
    options: CompleteManyOptions,
  ): Promise<boolean[]> {
    for (let i = 0; i < entries.length; i++) {
      const key = entries[i]!.key;
      if (typeof key !== 'string' || key.length === 0) assertKey(`entries[${i}].key`, key);
    }
    assertPositiveMs('ttlMs', options.ttlMs);
    const now = this.#now();
    const { ttlMs } = options;
    const owned = new Array<boolean>(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const { key, token, result } = entries[i]!;
      owned[i] = this.#complete(key, token, result, ttlMs, now);
    }
    return owned;
  }

  async release(key: string, token: string): Promise<boolean> {
    assertKey('key', key);
    if (this.#owned(key, token, this.#now()) === undefined) return false;
    this.#entries.delete(key);
    return true;
  }

  async extend(key: string, token: string, leaseMs: number): Promise<boolean> {
    assertKey('key', key);
    assertPositiveMs('leaseMs', leaseMs);
    const now = this.#now();
    const entry = this.#owned(key, token, now);
    if (entry === undefined) return false;
    entry.expiresAt = now + leaseMs;
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
    const token = this.#tokenPrefix + (++this.#tokens).toString(36);
    const claimed: Entry = {
      state: 'processing',
      token,
      result: undefined,
      expiresAt: now + leaseMs,
    };
    this.#write(key, claimed, now);
    return { status: 'claimed', token };
  }

  #complete(
    key: string,
    token: string,
    result: string | undefined,
    ttlMs: number,
    now: number,
  ): boolean {
    const entry = this.#owned(key, token, now);
    if (entry === undefined) return false;
    // In place: the map already holds this object, so no second lookup and no new entry.
    entry.state = 'done';
    entry.token = '';
    entry.result = result;
    entry.expiresAt = now + ttlMs;
    return true;
  }

  /** The live processing entry of `key` when `token` owns it. */
  #owned(key: string, token: string, now: number): Entry | undefined {
    const entry = this.#live(key, now);
    return entry?.state === 'processing' && entry.token === token ? entry : undefined;
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
    if (
      ++this.#writesSinceSweep >= SWEEP_EVERY_WRITES &&
      this.#writesSinceSweep >= this.#entries.size
    ) {
      this.#sweep(now);
    }
  }

  #sweep(now: number): void {
    this.#writesSinceSweep = 0;
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt <= now) this.#entries.delete(key);
    }
  }
}
