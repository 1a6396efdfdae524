import { isDeepStrictEqual } from 'node:util';
import { pino } from 'pino';
import { BacktrackError } from '../errors/BacktrackError.js';
import type { Logger } from '../logging/logger.js';
import type { SagaDefinition, StepDefinition } from '../saga/definition.js';
import { InMemorySagaStore } from '../saga/InMemorySagaStore.js';
import { createSagaEngine } from '../saga/SagaEngine.js';
import type { SagaStatus, SagaStore } from '../saga/SagaStore.js';
import { CrashingSagaStore, SimulatedCrash } from './CrashingSagaStore.js';
import { CORE_ERROR_CODES } from '../errors/codes.js';

/** Thrown by the harness in place of a step's `run` to drive the saga into compensation. */
export class InjectedStepFailure extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.InjectedStepFailure';
  constructor(step: string) {
    super(CORE_ERROR_CODES.INJECTED_FAILURE, `harness: injected failure of step ${step}`, {
      details: { step },
      retriable: false,
    });
  }
}

export interface SagaHarnessOptions<TInput> {
  /** The saga under test, exactly as your service defines it. */
  definition: SagaDefinition<TInput, never> | SagaDefinition<TInput, Record<string, unknown>>;
  input: TInput;
  /** Puts your world (fakes of the systems your steps call) back to its initial state. */
  reset: () => void | Promise<void>;
  /** A JSON-comparable snapshot of your world's effects, compared against a clean run. */
  effects: () => unknown;
  /**
   * Also fail each step in turn (before the pivot) so that every compensation path runs through
   * the same crash points. @default true
   */
  failEachStep?: boolean;
  /** A fresh store per scenario. @default () => new InMemorySagaStore() */
  store?: () => SagaStore;
  /** @default a silent pino logger */
  logger?: Logger;
}

export interface HarnessScenario {
  /** `clean`, `crash@<n>` or `twice`, after the injected failure (`none` or a step name). */
  name: string;
  injectedFailure: string | null;
  expectedStatus: SagaStatus;
  actualStatus: SagaStatus | 'missing';
  expectedEffects: unknown;
  actualEffects: unknown;
  ok: boolean;
}

export interface HarnessReport {
  ok: boolean;
  scenarios: HarnessScenario[];
  /** Only the scenarios whose effects or final status differ from the clean run. */
  failures: HarnessScenario[];
}

/**
 * Proves that a saga's steps and compensations are idempotent. For the clean run and for each
 * injected step failure, it crashes the saga at every log write in turn (before a step, after a
 * step's effect but before its log write, during each compensation), recovers on a fresh engine
 * over the same store, and compares your world's effects and the final status with a run that
 * never crashed. It also runs every `run` and `compensate` twice in a row (a duplicate delivery).
 * Any difference is reported, with both snapshots.
 *
 * @example
 * const report = await runSagaHarness({ definition: placeOrder, input, reset: world.reset, effects: world.snapshot });
 * expect(report.failures).toEqual([]);
 */
