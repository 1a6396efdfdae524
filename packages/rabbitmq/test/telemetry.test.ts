/**
 * OpenTelemetry across a real RabbitMQ broker: the producer span's trace context travels as the
 * CloudEvents distributed-tracing extension (`cloudEvents_traceparent`), and every delivery of the
 * message (the first one that fails, the retry that succeeds) is a consumer span in the same trace.
 */
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { context, trace, SpanKind } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  EventRegistry,
  InMemoryJournal,
  createConsumerPipeline,
  createPublisher,
  defineEvent,
  handle,
} from '@backtrack/core';
import type { RabbitTransport } from '@backtrack/rabbitmq';
import { probeService } from '../../../test/support/services.js';
import { BrokerProbe, declaredNames, openTransport, uniqueName, waitFor } from './support.js';
import { ATTR } from '@backtrack/core/adapter';

const rabbit = await probeService('rabbitmq');

const OrderPlaced = defineEvent('order.placed').version(
  1,
  z.object({ orderId: z.string(), amountCents: z.int() }),
);

describe.skipIf(!rabbit.available)('RabbitMQ telemetry', () => {
  const spans = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  let transport: RabbitTransport;
  let probe: BrokerProbe;

  beforeAll(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(provider);
    transport = await openTransport(rabbit.url);
    probe = await BrokerProbe.open(rabbit.url);
  });
  afterAll(async () => {
    const names = declaredNames(transport);
    await transport?.close();
    await probe?.remove(names.queues, names.exchanges);
    await probe?.close();
    await provider.shutdown();
    trace.disable();
    context.disable();
  });

  it('one trace across publish, RabbitMQ, a failed delivery, its retry and the handler', async () => {
    const exchange = uniqueName('bt-otel');
    const tracer = trace.getTracer('test');
    const attempts: number[] = [];
    const pipeline = createConsumerPipeline({
      name: 'otel-billing',
      retry: { attempts: 3, initialDelayMs: 1 },
      handlers: [
        handle(OrderPlaced, ({ attempt }) => {
          attempts.push(attempt);
          tracer.startActiveSpan('charge card', (span) => span.end());
          if (attempt === 1) throw new Error('card service timeout');
        }),
      ],
    });
    await transport.subscribe({
      topics: [exchange],
      group: uniqueName('bt-otel'),
      processor: pipeline,
    });
    const publisher = createPublisher(
      { service: 'orders', version: '1.0.0', topicFor: () => exchange },
      { transport, journal: new InMemoryJournal(), registry: new EventRegistry([OrderPlaced]) },
    );
    const envelope = await tracer.startActiveSpan('http POST /orders', async (root) => {
      try {
        return await publisher.publish(OrderPlaced, { orderId: 'o-1', amountCents: 5 });
      } finally {
        root.end();
      }
    });
    await waitFor(
      'two consumer spans',
      () => spans.getFinishedSpans().filter((s) => s.name === `process ${exchange}`).length === 2,
      20_000,
    );
    expect(attempts).toEqual([1, 2]);

    const finished = spans.getFinishedSpans();
    const root = finished.find((s) => s.name === 'http POST /orders')!;
    const send = finished.find((s) => s.name === `send ${exchange}`)!;
    const processes = finished
      .filter((s) => s.name === `process ${exchange}`)
      .sort(
        (a, b) =>
          Number(a.attributes[ATTR.DELIVERY_ATTEMPT]) - Number(b.attributes[ATTR.DELIVERY_ATTEMPT]),
      );
    const handlers = finished.filter((s) => s.name === 'charge card');
    const traceId = root.spanContext().traceId;
    for (const s of [send, ...processes, ...handlers])
      expect(s.spanContext().traceId).toBe(traceId);
    expect(send.attributes[ATTR.MESSAGING_SYSTEM]).toBe('rabbitmq');
    for (const p of processes) {
      expect(p.kind).toBe(SpanKind.CONSUMER);
      expect(p.parentSpanContext?.spanId).toBe(send.spanContext().spanId);
      expect(p.attributes[ATTR.MESSAGING_MESSAGE_ID]).toBe(envelope.id);
      expect(p.attributes[ATTR.MESSAGING_SYSTEM]).toBe('rabbitmq');
    }
    expect(processes.map((p) => p.attributes[ATTR.DISPOSITION])).toEqual(['retry', 'ack']);
    expect(handlers.map((h) => h.parentSpanContext?.spanId).sort()).toEqual(
      processes.map((p) => p.spanContext().spanId).sort(),
    );
  });
});
