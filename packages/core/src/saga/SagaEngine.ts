import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import { BacktrackError } from '../errors/BacktrackError.js';
import { createDefaultLogger, type Logger } from '../logging/logger.js';
import { backoffDelayMs, sleep as defaultSleep } from '../retry/backoff.js';
import type {
  AnySagaDefinition,
  CompensationContext,
  SagaDefinition,
  StepContext,
  StepDefinition,
  StepErrorPolicy,
} from './definition.js';
import {
  SagaConcurrencyError,
  SagaDefinitionError,
  SagaDefinitionNotRegisteredError,
  SagaInputError,
  SagaLeaseHeldError,
  SagaLeaseLostError,
  SagaNotFoundError,
  SagaStateError,
  StepTimeoutError,
} from './errors.js';
import { SagaEventName, type SagaEvent, type SagaEventListener } from './events.js';
import {
  SagaStatus,
  StepStatus,
  type SagaListQuery,
  type SagaPage,
  type SagaLease,
  type SagaRecord,
  type SagaStore,
  type StepRecord,
  type StoredError,
} from './SagaStore.js';

/** Engine options, validated once by {@link createSagaEngine}. */
export interface SagaEngineOptions {
  /** How many sagas `recover()` drives at once. @default 8 */
  recoveryConcurrency?: number;
  /** Page size `recover()` reads the store with. @default 100 */
  recoveryPageSize?: number;
  /**
   * How long a saga's ownership lease lasts without renewal, in ms. Every transition renews it
   * (in the same store write) and a heartbeat renews it while a step runs longer; another engine
   * takes a saga over only after it expired, so this is also how long a saga whose engine died
   * waits before `recover()` elsewhere resumes it. Keep it well above clock skew between hosts.
   * @default 30_000
   */
  leaseMs?: number;
  /** How often the heartbeat renews the leases of sagas whose step runs long, in ms. @default leaseMs / 3 */
  heartbeatMs?: number;
  /**
   * How long `cancel()`/`compensate()` wait for the engine that owns a saga to act on the request
   * before returning with `requested: true`. @default 30_000
   */
  requestTimeoutMs?: number;
  /** How often a waiting `cancel()`/`compensate()` reads the saga. @default 100 */
  requestPollMs?: number;
}

export const DEFAULT_SAGA_ENGINE_OPTIONS: Readonly<Required<SagaEngineOptions>> = Object.freeze({
  recoveryConcurrency: 8,
  recoveryPageSize: 100,
  leaseMs: 30_000,
  heartbeatMs: 10_000,
  requestTimeoutMs: 30_000,
  requestPollMs: 100,
});

/** Collaborators the engine uses; everything but `store` has a default. */
export interface SagaEngineDependencies {
  store: SagaStore;
  logger?: Logger;
  /** Milliseconds since the epoch. @default Date.now */
  now?: () => number;
  /** Waits between retries. Tests pass a no-op or fake timers. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Random source in [0, 1) for backoff jitter. @default Math.random */
  random?: () => number;
  /** This engine's name in saga leases. @default `<host>/<pid>/<random>` */
  ownerId?: string;
}

/** Options of `cancel()` and `compensate()` for a saga another engine owns. */
export interface RequestOptions {
  /**
   * Wait for the owning engine's outcome. `false`: return as soon as the request is written,
   * with `requested: true`. @default true
   */
  wait?: boolean;
  /** Longest wait for the owner, in ms; then returns with `requested: true`. @default requestTimeoutMs */
  timeoutMs?: number;
}

export interface StartOptions {
  /** The saga's id; starting twice with one id runs it once. @default a random UUID */
  sagaId?: string;
  /** Overrides the definition's `deadlineMs` for this saga. */
  deadlineMs?: number;
}

