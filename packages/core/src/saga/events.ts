import type { SagaRecord, StoredError } from './SagaStore.js';

/** Payload of every saga engine event. */
export interface SagaEvent {
  sagaId: string;
  sagaName: string;
  definitionVersion: number;
  step?: string;
  attempt?: number;
  error?: StoredError;
  /** For `step.failed`: whether the engine will try the step again. */
  willRetry?: boolean;
  /** Wall-clock duration of the attempt, in ms (step events). */
  durationMs?: number;
  /**
   * The saga's record as the write the event reports left it in the store. One write may record
   * more than one event's transition: a step's completion with the next step's start (or the
   * saga's completion), the saga's creation with its first step's start. Then every event of
   * that write carries the same record: `saga.started`'s may already show the first step
   * `running`, `step.completed`'s the next step `running` or the saga `completed`.
   */
  record: SagaRecord;
}

/**
 * The engine's events, in the order they can occur for one saga. Subscribe with
 * `engine.on(name, listener)` for metrics, tracing and alerts (`saga.stuck` is the one to page
 * on). Listeners run synchronously after the log write they report; a throwing listener is
 * logged and never affects the saga.
 */
export const SagaEventName = {
  SagaStarted: 'saga.started',
  StepStarted: 'step.started',
  StepCompleted: 'step.completed',
  StepFailed: 'step.failed',
  CompensationStarted: 'compensation.started',
  StepCompensated: 'step.compensated',
  CompensationFailed: 'compensation.failed',
  SagaCompleted: 'saga.completed',
  SagaCompensated: 'saga.compensated',
  SagaFailed: 'saga.failed',
  SagaStuck: 'saga.stuck',
  SagaCancelRequested: 'saga.cancel-requested',
} as const;
export type SagaEventName = (typeof SagaEventName)[keyof typeof SagaEventName];

export type SagaEventListener = (event: SagaEvent) => void;
