/**
 * The drill with `--otel` reads the bad deploy's signals from the Prometheus endpoint: the
 * dead-letter rate (inventory cannot read payment.charged v2) and the stuck-saga gauge.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOtel, type Otel } from '../../order-saga/src/infra/otel.js';
import { expectedBadCharges, runDrill } from './drill.js';

let otel: Otel;
beforeAll(async () => {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  otel = await startOtel({ metricsPort: port, traces: 'none' });
});
afterAll(() => otel.shutdown());

describe('rollback drill with --otel', () => {
  it('detects the bad deploy from the metrics: dead-letter rate by reason, stuck sagas', async () => {
    const orders = 100;
    const result = await runDrill({ transport: 'memory', orders, concurrency: 32, otel });
    expect(result.converged).toBe(true);
    const signals = result.signals!;
    const bad = expectedBadCharges(orders);
    expect(signals.metricsUrl).toBe(otel.metricsUrl);
    // Every wrong charge's payment.charged v2 was dead-lettered by inventory: the same number the
    // drill's own log counter saw.
    expect(signals.deadLettersBy).toEqual({
      'inventory ← payment.charged: unknown-version': bad,
    });
    expect(signals.deadLetters).toBe(bad);
    expect(
      result.deadLetters['inventory ← payment.charged v2: BT_ERR_SCHEMA_VERSION_UNKNOWN'],
    ).toBe(bad);
    expect(signals.deadLetterRate).toBeCloseTo(bad / signals.messages, 10);
    expect(signals.deadLetterRate).toBeGreaterThan(0);
    expect(signals.stuckSagas).toBe(0);
    expect(signals.sagasEnded.completed! + signals.sagasEnded.compensated!).toBe(
      orders - Math.max(1, Math.floor(orders * 0.3)),
    );
  }, 60_000);
});
