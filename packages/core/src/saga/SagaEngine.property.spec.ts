/**
 * Property-based test of the saga invariants: random sagas (sequential steps, parallel groups,
 * an optional pivot), random failures (a step fails N times, a compensation fails N times, an
 * error policy of `fail`) and a "crash" at a random log write, followed by recover() on a new
 * engine over the same store. Whatever happens, the saga must end completed, compensated, failed
 * or stuck, with every completed step compensated at most once (exactly once when compensated)
 * and compensations in reverse order of completion.
 */
import fc from 'fast-check';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CrashingSagaStore, SimulatedCrash } from '../testing/CrashingSagaStore.js';
import { defineSaga, type SagaBuilder, type StepOptions } from './definition.js';
import { InMemorySagaStore } from './InMemorySagaStore.js';
import { createSagaEngine, DEFAULT_SAGA_ENGINE_OPTIONS } from './SagaEngine.js';
import { SagaStatus, StepStatus } from './SagaStore.js';

interface StepSpec {
  runFailures: number;
  runAttempts: number;
  failPolicy: boolean;
  hasCompensation: boolean;
  compFailures: number;
  compAttempts: number;
}

const stepSpec = fc.record({
  runFailures: fc.nat({ max: 3 }),
  runAttempts: fc.integer({ min: 1, max: 3 }),
  failPolicy: fc.boolean().map((b) => b && Math.random() < 0.3),
  hasCompensation: fc.boolean().map((b) => b || Math.random() < 0.7),
  compFailures: fc.nat({ max: 4 }),
  compAttempts: fc.integer({ min: 1, max: 3 }),
});

const sagaSpec = fc.record({
  stages: fc.array(fc.array(stepSpec, { minLength: 1, maxLength: 3 }), {
    minLength: 1,
    maxLength: 5,
  }),
  pivotStage: fc.option(fc.nat({ max: 4 }), { nil: undefined }),
  crashAt: fc.option(fc.integer({ min: 1, max: 40 }), { nil: undefined }),
});

const logger = pino({ level: 'silent' });

