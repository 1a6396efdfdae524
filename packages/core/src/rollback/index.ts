export { defineCompensations, emit } from './compensations.js';
// Made by defineCompensations(), never by hand: a type only.
export type { CompensationRegistry } from './compensations.js';
export type { CompensatingEvent, Compensation, Reverser } from './compensations.js';
export {
  NeedsPersonReason,
  RollbackStrategy,
  planRollback,
  planRollbackPages,
  rollbackVersion,
  summarizeRollback,
} from './plan.js';
export type {
  EffectRef,
  NeedsPersonItem,
  PlanRollbackDependencies,
  PlanRollbackOptions,
  PlannedMessage,
  PlannedPage,
  RollbackPlan,
  RollbackPlanItem,
  RollbackPlanSummary,
  SagaRollbackItem,
} from './plan.js';
export { DEFAULT_RUN_ROLLBACK_OPTIONS, runRollback } from './run.js';
export type {
  RollbackProgressEvent,
  RollbackRunResult,
  RunRollbackDependencies,
  RunRollbackOptions,
  SagaCompensator,
} from './run.js';
export { ItemState, RunStatus } from './RollbackProgressStore.js';
export type {
  ItemProgress,
  ItemUpdate,
  LeaseResult,
  RollbackProgressStore,
  RollbackRunRecord,
  RollbackSummary,
  RunCheckpoint,
} from './RollbackProgressStore.js';
export { InMemoryRollbackProgressStore } from './InMemoryRollbackProgressStore.js';
export {
  CompensationDefinitionError,
  RollbackConfigError,
  RollbackLeaseLostError,
  RollbackPlanTooLargeError,
  RollbackRunConflictError,
  RollbackRunLockedError,
  RollbackRunNotFoundError,
} from './errors.js';
