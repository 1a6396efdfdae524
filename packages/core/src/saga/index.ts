export {
  SagaConcurrencyError,
  SagaDefinitionError,
  SagaDefinitionNotRegisteredError,
  SagaInputError,
  SagaNotFoundError,
  SagaStateError,
  StepTimeoutError,
} from './errors.js';
export { SagaStatus, StepStatus } from './SagaStore.js';
export type {
  SagaListQuery,
  SagaPage,
  SagaRecord,
  SagaStore,
  StepRecord,
  StoredError,
} from './SagaStore.js';
