/**
 * The contexts a step's `run` and `compensate` receive. Classes, not object literals: `signal`
 * and `logger` are made on first use (an AbortController and a pino child cost more than a
 * transition), and getters on the prototype cost nothing per call where an object literal's own
 * getters cost about a microsecond each in Node 20 (they are defined at run time).
 */
import type { Logger } from '../../logging/logger.js';
import type { CompensationContext, StepContext } from '../definition.js';
import type { SagaRecord } from '../SagaStore.js';
import type { RunState } from './context.js';
import type { Cancellation } from './support.js';

type Results = Record<string, unknown>;

/** What `run` receives: see {@link StepContext}. */
export class RunCall implements StepContext<unknown, Results> {
  readonly sagaId: string;
  readonly sagaName: string;
  readonly step: string;
  readonly input: unknown;
  readonly results: Readonly<Results>;
  readonly idempotencyKey: string;
  readonly attempt: number;
  readonly #run: RunState;
  readonly #record: SagaRecord;
  readonly #cancel: Cancellation;
  #signal: AbortSignal | undefined;
  #logger: Logger | undefined;

  /** `from`: the same attempt's context under another cancellation (its values reused). */
  constructor(
    run: RunState,
    record: SagaRecord,
    step: string,
    attempt: number,
    cancel: Cancellation,
    from?: RunCall,
  ) {
    this.sagaId = record.sagaId;
    this.sagaName = run.def.name;
    this.step = step;
    this.input = record.input;
    this.results = from?.results ?? resultsOf(record);
    this.idempotencyKey = from?.idempotencyKey ?? `${record.sagaId}:${step}:run`;
    this.attempt = attempt;
    this.#run = run;
    this.#record = record;
    this.#cancel = cancel;
  }

  /** Aborted when the attempt times out or the saga is cancelled. */
  get signal(): AbortSignal {
    return (this.#signal ??= this.#cancel.signal);
  }

  /** The attempt's logger (saga id, step and attempt bound). */
  get logger(): Logger {
    return (this.#logger ??= this.#run.logger.child({ step: this.step, attempt: this.attempt }));
  }

  /** The saga's cancellation this attempt runs under (no AbortSignal made). */
  get cancellation(): Cancellation {
    return this.#cancel;
  }

  /** The same context under another cancellation (the step timeout's, which follows the saga's). */
  withCancellation(cancel: Cancellation): RunCall {
    const copy = new RunCall(this.#run, this.#record, this.step, this.attempt, cancel, this);
    copy.#logger = this.#logger;
    return copy;
  }
}

/** What `compensate` receives: see {@link CompensationContext}. */
export class CompensateCall implements CompensationContext<unknown, Results, unknown> {
  readonly sagaId: string;
  readonly sagaName: string;
  readonly step: string;
  readonly input: unknown;
  readonly result: unknown;
  readonly results: Readonly<Partial<Results>>;
  readonly idempotencyKey: string;
  readonly attempt: number;
  readonly #run: RunState;
  readonly #record: SagaRecord;
  #cancel: Cancellation | undefined;
  #signal: AbortSignal | undefined;
  #logger: Logger | undefined;

  constructor(run: RunState, record: SagaRecord, step: string, attempt: number) {
    this.sagaId = record.sagaId;
    this.sagaName = run.def.name;
    this.step = step;
    this.input = record.input;
    this.result = record.steps[step]!.result;
    this.results = resultsOf(record);
    this.idempotencyKey = `${record.sagaId}:${step}:compensate`;
    this.attempt = attempt;
    this.#run = run;
    this.#record = record;
  }

  /** Compensation must finish even when the saga was cancelled: only its own timeout aborts it. */
  get signal(): AbortSignal {
    return (this.#signal ??= this.#cancel?.signal ?? new AbortController().signal);
  }

  get logger(): Logger {
    return (this.#logger ??= this.#run.logger.child({
      step: this.step,
      attempt: this.attempt,
      phase: 'compensate',
    }));
  }

  /** The same context under the step timeout's cancellation. */
  withCancellation(cancel: Cancellation): CompensateCall {
    const copy = new CompensateCall(this.#run, this.#record, this.step, this.attempt);
    copy.#cancel = cancel;
    copy.#logger = this.#logger;
    return copy;
  }
}

/** Results of the steps that completed (or are being compensated), by step name. */
export function resultsOf(record: SagaRecord): Results {
  const out: Results = {};
  const steps = record.steps;
  for (const name in steps) {
    const status = steps[name]!.status;
    if (status !== 'pending' && status !== 'running' && status !== 'failed') {
      out[name] = steps[name]!.result;
    }
  }
  return out;
}
