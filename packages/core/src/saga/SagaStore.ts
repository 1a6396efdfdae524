/** Lifecycle of a saga. Terminal: `completed`, `compensated`, `failed`. `stuck` waits for a person. */
export const SagaStatus = {
  /** Moving forward through its steps. */
  Running: 'running',
  /** A step failed or the saga was cancelled: running compensations in reverse order. */
  Compensating: 'compensating',
  Completed: 'completed',
  /** Every completed step was compensated exactly once. */
  Compensated: 'compensated',
  /** Failed without compensating (an error whose policy is `fail`). */
  Failed: 'failed',
  /** A compensation exhausted its retries; an operator retries or resolves it. */
  Stuck: 'stuck',
} as const;
export type SagaStatus = (typeof SagaStatus)[keyof typeof SagaStatus];

export const StepStatus = {
  Pending: 'pending',
  /** `run` was called (the log is written before the call); its outcome is not yet logged. */
  Running: 'running',
  Completed: 'completed',
  Failed: 'failed',
  /** `compensate` was called; its outcome is not yet logged. */
  Compensating: 'compensating',
  Compensated: 'compensated',
  /** Compensation exhausted its retries. */
  CompensationFailed: 'compensation-failed',
  /** An operator marked the step compensated by hand. */
  Resolved: 'resolved',
} as const;
export type StepStatus = (typeof StepStatus)[keyof typeof StepStatus];

/** A failure as stored: plain data, safe to serialise. */
export interface StoredError {
  name: string;
  message: string;
  code?: string;
}

export interface StepRecord {
  status: StepStatus;
  /** Calls of `run` so far (all attempts, across crashes). */
  attempts: number;
  /** Calls of `compensate` so far. */
  compensationAttempts: number;
  /** The step's result, JSON-serialisable, once completed. */
  result?: unknown;
  error?: StoredError;
  /** For a `failed` step: what its error policy decided (so recovery after a crash decides the same). */
  policy?: 'compensate' | 'fail';
  /** Free text an operator gave when resolving by hand. */
  resolution?: string;
  /** ISO time the latest `run` attempt started (records written before 0.3 have none). */
  startedAt?: string;
  /** ISO time `run` last ended: completed, or failed for good. */
  endedAt?: string;
  /** ISO time the latest `compensate` attempt started. */
  compensationStartedAt?: string;
  /** ISO time `compensate` last ended: compensated, or failed for good. */
  compensationEndedAt?: string;
}

/**
 * Who drives a saga now. Only the holder writes the saga's progress; every write renews the lease
 * (in the same store write), and a heartbeat renews it while a long step runs. Another engine
 * takes the saga over only once `expiresAt` passed.
 */
export interface SagaLease {
  /** The engine holding the saga (`SagaEngine.ownerId`: host, pid and a random part). */
  owner: string;
  /**
   * Unique per takeover (a random part per engine and a counter): a write whose base record holds
   * another token is refused.
   */
  token: string;
  /** ISO time after which another engine may take the saga over. */
  expiresAt: string;
}

/**
 * A request from an engine that does not own the saga (`cancel`, `compensate`): the owner reads
 * it at its next transition (or heartbeat) and acts on it.
 */
export interface SagaRequest {
  kind: 'cancel' | 'compensate';
  reason: string;
  /** ISO time of the request. */
  requestedAt: string;
  /** `ownerId` of the engine that asked. */
  by: string;
}

/**
 * The persisted state of one saga. Every field is JSON-serialisable so any store can keep it as
 * a document.
 */
export interface SagaRecord {
  sagaId: string;
  sagaName: string;
  /** The definition version the saga started with; it finishes with that version. */
  definitionVersion: number;
  status: SagaStatus;
  input: unknown;
  steps: Record<string, StepRecord>;
  /** Step names in the order they completed (compensation runs in the reverse of this). */
  completionOrder: string[];
  /** Step names in the order their compensation finished. */
  compensationOrder: string[];
  /** Why the saga stopped going forward. */
  failure?: {
    step?: string;
    error: StoredError;
    reason: 'step-failed' | 'cancelled' | 'deadline' | 'compensation-requested';
  };
  /**
   * Set while the saga is `stuck`: `compensation` when a compensation exhausted its retries,
   * `forward` when a step after the pivot did (the saga can only go forward from there).
   */
  stuck?: { phase: 'compensation' | 'forward'; steps: string[]; errors: StoredError[] };
  cancelRequested: boolean;
  /** What an engine that does not own the saga asked for (`cancelRequested` is set with it). */
  request?: SagaRequest;
  /** Present while an engine drives the saga; removed when it ends or gets stuck. */
  lease?: SagaLease;
  /** ISO time after which the saga stops going forward and compensates. */
  deadline?: string;
  /**
   * The W3C trace context active when the saga started (the CloudEvents distributed-tracing
   * format), so a recovery in another process continues the same trace. Absent without an
   * OpenTelemetry SDK.
   */
  traceContext?: { traceparent: string; tracestate?: string };
  /** What operators did to the saga (retry, resolve, cancel), oldest first: who, when and why. */
  operatorLog?: OperatorAction[];
  /** Optimistic-concurrency version, incremented by every successful write. */
  revision: number;
  createdAt: string;
  updatedAt: string;
}

