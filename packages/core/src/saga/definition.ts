import type { z } from 'zod';
import type { Logger } from '../logging/logger.js';
import { resolveRetryPolicy, type RetryPolicy } from '../retry/backoff.js';
import { SagaDefinitionError } from './errors.js';
import { BacktrackError } from '../errors/BacktrackError.js';

/**
 * What a step's `run` receives. `results` holds every earlier step's result, typed. `signal` and
 * `logger` are made on first use (getters): read them from the context itself; a spread copy
 * (`{ ...ctx }`) does not carry them. `input` and `results` are the saga record's own data, which
 * the store may hand out frozen: treat them as read-only.
 */
export interface StepContext<TInput, TResults> {
  sagaId: string;
  sagaName: string;
  step: string;
  input: TInput;
  results: Readonly<TResults>;
  /**
   * Stable across retries, crashes and recoveries: `<sagaId>:<step>:run`. Pass it to the
   * system you call so that a repeated call has no second effect.
   */
  idempotencyKey: string;
  /** 1 for the first call; counts across crashes. */
  attempt: number;
  /** Aborted when the attempt times out or the saga is cancelled: pass it to your I/O. */
  signal: AbortSignal;
  logger: Logger;
}

/** What a step's `compensate` receives: its own `result` plus everything `run` saw. */
export interface CompensationContext<TInput, TResults, TResult> extends Omit<
  StepContext<TInput, TResults>,
  'results'
> {
  /** The result `run` returned for this step. */
  result: TResult;
  /** Results of the steps that completed before this one. */
  results: Readonly<Partial<TResults>>;
  /** `<sagaId>:<step>:compensate`. */
  idempotencyKey: string;
}

/**
 * What to do when a step's `run` throws:
 * - `retry`: try again after a backoff while attempts remain, then compensate;
 * - `compensate`: stop going forward now and compensate the completed steps;
 * - `fail`: end the saga `failed` without compensating (for errors that mean compensation
 *   would do harm; the saga keeps the reason).
 */
export type StepErrorPolicy = 'retry' | 'compensate' | 'fail';

export interface StepOptions<TInput, TResults, TResult> {
  /** The forward action. Its resolved value is stored (must be JSON-serialisable). */
  run: (ctx: StepContext<TInput, TResults>) => Promise<TResult> | TResult;
  /** Undoes `run`'s effect. Called at most once per successful `run` that the log recorded. */
  compensate?: (ctx: CompensationContext<TInput, TResults, TResult>) => Promise<void> | void;
  /**
   * A pivot step is the point of no return: once it completed, the saga only goes forward.
   * A pivot and every step after it MUST NOT declare `compensate`.
   * @default false
   */
  pivot?: boolean;
  /** Retries of `run`. @default DEFAULT_STEP_RETRY (3 attempts) */
  retry?: Partial<RetryPolicy>;
  /** Retries of `compensate` before the saga is `stuck`. @default DEFAULT_COMPENSATION_RETRY (5 attempts) */
  compensationRetry?: Partial<RetryPolicy>;
  /** Time limit for one attempt of `run` or `compensate`, in ms. No limit when unset. */
  timeoutMs?: number;
  /** Decides per error. @default retriable-unless-a-non-retriable-BacktrackError, see {@link defaultErrorPolicy} */
  onError?: (error: unknown, attempt: number) => StepErrorPolicy;
}

/** Steps after a pivot must succeed eventually: they retry much longer by default. */
export const DEFAULT_STEP_RETRY: Readonly<RetryPolicy> = Object.freeze({
  attempts: 3,
  initialDelayMs: 100,
  maxDelayMs: 5_000,
  factor: 2,
  jitter: 'full',
});

export const DEFAULT_COMPENSATION_RETRY: Readonly<RetryPolicy> = Object.freeze({
  attempts: 5,
  initialDelayMs: 200,
  maxDelayMs: 10_000,
  factor: 2,
  jitter: 'full',
});

/** A step as the engine sees it, after validation. */
export interface StepDefinition {
  name: string;
  /** Index of the sequential stage the step belongs to; steps of a parallel group share it. */
  stage: number;
  /** Name of the parallel group, when the step is in one. */
  group?: string;
  pivot: boolean;
  run: (ctx: StepContext<unknown, Record<string, unknown>>) => Promise<unknown> | unknown;
  compensate?: (
    ctx: CompensationContext<unknown, Record<string, unknown>, unknown>,
  ) => Promise<void> | void;
  retry: Readonly<RetryPolicy>;
  compensationRetry: Readonly<RetryPolicy>;
  timeoutMs?: number;
  onError: (error: unknown, attempt: number) => StepErrorPolicy;
}

