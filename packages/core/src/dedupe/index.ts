export type { ClaimOptions, ClaimResult, CompleteOptions, DedupeStore } from './DedupeStore.js';
