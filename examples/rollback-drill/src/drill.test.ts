/**
 * The rollback drill on the real brokers (Redis holds the journal, dedupe marks, saga log,
 * rollback progress and every service's state). Each run uses its own prefix for topics,
 * queues and keys.
 */
import { describe, expect, it } from 'vitest';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { expectedBadCharges, runDrill, type DrillResult } from './drill.js';

const redis = await probeService('redis');
const kafka = await probeService('kafka');
const rabbitmq = await probeService('rabbitmq');

function expectConverged(result: DrillResult, orders: number) {
  const bad = expectedBadCharges(orders);
  expect(result.load.good.placed + result.load.bad.placed).toBe(orders);
  expect(result.load.good.surprises).toEqual([]);
  expect(result.load.bad.surprises).toEqual([]);
  // Detected: each wrong charge is an inconsistent order, and inventory dead-lettered its v2 event.
  expect(result.detected.inconsistent).toHaveLength(bad);
  expect(result.deadLetters['inventory ← payment.charged v2: BT_ERR_SCHEMA_VERSION_UNKNOWN']).toBe(
    bad,
  );
  // Rolled back: every wrong charge reversed once and replayed once, nothing failed.
  expect(result.reversed).toBe(bad);
  expect(result.replayed).toBe(bad);
  expect(result.failed).toBe(0);
  expect(result.needsPerson).toEqual({ rollbackItems: 0, orders: [] });
  // Converged.
  expect(result.converged).toBe(true);
  expect(result.final.consistent).toBe(orders);
  expect(result.final.stockProblems).toEqual([]);
}

describe.skipIf(!redis.available || !rabbitmq.available)('rollback drill on RabbitMQ', () => {
  it('converges after the bad payments deploy is rolled back (200 orders)', async () => {
    const result = await runDrill({
      transport: 'rabbitmq',
      orders: 200,
      concurrency: 64,
      prefix: uniqueName('drill-rabbit'),
      convergeTimeoutMs: 30_000,
    });
    expectConverged(result, 200);
  }, 90_000);
});

describe.skipIf(!redis.available || !kafka.available)('rollback drill on Kafka', () => {
  it('converges after the bad payments deploy is rolled back (200 orders)', async () => {
    const result = await runDrill({
      transport: 'kafka',
      orders: 200,
      concurrency: 100,
      prefix: uniqueName('drill-kafka'),
      convergeTimeoutMs: 30_000,
    });
    expectConverged(result, 200);
  }, 120_000);
});
