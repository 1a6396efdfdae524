/**
 * OpenTelemetry across a real RabbitMQ broker: the producer span's trace context travels as the
 * CloudEvents distributed-tracing extension (`cloudEvents_traceparent`), and every delivery of the
 * message (the first one that fails, the retry that succeeds) is a consumer span in the same trace.
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
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  EventRegistry,
  InMemoryJournal,
  createConsumerPipeline,
  createPublisher,
  defineEvent,
  handle,
  METRICS,
} from '@backtrack/core';
import { monitorRabbitQueueLag, type RabbitTransport } from '@backtrack/rabbitmq';
import { probeService } from '../../../test/support/services.js';
import {
  BrokerProbe,
  declaredNames,
  eventMessage,
  openTransport,
  RecordingProcessor,
  uniqueName,
  waitFor,
} from './support.js';
import { ATTR } from '@backtrack/core/adapter';

const rabbit = await probeService('rabbitmq');

const OrderPlaced = defineEvent('order.placed').version(
  1,
  z.object({ orderId: z.string(), amountCents: z.int() }),
);

describe.skipIf(!rabbit.available)('RabbitMQ telemetry', () => {
  const spans = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({
    exporter: metricExporter,
    exportIntervalMillis: 3_600_000,
  });
  const meterProvider = new MeterProvider({ readers: [reader] });
  let transport: RabbitTransport;
  let probe: BrokerProbe;

  beforeAll(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(provider);
    metrics.setGlobalMeterProvider(meterProvider);
    transport = await openTransport(rabbit.url);
    probe = await BrokerProbe.open(rabbit.url);
  });
  afterAll(async () => {
    const names = declaredNames(transport);
    await transport?.close();
    await probe?.remove(names.queues, names.exchanges);
    await probe?.close();
    await provider.shutdown();
    await meterProvider.shutdown();
    trace.disable();
    metrics.disable();
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

  it('reports queue depth as consumer lag (checkQueue), the dead-letter queue included', async () => {
    const exchange = uniqueName('bt-otel-lag');
    const queue = uniqueName('otel18-lag');
    const dlq = `${queue}.dlq`;
    const missing = uniqueName('otel18-missing');
    const lag = monitorRabbitQueueLag(transport, {
      queues: [queue, dlq, missing],
      intervalMs: 60_000,
    });
    /** The gauge's value per queue, as the SDK's metric reader collects it. */
    const gauge = async (): Promise<Map<string, number>> => {
      await lag.pollOnce();
      metricExporter.reset();
      await reader.forceFlush();
      const metric = metricExporter
        .getMetrics()
        .flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics))
        .findLast((m) => m.descriptor.name === METRICS.consumerLag.name);
      expect(metric?.descriptor.unit).toBe('{message}');
      return new Map(
        (metric?.dataPoints ?? [])
          .filter((p) => p.attributes[ATTR.MESSAGING_SYSTEM] === 'rabbitmq')
          .map((p) => [String(p.attributes[ATTR.MESSAGING_DESTINATION]), p.value as number]),
      );
    };
    try {
      // Declare the queue, then stop consuming: what is published now waits in the queue.
      const idle = await transport.subscribe({
        topics: [exchange],
        group: queue,
        processor: new RecordingProcessor(),
      });
      await idle.close();
      await transport.publish(
        [1, 2, 3].map((i) => ({ topic: exchange, message: eventMessage('order.placed', { i }) })),
      );
      await waitFor('three messages ready', async () => (await gauge()).get(queue) === 3);
      const before = await gauge();
      expect(before.get(dlq)).toBe(0);
      expect(before.has(missing)).toBe(false);

      const processor = new RecordingProcessor(() => ({
        kind: 'dead-letter',
        reason: 'bad',
        code: 'BT_ERR_TEST_BAD',
      }));
      await transport.subscribe({ topics: [exchange], group: queue, processor });
      await waitFor('queue drained into the dead-letter queue', async () => {
        const now = await gauge();
        return now.get(queue) === 0 && now.get(dlq) === 3;
      });
    } finally {
      lag.stop();
    }
  });
});
