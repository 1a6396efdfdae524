/**
 * OpenTelemetry across a real Kafka broker: the producer span's trace context travels as the
 * CloudEvents distributed-tracing extension (`ce_traceparent`), and the consumer span (batch path)
 * of the delivery and the handler's own span are in the same trace.
 */
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { context, metrics, trace, SpanKind } from '@opentelemetry/api';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  EventRegistry,
  InMemoryJournal,
  createConsumerPipeline,
  createPublisher,
  defineEvent,
  formatTraceparent,
  handle,
  METRICS,
} from '@backtrack/core';
import { monitorKafkaConsumerLag } from '@backtrack/kafka';
import { kafkaBroker } from './broker.js';
import {
  ACK,
  makeTransport,
  message,
  readTopic,
  recordingProcessor,
  uniqueName,
  waitFor,
} from './helpers.js';
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
  const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({
    exporter: metricExporter,
    exportIntervalMillis: 3_600_000,
  });
  const meterProvider = new MeterProvider({ readers: [reader] });

  beforeAll(() => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(provider);
    metrics.setGlobalMeterProvider(meterProvider);
  });
  afterAll(async () => {
    await provider.shutdown();
    await meterProvider.shutdown();
    trace.disable();
    metrics.disable();
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

  it('reports consumer lag per partition: committed offset against the high watermark', async () => {
    const transport = makeTransport(broker.brokers);
    const topic = uniqueName('bt-otel-lag');
    const group = uniqueName('otel18-lag');
    let lag: ReturnType<typeof monitorKafkaConsumerLag> | undefined;
    /** The gauge's value per partition, as the SDK's metric reader collects it. */
    const gauge = async (): Promise<Map<string, number>> => {
      await lag!.pollOnce();
      metricExporter.reset();
      await reader.forceFlush();
      const points =
        metricExporter
          .getMetrics()
          .flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics))
          .filter((m) => m.descriptor.name === METRICS.consumerLag.name)
          .at(-1)?.dataPoints ?? [];
      return new Map(
        points
          .filter((p) => p.attributes[ATTR.MESSAGING_CONSUMER_GROUP] === group)
          .map((p) => [String(p.attributes[ATTR.MESSAGING_PARTITION]), p.value as number]),
      );
    };
    try {
      await transport.ensureTopics({ topics: [topic], partitions: 2 });
      // After the topic exists: a metadata request for a missing topic may auto-create it.
      lag = monitorKafkaConsumerLag(transport, { group, topics: [topic], intervalMs: 60_000 });
      await transport.publish([
        ...[1, 2, 3].map((i) => ({ topic, key: 'a', message: message({ i }) })),
        ...[4, 5].map((i) => ({ topic, key: 'b', message: message({ i }) })),
      ]);
      // Nothing committed yet: everything published is lag. Polled until both partitions report:
      // a poll right after the topic's creation can find no offsets yet (seen once in CI).
      const before = await vi.waitFor(
        async () => {
          const points = await gauge();
          expect([...points.keys()].sort()).toEqual(['0', '1']);
          return points;
        },
        { timeout: 15_000, interval: 250 },
      );
      expect([...before.values()].reduce((a, b) => a + b, 0)).toBe(5);
      const points = metricExporter
        .getMetrics()
        .flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics))
        .find((m) => m.descriptor.name === METRICS.consumerLag.name)!;
      expect(points.descriptor.unit).toBe('{message}');
      expect(points.dataPoints[0]!.attributes).toMatchObject({
        [ATTR.MESSAGING_SYSTEM]: 'kafka',
        [ATTR.MESSAGING_DESTINATION]: topic,
      });

      const processor = recordingProcessor(() => ACK);
      await transport.subscribe({ topics: [topic], group, processor });
      await waitFor(() => processor.calls.length >= 5, 'the five messages consumed');
      await waitFor(
        async () => [...(await gauge()).values()].every((v) => v === 0),
        'lag back to 0 once committed',
      );
      expect((await gauge()).size).toBe(2);
    } finally {
      await lag?.stop();
      await transport.close();
      const admin = transport.admin();
      await admin.connect();
      await admin.deleteTopics([topic]).catch(() => undefined);
      await admin.disconnect();
    }
  });
});
