import { describe, expect, it } from 'vitest';
import { expectedBadCharges, runDrill } from './drill.js';

describe('rollback drill on the in-memory transport', () => {
  it('detects the bad payments deploy, reverses and replays its effects, and converges', async () => {
    let phase = '';
    const progress: Record<string, [number, number][]> = {};
    const result = await runDrill({
      transport: 'memory',
      orders: 60,
      concurrency: 16,
      onPhase: (next) => {
        phase = next;
      },
      onProgress: (done, total) => (progress[phase] ??= []).push([done, total]),
    });

    // 18 orders before the bad deploy, 42 during it; those of them that go through are charged
    // 100x and their payment.charged v2 never reaches inventory.
    const badCharges = expectedBadCharges(60);
    expect(badCharges).toBe(28);
    expect(result.load.bad.byStatus.confirmed).toBe(badCharges);
    expect(result.deadLetters).toEqual({
      'inventory ← payment.charged v2: BT_ERR_SCHEMA_VERSION_UNKNOWN': badCharges,
    });
    expect(result.load.good.placed + result.load.bad.placed).toBe(60);
    expect(result.detected.ok).toBe(false);
    expect(result.detected.inconsistent).toHaveLength(badCharges);
    expect(result.detected.inconsistent[0]!.problems).toEqual([
      expect.stringMatching(/^stock: expected \d × [a-z-]+ sold, found \d reserved$/),
      expect.stringMatching(/^payment: expected €[\d.]+ kept, found €[\d.]+$/),
    ]);
    expect(result.reversed).toBe(badCharges);
    expect(result.replayed).toBe(badCharges);
    expect(result.failed).toBe(0);
    expect(result.needsPerson).toEqual({ rollbackItems: 0, orders: [] });
    expect(result.converged).toBe(true);
    expect(result.final.consistent).toBe(60);

    // The rollback phase's progress counts what the runs count (items, sagas, skipped effects,
    // items for a person): never more done than its total, and all of it done at the end.
    const rollback = progress['compensating and replaying'] ?? [];
    expect(rollback.length).toBeGreaterThan(0);
    for (const [done, total] of rollback) expect(done).toBeLessThanOrEqual(total);
    expect(rollback.at(-1)![0]).toBe(rollback.at(-1)![1]);
  }, 60_000);
});
