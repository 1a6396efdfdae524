import {
  ProxyTracerProvider,
  createNoopMeter,
  metrics,
  trace,
  ValueType,
  type Attributes,
  type Counter,
  type Histogram,
  type Meter,
  type MeterProvider,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import { INSTRUMENTATION_SCOPE, METRICS } from './names.js';

/** The metric instruments of one meter provider. */
export interface Instruments {
  meter: Meter;
  consumerMessages: Counter;
  consumerDuration: Histogram;
  consumerDuplicates: Counter;
  consumerDeadLetters: Counter;
  publisherMessages: Counter;
  sagaStarted: Counter;
  sagaEnded: Counter;
  sagaStepDuration: Histogram;
  rollbackItems: Counter;
}

/** The no-op tracer provider of the API (what the proxy delegates to before an SDK registers). */
const NOOP_TRACER_PROVIDER = new ProxyTracerProvider().getDelegate();
const NOOP_METER = createNoopMeter();

/**
 * Where the OpenTelemetry API (major 1, the `@opentelemetry/api` we depend on) keeps what is
 * registered globally (its `GLOBAL_OPENTELEMETRY_API_KEY`). It is absent until something
 * registers (a tracer or meter provider, a propagator, a context manager): then no tracer or
 * meter can be active, and {@link activeTracer} / {@link activeInstruments} answer after one
 * property read instead of the API's versioned global lookups (which were most of the consumer
 * hooks' ~240 ns per message without an SDK). The API never deletes it once made.
 */
const OTEL_API_GLOBAL = Symbol.for('opentelemetry.js.api.1');

/** False while nothing was ever registered with the OpenTelemetry API in this process. */
export function otelRegistered(): boolean {
  return (globalThis as Record<symbol, unknown>)[OTEL_API_GLOBAL] !== undefined;
}

let tracerProvider: TracerProvider | undefined;
let tracer: Tracer | undefined;
let meterProvider: MeterProvider | undefined;
let instruments: Instruments | undefined;

/**
 * The tracer of the globally registered tracer provider, or undefined while none is registered
 * (the API's no-op). Cached per provider: one global lookup and one comparison per call, no
 * allocation, so the hot path costs nothing without an SDK, and an SDK registered (or replaced)
 * later is picked up.
 */
export function activeTracer(): Tracer | undefined {
  if (!otelRegistered()) return undefined;
  let provider: TracerProvider = trace.getTracerProvider();
  if (provider instanceof ProxyTracerProvider) provider = provider.getDelegate();
  if (provider === tracerProvider) return tracer;
  tracerProvider = provider;
  tracer =
    provider === NOOP_TRACER_PROVIDER ? undefined : provider.getTracer(INSTRUMENTATION_SCOPE);
  return tracer;
}

/**
 * The instruments of the globally registered meter provider, or undefined while none is
 * registered. Cached per provider like {@link activeTracer}.
 */
export function activeInstruments(): Instruments | undefined {
  if (!otelRegistered()) return undefined;
  const provider = metrics.getMeterProvider();
  if (provider === meterProvider) return instruments;
  meterProvider = provider;
  const meter = provider.getMeter(INSTRUMENTATION_SCOPE);
  instruments = meter === NOOP_METER ? undefined : createInstruments(meter);
  return instruments;
}

function createInstruments(meter: Meter): Instruments {
  const counter = (m: { name: string; unit: string }, description: string) =>
    meter.createCounter(m.name, { unit: m.unit, description, valueType: ValueType.INT });
  const seconds = (m: { name: string; unit: string }, description: string) =>
    meter.createHistogram(m.name, {
      unit: m.unit,
      description,
      valueType: ValueType.DOUBLE,
      advice: {
        explicitBucketBoundaries: [
          0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
        ],
      },
    });
  observeStuck(meter);
  observePolledGauges(meter);
  return {
    meter,
    consumerMessages: counter(
      METRICS.consumerMessages,
      'Messages the consumer pipeline finished, by disposition and event type',
    ),
    consumerDuration: seconds(
      METRICS.consumerDuration,
      'Time from the pipeline taking a message to its disposition, handler included',
    ),
    consumerDuplicates: counter(
      METRICS.consumerDuplicates,
      'Duplicates absorbed by the dedupe store (acknowledged, handler not called)',
    ),
    consumerDeadLetters: counter(METRICS.consumerDeadLetters, 'Dead letters, by reason'),
    publisherMessages: counter(METRICS.publisherMessages, 'Events published, by type and result'),
    sagaStarted: counter(METRICS.sagaStarted, 'Sagas started'),
    sagaEnded: counter(METRICS.sagaEnded, 'Sagas ended, by status'),
    sagaStepDuration: seconds(
      METRICS.sagaStepDuration,
      'Duration of one step or compensation attempt',
    ),
    rollbackItems: counter(METRICS.rollbackItems, 'Rollback items processed, by state'),
  };
}

/** Every instrumented engine's stuck sagas (id → saga name), read by the stuck gauge. */
const stuckSources = new Set<() => ReadonlyMap<string, string>>();
const stuckNamesSeen = new Set<string>();

/** Adds a source of stuck sagas to the `backtrack.saga.stuck` gauge; returns its removal. */
export function registerStuckSource(source: () => ReadonlyMap<string, string>): () => void {
  stuckSources.add(source);
  return () => stuckSources.delete(source);
}

/** Makes the stuck gauge report `name` (0 while none of its sagas is stuck). */
export function noteSagaName(name: string): void {
  if (!stuckNamesSeen.has(name)) stuckNamesSeen.add(name);
}

function observeStuck(meter: Meter): void {
  meter
    .createObservableGauge(METRICS.sagaStuck.name, {
      unit: METRICS.sagaStuck.unit,
      description: 'Sagas stuck now (saga.stuck seen, not resumed since), by saga name',
      valueType: ValueType.INT,
    })
    .addCallback((result) => {
      // A saga name once stuck keeps reporting (0 when none is stuck now), so the gauge drops.
      const byName = new Map<string, number>();
      for (const name of stuckNamesSeen) byName.set(name, 0);
      for (const source of stuckSources) {
        for (const name of source().values()) byName.set(name, (byName.get(name) ?? 0) + 1);
      }
      for (const name of byName.keys()) stuckNamesSeen.add(name);
      for (const [name, count] of byName) result.observe(count, { 'backtrack.saga.name': name });
    });
}

/** One value of an observable gauge and its attributes. */
export interface GaugeSample {
  value: number;
  attributes: Attributes;
}

/** The observable gauges fed by pollers (gauges.ts): consumer lag and the journal's backlog. */
export type PolledGauge = 'consumerLag' | 'journalPending' | 'journalLag';

const polledSources: Record<PolledGauge, Set<() => readonly GaugeSample[]>> = {
  consumerLag: new Set(),
  journalPending: new Set(),
  journalLag: new Set(),
};

/** Adds a source of samples to a polled gauge; returns its removal. */
export function registerPolledSource(
  gauge: PolledGauge,
  source: () => readonly GaugeSample[],
): () => void {
  polledSources[gauge].add(source);
  return () => polledSources[gauge].delete(source);
}

function observePolledGauges(meter: Meter): void {
  const gauge = (name: PolledGauge, valueType: ValueType, description: string) =>
    meter
      .createObservableGauge(METRICS[name].name, {
        unit: METRICS[name].unit,
        description,
        valueType,
      })
      .addCallback((result) => {
        for (const source of polledSources[name]) {
          for (const sample of source()) result.observe(sample.value, sample.attributes);
        }
      });
  gauge('consumerLag', ValueType.INT, 'Messages not yet consumed, per partition or queue');
  gauge('journalPending', ValueType.INT, 'Journal records appended but not yet published');
  gauge('journalLag', ValueType.DOUBLE, 'Age of the oldest journal record not yet published');
}
