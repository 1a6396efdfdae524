export {
  DEFAULT_COMPENSATION_RETRY,
  DEFAULT_STEP_RETRY,
  defaultErrorPolicy,
  defineSaga,
} from './definition.js';
// Made by defineSaga(), never by hand: a type only.
export type { SagaBuilder } from './definition.js';
export type {
  AnySagaDefinition,
  CompensationContext,
  SagaDefinition,
  SagaOptions,
  StepContext,
  StepDefinition,
  StepErrorPolicy,
  StepOptions,
} from './definition.js';
export { DEFAULT_SAGA_ENGINE_OPTIONS, SagaEngine, createSagaEngine } from './SagaEngine.js';
export type {
  RecoverySummary,
  RequestOptions,
  SagaEngineConfig,
  SagaEngineDependencies,
  SagaEngineOptions,
  SagaResult,
  StartOptions,
} from './SagaEngine.js';
export type {
  StepCallKind,
  StepInterceptor,
  StepInvocation,
  StepNext,
} from './engine/interceptors.js';
export { SagaEventName } from './events.js';
export type { SagaEvent, SagaEventListener } from './events.js';
export { InMemorySagaStore, type InMemorySagaStoreOptions } from './InMemorySagaStore.js';
// For store implementations: records the engine gave away (see the function's comment).
export { takeOver as takeOverSagaRecord } from './clone.js';
export {
  SagaConcurrencyError,
  SagaDefinitionError,
  SagaDefinitionNotRegisteredError,
  SagaEngineConfigError,
  SagaInputError,
  SagaLeaseHeldError,
  SagaLeaseLostError,
  SagaNotFoundError,
  SagaStateError,
  StepTimeoutError,
} from './errors.js';
export { FINISHED_SAGA_STATUSES, SagaStatus, StepStatus } from './SagaStore.js';
export type {
  FinishedSagaStatus,
  OperatorAction,
  OperatorNote,
  SagaLease,
  SagaListQuery,
  SagaPage,
  SagaPruneOptions,
  SagaRecord,
  SagaRequest,
  SagaStore,
  StepRecord,
  StoredError,
} from './SagaStore.js';