/** One entry of a saga's {@link SagaRecord.operatorLog}. */
export interface OperatorAction {
  action: 'retry' | 'resolve' | 'cancel';
  /** ISO time the action was written. */
  at: string;
  /** Who: the name the caller gave (`by`), else the engine's `ownerId`. */
  by: string;
  /** Why (required for resolve and cancel). */
  reason?: string;
  /** The step a `resolve` marked. */
  step?: string;
}

/** Who is acting, and why, on {@link SagaEngine.retry}, `resolve` and `cancel`. */
export interface OperatorNote {
  /** An operator's name (or a tool's); kept in the saga's operator log. @default the engine's ownerId */
  by?: string;
  /** Why (retry only; resolve and cancel take their reason as an argument). */
  reason?: string;
}

export interface SagaListQuery {
  status?: SagaStatus | readonly SagaStatus[];
  sagaName?: string;
  /** @default 100 */
  limit?: number;
  /** Opaque cursor from a previous page. */
  cursor?: string;
}

export interface SagaPage {
  items: SagaRecord[];
  /** Absent on the last page. */
  nextCursor?: string;
}

/** The statuses a saga never leaves by itself: what {@link SagaStore.prune} may delete. */
export const FINISHED_SAGA_STATUSES = Object.freeze([
  SagaStatus.Completed,
  SagaStatus.Compensated,
  SagaStatus.Failed,
] as const);
export type FinishedSagaStatus = (typeof FINISHED_SAGA_STATUSES)[number];

export interface SagaPruneOptions {
  /** Delete sagas whose last write (`updatedAt`) is before this time. */
  updatedBefore: Date;
  /** Which finished statuses to delete. @default all of {@link FINISHED_SAGA_STATUSES} */
  statuses?: readonly FinishedSagaStatus[];
  /** Delete at most this many in this call (a pruning pass runs in bounded steps). @default 1000 */
  limit?: number;
}

/**
 * The SagaStore port: the saga log.
 *
 * - `create` MUST be atomic and idempotent on `sagaId`: when a record exists it MUST NOT be
 *   replaced, and the existing record is returned.
 * - `update` MUST succeed only if the stored `revision` equals `expectedRevision`, and MUST store
 *   the record with `revision = expectedRevision + 1`; otherwise it MUST throw
 *   `SagaConcurrencyError` (code `BT_ERR_SAGA_CONCURRENT_UPDATE`). This is what stops two engines
 *   that recover the same saga from both advancing it. The ownership lease (`lease`) is part of
 *   the record, so it is written, and fenced, by this same call.
 * - `list` MUST be able to filter by status without scanning every saga (an index), so stuck
 *   sagas can be listed cheaply.
 * - Records are values. A store MUST keep nothing of the record it is given (a caller may change
 *   it afterwards), and no change to a record it hands out may change what it stores: it hands
 *   out copies (Redis, PostgreSQL: parsed anew) or frozen records (`InMemorySagaStore`, which
 *   shares the unchanged parts between versions). Callers MUST treat handed-out records as
 *   read-only and build the next record instead (the engine does: `{ ...record, status }`).
 * - Failures of the store itself MUST throw a retriable `BacktrackError`.
 */
export interface SagaStore {
  create(
    record: SagaRecord,
  ): Promise<{ created: true; record: SagaRecord } | { created: false; record: SagaRecord }>;
  get(sagaId: string): Promise<SagaRecord | undefined>;
  update(record: SagaRecord, expectedRevision: number): Promise<SagaRecord>;
  list(query?: SagaListQuery): Promise<SagaPage>;
  /**
   * Retention: deletes finished sagas (never running, compensating or stuck ones) last written
   * before `updatedBefore`, at most `limit`; returns how many it deleted. A saga written again
   * while it is being pruned is kept. Optional: stores without it keep every saga.
   */
  prune?(options: SagaPruneOptions): Promise<number>;
}
