/**
 * The check shared by the telemetry tests of the example (in memory: telemetry.spec.ts; on the
 * brokers: telemetry.test.ts): one order saga across four services is one trace.
 */
import { SpanKind, trace } from '@opentelemetry/api';
import type { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { ATTR } from '@backtrack/core/adapter';
import { expect } from 'vitest';
import { orderSpec } from './catalog.js';
import { createRuntime, type TransportKind } from './infra/runtime.js';
import { startShop } from './system.js';

/**
 * Places one order that goes through on `transport` inside a request span and checks that the
 * whole saga, across the four services, is one trace (the SDK with `spans` must be installed).
 */
export async function expectOneTraceAcrossServices(
  spans: InMemorySpanExporter,
  transport: TransportKind,
  prefix: string,
): Promise<void> {
  const runtime = await createRuntime({ transport, prefix });
  const shop = await startShop(runtime, {
    stockFor: 10,
    // On a broker a step must not time out and ask again while the groups settle.
    replyTimeoutMs: transport === 'memory' ? 5_000 : 30_000,
  });
  spans.reset();
  const { order, expected } = orderSpec(0);
  expect(expected).toBe('confirmed');
  try {
    const root = await trace.getTracer('test').startActiveSpan('POST /orders', async (span) => {
      const placed = await shop.orders.place(order);
      expect(placed.status).toBe('confirmed');
      span.end();
      return span;
    });
    const traceId = root.spanContext().traceId;
    // The saga resumes from inside the last reply's handler: its consumer span ends just after.
    const isLast = (s: { attributes: Record<string, unknown> }) =>
      s.attributes[ATTR.CLOUDEVENTS_TYPE] === 'shipping.shipped' &&
      s.attributes[ATTR.DISPOSITION] !== undefined;
    // A service's consumer span ends once its batch's done marks are written, which can be after
    // the orders service handled the reply it published: wait for those spans too.
    const settled = () => {
      const done = spans.getFinishedSpans();
      const consumers = new Set(
        done.filter((s) => s.kind === SpanKind.CONSUMER).map((s) => s.spanContext().spanId),
      );
      const replies = done.filter(
        (s) => s.kind === SpanKind.PRODUCER && consumers.has(s.parentSpanContext?.spanId ?? ''),
      );
      return done.some(isLast) && replies.length >= 3;
    };
    for (let i = 0; i < 500 && !settled(); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const finished = spans.getFinishedSpans();
    const sends = finished.filter((s) => s.kind === SpanKind.PRODUCER);
    const processes = finished.filter((s) => s.kind === SpanKind.CONSUMER);
    // Three commands (reserve, charge, ship) and three replies.
    expect(sends).toHaveLength(6);
    // Each command to its receiver's topic, the replies to orders' topic, payment.charged (read by
    // orders and inventory) to payments' own (see infra/topics.ts).
    expect(new Set(sends.map((s) => s.attributes[ATTR.MESSAGING_DESTINATION]))).toEqual(
      new Set([
        ...['inventory', 'payments', 'shipping', 'orders'].map((s) => `${prefix}.to.${s}`),
        `${prefix}.payments`,
      ]),
    );
    // Every consumer span (each service's consumer group) and every span of the run: one trace.
    const groups = new Set(processes.map((s) => s.attributes[ATTR.CONSUMER]));
    expect(groups.size).toBeGreaterThanOrEqual(4);
    for (const s of finished) expect(s.spanContext().traceId, s.name).toBe(traceId);
    // Each consumer span is the child of the producer span of the message it processed.
    const sendIds = new Set(sends.map((s) => s.spanContext().spanId));
    for (const p of processes) expect(sendIds.has(p.parentSpanContext!.spanId), p.name).toBe(true);
    // The replies are published inside the services' consumer spans: the chain goes through them.
    const processIds = new Set(processes.map((s) => s.spanContext().spanId));
    const replies = sends.filter((s) => processIds.has(s.parentSpanContext?.spanId ?? ''));
    expect(replies).toHaveLength(3);
    // The last handler: the orders service's consumer span of the shipping reply.
    const last = processes.find(isLast);
    expect(last?.attributes[ATTR.DISPOSITION]).toBe('ack');
    expect(last?.attributes[ATTR.CONSUMER]).toMatch(/orders/);
    const saga = finished.find((s) => s.name === 'saga place-order')!;
    expect(saga.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(saga.attributes[ATTR.SAGA_STATUS]).toBe('completed');
  } finally {
    await shop.stop();
    await runtime.destroy();
    await runtime.close();
  }
}
