import { pino } from 'pino';
import type { Logger } from '../logging/logger.js';
import type { CompensationContext, StepContext } from '../saga/definition.js';
import { PublisherSpy, type PublisherSpyOptions } from './PublisherSpy.js';

/** One line a {@link MockStepContext}'s logger wrote (pino's JSON, parsed). */
export interface LoggedLine {
  /** pino's level label: `trace`, `debug`, `info`, `warn`, `error`, `fatal`. */
  level: string;
  msg?: string;
  [field: string]: unknown;
}

/** Options of {@link mockStepContext}; every field has a default. */
export interface MockStepContextOptions<TInput, TResults, TResult> {
  input?: TInput;
  /** Results of the steps before this one. @default {} */
  results?: TResults;
  /** `compensate` only: what `run` returned. */
  result?: TResult;
  /** Which call the context is for; sets `idempotencyKey`. @default 'run' */
  kind?: 'run' | 'compensate';
  /** @default 'saga-test-1' */
  sagaId?: string;
  /** @default 'test-saga' */
  sagaName?: string;
  /** @default 'test-step' */
  step?: string;
  /** @default 1 */
  attempt?: number;
  /** Options of the {@link PublisherSpy} the context comes with. */
  publisher?: PublisherSpyOptions;
}

/**
 * A step context for calling one step's `run` or `compensate` directly in a unit test, with what
 * a test needs to drive and inspect it: `abort()` fires the signal (a cancel or timeout), `logs`
 * holds what the step logged, `publisher` records what it published (hand it to the code under
 * test).
 */
export interface MockStepContext<TInput, TResults, TResult>
  extends
    StepContext<TInput, TResults>,
    Omit<CompensationContext<TInput, TResults, TResult>, keyof StepContext<TInput, TResults>> {
  result: TResult;
  /** Aborts `signal`, as a cancel, deadline or timeout would. */
  abort(reason?: unknown): void;
  /** Every line logged through `logger`, oldest first (all levels, `trace` up). */
  readonly logs: LoggedLine[];
  /** A stand-alone publisher spy for the step to publish through. */
  readonly publisher: PublisherSpy;
}

/**
 * Builds a context for one call of a step's `run` or `compensate`, without an engine or store.
 *
 * @example
 * const ctx = mockStepContext({ input: { orderId: 'o-1', amountCents: 500 }, attempt: 2 });
 * const result = await chargeCard(payments, ctx.publisher)(ctx);    // the step's run
 * expect(result).toEqual({ chargeId: 'c-o-1' });
 * expect(ctx.publisher.count({ type: 'payment.charged' })).toBe(1);
 * expect(ctx.logs.some((l) => l.level === 'warn')).toBe(false);
 *
 * // or straight from a built definition:
 * const step = placeOrder.steps.find((s) => s.name === 'charge')!;
 * await step.compensate!(mockStepContext({ kind: 'compensate', input, result }));
 */
export function mockStepContext<
  TInput = unknown,
  TResults = Record<string, unknown>,
  TResult = unknown,
>(
  options: MockStepContextOptions<TInput, TResults, TResult> = {},
): MockStepContext<TInput, TResults, TResult> {
  const sagaId = options.sagaId ?? 'saga-test-1';
  const step = options.step ?? 'test-step';
  const controller = new AbortController();
  const logs: LoggedLine[] = [];
  const logger: Logger = pino(
    {
      level: 'trace',
      base: { sagaId, step },
      formatters: { level: (label) => ({ level: label }) },
    },
    { write: (line: string) => void logs.push(JSON.parse(line) as LoggedLine) },
  );
  return {
    sagaId,
    sagaName: options.sagaName ?? 'test-saga',
    step,
    input: options.input as TInput,
    results: (options.results ?? {}) as TResults,
    result: options.result as TResult,
    idempotencyKey: `${sagaId}:${step}:${options.kind ?? 'run'}`,
    attempt: options.attempt ?? 1,
    signal: controller.signal,
    logger,
    abort: (reason?: unknown) => controller.abort(reason),
    logs,
    publisher: new PublisherSpy(options.publisher),
  };
}
