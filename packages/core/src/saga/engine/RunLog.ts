import { handOver } from '../clone.js';
import { SagaConcurrencyError, SagaLeaseLostError, SagaStateError } from '../errors.js';
import { SagaStatus, type SagaLease, type SagaRecord } from '../SagaStore.js';
import type { RunContext } from './context.js';
import { progressOf, TERMINAL, type LazyAbortController } from './support.js';
import type { Transition } from './transitions.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the write in flight, whatever its arguments
type AnyTransition = Transition<any, any>;

/**
 * The saga log as one run writes it: the record this run last read or wrote, and `write`, which
 * persists one transition with the run's ownership lease renewed in the same store write; the
 * store's revision check fences every write with that lease.
 */
export class RunLog {
  #record: SagaRecord;
  /** The last write asked for (a later one waits for it when it is still in flight). */
  #writes: Promise<unknown> | undefined;
  #pendingWrites = 0;
  #leaseCache: { at: number; lease: SagaLease } | undefined;
  readonly #lease: { owner: string; token: string };
  /** `now()` of the last write (each renews the lease). */
  #lastWriteAt: number;

  constructor(
    private readonly ctx: RunContext,
    record: SagaRecord,
    private readonly abort: LazyAbortController,
    writtenAt = ctx.now(),
  ) {
    this.#record = record;
    this.#lease = { owner: record.lease!.owner, token: record.lease!.token };
    this.#lastWriteAt = writtenAt;
  }

  get record(): SagaRecord {
    return this.#record;
  }

  /** True when nothing was written for `idleMs`; then counts a renewal as under way. */
  idleFor(idleMs: number): boolean {
    if (this.ctx.now() - this.#lastWriteAt < idleMs) return false;
    this.#lastWriteAt = this.ctx.now(); // one renewal in flight at a time
    return true;
  }

  /** `now()` of the last successful write: when the transition it wrote happened. */
  get writtenAt(): number {
    return this.#lastWriteAt;
  }

  /**
   * Writes one transition, `change(record, at, a, b)` applied to the record this run last read
   * or wrote, with this run's lease renewed in the same store write (or dropped when the saga
   * ends or gets stuck). One clock read per transition: `at` (the ISO time of `now()`) is the
   * record's `updatedAt` and whatever time the transition records. Writes of one run are
   * serialised (parallel steps share the record). The revision check fences the write: it
   * succeeds only on the record this run last read or wrote, which holds this run's lease. On a
   * revision conflict the fresh record is accepted only if it still holds this run's lease and
   * the saga's progress is what this run last wrote (someone only wrote a request), and the
   * transition is applied to it again; otherwise this run stops by rethrowing.
   */
  write<A, B>(change: Transition<A, B>, a: A, b: B): Promise<void> {
    // Serialise only when another write of this run is in flight (a parallel group, a
    // heartbeat): chaining every write through one promise cost more than the write itself.
    const chained = this.#pendingWrites > 0;
    this.#pendingWrites += 1;
    const write = chained
      ? this.#writes!.then(
          () => this.#attempt(change as AnyTransition, a, b),
          () => this.#attempt(change as AnyTransition, a, b),
        )
      : this.#attempt(change as AnyTransition, a, b);
    this.#writes = write;
    return write;
  }

  // The write in flight (at most one: writes are serialised), kept in fields so that a write
  // allocates no closure: the store's promise is continued by two handlers made once per run.
  #change: AnyTransition | undefined;
  #a: unknown;
  #b: unknown;
  #base: SagaRecord | undefined;
  #at = 0;

  /** One attempt of the write in flight; settles it (and `#pendingWrites`) or tries again. */
  #attempt(change: AnyTransition, a: unknown, b: unknown): Promise<void> {
    let stored: Promise<SagaRecord>;
    try {
      const base = this.#record;
      const now = this.ctx.now();
      const at = this.ctx.isoTime(now);
      let next = change(base, at, a, b);
      next.updatedAt = at;
      if (TERMINAL.has(next.status) || next.status === SagaStatus.Stuck) {
        if (next.lease !== undefined) {
          const { lease: _dropped, ...rest } = next;
          next = rest;
        }
      } else {
        next.lease = this.#leaseAt(now);
      }
      // From a frozen record (the in-memory store's): every new part of `next` was made for this
      // write (a step's result is a frozen copy, see stepCompleted), so the store may keep it.
      if (Object.isFrozen(base)) handOver(next);
      this.#change = change;
      this.#a = a;
      this.#b = b;
      this.#base = base;
      this.#at = now;
      stored = this.ctx.store.update(next, base.revision);
    } catch (error) {
      this.#pendingWrites -= 1;
      return Promise.reject(error);
    }
    return stored.then(this.#written, this.#refused);
  }

  readonly #written = (stored: SagaRecord): void => {
    this.#record = stored;
    this.#lastWriteAt = this.#at;
    this.#pendingWrites -= 1;
  };

  readonly #refused = (error: unknown): Promise<void> => this.#afterConflict(error);

  /**
   * A refused write: on a revision conflict, reads the saga again and, when this run still holds
   * it and only a request was written meanwhile, applies the transition to the fresh record.
   */
  async #afterConflict(error: unknown): Promise<void> {
    const base = this.#base!;
    try {
      if (!(error instanceof SagaConcurrencyError)) throw error;
      const fresh = await this.ctx.store.get(base.sagaId);
      if (fresh?.lease?.token !== this.#lease.token) {
        throw new SagaLeaseLostError(base.sagaId, fresh?.lease?.owner);
      }
      if (progressOf(fresh) !== progressOf(base)) throw error;
      this.#record = fresh;
      if (fresh.cancelRequested && !this.abort.aborted) {
        // A request from another engine: abort the running step cooperatively.
        this.abort.abort(
          new SagaStateError(`saga ${fresh.sagaId} cancelled: ${fresh.request?.reason}`, {
            sagaId: fresh.sagaId,
          }),
        );
      }
    } catch (stop) {
      this.#pendingWrites -= 1;
      throw stop;
    }
    return this.#attempt(this.#change!, this.#a, this.#b);
  }

  /** This run's lease renewed from `now` (one object per millisecond: records are never changed in place). */
  #leaseAt(now: number): SagaLease {
    if (this.#leaseCache?.at !== now) {
      this.#leaseCache = {
        at: now,
        lease: {
          owner: this.#lease.owner,
          token: this.#lease.token,
          expiresAt: this.ctx.isoTime(now + this.ctx.leaseMs),
        },
      };
    }
    return this.#leaseCache.lease;
  }
}