/** The stages of a saga: each is one step, or a group of steps run in parallel. */
export interface SagaDefinition<TInput = unknown, TResults = Record<string, unknown>> {
  readonly kind: 'backtrack.saga';
  readonly name: string;
  readonly version: number;
  readonly input: z.ZodType<TInput>;
  readonly stages: readonly (readonly StepDefinition[])[];
  readonly steps: readonly StepDefinition[];
  /** Time budget of the whole saga, in ms, after which it compensates. */
  readonly deadlineMs?: number;
  /** Phantom field carrying the result types; never set. */
  readonly __results?: TResults;
}

/**
 * Any saga definition, whatever its input and result types: what `register()`, `defineConfig`
 * and other places that hold definitions of several sagas take.
 */
export type AnySagaDefinition = SagaDefinition<unknown, unknown>;

export interface SagaOptions<TSchema extends z.ZodType> {
  /** Validates `start`'s input; the saga's input type is its output type. */
  input: TSchema;
  /**
   * The definition's version. Sagas in flight finish with the version they started with, so
   * keep old versions registered until their sagas end. @default 1
   */
  version?: number;
  /** Time budget for the whole saga, in ms; past it the saga stops and compensates. */
  deadlineMs?: number;
}

type StepConfigs<TInput, TResults> = Record<string, StepOptions<TInput, TResults, unknown>>;
type GroupResults<G> = {
  [K in keyof G]: G[K] extends { run: (...args: never[]) => infer R } ? Awaited<R> : never;
};

/** An immutable builder: every call returns a new builder, so a base saga can be extended. */
export class SagaBuilder<TInput, TResults extends Record<string, unknown>> {
  readonly #name: string;
  readonly #options: SagaOptions<z.ZodType<TInput>>;
  readonly #stages: readonly (readonly StepDefinition[])[];

  /** @internal use {@link defineSaga} */
  constructor(
    name: string,
    options: SagaOptions<z.ZodType<TInput>>,
    stages: readonly (readonly StepDefinition[])[],
  ) {
    this.#name = name;
    this.#options = options;
    this.#stages = stages;
  }

