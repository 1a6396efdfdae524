/** @backtrack/core/testing: in-memory fakes, contract suites and the saga crash harness. */
export { CrashingSagaStore, SimulatedCrash } from './CrashingSagaStore.js';
export {
  InjectedStepFailure,
  deliverTwice,
  runSagaHarness,
  withInjectedFailure,
} from './sagaHarness.js';
export type { HarnessReport, HarnessScenario, SagaHarnessOptions } from './sagaHarness.js';
