import { BacktrackError } from '../errors/BacktrackError.js';
import type { SagaListQuery, SagaPage, SagaRecord, SagaStore } from '../saga/SagaStore.js';
import { CORE_ERROR_CODES } from '../errors/codes.js';

/** Thrown by {@link CrashingSagaStore} where a real process would have died. */
export class SimulatedCrash extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.SimulatedCrash';
  constructor(writeIndex: number) {
    super(CORE_ERROR_CODES.SIMULATED_CRASH, `simulated crash at saga log write #${writeIndex}`, {
      details: { writeIndex },
    });
  }
}

/**
 * Wraps a SagaStore and "crashes" at the n-th `update` (1-based), before it reaches the store:
 * the write is lost, exactly as when a process dies between an effect and its log write. After
 * the crash every call fails, like a dead process, so nothing more is written.
 */
export class CrashingSagaStore implements SagaStore {
  #writes = 0;
  #dead = false;

  constructor(
    private readonly inner: SagaStore,
    private readonly crashAtWrite: number = Number.POSITIVE_INFINITY,
  ) {}

  /** Updates seen so far (including the one that crashed). */
  get writes(): number {
    return this.#writes;
  }

  get crashed(): boolean {
    return this.#dead;
  }

  create(record: SagaRecord): ReturnType<SagaStore['create']> {
    this.#check();
    return this.inner.create(record);
  }

  get(sagaId: string): Promise<SagaRecord | undefined> {
    this.#check();
    return this.inner.get(sagaId);
  }

  async update(record: SagaRecord, expectedRevision: number): Promise<SagaRecord> {
    this.#check();
    this.#writes += 1;
    if (this.#writes === this.crashAtWrite) {
      this.#dead = true;
      throw new SimulatedCrash(this.#writes);
    }
    return this.inner.update(record, expectedRevision);
  }

  list(query?: SagaListQuery): Promise<SagaPage> {
    this.#check();
    return this.inner.list(query);
  }

  #check(): void {
    if (this.#dead) throw new SimulatedCrash(this.#writes);
  }
}