describe('saga engine properties', () => {
  it('holds the invariants under random failures and a crash at a random log write', async () => {
    await fc.assert(
      fc.asyncProperty(sagaSpec, async ({ stages, pivotStage, crashAt }) => {
        // The world: effects keyed by idempotency key (as a careful user writes them), plus raw call logs.
        const applied = new Set<string>();
        const compensationEffects: string[] = [];
        const runCalls = new Map<string, number>();
        const compCalls = new Map<string, number>();
        const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

        // Single-step stages only can be a pivot; steps from the pivot on have no compensation.
        const pivot =
          pivotStage !== undefined && pivotStage < stages.length && stages[pivotStage]!.length === 1
            ? pivotStage
            : undefined;
        const stepOptions = (
          name: string,
          spec: StepSpec,
          stageIndex: number,
        ): StepOptions<unknown, Record<never, never>, unknown> => {
          const compensable = spec.hasCompensation && (pivot === undefined || stageIndex < pivot);
          return {
            run: ({ idempotencyKey }) => {
              bump(runCalls, name);
              if ((runCalls.get(name) ?? 0) <= spec.runFailures) throw new Error(`${name} fails`);
              applied.add(idempotencyKey);
              return name;
            },
            retry: { attempts: spec.runAttempts, initialDelayMs: 0, maxDelayMs: 0 },
            ...(spec.failPolicy ? { onError: () => 'fail' as const } : {}),
            ...(compensable
              ? {
                  compensate: ({ idempotencyKey }) => {
                    bump(compCalls, name);
                    if ((compCalls.get(name) ?? 0) <= spec.compFailures)
                      throw new Error(`${name} undo fails`);
                    if (!applied.has(idempotencyKey)) compensationEffects.push(name);
                    applied.add(idempotencyKey);
                  },
                  compensationRetry: {
                    attempts: spec.compAttempts,
                    initialDelayMs: 0,
                    maxDelayMs: 0,
                  },
                }
              : {}),
            ...(stageIndex === pivot ? { pivot: true } : {}),
          };
        };

        // Step names are generated: the builder's result types stay untyped (string-keyed).
        let builder: SagaBuilder<unknown, Record<never, never>> = defineSaga('prop', {
          input: z.unknown(),
        });
        const stageOf = new Map<string, number>();
        stages.forEach((stage, i) => {
          if (stage.length === 1) {
            const name = `s${i}`;
            stageOf.set(name, i);
            builder = builder.step(name, stepOptions(name, stage[0]!, i));
          } else {
            const group = Object.fromEntries(
              stage.map((spec, j) => {
                stageOf.set(`s${i}_${j}`, i);
                return [`s${i}_${j}`, stepOptions(`s${i}_${j}`, spec, i)];
              }),
            );
            builder = builder.parallel(`g${i}`, group);
          }
        });
        const definition = builder.build();

        const base = new InMemorySagaStore();
        const first = createSagaEngine(
          {},
          { store: new CrashingSagaStore(base, crashAt), logger, sleep: async () => {} },
        );
        try {
          await first.start(definition, {}, { sagaId: 'p' });
        } catch (error) {
          if (!(error instanceof SimulatedCrash)) throw error;
        }
        await first.idle();
        // A new process recovers once the crashed one's ownership lease expired.
        const afterLease = () => Date.now() + DEFAULT_SAGA_ENGINE_OPTIONS.leaseMs + 1;
        const second = createSagaEngine(
          {},
          { store: base, logger, sleep: async () => {}, now: afterLease },
        ).register(definition);
        await second.recover();
        const record = (await base.get('p'))!;

        // 1. Ends in a known state; never silently half-done.
        expect([
          SagaStatus.Completed,
          SagaStatus.Compensated,
          SagaStatus.Failed,
          SagaStatus.Stuck,
        ]).toContain(record.status);
        // 2. Each step's effect applied at most once; each compensation's effect at most once.
        expect(new Set(compensationEffects).size).toBe(compensationEffects.length);
        expect(new Set(record.compensationOrder).size).toBe(record.compensationOrder.length);
        expect(new Set(record.completionOrder).size).toBe(record.completionOrder.length);
        const compensable = definition.steps.filter((s) => s.compensate).map((s) => s.name);
        // 3. A compensated saga compensated exactly the completed compensable steps, once each.
        if (record.status === SagaStatus.Compensated) {
          const expected = record.completionOrder.filter((n) => compensable.includes(n));
          expect([...record.compensationOrder].sort()).toEqual([...expected].sort());
          expect([...compensationEffects].sort()).toEqual([...expected].sort());
          for (const n of expected) expect(record.steps[n]!.status).toBe(StepStatus.Compensated);
        }
        if (record.status === SagaStatus.Completed) {
          expect(record.compensationOrder).toEqual([]);
          expect(record.completionOrder.length).toBe(definition.steps.length);
        }
        // 4. Compensations ran in reverse order of completion (stages; a group's steps together).
        const stages_ = record.compensationOrder.map((n) => stageOf.get(n)!);
        for (let i = 1; i < stages_.length; i++)
          expect(stages_[i]!).toBeLessThanOrEqual(stages_[i - 1]!);
        // 5. Every step whose effect was applied is completed in the log (nothing applied and forgotten).
        for (const s of definition.steps) {
          if (applied.has(`p:${s.name}:run`)) {
            expect(record.completionOrder).toContain(s.name);
          }
        }
        // 6. A stuck saga says why, and which step.
        if (record.status === SagaStatus.Stuck) {
          expect(record.stuck?.steps.length).toBeGreaterThan(0);
          expect(record.stuck?.errors.length).toBe(record.stuck?.steps.length);
        }
      }),
      { numRuns: 300 },
    );
    // 300 runs take ~3 s alone and 6+ s on a loaded 2-core machine: not a speed check.
  }, 60_000);
});