  /** Adds one step after the previous ones. */
  step<TName extends string, TResult>(
    name: TName extends keyof TResults ? never : TName,
    options: StepOptions<TInput, TResults, TResult>,
  ): SagaBuilder<TInput, TResults & { [K in TName]: Awaited<TResult> }> {
    const stage = this.#stages.length;
    const def = compileStep(
      this.#name,
      name,
      stage,
      undefined,
      options as StepOptions<unknown, never, unknown>,
    );
    this.#checkNew([def]);
    return new SagaBuilder(this.#name, this.#options, [...this.#stages, [def]]);
  }

  /**
   * Adds a group of steps that run in parallel. The next stage starts when every step of the
   * group completed; if one fails, the others finish and every completed one is compensated
   * (together, since their order among themselves is not defined).
   */
  parallel<TGroup extends StepConfigs<TInput, TResults>>(
    group: string,
    steps: TGroup,
  ): SagaBuilder<TInput, TResults & GroupResults<TGroup>> {
    const stage = this.#stages.length;
    const entries = Object.entries(steps);
    if (entries.length === 0) {
      throw new SagaDefinitionError(`saga ${this.#name}: parallel group ${group} has no steps`, {
        details: { saga: this.#name, group },
      });
    }
    const defs = entries.map(([name, options]) =>
      compileStep(this.#name, name, stage, group, options as StepOptions<unknown, never, unknown>),
    );
    if (defs.some((d) => d.pivot)) {
      throw new SagaDefinitionError(
        `saga ${this.#name}: a pivot cannot be inside parallel group ${group}`,
        {
          details: { saga: this.#name, group },
        },
      );
    }
    this.#checkNew(defs);
    return new SagaBuilder(this.#name, this.#options, [...this.#stages, defs]);
  }

  /** Validates the whole saga and freezes it into a definition the engine can run. */
  build(): SagaDefinition<TInput, TResults> {
    if (this.#stages.length === 0) {
      throw new SagaDefinitionError(`saga ${this.#name} has no steps`, {
        details: { saga: this.#name },
      });
    }
    const steps = this.#stages.flat();
    return Object.freeze({
      kind: 'backtrack.saga',
      name: this.#name,
      version: this.#options.version ?? 1,
      input: this.#options.input,
      stages: this.#stages,
      steps,
      ...(this.#options.deadlineMs === undefined ? {} : { deadlineMs: this.#options.deadlineMs }),
    }) as SagaDefinition<TInput, TResults>;
  }

  #checkNew(defs: StepDefinition[]): void {
    const existing = this.#stages.flat();
    const seen = new Set(existing.map((s) => s.name));
    const pivotPassed = existing.some((s) => s.pivot);
    for (const def of defs) {
      if (seen.has(def.name)) {
        throw new SagaDefinitionError(`saga ${this.#name}: duplicate step name ${def.name}`, {
          details: { saga: this.#name, step: def.name },
        });
      }
      seen.add(def.name);
      if ((pivotPassed || def.pivot) && def.compensate) {
        throw new SagaDefinitionError(
          `saga ${this.#name}: step ${def.name} declares a compensation but is ${def.pivot ? 'a pivot' : 'after a pivot'}; nothing from the pivot on can be compensated`,
          { details: { saga: this.#name, step: def.name } },
        );
      }
    }
  }
}

/**
 * Defines a saga: a name, a zod input schema and ordered steps, each with `run` and optionally
 * `compensate`.
 *
 * @example
 * const placeOrder = defineSaga('place-order', { input: z.object({ orderId: z.string() }) })
 *   .step('reserve-stock', { run: reserve, compensate: release, retry: { attempts: 5 } })
 *   .step('charge-card', { run: charge, compensate: ({ result }) => refund(result.chargeId) })
 *   .step('ship', { run: ship, pivot: true })
 *   .build();
 */
export function defineSaga<TSchema extends z.ZodType>(
  name: string,
  options: SagaOptions<TSchema>,
): SagaBuilder<z.output<TSchema>, Record<never, never>> {
  if (typeof name !== 'string' || name.trim() === '') {
    throw new SagaDefinitionError('saga name must be a non-empty string');
  }
  if (!options || typeof options.input?.safeParse !== 'function') {
    throw new SagaDefinitionError(`saga ${name}: options.input must be a zod schema`, {
      details: { saga: name, field: 'input' },
    });
  }
  const version = options.version ?? 1;
  if (!Number.isInteger(version) || version < 1) {
    throw new SagaDefinitionError(`saga ${name}: version must be an integer >= 1`, {
      details: { saga: name, field: 'version' },
    });
  }
  if (options.deadlineMs !== undefined && !(options.deadlineMs > 0)) {
    throw new SagaDefinitionError(`saga ${name}: deadlineMs must be > 0`, {
      details: { saga: name, field: 'deadlineMs' },
    });
  }
  return new SagaBuilder(name, options as SagaOptions<z.ZodType<z.output<TSchema>>>, []);
}

/** Retry only what may succeed again: a BacktrackError that says it is not retriable compensates at once. */
export function defaultErrorPolicy(error: unknown): StepErrorPolicy {
  return error instanceof BacktrackError && !error.retriable ? 'compensate' : 'retry';
}

function compileStep(
  saga: string,
  name: string,
  stage: number,
  group: string | undefined,
  options: StepOptions<unknown, never, unknown>,
): StepDefinition {
  if (typeof name !== 'string' || name.trim() === '') {
    throw new SagaDefinitionError(`saga ${saga}: step name must be a non-empty string`, {
      details: { saga },
    });
  }
  if (!options || typeof options.run !== 'function') {
    throw new SagaDefinitionError(`saga ${saga}: step ${name} needs a run function`, {
      details: { saga, step: name, field: 'run' },
    });
  }
  if (options.compensate !== undefined && typeof options.compensate !== 'function') {
    throw new SagaDefinitionError(`saga ${saga}: step ${name}: compensate must be a function`, {
      details: { saga, step: name, field: 'compensate' },
    });
  }
  if (options.timeoutMs !== undefined && !(options.timeoutMs > 0)) {
    throw new SagaDefinitionError(`saga ${saga}: step ${name}: timeoutMs must be > 0`, {
      details: { saga, step: name, field: 'timeoutMs' },
    });
  }
  let retry: Readonly<RetryPolicy>;
  let compensationRetry: Readonly<RetryPolicy>;
  try {
    retry = resolveRetryPolicy(options.retry, DEFAULT_STEP_RETRY);
    compensationRetry = resolveRetryPolicy(options.compensationRetry, DEFAULT_COMPENSATION_RETRY);
  } catch (cause) {
    throw new SagaDefinitionError(`saga ${saga}: step ${name}: ${(cause as Error).message}`, {
      details: { saga, step: name },
      cause,
    });
  }
  return Object.freeze({
    name,
    stage,
    ...(group === undefined ? {} : { group }),
    pivot: options.pivot ?? false,
    run: options.run as StepDefinition['run'],
    ...(options.compensate
      ? { compensate: options.compensate as StepDefinition['compensate'] }
      : {}),
    retry,
    compensationRetry,
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    onError: options.onError ?? defaultErrorPolicy,
  });
}
