/**
 * `--otel`: the OpenTelemetry SDK for the example's processes. Backtrack itself only uses the
 * OpenTelemetry API; installing these providers is all it takes to get its spans and metrics:
 *
 * - traces: to an OTLP endpoint when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is
 *   set, else to the console; `OTEL_TRACES_EXPORTER=otlp|console|none` chooses explicitly;
 * - metrics: a Prometheus endpoint, `http://<host>:<port>/metrics` (`--metrics-port`, default 9464);
 * - the lag gauges: the journal's backlog and, on a broker, each service's consumer lag.
 */
import { context, metrics, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { MeterProvider, type MetricReader } from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { monitorJournalLag } from '@backtrack/core';
import { KafkaTransport, monitorKafkaConsumerLag } from '@backtrack/kafka';
import { RabbitTransport, monitorRabbitQueueLag } from '@backtrack/rabbitmq';
import type { Runtime } from './runtime.js';
import type { ServiceName } from './service.js';

const SERVICES: readonly ServiceName[] = ['orders', 'inventory', 'payments', 'shipping'];
/** The services whose topics each service consumes (its `consume(..., { from })`). */
const READS: Record<ServiceName, readonly ServiceName[]> = {
  orders: ['inventory', 'payments', 'shipping'],
  inventory: ['orders', 'payments'],
  payments: ['orders', 'payments'],
  shipping: ['orders'],
};

export interface OtelOptions {
  /** Port of the Prometheus endpoint. @default 9464 */
  metricsPort?: number;
  /** @default '127.0.0.1' */
  metricsHost?: string;
  /** Where spans go. @default OTEL_TRACES_EXPORTER, else `otlp` when an OTLP endpoint is set, else `console` */
  traces?: 'otlp' | 'console' | 'none';
}

/** The installed SDK. */
export interface Otel {
  /** `http://host:port/metrics`. */
  readonly metricsUrl: string;
  /** The Prometheus text exposition, as a scraper reads it. */
  scrape(): Promise<string>;
  /** Starts the lag gauges of a runtime (journal backlog, consumer lag); stopped by `shutdown`. */
  monitor(runtime: Runtime, services?: readonly ServiceName[]): Promise<void>;
  /** Flushes spans, stops the endpoint and the monitors, and unregisters the SDK. */
  shutdown(): Promise<void>;
}

export async function startOtel(options: OtelOptions = {}): Promise<Otel> {
  const host = options.metricsHost ?? '127.0.0.1';
  const port = options.metricsPort ?? 9464;
  const prometheus = await new Promise<PrometheusExporter>((resolve, reject) => {
    const exporter: PrometheusExporter = new PrometheusExporter({ host, port }, (error) =>
      error ? reject(error) : resolve(exporter),
    );
  });
  // The exporter is built against its own copy of sdk-metrics (2.12.0); the reader contract is
  // the same, only the private fields make the two classes distinct types.
  const meterProvider = new MeterProvider({ readers: [prometheus as unknown as MetricReader] });
  const spanProcessors: SpanProcessor[] = [];
  const tracesTo = options.traces ?? tracesFromEnv();
  if (tracesTo === 'otlp') spanProcessors.push(new BatchSpanProcessor(new OTLPTraceExporter()));
  if (tracesTo === 'console')
    spanProcessors.push(new BatchSpanProcessor(new ConsoleSpanExporter()));
  const tracerProvider = new BasicTracerProvider({ spanProcessors });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  trace.setGlobalTracerProvider(tracerProvider);
  metrics.setGlobalMeterProvider(meterProvider);

  const metricsUrl = `http://${host}:${port}/metrics`;
  const stops: Array<() => unknown> = [];
  return {
    metricsUrl,
    async scrape() {
      const response = await fetch(metricsUrl);
      return response.text();
    },
    async monitor(runtime, services = SERVICES) {
      const journal = monitorJournalLag(runtime.journal, { intervalMs: 5_000, services });
      stops.push(() => journal.stop());
      if (runtime.transport === 'memory') return;
      const transport = await runtime.connect();
      stops.push(() => transport.close?.());
      const group = (service: ServiceName) => `${runtime.prefix}.${service}`;
      if (transport instanceof KafkaTransport) {
        for (const service of services) {
          const lag = monitorKafkaConsumerLag(transport, {
            group: group(service),
            topics: READS[service].map((s) => `${runtime.prefix}.${s}`),
            intervalMs: 5_000,
          });
          stops.unshift(() => lag.stop());
        }
      } else if (transport instanceof RabbitTransport) {
        const lag = monitorRabbitQueueLag(transport, {
          queues: services.flatMap((s) => [group(s), `${group(s)}.dlq`]),
          intervalMs: 5_000,
        });
        stops.unshift(() => lag.stop());
      }
    },
    async shutdown() {
      for (const stop of stops) await stop();
      await tracerProvider.shutdown();
      await meterProvider.shutdown();
      trace.disable();
      metrics.disable();
      context.disable();
    },
  };
}

function tracesFromEnv(): 'otlp' | 'console' | 'none' {
  const chosen = process.env.OTEL_TRACES_EXPORTER;
  if (chosen === 'otlp' || chosen === 'console' || chosen === 'none') return chosen;
  const endpoint =
    process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  return endpoint ? 'otlp' : 'console';
}

/** One sample of the Prometheus text exposition. */
export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text exposition format (the sample lines; comments skipped). */
export function parsePrometheus(text: string): PromSample[] {
  const samples: PromSample[] = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const raw of text.split('\n')) {
    if (raw.startsWith('#') || raw.trim() === '') continue;
    const m = line.exec(raw.trim());
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(label)) {
      labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The sum of the samples named `name` whose labels include `where`. */
export function sumOf(
  samples: readonly PromSample[],
  name: string,
  where: Record<string, string> = {},
): number {
  return samples
    .filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}