/** Where a saga stands after a call of the engine. */
export interface SagaResult {
  sagaId: string;
  status: SagaStatus;
  /** False when `start` found the saga already started (it was not run again). */
  started: boolean;
  record: SagaRecord;
  /**
   * Set by `cancel`/`compensate` when another engine owns the saga and the call returned before
   * that engine acted (`wait: false`, or the wait timed out): the request is in the saga's record
   * and its owner acts on it at its next transition. `status` is where the saga stood then.
   */
  requested?: true;
}

export interface RecoverySummary {
  /** Sagas found in flight (`running` or `compensating`). */
  found: number;
  results: SagaResult[];
  /** Sagas that could not be driven now (store down, another engine advanced them). */
  errors: { sagaId: string; error: StoredError }[];
  /** Sagas another live engine owns (its lease has not expired): left to it. */
  owned: { sagaId: string; owner: string; expiresAt: string }[];
}

type StepOutcome = { ok: true } | { ok: false; policy: StepErrorPolicy; error: StoredError };

const TERMINAL: ReadonlySet<SagaStatus> = new Set([
  SagaStatus.Completed,
  SagaStatus.Compensated,
  SagaStatus.Failed,
]);

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
  readonly #active = new Map<
    string,
    { promise: Promise<SagaResult>; abort: AbortController; run: SagaRun }
  >();
  readonly #listeners = new Map<string, Set<SagaEventListener>>();
  /** This engine's name in the leases it holds. */
  readonly ownerId: string;
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(
    options: Readonly<Required<SagaEngineOptions>>,
    dependencies: SagaEngineDependencies,
  ) {
    this.#options = options;
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
    this.register(def);
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
    const deadlineMs = options.deadlineMs ?? def.deadlineMs;
    const record: SagaRecord = {
      sagaId,
      sagaName: def.name,
      definitionVersion: def.version,
      status: SagaStatus.Running,
      input: parsed.data,
      steps: Object.fromEntries(
        def.steps.map((s) => [
          s.name,
          { status: StepStatus.Pending, attempts: 0, compensationAttempts: 0 },
        ]),
      ),
      completionOrder: [],
      compensationOrder: [],
      cancelRequested: false,
      lease: this.#newLease(),
      ...(deadlineMs === undefined ? {} : { deadline: new Date(now + deadlineMs).toISOString() }),
      revision: 0,
      createdAt: new Date(now).toISOString(),
      updatedAt: new Date(now).toISOString(),
    };
    const created = await this.#store.create(record);
    if (!created.created) {
      this.#logger.info({ sagaId, saga: def.name }, 'saga already started; not running it again');
      return { sagaId, status: created.record.status, started: false, record: created.record };
    }
    this.#emit(SagaEventName.SagaStarted, { record: created.record });
    return this.#track(def, created.record, true);
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
  cancel(sagaId: string, reason = 'cancelled', options: RequestOptions = {}): Promise<SagaResult> {
    return this.#requestStop(sagaId, 'cancel', reason, options);
  }

  async #requestStop(
    sagaId: string,
    kind: 'cancel' | 'compensate',
    reason: string,
    options: RequestOptions,
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
  async retry(sagaId: string): Promise<SagaResult> {
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
  async resolve(sagaId: string, step: string, reason: string): Promise<SagaResult> {
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
  ): Promise<SagaResult> {
    const abort = new AbortController();
    const run = new SagaRun(this.#context(), def, record, abort);
    const promise = run
      .drive()
      .then((r): SagaResult => ({ sagaId: r.sagaId, status: r.status, started, record: r }))
      .finally(() => {
        this.#active.delete(record.sagaId);
        if (this.#active.size === 0 && this.#heartbeat) {
          clearInterval(this.#heartbeat);
          this.#heartbeat = undefined;
        }
      });
    this.#active.set(record.sagaId, { promise, abort, run });
    this.#heartbeat ??= setInterval(() => this.#renewLeases(), this.#options.heartbeatMs).unref();
    return promise;
  }

  /** Heartbeat: renews the lease of every saga whose step has run for a while without a write. */
  #renewLeases(): void {
    for (const { run } of this.#active.values()) run.renewIfIdle(this.#options.heartbeatMs);
  }

  #newLease(): SagaLease {
    return {
      owner: this.ownerId,
      token: randomUUID(),
      expiresAt: new Date(this.#now() + this.#options.leaseMs).toISOString(),
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

interface RunContext {
  store: SagaStore;
  logger: Logger;
  now: () => number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  random: () => number;
  leaseMs: number;
  /** `new Date(ms).toISOString()`, remembered for the last millisecond asked. */
  isoTime: (ms: number) => string;
  /** False when nobody listens to `name`: the event need not be built. */
  listens: (name: SagaEventName) => boolean;
  emit: (
    name: SagaEventName,
    event: Omit<SagaEvent, 'sagaId' | 'sagaName' | 'definitionVersion'>,
  ) => void;
}

/** One drive of one saga: reads nothing but its own log, writes every transition through CAS. */
class SagaRun {
  #record: SagaRecord;
  #writes: Promise<unknown> = Promise.resolve();
  #pendingWrites = 0;
  #leaseCache: { at: number; lease: SagaLease } | undefined;
  #logger: Logger | undefined;
  readonly #lease: { owner: string; token: string };
  readonly #abort: AbortController;
  private readonly cancelSignal: AbortSignal;
  /** `now()` of the last write (each renews the lease). */
  #lastWriteAt: number;

  constructor(
    private readonly ctx: RunContext,
    private readonly def: SagaDefinition<unknown, Record<string, unknown>>,
    record: SagaRecord,
    abort: AbortController,
  ) {
    this.#record = record;
    this.#abort = abort;
    this.cancelSignal = abort.signal;
    this.#lease = { owner: record.lease!.owner, token: record.lease!.token };
    this.#lastWriteAt = ctx.now();
  }

  /** The run's logger, made on first use (a pino child costs more than a whole transition). */
  get #log(): Logger {
    return (this.#logger ??= this.ctx.logger.child({
      sagaId: this.#record.sagaId,
      saga: this.def.name,
      sagaVersion: this.def.version,
    }));
  }

  /** A step attempt's logger, made on first use: by a log line at an enabled level or by the step. */
  #lazyLog(bindings: Record<string, unknown>): () => Logger {
    let log: Logger | undefined;
    return () => (log ??= this.#log.child(bindings));
  }

  /** Heartbeat: a write that only renews the lease, when nothing was written for `idleMs`. */
  renewIfIdle(idleMs: number): void {
    if (this.ctx.now() - this.#lastWriteAt < idleMs) return;
    this.#lastWriteAt = this.ctx.now(); // one renewal in flight at a time
    this.#write(() => {}).catch((error: unknown) => {
      this.#log.warn({ err: error }, 'could not renew the saga lease');
      if (error instanceof SagaLeaseLostError) {
        this.#abort.abort(error);
      }
    });
  }

  async drive(): Promise<SagaRecord> {
    const deadline = this.#record.deadline ? Date.parse(this.#record.deadline) : undefined;
    const deadlineAbort = deadline === undefined ? undefined : new AbortController();
    const timer =
      deadlineAbort === undefined
        ? undefined
        : setTimeout(
            () =>
              deadlineAbort.abort(
                new BacktrackError('BT_ERR_SAGA_DEADLINE', 'saga deadline passed'),
              ),
            Math.max(0, deadline! - this.ctx.now()),
          );
    // AbortSignal.any is costly in Node 20 (hundreds of µs once many signals are alive): only
    // combine when there is a deadline to combine with.
    const forwardSignal =
      deadlineAbort === undefined
        ? this.cancelSignal
        : AbortSignal.any([this.cancelSignal, deadlineAbort.signal]);
    try {
      for (;;) {
        const r = this.#record;
        if (r.status === SagaStatus.Running) {
          if (await this.#stopForwardIfAsked(deadline)) continue;
          const stage = this.def.stages.find((st) =>
            st.some((s) => r.steps[s.name]?.status !== StepStatus.Completed),
          );
          if (!stage) {
            await this.#write((x) => {
              x.status = SagaStatus.Completed;
            });
            if (this.ctx.logger.isLevelEnabled('info')) {
              this.#log.info({ outcome: 'completed' }, 'saga completed');
            }
            if (this.ctx.listens(SagaEventName.SagaCompleted))
              this.ctx.emit(SagaEventName.SagaCompleted, { record: this.#record });
            continue;
          }
          // Past the pivot nothing stops the saga going forward, not even a deadline.
          await this.#runStage(stage, pivotPassed(this.def, r) ? NEVER_ABORTED : forwardSignal);
        } else if (r.status === SagaStatus.Compensating) {
          await this.#compensateAll();
        } else {
          return this.#record;
        }
      }
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  /** Turns to compensation when cancel, compensate or the deadline asked for it (never past the pivot). */
  async #stopForwardIfAsked(deadline: number | undefined): Promise<boolean> {
    const r = this.#record;
    const cancelled = r.cancelRequested || this.cancelSignal.aborted;
    const late = deadline !== undefined && this.ctx.now() >= deadline;
    if (!cancelled && !late) return false;
    if (pivotPassed(this.def, r)) {
      this.#log.warn(
        { cancelled, late },
        'saga passed its pivot: ignoring cancel/deadline, going forward',
      );
      return false;
    }
    // A step a crashed run left `running` may have had its effect: call it again (same
    // idempotency key) so that its outcome is logged and, if it completed, compensated.
    const inDoubt = this.def.steps.filter((s) => r.steps[s.name]?.status === StepStatus.Running);
    if (inDoubt.length > 0) {
      this.#log.info({ steps: inDoubt.map((s) => s.name) }, 'settling steps in doubt first');
      rethrowFirst(
        await Promise.allSettled(inDoubt.map((s) => this.#runStep(s, NEVER_ABORTED, true))),
      );
    }
    const request = this.#record.request;
    await this.#write((x) => {
      x.status = SagaStatus.Compensating;
      x.failure = !cancelled
        ? { reason: 'deadline', error: { name: 'DeadlineExceeded', message: 'saga deadline' } }
        : request?.kind === 'compensate'
          ? {
              reason: 'compensation-requested',
              error: { name: 'CompensationRequested', message: request.reason },
            }
          : {
              reason: 'cancelled',
              error: { name: 'Cancelled', message: request?.reason ?? 'saga cancelled' },
            };
    });
    const reason = this.#record.failure?.reason;
    this.#log.info({ reason }, 'saga stops going forward; compensating');
    return true;
  }

  async #runStage(stage: readonly StepDefinition[], signal: AbortSignal): Promise<void> {
    // Steps the log says failed stay failed (a crash may have come before the saga's own write).
    const done = new Set<string>([StepStatus.Completed, StepStatus.Failed]);
    // Once cancelled (or past the deadline) start nothing new: the loop turns to compensation.
    if (signal.aborted) return;
    const pending = stage.filter((s) => !done.has(this.#record.steps[s.name]!.status));
    // allSettled: a store failure in one branch must not leave the others running unobserved.
    rethrowFirst(await Promise.allSettled(pending.map((s) => this.#runStep(s, signal))));
    const failures = stage.flatMap((s) => {
      const rec = this.#record.steps[s.name]!;
      return rec.status === StepStatus.Failed
        ? [
            {
              step: s.name,
              policy: rec.policy ?? 'compensate',
              error: rec.error ?? { name: 'Error', message: 'step failed' },
            },
          ]
        : [];
    });
    if (failures.length === 0) return;
    const first = failures[0]!;
    if (failures.some((f) => f.policy === 'fail')) {
      const failed = failures.find((f) => f.policy === 'fail')!;
      await this.#write((x) => {
        x.status = SagaStatus.Failed;
        x.failure = { step: failed.step, error: failed.error, reason: 'step-failed' };
      });
      this.#log.error(
        { step: failed.step, err: failed.error, outcome: 'failed' },
        'saga failed without compensation',
      );
      if (this.ctx.listens(SagaEventName.SagaFailed))
        this.ctx.emit(SagaEventName.SagaFailed, {
          record: this.#record,
          step: failed.step,
          error: failed.error,
        });
      return;
    }
    if (pivotPassed(this.def, this.#record)) {
      // Past the pivot nothing can be undone: park the saga for a person instead of half-undoing it.
      await this.#write((x) => {
        x.status = SagaStatus.Stuck;
        x.failure = { step: first.step, error: first.error, reason: 'step-failed' };
        x.stuck = {
          phase: 'forward',
          steps: failures.map((f) => f.step),
          errors: failures.map((f) => f.error),
        };
      });
      this.#log.error(
        { steps: failures.map((f) => f.step) },
        'saga stuck: a step after the pivot exhausted its retries',
      );
      if (this.ctx.listens(SagaEventName.SagaStuck))
        this.ctx.emit(SagaEventName.SagaStuck, {
          record: this.#record,
          step: first.step,
          error: first.error,
        });
      return;
    }
    await this.#write((x) => {
      x.status = SagaStatus.Compensating;
      x.failure = {
        step: first.step,
        error: first.error,
        reason: this.#record.cancelRequested ? 'cancelled' : 'step-failed',
      };
    });
    this.#log.warn({ step: first.step, err: first.error }, 'step failed; compensating');
  }

  /** `settle`: called only to learn the outcome of an attempt in doubt; no retry, no backoff. */
  async #runStep(step: StepDefinition, signal: AbortSignal, settle = false): Promise<StepOutcome> {
    for (let tries = 1; ; tries++) {
      const attempt = this.#record.steps[step.name]!.attempts + 1;
      await this.#write((x) => {
        const s = x.steps[step.name]!;
        s.status = StepStatus.Running;
        s.attempts = attempt;
      });
      const log = this.#lazyLog({ step: step.name, attempt });
      if (this.ctx.logger.isLevelEnabled('debug')) log().debug('step started');
      if (this.ctx.listens(SagaEventName.StepStarted))
        this.ctx.emit(SagaEventName.StepStarted, {
          record: this.#record,
          step: step.name,
          attempt,
        });
      const startedAt = this.ctx.now();
      let result: unknown;
      try {
        const ctx: StepContext<unknown, Record<string, unknown>> = {
          sagaId: this.#record.sagaId,
          sagaName: this.def.name,
          step: step.name,
          input: this.#record.input,
          results: this.#results(),
          idempotencyKey: `${this.#record.sagaId}:${step.name}:run`,
          attempt,
          signal,
          get logger() {
            return log();
          },
        };
        result =
          step.timeoutMs === undefined
            ? await step.run(ctx)
            : await callWithTimeout(step.name, step.timeoutMs, signal, (s) =>
                step.run({ ...ctx, signal: s }),
              );
      } catch (error) {
        const stored = toStoredError(error);
        const cancelled = signal.aborted;
        let policy: StepErrorPolicy = cancelled
          ? 'compensate'
          : safePolicy(step, error, attempt, log());
        if (policy === 'retry' && (settle || tries >= step.retry.attempts)) policy = 'compensate';
        const willRetry = policy === 'retry';
        log().warn(
          { err: error, willRetry, policy, durationMs: this.ctx.now() - startedAt },
          'step failed',
        );
        if (this.ctx.listens(SagaEventName.StepFailed))
          this.ctx.emit(SagaEventName.StepFailed, {
            record: this.#record,
            step: step.name,
            attempt,
            error: stored,
            willRetry,
            durationMs: this.ctx.now() - startedAt,
          });
        if (willRetry) {
          try {
            await this.ctx.sleep(backoffDelayMs(tries + 1, step.retry, this.ctx.random), signal);
            continue;
          } catch {
            policy = 'compensate'; // cancelled or deadline while waiting
          }
        }
        await this.#write((x) => {
          const s = x.steps[step.name]!;
          s.status = StepStatus.Failed;
          s.error = stored;
          s.policy = policy === 'fail' ? 'fail' : 'compensate';
        });
        return { ok: false, policy, error: stored };
      }
      await this.#write((x) => {
        const s = x.steps[step.name]!;
        s.status = StepStatus.Completed;
        s.result = result;
        delete s.error;
        x.completionOrder.push(step.name);
      });
      const durationMs = this.ctx.now() - startedAt;
      if (this.ctx.logger.isLevelEnabled('info')) {
        log().info({ outcome: 'completed', durationMs }, 'step completed');
      }
      if (this.ctx.listens(SagaEventName.StepCompleted))
        this.ctx.emit(SagaEventName.StepCompleted, {
          record: this.#record,
          step: step.name,
          attempt,
          durationMs,
        });
      return { ok: true };
    }
  }

  async #compensateAll(): Promise<void> {
    const r = this.#record;
    const toUndo = r.completionOrder.filter((name) => {
      const def = this.def.steps.find((s) => s.name === name);
      const status = r.steps[name]?.status;
      return (
        def?.compensate !== undefined &&
        (status === StepStatus.Completed ||
          status === StepStatus.Compensating ||
          status === StepStatus.CompensationFailed)
      );
    });
    // Contiguous steps of one stage (a parallel group) are undone together; stages in reverse.
    const layers: string[][] = [];
    for (const name of toUndo) {
      const stage = this.def.steps.find((s) => s.name === name)!.stage;
      const last = layers[layers.length - 1];
      if (last && this.def.steps.find((s) => s.name === last[0])!.stage === stage) last.push(name);
      else layers.push([name]);
    }
    for (const layer of layers.reverse()) {
      const outcomes = rethrowFirst(
        await Promise.allSettled(layer.map((name) => this.#compensateStep(name))),
      );
      const failed = outcomes.flatMap((o, i) =>
        o.ok ? [] : [{ step: layer[i]!, error: o.error }],
      );
      if (failed.length > 0) {
        await this.#write((x) => {
          x.status = SagaStatus.Stuck;
          x.stuck = {
            phase: 'compensation',
            steps: failed.map((f) => f.step),
            errors: failed.map((f) => f.error),
          };
        });
        this.#log.error(
          { steps: failed.map((f) => f.step), errors: failed.map((f) => f.error.message) },
          'saga stuck: compensation exhausted its retries',
        );
        if (this.ctx.listens(SagaEventName.SagaStuck))
          this.ctx.emit(SagaEventName.SagaStuck, {
            record: this.#record,
            step: failed[0]!.step,
            error: failed[0]!.error,
          });
        return;
      }
    }
    await this.#write((x) => {
      x.status = SagaStatus.Compensated;
    });
    this.#log.info(
      { outcome: 'compensated', order: this.#record.compensationOrder },
      'saga compensated',
    );
    if (this.ctx.listens(SagaEventName.SagaCompensated))
      this.ctx.emit(SagaEventName.SagaCompensated, { record: this.#record });
  }

  async #compensateStep(name: string): Promise<{ ok: true } | { ok: false; error: StoredError }> {
    const step = this.def.steps.find((s) => s.name === name)!;
    for (let tries = 1; ; tries++) {
      const attempt = this.#record.steps[name]!.compensationAttempts + 1;
      await this.#write((x) => {
        const s = x.steps[name]!;
        s.status = StepStatus.Compensating;
        s.compensationAttempts = attempt;
      });
      const log = this.#lazyLog({ step: name, attempt, phase: 'compensate' });
      if (this.ctx.listens(SagaEventName.CompensationStarted))
        this.ctx.emit(SagaEventName.CompensationStarted, {
          record: this.#record,
          step: name,
          attempt,
        });
      const startedAt = this.ctx.now();
      try {
        const results = this.#results();
        const ctx: CompensationContext<unknown, Record<string, unknown>, unknown> = {
          sagaId: this.#record.sagaId,
          sagaName: this.def.name,
          step: name,
          input: this.#record.input,
          result: this.#record.steps[name]!.result,
          results,
          idempotencyKey: `${this.#record.sagaId}:${name}:compensate`,
          attempt,
          // Compensation must finish even when the saga was cancelled: only its own timeout aborts it.
          signal: new AbortController().signal,
          get logger() {
            return log();
          },
        };
        await (step.timeoutMs === undefined
          ? step.compensate!(ctx)
          : callWithTimeout(name, step.timeoutMs, undefined, (s) =>
              step.compensate!({ ...ctx, signal: s }),
            ));
      } catch (error) {
        const stored = toStoredError(error);
        const willRetry = tries < step.compensationRetry.attempts;
        log().warn({ err: error, willRetry }, 'compensation failed');
        if (this.ctx.listens(SagaEventName.CompensationFailed))
          this.ctx.emit(SagaEventName.CompensationFailed, {
            record: this.#record,
            step: name,
            attempt,
            error: stored,
            willRetry,
            durationMs: this.ctx.now() - startedAt,
          });
        if (willRetry) {
          await this.ctx.sleep(backoffDelayMs(tries + 1, step.compensationRetry, this.ctx.random));
          continue;
        }
        await this.#write((x) => {
          const s = x.steps[name]!;
          s.status = StepStatus.CompensationFailed;
          s.error = stored;
        });
        return { ok: false, error: stored };
      }
      await this.#write((x) => {
        const s = x.steps[name]!;
        s.status = StepStatus.Compensated;
        delete s.error;
        x.compensationOrder.push(name);
      });
      if (this.ctx.logger.isLevelEnabled('info')) {
        log().info(
          { outcome: 'compensated', durationMs: this.ctx.now() - startedAt },
          'step compensated',
        );
      }
      if (this.ctx.listens(SagaEventName.StepCompensated))
        this.ctx.emit(SagaEventName.StepCompensated, { record: this.#record, step: name, attempt });
      return { ok: true };
    }
  }

  #results(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [name, s] of Object.entries(this.#record.steps)) {
      if (
        s.status !== StepStatus.Pending &&
        s.status !== StepStatus.Running &&
        s.status !== StepStatus.Failed
      ) {
        out[name] = s.result;
      }
    }
    return out;
  }

  /**
   * Writes one transition, renewing this run's lease in the same store write (or dropping it when
   * the saga ends or gets stuck). Writes of one run are serialised (parallel steps share the
   * record). The revision check fences the write: it succeeds only on the record this run last
   * read or wrote, which holds this run's lease. On a revision conflict the fresh record is
   * accepted only if it still holds this run's lease and the saga's progress is what this run
   * last wrote (someone only wrote a request); otherwise this run stops by rethrowing.
   */
  #write(mutate: (record: SagaRecord) => void): Promise<void> {
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
        if (fresh.cancelRequested && !this.cancelSignal.aborted) {
          // A request from another engine: abort the running step cooperatively.
          this.#abort.abort(
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

const NEVER_ABORTED = new AbortController().signal;

/** `toISOString` remembered for the last two instants (a transition asks for now and now + lease). */
function isoTimeCache(): (ms: number) => string {
  let a = NaN;
  let aIso = '';
  let b = NaN;
  let bIso = '';
  return (ms) => {
    if (ms === a) return aIso;
    if (ms === b) return bIso;
    b = a;
    bIso = aIso;
    a = ms;
    aIso = new Date(ms).toISOString();
    return aIso;
  };
}

function rethrowFirst<T>(settled: PromiseSettledResult<T>[]): T[] {
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}

/**
 * A copy of the record a transition may change: new top-level object, step records and order
 * arrays; the rest (input, results, errors) is shared, since transitions only replace those,
 * never change them in place. A deep copy here cost a third of a transition's CPU.
 */
function draftOf(r: SagaRecord): SagaRecord {
  const steps: Record<string, StepRecord> = {};
  for (const name in r.steps) steps[name] = { ...r.steps[name]! };
  return {
    ...r,
    steps,
    completionOrder: r.completionOrder.slice(),
    compensationOrder: r.compensationOrder.slice(),
  };
}

function progressOf(r: SagaRecord): string {
  return JSON.stringify([
    r.status,
    r.steps,
    r.completionOrder,
    r.compensationOrder,
    r.stuck ?? null,
  ]);
}

function pivotPassed(
  def: SagaDefinition<unknown, Record<string, unknown>>,
  r: SagaRecord,
): boolean {
  return def.steps.some((s) => s.pivot && r.steps[s.name]?.status === StepStatus.Completed);
}

function safePolicy(
  step: StepDefinition,
  error: unknown,
  attempt: number,
  log: Logger,
): StepErrorPolicy {
  try {
    const p = step.onError(error, attempt);
    if (p === 'retry' || p === 'compensate' || p === 'fail') return p;
    log.error({ policy: p }, 'onError returned an unknown policy; compensating');
  } catch (e) {
    log.error({ err: e }, 'onError threw; compensating');
  }
  return 'compensate';
}

async function callWithTimeout<T>(
  step: string,
  timeoutMs: number | undefined,
  parent: AbortSignal | undefined,
  fn: (signal: AbortSignal) => Promise<T> | T,
): Promise<T> {
  // Without a timeout nothing but the parent can abort: no combined signal (costly in Node 20).
  if (timeoutMs === undefined) return fn(parent ?? new AbortController().signal);
  const own = new AbortController();
  const signal = parent ? AbortSignal.any([parent, own.signal]) : own.signal;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new StepTimeoutError(step, timeoutMs);
      own.abort(error);
      reject(error);
    }, timeoutMs);
  });
  try {
    return await Promise.race([Promise.resolve().then(() => fn(signal)), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function toStoredError(error: unknown): StoredError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      name: error.name,
      message: error.message,
      ...(typeof code === 'string' ? { code } : {}),
    };
  }
  return { name: 'NonError', message: String(error) };
}

