import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { context, metrics, trace, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type DataPoint,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { handle } from '../consumer/middleware.js';
import { createConsumerPipeline } from '../consumer/pipeline.js';
import type { IncomingMessage } from '../consumer/processor.js';
import { InMemoryDedupeStore } from '../dedupe/InMemoryDedupeStore.js';
import { encodeEnvelope } from '../envelope/codec.js';
import { InMemoryJournal } from '../journal/InMemoryJournal.js';
import { createPublisher } from '../publisher/Publisher.js';
import { defineSaga } from '../saga/definition.js';
import { InMemorySagaStore } from '../saga/InMemorySagaStore.js';
import { createSagaEngine } from '../saga/SagaEngine.js';
import { CrashingSagaStore } from '../testing/CrashingSagaStore.js';
import { defineEvent } from '../schema/defineEvent.js';
import { EventRegistry } from '../schema/EventRegistry.js';
import { InMemoryTransport } from '../transport/InMemoryTransport.js';
import { defineCompensations, emit } from '../rollback/compensations.js';
import { InMemoryRollbackProgressStore } from '../rollback/InMemoryRollbackProgressStore.js';
import { planRollback } from '../rollback/plan.js';
import { runRollback } from '../rollback/run.js';
import { ATTR } from './names.js';
import {
  extractTraceContext,
  formatTraceparent,
  instrumentSagaEngine,
  METRICS,
  monitorJournalLag,
  parseTraceparent,
} from './index.js';

const OrderPlaced = defineEvent('order.placed').version(
  1,
  z.object({ orderId: z.string(), amountCents: z.int() }),
);
const registry = new EventRegistry([OrderPlaced]);
const silent = pino({ level: 'silent' });

const spans = new InMemorySpanExporter();
const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({
  exporter: metricExporter,
  exportIntervalMillis: 3_600_000,
});
const tracerProvider = new BasicTracerProvider({
  spanProcessors: [new SimpleSpanProcessor(spans)],
});
const meterProvider = new MeterProvider({ readers: [reader] });

beforeAll(() => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(tracerProvider);
  metrics.setGlobalMeterProvider(meterProvider);
});
afterAll(async () => {
  await meterProvider.shutdown();
  await tracerProvider.shutdown();
  trace.disable();
  metrics.disable();
  context.disable();
});
beforeEach(() => spans.reset());

const byName = (name: string) => spans.getFinishedSpans().filter((s) => s.name === name);
const one = (name: string): ReadableSpan => {
  const found = byName(name);
  expect(found, name).toHaveLength(1);
  return found[0]!;
};

/** The data points of one metric, after a collection. */
async function points(name: string): Promise<DataPoint<unknown>[]> {
  metricExporter.reset();
  await reader.forceFlush();
  const all = metricExporter
    .getMetrics()
    .flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics))
    .filter((m) => m.descriptor.name === name);
  return all.at(-1)?.dataPoints ?? [];
}
const valueOf = (dps: DataPoint<unknown>[], attrs: Record<string, unknown>): unknown =>
  dps.find((dp) => Object.entries(attrs).every(([k, v]) => dp.attributes[k] === v))?.value;

describe('trace context as the CloudEvents distributed tracing extension', () => {
  it('formats and parses W3C traceparent, rejecting malformed values', () => {
    const sc = parseTraceparent(
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      'vendor=abc',
    );
    expect(sc).toMatchObject({
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      spanId: '00f067aa0ba902b7',
      traceFlags: 1,
      isRemote: true,
    });
    expect(sc?.traceState?.get('vendor')).toBe('abc');
    expect(formatTraceparent(sc!)).toBe('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    for (const bad of [
      undefined,
      42,
      'garbage',
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
      'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra',
    ]) {
      expect(parseTraceparent(bad), String(bad)).toBeUndefined();
    }
    expect(extractTraceContext({ id: 'x' })).toBeUndefined();
  });
});

