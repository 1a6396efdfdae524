/**
 * OpenTelemetry across a real Kafka broker: the producer span's trace context travels as the
 * CloudEvents distributed-tracing extension (`ce_traceparent`), and the consumer span (batch path)
 * of the delivery and the handler's own span are in the same trace.
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
  formatTraceparent,
  handle,
} from '@backtrack/core';
import { kafkaBroker } from './broker.js';
import { makeTransport, readTopic, uniqueName, waitFor } from './helpers.js';
import { ATTR } from '@backtrack/core/adapter';

const broker = await kafkaBroker();
afterAll(() => broker.stop());

const OrderPlaced = defineEvent('order.placed').version(
  1,
  z.object({ orderId: z.string(), amountCents: z.int() }),
);

describe.skipIf(!broker.available)('Kafka telemetry', () => {
  const spans = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });

  beforeAll(() => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(provider);
  });
  afterAll(async () => {
    await provider.shutdown();
    trace.disable();
    context.disable();
  });

  it('one trace across publish, Kafka (ce_traceparent), consume and handler', async () => {
    const transport = makeTransport(broker.brokers);
    const topic = uniqueName('bt-otel');
    const tracer = trace.getTracer('test');
    const pipeline = createConsumerPipeline({
      name: uniqueName('otel'),
      handlers: [handle(OrderPlaced, () => tracer.startActiveSpan('charge', (s) => s.end()))],
    });
    try {
      await transport.ensureTopics({ topics: [topic], partitions: 1 });
      await transport.subscribe({
        topics: [topic],
        group: uniqueName('otel'),
        processor: pipeline,
      });
      const publisher = createPublisher(
        { service: 'orders', version: '1.0.0', topicFor: () => topic },
        { transport, journal: new InMemoryJournal(), registry: new EventRegistry([OrderPlaced]) },
      );
      const envelope = await tracer.startActiveSpan('http POST /orders', async (root) => {
        try {
          return await publisher.publish(
            OrderPlaced,
            { orderId: 'o-1', amountCents: 5 },
            { key: 'o-1' },
          );
        } finally {
          root.end();
        }
      });
      await waitFor(
        () => spans.getFinishedSpans().some((s) => s.name === 'charge'),
        'handler span',
      );
      const finished = spans.getFinishedSpans();
      const root = finished.find((s) => s.name === 'http POST /orders')!;
      const send = finished.find((s) => s.name === `send ${topic}`)!;
      const process = finished.find((s) => s.name === `process ${topic}`)!;
      const handler = finished.find((s) => s.name === 'charge')!;
      for (const s of [send, process, handler]) {
        expect(s.spanContext().traceId).toBe(root.spanContext().traceId);
      }
      expect(process.kind).toBe(SpanKind.CONSUMER);
      expect(process.parentSpanContext?.spanId).toBe(send.spanContext().spanId);
      expect(handler.parentSpanContext?.spanId).toBe(process.spanContext().spanId);
      expect(process.attributes).toMatchObject({
        [ATTR.MESSAGING_SYSTEM]: 'kafka',
        [ATTR.MESSAGING_DESTINATION]: topic,
        [ATTR.MESSAGING_MESSAGE_ID]: envelope.id,
        [ATTR.MESSAGING_PARTITION]: '0',
        [ATTR.DISPOSITION]: 'ack',
      });
      // On the wire: the CloudEvents Kafka binding's ce_ header.
      const [record] = await readTopic(broker.brokers, topic, 1);
      expect(record!.headers['ce_traceparent']).toBe(formatTraceparent(send.spanContext()));
    } finally {
      await transport.close();
    }
  });
});
