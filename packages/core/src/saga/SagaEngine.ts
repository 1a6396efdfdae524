/**
 * The saga engine's public face: `start`, `resume`, `recover`, `cancel`, `compensate`, `retry`,
 * `resolve`, and the ownership lease it takes before driving a saga. The drive itself lives in
 * `engine/`:
 * - `engine/SagaRun.ts`: the run loop (forward stage by stage, or turn to compensation);
 * - `engine/steps.ts`: one step's `run` or `compensate` call and its log writes;
 * - `engine/compensation.ts`: compensating the completed steps in reverse order;
 * - `engine/RunLog.ts`: the log writes, lease-renewing and fenced by the revision check;
 * - `engine/options.ts`, `engine/context.ts`, `engine/support.ts`: options, shared types, helpers.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import { createDefaultLogger, type Logger } from '../logging/logger.js';
import { sleep as defaultSleep } from '../retry/backoff.js';
import { sagaTraceContext } from '../telemetry/saga.js';
import { frozenCopy, handOver } from './clone.js';
import type { AnySagaDefinition, SagaDefinition } from './definition.js';
import {
  SagaConcurrencyError,
  SagaDefinitionError,
  SagaDefinitionNotRegisteredError,
  SagaEngineConfigError,
  SagaInputError,
  SagaLeaseHeldError,
  SagaNotFoundError,
  SagaStateError,
} from './errors.js';
import { SagaEventName, type SagaEvent, type SagaEventListener } from './events.js';
import {
  SagaStatus,
  StepStatus,
  type OperatorAction,
  type OperatorNote,
  type SagaListQuery,
  type SagaPage,
  type SagaLease,
  type SagaRecord,
  type SagaStore,
  type StepRecord,
} from './SagaStore.js';
import type { RunContext } from './engine/context.js';
import {
  DEFAULT_SAGA_ENGINE_OPTIONS,
  resolveSagaEngineOptions,
  splitSagaEngineConfig,
  type RecoverySummary,
  type RequestOptions,
  type SagaEngineConfig,
  type SagaEngineDependencies,
  type SagaEngineOptions,
  type SagaResult,
  type StartOptions,
} from './engine/options.js';
import { SagaRun } from './engine/SagaRun.js';
import {
  definitionKey,
  isoTimeCache,
  LazyAbortController,
  pivotPassed,
  TERMINAL,
  toStoredError,
} from './engine/support.js';

export { DEFAULT_SAGA_ENGINE_OPTIONS, toStoredError };
export type {
  RecoverySummary,
  RequestOptions,
  SagaEngineConfig,
  SagaEngineDependencies,
  SagaEngineOptions,
  SagaResult,
  StartOptions,
};

/**
 * Runs sagas to `completed`, `compensated`, `failed`, or `stuck`, writing its log to a
 * {@link SagaStore} before and after every step and compensation so that `recover()` can resume
 * any saga a crash interrupted: forward if no step failed, backward if one did.
 *
 * Guarantees (with a store that honours the SagaStore contract):
 * - a completed step is compensated at most once per successful log write, compensations run in
 *   the reverse order of completion (a parallel group's steps together);
 * - two engines never both advance one saga: every write is checked against the revision read;
 * - `run` and `compensate` may be called again after a crash (the log could not say whether the
 *   effect happened), always with the same `idempotencyKey`: make effects idempotent on it.
 */
export class SagaEngine {
  readonly #store: SagaStore;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly #random: () => number;
  readonly #options: Readonly<Required<SagaEngineOptions>>;
  readonly #definitions = new Map<string, SagaDefinition<unknown, Record<string, unknown>>>();
  /** The definitions `register` accepted (so `start` checks a known one without a lookup). */
  readonly #registered = new WeakSet<object>();
  readonly #active = new Map<
    string,
    { promise: Promise<SagaResult>; abort: LazyAbortController; run: SagaRun }
  >();
  readonly #listeners = new Map<string, Set<SagaEventListener>>();
  /** This engine's name in the leases it holds. */
  readonly ownerId: string;
  #heartbeat: NodeJS.Timeout | undefined;
  /** Lease tokens: a random part per engine and a counter, unique per takeover. */
  readonly #tokenBase = `${randomUUID()}-`;
  #leases = 0;
  /** The store's last created record was frozen: records given to `create` are handed over. */
  #storeFreezes = false;

