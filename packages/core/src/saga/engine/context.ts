import type { Logger } from '../../logging/logger.js';
import type { SagaDefinition } from '../definition.js';
import type { SagaEvent, SagaEventName } from '../events.js';
import type { SagaRecord, SagaStore } from '../SagaStore.js';
import type { StepInterceptor } from './interceptors.js';
import type { Cancellation } from './support.js';
import type { Transition } from './transitions.js';

/** What the engine hands every run: its collaborators, shared by all the sagas it drives. */
export interface RunContext {
  store: SagaStore;
  logger: Logger;
  now: () => number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  random: () => number;
  leaseMs: number;
  /** Step interceptors, outermost first; empty: steps are called directly. */
  interceptors: readonly StepInterceptor[];
  /** `new Date(ms).toISOString()`, remembered for the last millisecond asked. */
  isoTime: (ms: number) => string;
  /** False when nobody listens to `name`: the event need not be built. */
  listens: (name: SagaEventName) => boolean;
  emit: (
    name: SagaEventName,
    event: Omit<SagaEvent, 'sagaId' | 'sagaName' | 'definitionVersion'>,
  ) => void;
}

/** What a run's forward and compensation code sees of it (see SagaRun). */
export interface RunState {
  readonly ctx: RunContext;
  readonly def: SagaDefinition<unknown, Record<string, unknown>>;
  /** The record this run last read or wrote. */
  readonly record: SagaRecord;
  /** Persists one transition (see RunLog.write). */
  write<A, B>(change: Transition<A, B>, a: A, b: B): Promise<void>;
  /** `now()` of the last transition written. */
  readonly writtenAt: number;
  readonly logger: Logger;
  /** Cancel and compensate requests of this engine, a lost lease: stop going forward. */
  readonly cancelled: Cancellation;
}
