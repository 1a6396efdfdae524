import { SagaConcurrencyError, SagaLeaseLostError, SagaStateError } from '../errors.js';
import { SagaStatus, type SagaLease, type SagaRecord } from '../SagaStore.js';
import type { RunContext } from './context.js';
import { draftOf, progressOf, TERMINAL } from './support.js';

/**
 * The saga log as one run writes it: the record this run last read or wrote, and `write`, which
 * persists one transition with the run's ownership lease renewed in the same store write; the
 * store's revision check fences every write with that lease.
 */
export class RunLog {
  #record: SagaRecord;
  #writes: Promise<unknown> = Promise.resolve();
  #pendingWrites = 0;
  #leaseCache: { at: number; lease: SagaLease } | undefined;
  readonly #lease: { owner: string; token: string };
  /** `now()` of the last write (each renews the lease). */
  #lastWriteAt: number;

  constructor(
    private readonly ctx: RunContext,
    record: SagaRecord,
    private readonly abort: AbortController,
  ) {
    this.#record = record;
    this.#lease = { owner: record.lease!.owner, token: record.lease!.token };
    this.#lastWriteAt = ctx.now();
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

  /**
   * Writes one transition, renewing this run's lease in the same store write (or dropping it when
   * the saga ends or gets stuck). Writes of one run are serialised (parallel steps share the
   * record). The revision check fences the write: it succeeds only on the record this run last
   * read or wrote, which holds this run's lease. On a revision conflict the fresh record is
   * accepted only if it still holds this run's lease and the saga's progress is what this run
   * last wrote (someone only wrote a request); otherwise this run stops by rethrowing.
   */
  write(mutate: (record: SagaRecord) => void): Promise<void> {
    // Serialise only when another write of this run is in flight (a parallel group, a
    // heartbeat): chaining every write through one promise cost more than the write itself.
    if (this.#pendingWrites === 0) return this.#track(this.#writeNow(mutate));
    const next = this.#writes.then(() => this.#writeNow(mutate));
    return this.#track(next);
  }

  #track(write: Promise<void>): Promise<void> {
    this.#pendingWrites += 1;
    // A failed write must not poison later writes of other branches; each caller sees its own.
    const settled = write.then(
      () => {
        this.#pendingWrites -= 1;
      },
      () => {
        this.#pendingWrites -= 1;
      },
    );
    this.#writes = settled;
    return write;
  }

  async #writeNow(mutate: (record: SagaRecord) => void): Promise<void> {
    for (;;) {
      const draft = draftOf(this.#record);
      mutate(draft);
      const now = this.ctx.now();
      draft.updatedAt = this.ctx.isoTime(now);
      if (TERMINAL.has(draft.status) || draft.status === SagaStatus.Stuck) {
        delete draft.lease;
      } else {
        draft.lease = this.#leaseAt(now);
      }
      try {
        this.#record = await this.ctx.store.update(draft, this.#record.revision);
        this.#lastWriteAt = now;
        return;
      } catch (error) {
        if (!(error instanceof SagaConcurrencyError)) throw error;
        const fresh = await this.ctx.store.get(this.#record.sagaId);
        if (fresh?.lease?.token !== this.#lease.token) {
          throw new SagaLeaseLostError(this.#record.sagaId, fresh?.lease?.owner);
        }
        if (progressOf(fresh) !== progressOf(this.#record)) throw error;
        this.#record = fresh;
        if (fresh.cancelRequested && !this.abort.signal.aborted) {
          // A request from another engine: abort the running step cooperatively.
          this.abort.abort(
            new SagaStateError(`saga ${fresh.sagaId} cancelled: ${fresh.request?.reason}`, {
              sagaId: fresh.sagaId,
            }),
          );
        }
      }
    }
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
