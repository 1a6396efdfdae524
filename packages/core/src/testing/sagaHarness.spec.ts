import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineSaga } from '../saga/definition.js';
import { runSagaHarness } from './sagaHarness.js';

/** A fake world: a bank and a warehouse that key their effects by the caller's idempotency key. */
function world(idempotent: boolean) {
  let stock = 10;
  let balance = 100;
  const seen = new Set<string>();
  const once = (key: string, effect: () => void) => {
    if (idempotent && seen.has(key)) return;
    seen.add(key);
    effect();
  };
  return {
    reset: () => {
      stock = 10;
      balance = 100;
      seen.clear();
    },
    effects: () => ({ stock, balance }),
    reserve: (key: string, n: number) => once(key, () => (stock -= n)),
    release: (key: string, n: number) => once(key, () => (stock += n)),
    charge: (key: string, amount: number) => once(key, () => (balance -= amount)),
    refund: (key: string, amount: number) => once(key, () => (balance += amount)),
  };
}

function saga(w: ReturnType<typeof world>) {
  return defineSaga('harness-order', { input: z.object({ qty: z.number(), amount: z.number() }) })
    .step('reserve', {
      run: ({ input, idempotencyKey }) => (
        w.reserve(idempotencyKey, input.qty),
        { qty: input.qty }
      ),
      compensate: ({ result, idempotencyKey }) => w.release(idempotencyKey, result.qty),
    })
    .parallel('pay', {
      charge: {
        run: ({ input, idempotencyKey }) => (
          w.charge(idempotencyKey, input.amount),
          { amount: input.amount }
        ),
        compensate: ({ result, idempotencyKey }) =>
          w.refund(idempotencyKey, (result as { amount: number }).amount),
      },
      audit: { run: () => 'noted' },
    })
    .step('ship', { run: () => 'shipped', pivot: true })
    .build();
}

describe('runSagaHarness', () => {
  it('finds no difference for idempotent steps across every crash point and duplicate delivery', async () => {
    const w = world(true);
    const report = await runSagaHarness({
      definition: saga(w),
      input: { qty: 2, amount: 30 },
      reset: w.reset,
      effects: w.effects,
    });
    expect(report.failures).toEqual([]);
    expect(report.ok).toBe(true);
    // clean + crash points + twice, for no failure and for each of the 4 steps up to the pivot.
    expect(
      report.scenarios.filter((s) => s.name.endsWith('clean')).map((s) => s.expectedStatus),
    ).toEqual(['completed', 'compensated', 'compensated', 'compensated', 'compensated']);
    expect(report.scenarios.filter((s) => s.name.includes('crash@')).length).toBeGreaterThan(20);
  });

  it('reports the scenarios where non-idempotent steps apply an effect twice', async () => {
    const w = world(false);
    const report = await runSagaHarness({
      definition: saga(w),
      input: { qty: 2, amount: 30 },
      reset: w.reset,
      effects: w.effects,
    });
    expect(report.ok).toBe(false);
    const twice = report.failures.find((f) => f.name === 'fail=none twice');
    expect(twice).toMatchObject({
      expectedEffects: { stock: 8, balance: 70 },
      actualEffects: { stock: 6, balance: 40 },
    });
    // A crash after the charge but before its log write re-runs the charge on recovery.
    expect(report.failures.some((f) => f.name.startsWith('fail=none crash@'))).toBe(true);
  });
});
