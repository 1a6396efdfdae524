export type {
  ClaimOptions,
  ClaimResult,
  CompleteEntry,
  CompleteManyOptions,
  CompleteOptions,
  DedupeStore,
} from './DedupeStore.js';
export { InMemoryDedupeStore } from './InMemoryDedupeStore.js';
export type { InMemoryDedupeStoreDependencies } from './InMemoryDedupeStore.js';
export { DedupeConfigError } from './errors.js';
