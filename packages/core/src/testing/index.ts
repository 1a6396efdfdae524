/** @backtrack/core/testing: the saga crash harness, its crash-injecting store, and the in-memory fakes tests use. */
export { CrashingSagaStore, SimulatedCrash } from './CrashingSagaStore.js';
export {
  InjectedStepFailure,
  deliverTwice,
  runSagaHarness,
  withInjectedFailure,
} from './sagaHarness.js';
export type { HarnessReport, HarnessScenario, SagaHarnessOptions } from './sagaHarness.js';
// Also exported from `@backtrack/core`; listed here so test code finds every fake in one place.
export { InMemoryTransport } from '../transport/InMemoryTransport.js';
export type { InMemoryDeadLetter, InMemoryRecord } from '../transport/InMemoryTransport.js';
export { ConsumerSpy } from '../consumer/ConsumerSpy.js';
export type { SpyRecord } from '../consumer/ConsumerSpy.js';
