/** The result of trying to claim a message key. Expected outcomes are values, not exceptions. */
export type ClaimResult =
  /** This caller holds the lease until `leaseMs` passes; it must `complete` or `release` with `token`. */
  | { status: 'claimed'; token: string }
  /** Already processed; `result` is what `complete` stored, if anything. */
  | { status: 'done'; result?: string }
  /** Another consumer holds a live lease. Do not acknowledge; the message will come again. */
  | { status: 'in-progress' };

export interface ClaimOptions {
  /** How long the claim holds before another consumer may take it over, in ms. */
  leaseMs: number;
}

/** One entry of `completeMany`: a key this caller claimed, its token and an optional result. */
export interface CompleteEntry {
  key: string;
  token: string;
  /** A small result to return to later duplicates (for example a response id). */
  result?: string;
}

/** Options of `completeMany`: one retention window for the whole batch. */
export interface CompleteManyOptions {
  /** How long each `done` mark is kept, in ms (the dedupe retention window). */
  ttlMs: number;
}

export interface CompleteOptions {
  /** How long the `done` mark is kept, in ms (the dedupe retention window). */
  ttlMs: number;
  /** A small result to return to later duplicates (for example a response id). */
  result?: string;
}

/**
 * The DedupeStore port: claims with a lease, then a durable `done` mark.
 *
 * Implementations MUST make `claim` atomic (two concurrent claims of one key: exactly one gets
 * `claimed`), MUST give every key an expiry, and MUST only `complete`/`release` when `token`
 * still owns the key (a consumer whose lease expired cannot overwrite the new owner).
 * Store failures (connection lost) MUST throw a retriable `BacktrackError` so consumers pause
 * instead of processing without a dedupe guarantee.
 */
export interface DedupeStore {
  claim(key: string, options: ClaimOptions): Promise<ClaimResult>;
  /** Claims many keys in one round trip; results in input order. */
  claimMany(keys: readonly string[], options: ClaimOptions): Promise<ClaimResult[]>;
  /** Marks the key done. Returns false if `token` no longer owns the key. */
  complete(key: string, token: string, options: CompleteOptions): Promise<boolean>;
  /**
   * Marks many keys done in one round trip (the batch path's durable done marks); results in
   * input order, each false when its token no longer owns its key. Same fencing as `complete`.
   */
  completeMany(entries: readonly CompleteEntry[], options: CompleteManyOptions): Promise<boolean[]>;
  /** Drops the claim so a retry can run. Returns false if `token` no longer owns the key. */
  release(key: string, token: string): Promise<boolean>;
  /** Extends a live lease (long handlers). Returns false if `token` no longer owns the key. */
  extend(key: string, token: string, leaseMs: number): Promise<boolean>;
}
