import { describe, expect, it } from 'vitest';
import { runExample } from './example.js';
import { recordingStory } from './story.js';
import { createRuntime } from './infra/runtime.js';
import { startShop } from './system.js';
import { placeOrders } from './load.js';
import { checkConsistency } from './checker.js';
import { trace } from './trace.js';

describe('order-saga example on the in-memory transport', () => {
  it('tells a story of sagas completing and compensating, and the checker passes', async () => {
    const story = recordingStory();
    const output: string[] = [];
    const report = await runExample({ story, write: (l) => output.push(l) });

    expect(report.ok).toBe(true);
    expect(report.byStatus).toEqual({ confirmed: 2, cancelled: 3 });
    const ends = story.lines.filter((l) => l.service === 'orders' && l.mark !== 'start');
    expect(ends.map((l) => `${l.orderId} ${l.text}`)).toEqual([
      'o-1001 order confirmed',
      'o-1015 order cancelled (nothing to undo)',
      'o-1018 order cancelled, undid reserve-stock',
      'o-1099 order cancelled, undid charge-card and reserve-stock',
      'o-1002 order confirmed',
    ]);
    const compensations = story.lines.filter((l) => l.mark === 'undo').map((l) => l.text);
    expect(compensations).toEqual([
      'released 3 × red-kettle',
      'refunded €237.00',
      'released 6 × red-kettle',
    ]);
    expect(output.at(-1)).toMatch(/consistent: all 5 orders agree/);
  });

  it('places 100 orders with the expected mix of outcomes, all consistent', async () => {
    const runtime = await createRuntime({ transport: 'memory' });
    const shop = await startShop(runtime, { stockFor: 100 });
    try {
      const result = await placeOrders(shop.orders, { count: 100, concurrency: 16 });
      expect(result.surprises).toEqual([]);
      expect(result.byStatus).toEqual({ confirmed: 70, cancelled: 30 });
      const report = await checkConsistency(runtime.states);
      expect(report.inconsistent).toEqual([]);
      expect(report.ok).toBe(true);
    } finally {
      await shop.stop();
      await runtime.close();
    }
  }, 30_000);

  it('runs K consumers per service over 16 partitions, with the trace on, and stays consistent', async () => {
    const runtime = await createRuntime({
      transport: 'memory',
      partitions: 16,
      consumers: 4,
      lingerMs: 1,
    });
    const shop = await startShop(runtime, { stockFor: 100 });
    trace.reset();
    trace.enabled = true;
    try {
      const result = await placeOrders(shop.orders, { count: 100, concurrency: 32 });
      expect(result.surprises).toEqual([]);
      expect(result.byStatus).toEqual({ confirmed: 70, cancelled: 30 });
      const report = await checkConsistency(runtime.states);
      expect(report.inconsistent).toEqual([]);
      expect(report.ok).toBe(true);
      const hops = trace.summary();
      expect(hops['order']?.count).toBe(100);
      // 100 reserves, 85 charges (15 out of stock), 70 ships, and the compensations' releases.
      expect(hops['round trip reserve']?.count).toBe(100);
      expect(hops['handle inventory']?.count).toBeGreaterThanOrEqual(100);
      expect(hops['deliver payments']?.count).toBeGreaterThan(0);
    } finally {
      trace.enabled = false;
      trace.reset();
      await shop.stop();
      await runtime.close();
    }
  }, 30_000);
});