function definitionKey(name: string, version: number): string {
  return `${name}@${version}`;
}

/**
 * Creates a saga engine. Options are validated here, once.
 *
 * @example
 * const sagas = createSagaEngine({}, { store: new InMemorySagaStore(), logger });
 * const result = await sagas.start(placeOrder, { orderId: 'o-1' }, { sagaId: 'o-1' });
 * await sagas.recover(); // after a restart: resume what a crash left in flight
 */
export function createSagaEngine(
  options: SagaEngineOptions,
  dependencies: SagaEngineDependencies,
): SagaEngine {
  const merged = { ...DEFAULT_SAGA_ENGINE_OPTIONS, ...options };
  if (options?.heartbeatMs === undefined) {
    merged.heartbeatMs = Math.max(1, Math.floor(merged.leaseMs / 3));
  }
  for (const field of [
    'recoveryConcurrency',
    'recoveryPageSize',
    'leaseMs',
    'heartbeatMs',
    'requestTimeoutMs',
    'requestPollMs',
  ] as const) {
    if (!Number.isInteger(merged[field]) || merged[field] < 1) {
      throw new SagaDefinitionError(`saga engine option ${field} must be an integer >= 1`, {
        details: { field },
      });
    }
  }
  if (!dependencies?.store) {
    throw new SagaDefinitionError('createSagaEngine needs dependencies.store (a SagaStore)', {
      details: { field: 'store' },
    });
  }
  return new SagaEngine(Object.freeze(merged), dependencies);
}
