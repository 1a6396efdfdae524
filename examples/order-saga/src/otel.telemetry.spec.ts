/**
 * `--otel`: the example with the OpenTelemetry SDK and the Prometheus exporter. A scrape of
 * /metrics after the README story shows Backtrack's metrics, with their types, units and values.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExample } from './example.js';
import { parsePrometheus, startOtel, sumOf, type Otel } from './infra/otel.js';

/** A port nothing listens on now. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

let otel: Otel;
beforeAll(async () => {
  otel = await startOtel({ metricsPort: await freePort(), traces: 'none' });
});
afterAll(() => otel.shutdown());

describe('the order-saga example with --otel', () => {
  it('serves the Backtrack metrics on /metrics', async () => {
    const lines: string[] = [];
    const report = await runExample({ otel, write: (l) => lines.push(l) });
    expect(report.ok).toBe(true);

    const response = await fetch(otel.metricsUrl);
    expect(response.status).toBe(200);
    const text = await response.text();
    for (const [name, type, unit] of [
      ['backtrack_consumer_messages_total', 'counter', '{message}'],
      ['backtrack_consumer_process_duration', 'histogram', 's'],
      ['backtrack_publisher_messages_total', 'counter', '{message}'],
      ['backtrack_saga_started_total', 'counter', '{saga}'],
      ['backtrack_saga_ended_total', 'counter', '{saga}'],
      ['backtrack_saga_step_duration', 'histogram', 's'],
      ['backtrack_saga_stuck', 'gauge', '{saga}'],
      ['backtrack_publisher_journal_pending', 'gauge', '{record}'],
      ['backtrack_publisher_journal_lag', 'gauge', 's'],
    ]) {
      expect(text, name).toContain(`# TYPE ${name} ${type}`);
      expect(text, name).toContain(`# UNIT ${name} ${unit}`);
    }
    const samples = parsePrometheus(text);
    // The story: five orders, two confirmed and three cancelled (compensated), none stuck.
    expect(
      sumOf(samples, 'backtrack_saga_started_total', { backtrack_saga_name: 'place-order' }),
    ).toBe(5);
    expect(
      sumOf(samples, 'backtrack_saga_ended_total', { backtrack_saga_status: 'completed' }),
    ).toBe(2);
    expect(
      sumOf(samples, 'backtrack_saga_ended_total', { backtrack_saga_status: 'compensated' }),
    ).toBe(3);
    expect(samples.find((s) => s.name === 'backtrack_saga_stuck')?.value).toBe(0);
    expect(
      sumOf(samples, 'backtrack_consumer_messages_total', { backtrack_disposition: 'ack' }),
    ).toBeGreaterThan(0);
    expect(sumOf(samples, 'backtrack_consumer_dead_letters_total')).toBe(0);
    expect(
      sumOf(samples, 'backtrack_publisher_journal_pending', {
        backtrack_producer_service: 'orders',
      }),
    ).toBe(0);
    // And the example says so at its end.
    expect(lines.join('\n')).toMatch(/sagas started 5, completed 2, compensated 3, stuck now 0/);
  });
});