export async function runSagaHarness<TInput>(
  options: SagaHarnessOptions<TInput>,
): Promise<HarnessReport> {
  const definition = options.definition as unknown as SagaDefinition<
    unknown,
    Record<string, unknown>
  >;
  const logger = options.logger ?? pino({ level: 'silent' });
  const newStore = options.store ?? (() => new InMemorySagaStore());
  const scenarios: HarnessScenario[] = [];

  const failurePoints: (string | null)[] = [null];
  if (options.failEachStep ?? true) {
    const pivotIndex = definition.steps.findIndex((s) => s.pivot);
    const beforePivot =
      pivotIndex < 0 ? definition.steps : definition.steps.slice(0, pivotIndex + 1);
    failurePoints.push(...beforePivot.map((s) => s.name));
  }

  for (const failAt of failurePoints) {
    const def = failAt === null ? definition : withInjectedFailure(definition, failAt);
    // One owner id for the crashed engine and the one that recovers: the harness plays the same
    // process restarting, so recovery need not wait for the crashed run's ownership lease.
    const ownerId = `harness/${process.pid}`;
    const engineFor = (store: SagaStore) =>
      createSagaEngine({ store, logger, sleep: async () => {}, ownerId });

    await options.reset();
    const cleanStore = new CrashingSagaStore(newStore());
    const clean = await engineFor(cleanStore).start(def, options.input, { sagaId: 'harness-saga' });
    const expectedEffects = structuredClone(await options.effects());
    const label = failAt ?? 'none';
    scenarios.push(
      scenario(
        `fail=${label} clean`,
        failAt,
        clean.status,
        clean.status,
        expectedEffects,
        expectedEffects,
      ),
    );

    for (let crashAt = 1; crashAt <= cleanStore.writes; crashAt++) {
      await options.reset();
      const base = newStore();
      const crashing = new CrashingSagaStore(base, crashAt);
      const first = engineFor(crashing);
      try {
        await first.start(def, options.input, { sagaId: 'harness-saga' });
      } catch (error) {
        if (!(error instanceof SimulatedCrash)) throw error;
      }
      await first.idle();
      await engineFor(base).register(def).recover();
      const record = await base.get('harness-saga');
      const actual = structuredClone(await options.effects());
      scenarios.push(
        scenario(
          `fail=${label} crash@${crashAt}`,
          failAt,
          clean.status,
          record?.status ?? 'missing',
          expectedEffects,
          actual,
        ),
      );
    }

    await options.reset();
    const twice = await engineFor(newStore()).start(deliverTwice(def), options.input, {
      sagaId: 'harness-saga',
    });
    scenarios.push(
      scenario(
        `fail=${label} twice`,
        failAt,
        clean.status,
        twice.status,
        expectedEffects,
        structuredClone(await options.effects()),
      ),
    );
  }
  const failures = scenarios.filter((s) => !s.ok);
  return { ok: failures.length === 0, scenarios, failures };
}

function scenario(
  name: string,
  injectedFailure: string | null,
  expectedStatus: SagaStatus,
  actualStatus: SagaStatus | 'missing',
  expectedEffects: unknown,
  actualEffects: unknown,
): HarnessScenario {
  const ok = expectedStatus === actualStatus && isDeepStrictEqual(expectedEffects, actualEffects);
  return {
    name,
    injectedFailure,
    expectedStatus,
    actualStatus,
    expectedEffects,
    actualEffects,
    ok,
  };
}

/** A copy of the definition whose step `step` always fails at once (no retry) before any effect. */
export function withInjectedFailure(
  definition: SagaDefinition<unknown, Record<string, unknown>>,
  step: string,
): SagaDefinition<unknown, Record<string, unknown>> {
  return mapSteps(definition, (s) =>
    s.name === step
      ? {
          ...s,
          run: () => {
            throw new InjectedStepFailure(step);
          },
          onError: () => 'compensate',
        }
      : s,
  );
}

/** A copy of the definition whose `run` and `compensate` each call the original twice in a row. */
export function deliverTwice(
  definition: SagaDefinition<unknown, Record<string, unknown>>,
): SagaDefinition<unknown, Record<string, unknown>> {
  return mapSteps(definition, (s) => ({
    ...s,
    run: async (ctx) => {
      await s.run(ctx);
      return s.run(ctx);
    },
    ...(s.compensate
      ? {
          compensate: async (ctx) => {
            await s.compensate!(ctx);
            await s.compensate!(ctx);
          },
        }
      : {}),
  }));
}

function mapSteps(
  definition: SagaDefinition<unknown, Record<string, unknown>>,
  fn: (s: StepDefinition) => StepDefinition,
): SagaDefinition<unknown, Record<string, unknown>> {
  const stages = definition.stages.map((stage) => stage.map(fn));
  return Object.freeze({ ...definition, stages, steps: stages.flat() });
}