describe('publish → InMemoryTransport → consume → handler', () => {
  it('is one trace: producer span, consumer span child of it, handler span child of that', async () => {
    const transport = new InMemoryTransport();
    const publisher = createPublisher(
      { service: 'orders', version: '1.0.0', topicFor: () => 'orders.events' },
      { transport, journal: new InMemoryJournal(), registry, logger: silent },
    );
    const tracer = trace.getTracer('test');
    const pipeline = createConsumerPipeline(
      {
        name: 'billing',
        handlers: [
          handle(OrderPlaced, () => tracer.startActiveSpan('charge card', (span) => span.end())),
        ],
      },
      { logger: silent },
    );
    await transport.subscribe({ topics: ['orders.events'], group: 'billing', processor: pipeline });
    const envelope = await tracer.startActiveSpan('http POST /orders', async (root) => {
      try {
        return await publisher.publish(OrderPlaced, { orderId: 'o-1', amountCents: 5 });
      } finally {
        root.end();
      }
    });
    await transport.idle();

    const root = one('http POST /orders');
    const send = one('send orders.events');
    const process = one('process orders.events');
    const handler = one('charge card');
    const traceId = root.spanContext().traceId;
    for (const s of [send, process, handler]) expect(s.spanContext().traceId).toBe(traceId);
    expect(send.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(process.parentSpanContext?.spanId).toBe(send.spanContext().spanId);
    expect(handler.parentSpanContext?.spanId).toBe(process.spanContext().spanId);

    expect(send.kind).toBe(SpanKind.PRODUCER);
    expect(send.attributes).toMatchObject({
      [ATTR.MESSAGING_SYSTEM]: 'in-memory',
      [ATTR.MESSAGING_DESTINATION]: 'orders.events',
      [ATTR.MESSAGING_OPERATION_TYPE]: 'send',
      [ATTR.MESSAGING_MESSAGE_ID]: envelope.id,
      [ATTR.CLOUDEVENTS_TYPE]: 'order.placed',
    });
    expect(process.kind).toBe(SpanKind.CONSUMER);
    expect(process.attributes).toMatchObject({
      [ATTR.MESSAGING_SYSTEM]: 'in-memory',
      [ATTR.MESSAGING_DESTINATION]: 'orders.events',
      [ATTR.MESSAGING_OPERATION_TYPE]: 'process',
      [ATTR.MESSAGING_MESSAGE_ID]: envelope.id,
      [ATTR.MESSAGING_CONSUMER_GROUP]: 'billing',
      [ATTR.DISPOSITION]: 'ack',
      [ATTR.PRODUCER_SERVICE]: 'orders',
    });
    // The wire carries the extension attribute, and the envelope keeps it.
    const [published] = transport.published('orders.events');
    expect(published!.message.headers['traceparent']).toBe(formatTraceparent(send.spanContext()));
    expect(envelope.extensions?.['traceparent']).toBe(formatTraceparent(send.spanContext()));
  });

  it('links a structured-mode message (trace context only inside the body)', async () => {
    const pipeline = createConsumerPipeline(
      { name: 'c', handlers: [handle(OrderPlaced, () => undefined)] },
      { logger: silent },
    );
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const message = encodeEnvelope(
      OrderPlaced.envelope(
        { orderId: 'o', amountCents: 1 },
        { source: '//s', extensions: { traceparent } },
      ),
      { mode: 'structured' },
    );
    // A structured-mode producer that does not copy attributes into headers.
    delete message.headers['traceparent'];
    await pipeline.process(incoming(message));
    const span = one('process t');
    expect(span.links.map((l) => l.context.spanId)).toEqual(['00f067aa0ba902b7']);
  });
});

function incoming(message: ReturnType<typeof encodeEnvelope>, attempt = 1): IncomingMessage {
  return {
    message,
    attempt,
    origin: { transport: 'test', topic: 't', group: 'g' },
  };
}

describe('metrics after a scripted run', () => {
  it('counts dispositions, duplicates, dead letters by reason, retries; sagas by status and stuck', async () => {
    let failOnce = true;
    const pipeline = createConsumerPipeline(
      {
        name: 'metrics-consumer',
        retry: { attempts: 3, initialDelayMs: 1 },
        handlers: [
          handle(OrderPlaced, ({ data }) => {
            if (data.orderId === 'flaky' && failOnce) {
              failOnce = false;
              throw new Error('db timeout');
            }
          }),
        ],
      },
      { logger: silent, dedupeStore: new InMemoryDedupeStore() },
    );
    const good = encodeEnvelope(
      OrderPlaced.envelope({ orderId: 'o-1', amountCents: 1 }, { source: '//s', id: 'm-1' }),
    );
    const flaky = encodeEnvelope(
      OrderPlaced.envelope({ orderId: 'flaky', amountCents: 1 }, { source: '//s', id: 'm-2' }),
    );
    const junk = {
      headers: { 'content-type': 'application/cloudevents+json' },
      body: new TextEncoder().encode('{not json'),
    };

    expect((await pipeline.process(incoming(good))).kind).toBe('ack');
    expect(await pipeline.process(incoming(good))).toEqual({ kind: 'ack', outcome: 'duplicate' });
    expect((await pipeline.process(incoming(flaky))).kind).toBe('retry');
    expect((await pipeline.process(incoming(flaky, 2))).kind).toBe('ack');
    expect((await pipeline.process(incoming(junk))).kind).toBe('dead-letter');

    // A saga that gets stuck, and one that completes.
    const engine = createSagaEngine(
      {},
      { store: new InMemorySagaStore(), logger: silent, sleep: async () => {} },
    );
    const detach = instrumentSagaEngine(engine);
    const stuckSaga = defineSaga('ship', { input: z.object({}) })
      .step('pack', { run: () => 1, compensate: () => undefined })
      .step('send', { run: () => 1, pivot: true })
      .step('notify', {
        run: () => Promise.reject(new Error('mail down')),
        retry: { attempts: 2 },
      })
      .build();
    expect((await engine.start(stuckSaga, {}, { sagaId: 'stuck-1' })).status).toBe('stuck');
    const okSaga = defineSaga('quick', { input: z.object({}) })
      .step('only', { run: () => 1 })
      .build();
    expect((await engine.start(okSaga, {}, { sagaId: 'ok-1' })).status).toBe('completed');

    const c = { [ATTR.CONSUMER]: 'metrics-consumer' };
    const messages = await points(METRICS.consumerMessages.name);
    expect(valueOf(messages, { ...c, [ATTR.DISPOSITION]: 'ack' })).toBe(2);
    expect(valueOf(messages, { ...c, [ATTR.DISPOSITION]: 'duplicate' })).toBe(1);
    expect(
      valueOf(messages, {
        ...c,
        [ATTR.DISPOSITION]: 'retry',
        [ATTR.CLOUDEVENTS_TYPE]: 'order.placed',
      }),
    ).toBe(1);
    expect(
      valueOf(messages, {
        ...c,
        [ATTR.DISPOSITION]: 'dead-letter',
        [ATTR.CLOUDEVENTS_TYPE]: 'unknown',
      }),
    ).toBe(1);
    expect(valueOf(await points(METRICS.consumerDuplicates.name), c)).toBe(1);
    expect(
      valueOf(await points(METRICS.consumerDeadLetters.name), {
        ...c,
        [ATTR.DEAD_LETTER_REASON]: 'invalid-json',
      }),
    ).toBe(1);
    const duration = valueOf(await points(METRICS.consumerDuration.name), {
      ...c,
      [ATTR.DISPOSITION]: 'ack',
    }) as { count: number; sum: number };
    expect(duration.count).toBe(2);
    expect(duration.sum).toBeGreaterThanOrEqual(0);

    expect(valueOf(await points(METRICS.sagaStarted.name), { [ATTR.SAGA_NAME]: 'ship' })).toBe(1);
    const ended = await points(METRICS.sagaEnded.name);
    expect(valueOf(ended, { [ATTR.SAGA_NAME]: 'quick', [ATTR.SAGA_STATUS]: 'completed' })).toBe(1);
    expect(valueOf(ended, { [ATTR.SAGA_NAME]: 'ship' })).toBeUndefined();
    expect(valueOf(await points(METRICS.sagaStuck.name), { [ATTR.SAGA_NAME]: 'ship' })).toBe(1);
    const steps = await points(METRICS.sagaStepDuration.name);
    expect(
      (
        valueOf(steps, { [ATTR.SAGA_STEP]: 'notify', 'backtrack.saga.step.outcome': 'failed' }) as {
          count: number;
        }
      ).count,
    ).toBe(2);

    // Detached: the stuck saga no longer counts; the gauge reports 0 for it.
    detach();
    expect(valueOf(await points(METRICS.sagaStuck.name), { [ATTR.SAGA_NAME]: 'ship' })).toBe(0);
  });
});

describe('saga spans from engine events', () => {
  it('builds the saga → step / compensation tree, failed attempts and a stuck saga in error', async () => {
    const engine = createSagaEngine(
      {},
      { store: new InMemorySagaStore(), logger: silent, sleep: async () => {} },
    );
    const detach = instrumentSagaEngine(engine);
    const compensating = defineSaga('order', { input: z.object({}) })
      .step('reserve', { run: () => 1, compensate: () => undefined })
      .step('charge', { run: () => Promise.reject(new Error('declined')), retry: { attempts: 1 } })
      .build();
    const tracer = trace.getTracer('test');
    await tracer.startActiveSpan('process orders', async (parent) => {
      await engine.start(compensating, {}, { sagaId: 'o-1' });
      parent.end();
    });
    const saga = one('saga order');
    expect(saga.parentSpanContext?.spanId).toBe(one('process orders').spanContext().spanId);
    expect(saga.attributes).toMatchObject({
      [ATTR.SAGA_ID]: 'o-1',
      [ATTR.SAGA_STATUS]: 'compensated',
    });
    for (const name of ['step order.reserve', 'step order.charge', 'compensate order.reserve']) {
      expect(one(name).parentSpanContext?.spanId, name).toBe(saga.spanContext().spanId);
    }
    expect(one('step order.charge').status.code).toBe(SpanStatusCode.ERROR);
    expect(one('step order.reserve').status.code).toBe(SpanStatusCode.UNSET);

    spans.reset();
    const stuck = defineSaga('pivot', { input: z.object({}) })
      .step('ship', { run: () => 1, pivot: true })
      .step('notify', { run: () => Promise.reject(new Error('mail down')), retry: { attempts: 2 } })
      .build();
    await engine.start(stuck, {}, { sagaId: 'p-1' });
    const stuckSpan = one('saga pivot');
    expect(stuckSpan.status.code).toBe(SpanStatusCode.ERROR);
    expect(stuckSpan.status.message).toMatch(/stuck in forward phase at notify: mail down/);
    expect(stuckSpan.attributes['backtrack.saga.stuck.phase']).toBe('forward');
    expect(byName('step pivot.notify')).toHaveLength(2);
    detach();
  });
});

describe('recovery continues the trace from the saga record', () => {
  it('stores the trace context at start; a recovering engine parents its saga span to it', async () => {
    const store = new InMemorySagaStore();
    const saga = defineSaga('ship-order', { input: z.object({}) })
      .step('reserve', { run: () => 1, compensate: () => undefined })
      .step('ship', { run: () => 2 })
      .build();
    const tracer = trace.getTracer('test');
    // Engine A dies at its second saga log write (after `reserve` ran).
    const crashing = createSagaEngine(
      {},
      { store: new CrashingSagaStore(store, 2), logger: silent, sleep: async () => {} },
    );
    let origin!: ReadableSpan;
    await tracer.startActiveSpan('process orders', async (parent) => {
      await expect(crashing.start(saga, {}, { sagaId: 's-1' })).rejects.toThrow(/simulated crash/);
      parent.end();
      origin = parent as unknown as ReadableSpan;
    });
    const stored = await store.get('s-1');
    expect(stored?.traceContext?.traceparent).toBe(formatTraceparent(origin.spanContext()));

    // Engine B, after A's lease expired, recovers it under its own span.
    spans.reset();
    const recovering = createSagaEngine(
      {},
      { store, logger: silent, sleep: async () => {}, now: () => Date.now() + 120_000 },
    );
    recovering.register(saga);
    const detach = instrumentSagaEngine(recovering);
    await tracer.startActiveSpan('recovery job', async (job) => {
      const summary = await recovering.recover();
      expect(summary.results.map((r) => r.status)).toEqual(['completed']);
      job.end();
    });
    const recovered = one('saga ship-order');
    expect(recovered.attributes['backtrack.saga.recovered']).toBe(true);
    expect(recovered.spanContext().traceId).toBe(origin.spanContext().traceId);
    expect(recovered.parentSpanContext?.spanId).toBe(origin.spanContext().spanId);
    expect(recovered.links.map((l) => l.context.spanId)).toEqual([
      one('recovery job').spanContext().spanId,
    ]);
    expect(one('step ship-order.ship').parentSpanContext?.spanId).toBe(
      recovered.spanContext().spanId,
    );
    detach();
  });
});

describe('rollback run span', () => {
  it('is one span with every item state change as an event, and counts items by state', async () => {
    const Reserved = defineEvent('stock.reserved').version(1, z.object({ sku: z.string() }));
    const Released = defineEvent('stock.released').version(1, z.object({ sku: z.string() }));
    const Mailed = defineEvent('mail.sent').version(1, z.object({ to: z.string() }));
    const reg = new EventRegistry([Reserved, Released, Mailed]);
    const compensations = defineCompensations()
      .reversible(Reserved, (d) => emit(Released, { sku: d.sku }))
      .irreversible(Mailed, 'cannot unsend');
    const transport = new InMemoryTransport();
    const journal = new InMemoryJournal();
    const bad = createPublisher(
      { service: 'stock', version: '2.0.0' },
      { transport, journal, registry: reg, logger: silent },
    );
    await bad.publish(Reserved, { sku: 'a' });
    await bad.publish(Reserved, { sku: 'b' });
    await bad.publish(Mailed, { to: 'x@y' });
    const plan = await planRollback(
      { service: 'stock', version: '2.0.0', strategy: 'compensate' },
      { journal, registry: reg, compensations },
    );
    spans.reset();
    const progress: string[] = [];
    const result = await runRollback(
      plan,
      { runId: 'rb-1', onProgress: (e) => progress.push(e.state) },
      { journal, transport, progressStore: new InMemoryRollbackProgressStore(), logger: silent },
    );
    expect(result.status).toBe('completed');
    const span = one('backtrack.rollback');
    expect(span.attributes).toMatchObject({
      [ATTR.ROLLBACK_ID]: 'rb-1',
      [ATTR.ROLLBACK_SERVICE]: 'stock',
      [ATTR.ROLLBACK_VERSION]: '2.0.0',
      'backtrack.rollback.status': 'completed',
      'backtrack.rollback.summary.reversed': 2,
      'backtrack.rollback.summary.needsPerson': 1,
    });
    const events = span.events.filter((e) => e.name === 'backtrack.rollback.progress');
    // The caller's own progress callback still sees every change, the span the same ones.
    expect(events.map((e) => e.attributes?.[ATTR.ROLLBACK_STATE])).toEqual(progress);
    expect(progress).toContain('done');
    expect(progress).toContain('needs-person');
    const items = await points(METRICS.rollbackItems.name);
    expect(valueOf(items, { [ATTR.ROLLBACK_STATE]: 'done' })).toBe(2);
    expect(valueOf(items, { [ATTR.ROLLBACK_STATE]: 'needs-person' })).toBe(1);
  });
});

describe('publisher journal lag', () => {
  it('reports the pending records and the age of the oldest per service, back to 0 once published', async () => {
    let clock = Date.parse('2026-01-01T00:00:00Z');
    const journal = new InMemoryJournal({ now: () => clock });
    const record = (id: string, service: string) => ({
      id,
      type: 'order.placed',
      schemaVersion: 1,
      topic: 'orders.events',
      service,
      version: '1.0.0',
      time: new Date(clock).toISOString(),
      message: { headers: { id }, body: new Uint8Array() },
    });
    await journal.append(record('a', 'orders'));
    clock += 4_000;
    await journal.append(record('b', 'orders'));
    await journal.append(record('c', 'payments'));
    await journal.markPublished(['c']);
    clock += 1_000;
    const monitor = monitorJournalLag(journal, { now: () => clock, intervalMs: 60_000 });
    try {
      await monitor.pollOnce();
      const pending = await points(METRICS.journalPending.name);
      const lag = await points(METRICS.journalLag.name);
      expect(valueOf(pending, { [ATTR.PRODUCER_SERVICE]: 'orders' })).toBe(2);
      expect(valueOf(lag, { [ATTR.PRODUCER_SERVICE]: 'orders' })).toBeCloseTo(5, 3);
      expect(valueOf(pending, { [ATTR.PRODUCER_SERVICE]: 'payments' })).toBeUndefined();

      await journal.markPublished(['a']);
      await monitor.pollOnce();
      expect(
        valueOf(await points(METRICS.journalLag.name), { [ATTR.PRODUCER_SERVICE]: 'orders' }),
      ).toBeCloseTo(1, 3);
      await journal.markPublished(['b']);
      await monitor.pollOnce();
      expect(
        valueOf(await points(METRICS.journalPending.name), { [ATTR.PRODUCER_SERVICE]: 'orders' }),
      ).toBe(0);
    } finally {
      monitor.stop();
    }
  });
});
