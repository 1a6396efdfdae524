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
export { ConsumerSpy } from './ConsumerSpy.js';
export type { ConsumerSpyMatch, SpyRecord } from './ConsumerSpy.js';
export { PublisherSpy } from './PublisherSpy.js';
export type { PublishedRecord, PublisherSpyMatch, PublisherSpyOptions } from './PublisherSpy.js';
export { DEFAULT_SPY_OPTIONS } from './SpyBuffer.js';
export type { SpyOptions, WaitForOptions } from './SpyBuffer.js';
export { SpyTimeoutError, TESTING_ERROR_CODES } from './errors.js';
export { matchesPartial } from './match.js';
export type { PartialMatch } from './match.js';
export { mockStepContext } from './mockStepContext.js';
export type { LoggedLine, MockStepContext, MockStepContextOptions } from './mockStepContext.js';