  /** Prefer {@link createSagaEngine}; this constructor validates the same way. */
  constructor(options: SagaEngineOptions, dependencies: SagaEngineDependencies) {
    this.#options = resolveSagaEngineOptions(options);
    if (!dependencies?.store) {
      throw new SagaEngineConfigError('store', 'is a required dependency (a SagaStore)');
    }
    this.#store = dependencies.store;
    this.#logger = (dependencies.logger ?? createDefaultLogger()).child({
      component: 'saga-engine',
    });
    this.#now = dependencies.now ?? Date.now;
    this.#sleep = dependencies.sleep ?? defaultSleep;
    this.#random = dependencies.random ?? Math.random;
    this.ownerId =
      dependencies.ownerId ?? `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
  }

  /**
   * Makes definitions known to `recover()`. Register every version that may still have sagas in
   * flight: a saga finishes with the definition version it started with.
   */
  register(...definitions: AnySagaDefinition[]): this {
    for (const def of definitions as unknown as SagaDefinition<
      unknown,
      Record<string, unknown>
    >[]) {
      if (def?.kind !== 'backtrack.saga') {
        throw new SagaDefinitionError(
          'register() takes definitions built with defineSaga(...).build()',
        );
      }
      const key = definitionKey(def.name, def.version);
      const existing = this.#definitions.get(key);
      if (existing && existing !== def) {
        throw new SagaDefinitionError(
          `saga ${def.name} v${def.version} is already registered with another definition`,
          {
            details: { saga: def.name, version: def.version },
          },
        );
      }
      this.#definitions.set(key, def);
      this.#registered.add(def);
    }
    return this;
  }

  /**
   * Starts a saga and drives it until it ends or gets stuck. Idempotent on `sagaId`: a second
   * call with the same id does not run the saga again; it returns where the first one stands
   * (waiting for it when it runs in this engine).
   * @throws SagaInputError when `input` fails the saga's schema (nothing is stored then).
   */
  async start<TInput, TResults>(
    definition: SagaDefinition<TInput, TResults>,
    input: TInput,
    options: StartOptions = {},
  ): Promise<SagaResult> {
    const def = definition as unknown as SagaDefinition<unknown, Record<string, unknown>>;
    if (!this.#registered.has(def)) this.register(def);
    const parsed = def.input.safeParse(input);
    if (!parsed.success) {
      throw new SagaInputError(`saga ${def.name}: input does not match its schema`, {
        details: { saga: def.name, issues: parsed.error.issues },
        cause: parsed.error,
      });
    }
    const sagaId = options.sagaId ?? randomUUID();
    const active = this.#active.get(sagaId);
    if (active) return { ...(await active.promise), started: false };

    const now = this.#now();
    const at = this.#context().isoTime(now);
    const deadlineMs = options.deadlineMs ?? def.deadlineMs;
    const steps: Record<string, StepRecord> = {};
    for (const s of def.steps) {
      steps[s.name] = { status: StepStatus.Pending, attempts: 0, compensationAttempts: 0 };
    }
    // The creation also writes the first step's start (attempt 1) when its stage has one step and
    // the saga no deadline: nothing can ask the run to stop before it (no one knows the saga yet,
    // and a deadline could pass while the creation is written); the drive calls it without a
    // write of its own. A crash after the creation leaves it `running`, as a crash after its
    // start write did: recover() calls it (again, for all it knows) with the same key.
    const firstStage = def.stages[0];
    const startsFirst = deadlineMs === undefined && firstStage?.length === 1;
    if (startsFirst) {
      steps[firstStage[0]!.name] = {
        status: StepStatus.Running,
        attempts: 1,
        compensationAttempts: 0,
        startedAt: at,
      };
    }
    const record: SagaRecord = {
      sagaId,
      sagaName: def.name,
      definitionVersion: def.version,
      status: SagaStatus.Running,
      input: parsed.data,
      steps,
      completionOrder: [],
      compensationOrder: [],
      cancelRequested: false,
      lease: this.#newLease(now),
      revision: 0,
      createdAt: at,
      updatedAt: at,
    };
    // Set after the literal: spreading optional parts into it cost more than the rest of it.
    if (deadlineMs !== undefined) record.deadline = new Date(now + deadlineMs).toISOString();
    const { traceContext } = sagaTraceContext(); // issue 18: recovery continues this trace
    if (traceContext !== undefined) record.traceContext = traceContext;
    if (this.#storeFreezes) {
      // Everything in `record` but the input was made here and is not used again: the store may
      // keep it as it is; the input (the schema's output may share the caller's objects) is copied.
      record.input = frozenCopy(record.input);
      handOver(record);
    }
    const created = await this.#store.create(record);
    // A store that hands out frozen records (the in-memory one) takes the next ones over.
    this.#storeFreezes = Object.isFrozen(created.record);
    if (!created.created) {
      this.#logger.info({ sagaId, saga: def.name }, 'saga already started; not running it again');
      return { sagaId, status: created.record.status, started: false, record: created.record };
    }
    this.#emit(SagaEventName.SagaStarted, { record: created.record });
    return this.#track(def, created.record, true, startsFirst, now);
  }

  /**
   * Drives one saga from wherever its log says it is (used by `recover`, `cancel`, `retry`),
   * after taking its ownership lease.
   * @throws SagaLeaseHeldError when another engine's lease on it has not expired.
   */
  async resume(sagaId: string): Promise<SagaResult> {
    for (;;) {
      const active = this.#active.get(sagaId);
      if (active) return active.promise;
      const record = await this.#store.get(sagaId);
      if (!record) throw new SagaNotFoundError(sagaId);
      if (TERMINAL.has(record.status) || record.status === SagaStatus.Stuck) {
        return { sagaId, status: record.status, started: false, record };
      }
      const def = this.#definitionFor(record);
      this.#assertNotOwnedElsewhere(record);
      let owned: SagaRecord;
      try {
        owned = await this.#store.update(
          { ...record, lease: this.#newLease(), updatedAt: this.#iso() },
          record.revision,
        );
      } catch (error) {
        if (error instanceof SagaConcurrencyError) continue; // read again and decide again
        throw error;
      }
      if (record.lease) {
        this.#logger.warn(
          { sagaId, saga: record.sagaName, previousOwner: record.lease.owner },
          'took over a saga whose lease expired',
        );
      }
      return this.#track(def, owned, false);
    }
  }

  /**
   * Resumes every saga a crash left in flight: `running` ones go forward (a step whose outcome
   * the log does not know is called again with the same idempotency key), `compensating` ones
   * go on compensating. Safe to run in several processes at once: a saga another live engine
   * owns (its lease has not expired) is left to it and listed under `owned`.
   */
  async recover(): Promise<RecoverySummary> {
    const summary: RecoverySummary = { found: 0, results: [], errors: [], owned: [] };
    const ids: string[] = [];
    let cursor: string | undefined;
    do {
      const page: SagaPage = await this.#store.list({
        status: [SagaStatus.Running, SagaStatus.Compensating],
        limit: this.#options.recoveryPageSize,
        ...(cursor ? { cursor } : {}),
      });
      ids.push(...page.items.map((r) => r.sagaId));
      cursor = page.nextCursor;
    } while (cursor);
    summary.found = ids.length;
    this.#logger.info({ found: ids.length }, 'recovering sagas in flight');
    let next = 0;
    const worker = async () => {
      while (next < ids.length) {
        const sagaId = ids[next++]!;
        try {
          summary.results.push(await this.resume(sagaId));
        } catch (error) {
          if (error instanceof SagaLeaseHeldError) {
            const { owner, expiresAt } = error.details as { owner: string; expiresAt: string };
            summary.owned.push({ sagaId, owner, expiresAt });
            continue;
          }
          summary.errors.push({ sagaId, error: toStoredError(error) });
          this.#logger.warn({ sagaId, err: error }, 'could not recover saga now');
        }
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(this.#options.recoveryConcurrency, ids.length) }, worker),
    );
    return summary;
  }

  /**
   * Stops forward progress and compensates every completed step. The step running now gets its
   * `signal` aborted and is waited for (cancellation is cooperative: if it completes anyway, it
   * is compensated too). Compensations are never skipped. When another engine owns the saga,
   * the request is written into the saga's record and that engine acts on it at its next
   * transition; this call waits for the outcome (see {@link RequestOptions}).
   * @throws SagaStateError when the saga already ended, is stuck, or passed its pivot.
   */
  cancel(
    sagaId: string,
    reason = 'cancelled',
    options: RequestOptions & Pick<OperatorNote, 'by'> = {},
  ): Promise<SagaResult> {
    return this.#requestStop(sagaId, 'cancel', reason, options);
  }

  /** The saga's operator log with one more entry (who defaults to this engine). */
  #logged(
    record: SagaRecord,
    entry: Omit<OperatorAction, 'at' | 'by'> & { by?: string | undefined },
  ): OperatorAction[] {
    const { by, ...rest } = entry;
    return [
      ...(record.operatorLog ?? []),
      { ...rest, at: this.#iso(), by: by && by.trim() !== '' ? by : this.ownerId },
    ];
  }

  async #requestStop(
    sagaId: string,
    kind: 'cancel' | 'compensate',
    reason: string,
    options: RequestOptions & Pick<OperatorNote, 'by'>,
  ): Promise<SagaResult> {
    let record = await this.#store.get(sagaId);
    if (!record) throw new SagaNotFoundError(sagaId);
    const local = this.#active.get(sagaId);
    for (;;) {
      if (record.status === SagaStatus.Compensating) break;
      if (record.status !== SagaStatus.Running) {
        throw new SagaStateError(
          `saga ${sagaId} is ${record.status}; only a running saga can be cancelled`,
          {
            sagaId,
            status: record.status,
          },
        );
      }
      if (record.cancelRequested) break;
      const def = this.#definitionFor(record);
      if (pivotPassed(def, record)) {
        throw new SagaStateError(`saga ${sagaId} passed its pivot step; it can only go forward`, {
          sagaId,
        });
      }
      // Stop a local driver first, so it does not start another step while the flag is written.
      local?.abort.abort(new SagaStateError(`saga ${sagaId} cancelled: ${reason}`, { sagaId }));
      try {
        record = await this.#store.update(
          {
            ...record,
            cancelRequested: true,
            request: { kind, reason, requestedAt: this.#iso(), by: this.ownerId },
            ...(kind === 'cancel'
              ? { operatorLog: this.#logged(record, { action: 'cancel', reason, by: options.by }) }
              : {}),
            updatedAt: this.#iso(),
          },
          record.revision,
        );
        this.#emit(SagaEventName.SagaCancelRequested, {
          record,
          error: { name: 'Cancelled', message: reason },
        });
        break;
      } catch (error) {
        if (!(error instanceof SagaConcurrencyError)) throw error;
        record = (await this.#store.get(sagaId))!;
      }
    }
    const active = this.#active.get(sagaId);
    if (active) {
      active.abort.abort(new SagaStateError(`saga ${sagaId} cancelled: ${reason}`, { sagaId }));
      return active.promise;
    }
    return this.#driveOrAwait(sagaId, options);
  }

  /**
   * Drives the saga here when no live engine owns it; otherwise waits for its owner to end it
   * (or for its lease to expire, then takes it over), up to the request timeout.
   */
  async #driveOrAwait(sagaId: string, options: RequestOptions): Promise<SagaResult> {
    const wait = options.wait ?? true;
    const until = Date.now() + (options.timeoutMs ?? this.#options.requestTimeoutMs);
    for (;;) {
      try {
        return await this.resume(sagaId);
      } catch (error) {
        if (!(error instanceof SagaLeaseHeldError)) throw error;
      }
      if (!wait || Date.now() >= until) {
        const record = await this.#store.get(sagaId);
        if (!record) throw new SagaNotFoundError(sagaId);
        return { sagaId, status: record.status, started: false, record, requested: true };
      }
      await delay(Math.max(1, Math.min(this.#options.requestPollMs, until - Date.now())));
    }
  }

  /**
   * Compensates a saga whatever its progress, for example when a rollback undoes what a bad
   * version did: a running saga is cancelled (asking its owner when another engine drives it);
   * a `completed` or `failed` saga that has not passed its pivot compensates every completed
   * step (in reverse order, exactly once); a compensated saga is returned as it is.
   * @throws SagaStateError when the saga passed its pivot or is stuck (use `retry`/`resolve`).
   */
  async compensate(
    sagaId: string,
    reason = 'compensation requested',
    options: RequestOptions = {},
  ): Promise<SagaResult> {
    for (;;) {
      const record = await this.#store.get(sagaId);
      if (!record) throw new SagaNotFoundError(sagaId);
      switch (record.status) {
        case SagaStatus.Running:
          return this.#requestStop(sagaId, 'compensate', reason, options);
        case SagaStatus.Compensating:
          return this.#driveOrAwait(sagaId, options);
        case SagaStatus.Compensated:
          return { sagaId, status: record.status, started: false, record };
        case SagaStatus.Stuck:
          throw new SagaStateError(`saga ${sagaId} is stuck; use retry or resolve`, {
            sagaId,
            status: record.status,
          });
        default:
          break;
      }
      const def = this.#definitionFor(record);
      if (pivotPassed(def, record)) {
        throw new SagaStateError(`saga ${sagaId} passed its pivot step; it cannot be compensated`, {
          sagaId,
          status: record.status,
        });
      }
      try {
        const updated = await this.#store.update(
          {
            ...record,
            status: SagaStatus.Compensating,
            failure: {
              reason: 'compensation-requested',
              error: { name: 'CompensationRequested', message: reason },
            },
            lease: this.#newLease(),
            updatedAt: this.#iso(),
          },
          record.revision,
        );
        this.#logger.warn(
          { sagaId, saga: record.sagaName, reason },
          'compensating a saga on request',
        );
        return this.#track(def, updated, false);
      } catch (error) {
        if (!(error instanceof SagaConcurrencyError)) throw error;
      }
    }
  }

  /**
   * Retries a `stuck` saga: the compensations that failed run again (or, when it got stuck going
   * forward after its pivot, the failed step runs again).
   */
  async retry(sagaId: string, note: OperatorNote = {}): Promise<SagaResult> {
    const record = await this.#store.get(sagaId);
    if (!record) throw new SagaNotFoundError(sagaId);
    if (record.status !== SagaStatus.Stuck || !record.stuck) {
      throw new SagaStateError(
        `saga ${sagaId} is ${record.status}; only a stuck saga can be retried`,
        {
          sagaId,
          status: record.status,
        },
      );
    }
    const next: SagaRecord = {
      ...record,
      status: record.stuck.phase === 'forward' ? SagaStatus.Running : SagaStatus.Compensating,
      lease: this.#newLease(),
      operatorLog: this.#logged(record, {
        action: 'retry',
        by: note.by,
        ...(note.reason ? { reason: note.reason } : {}),
      }),
      updatedAt: this.#iso(),
    };
    if (record.stuck.phase === 'forward') {
      next.steps = structuredClone(record.steps);
      for (const step of record.stuck.steps) {
        const s = next.steps[step]!;
        s.status = StepStatus.Pending;
        delete s.policy;
      }
    }
    delete next.stuck;
    const updated = await this.#store.update(next, record.revision);
    this.#logger.info({ sagaId, saga: record.sagaName }, 'retrying stuck saga');
    return this.#track(this.#definitionFor(updated), updated, false);
  }

  /**
   * Resolves a stuck step by hand: a compensation an operator did (or decided is not needed) is
   * marked `resolved` with the reason, and compensation goes on with the earlier steps; a forward
   * step after the pivot is marked completed by hand and the saga goes on forward.
   */
  async resolve(
    sagaId: string,
    step: string,
    reason: string,
    note: Pick<OperatorNote, 'by'> = {},
  ): Promise<SagaResult> {
    if (typeof reason !== 'string' || reason.trim() === '') {
      throw new SagaStateError('resolve() needs a reason, kept in the saga log', { sagaId, step });
    }
    const record = await this.#store.get(sagaId);
    if (!record) throw new SagaNotFoundError(sagaId);
    if (record.status !== SagaStatus.Stuck || !record.stuck || !record.stuck.steps.includes(step)) {
      throw new SagaStateError(`saga ${sagaId}: step ${step} is not stuck`, {
        sagaId,
        step,
        status: record.status,
      });
    }
    const next = structuredClone(record);
    const stepRecord = next.steps[step]!;
    const phase = record.stuck.phase;
    stepRecord.resolution = reason;
    next.operatorLog = this.#logged(record, { action: 'resolve', step, reason, by: note.by });
    if (phase === 'compensation') {
      stepRecord.status = StepStatus.Resolved;
      next.compensationOrder.push(step);
    } else {
      stepRecord.status = StepStatus.Completed;
      next.completionOrder.push(step);
    }
    const remaining = record.stuck.steps.filter((s) => s !== step);
    if (remaining.length > 0) {
      next.stuck = { ...record.stuck, steps: remaining };
    } else {
      delete next.stuck;
      next.status = phase === 'forward' ? SagaStatus.Running : SagaStatus.Compensating;
      next.lease = this.#newLease();
    }
    next.updatedAt = this.#iso();
    const updated = await this.#store.update(next, record.revision);
    this.#logger.warn({ sagaId, step, reason }, 'stuck step resolved by hand');
    if (updated.status === SagaStatus.Stuck)
      return { sagaId, status: updated.status, started: false, record: updated };
    return this.#track(this.#definitionFor(updated), updated, false);
  }

  get(sagaId: string): Promise<SagaRecord | undefined> {
    return this.#store.get(sagaId);
  }

  list(query?: SagaListQuery): Promise<SagaPage> {
    return this.#store.list(query);
  }

  /** Subscribes to an engine event; returns a function that unsubscribes. */
  on(event: SagaEventName, listener: SagaEventListener): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Resolves when every saga this engine is driving now has stopped. */
  async idle(): Promise<void> {
    while (this.#active.size > 0) {
      await Promise.allSettled([...this.#active.values()].map((a) => a.promise));
    }
  }

  /** Drives a saga whose lease `record` holds for this engine. */
  #track(
    def: SagaDefinition<unknown, Record<string, unknown>>,
    record: SagaRecord,
    started: boolean,
    firstStarted = false,
    createdAt?: number,
  ): Promise<SagaResult> {
    const abort = new LazyAbortController();
    const run = new SagaRun(this.#context(), def, record, abort, firstStarted, createdAt);
    const promise = this.#drive(run, started);
    this.#active.set(record.sagaId, { promise, abort, run });
    this.#heartbeat ??= setInterval(() => this.#renewLeases(), this.#options.heartbeatMs).unref();
    return promise;
  }

  async #drive(run: SagaRun, started: boolean): Promise<SagaResult> {
    try {
      const r = await run.drive();
      return { sagaId: r.sagaId, status: r.status, started, record: r };
    } finally {
      this.#active.delete(run.record.sagaId);
      if (this.#active.size === 0 && this.#heartbeat) {
        clearInterval(this.#heartbeat);
        this.#heartbeat = undefined;
      }
    }
  }

  /** Heartbeat: renews the lease of every saga whose step has run for a while without a write. */
  #renewLeases(): void {
    for (const { run } of this.#active.values()) run.renewIfIdle(this.#options.heartbeatMs);
  }

  #newLease(now = this.#now()): SagaLease {
    return {
      owner: this.ownerId,
      token: `${this.#tokenBase}${(++this.#leases).toString(36)}`,
      expiresAt: this.#context().isoTime(now + this.#options.leaseMs),
    };
  }

  /** Throws when another engine's lease on the saga has not expired. */
  #assertNotOwnedElsewhere(record: SagaRecord): void {
    const lease = record.lease;
    if (!lease || Date.parse(lease.expiresAt) <= this.#now()) return;
    // A lease of this engine with no local run: that run died (a store failure); take it again.
    if (lease.owner === this.ownerId) return;
    throw new SagaLeaseHeldError(record.sagaId, lease);
  }

  #context(): RunContext {
    return (this.#runContext ??= {
      store: this.#store,
      logger: this.#logger,
      now: this.#now,
      sleep: this.#sleep,
      random: this.#random,
      leaseMs: this.#options.leaseMs,
      interceptors: this.#options.interceptors ?? [],
      isoTime: isoTimeCache(),
      listens: (name) => (this.#listeners.get(name)?.size ?? 0) > 0,
      emit: (name, event) => this.#emit(name, event),
    });
  }
  #runContext: RunContext | undefined;

  #definitionFor(record: SagaRecord): SagaDefinition<unknown, Record<string, unknown>> {
    const def = this.#definitions.get(definitionKey(record.sagaName, record.definitionVersion));
    if (!def) throw new SagaDefinitionNotRegisteredError(record.sagaName, record.definitionVersion);
    return def;
  }

  #emit(
    name: SagaEventName,
    partial: Omit<SagaEvent, 'sagaId' | 'sagaName' | 'definitionVersion'>,
  ): void {
    const set = this.#listeners.get(name);
    if (!set || set.size === 0) return;
    const event: SagaEvent = {
      sagaId: partial.record.sagaId,
      sagaName: partial.record.sagaName,
      definitionVersion: partial.record.definitionVersion,
      ...partial,
    };
    for (const listener of set) {
      try {
        listener(event);
      } catch (error) {
        this.#logger.error(
          { err: error, event: name, sagaId: event.sagaId },
          'saga event listener threw',
        );
      }
    }
  }

  #iso(): string {
    return new Date(this.#now()).toISOString();
  }
}

/**
 * Creates a saga engine: options and collaborators in one object (every option has a default,
 * only `store` is required), or the options and the collaborators as two objects. Validated
 * once, by the engine's constructor; wrong options throw {@link SagaEngineConfigError}.
 *
 * @example
 * const sagas = createSagaEngine({ store: new InMemorySagaStore(), logger });
 * const result = await sagas.start(placeOrder, { orderId: 'o-1' }, { sagaId: 'o-1' });
 * await sagas.recover(); // after a restart: resume what a crash left in flight
 */
export function createSagaEngine(config: SagaEngineConfig): SagaEngine;
export function createSagaEngine(
  options: SagaEngineOptions,
  dependencies: SagaEngineDependencies,
): SagaEngine;
export function createSagaEngine(
  options: SagaEngineOptions | SagaEngineConfig,
  dependencies?: SagaEngineDependencies,
): SagaEngine {
  if (dependencies !== undefined) return new SagaEngine(options, dependencies);
  const [engineOptions, engineDependencies] = splitSagaEngineConfig(options as SagaEngineConfig);
  return new SagaEngine(engineOptions, engineDependencies);
}
