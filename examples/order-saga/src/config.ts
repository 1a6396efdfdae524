/**
 * Command-line and environment configuration shared by the example's entry points.
 *
 *   --transport memory|kafka|rabbitmq   (env BACKTRACK_TRANSPORT; default memory)
 *   --store default|postgres            (env BACKTRACK_STORE; default default = memory or Redis)
 *   --prefix <name>                     (env BACKTRACK_PREFIX; default shop)
 *   --orders <n>                        (load driver and drill)
 *   --partitions <n>                    (partitions per topic, Kafka and memory; default 8)
 *   --consumers <k>                     (consumers per service in its group; default 1)
 *   --prefetch <n>                      (RabbitMQ prefetch window per consumer; default 256)
 *   --linger-ms <ms>                    (publisher and Kafka producer linger; default 0)
 *   --otel                              (OpenTelemetry SDK: traces, Prometheus /metrics)
 *   --metrics-port <port>               (the Prometheus endpoint's port with --otel; default 9464)
 */
import { parseArgs } from 'node:util';
import { PROCESS_LAYOUTS, type ProcessLayout } from './infra/processes.js';
import {
  STORE_KINDS,
  TRANSPORT_KINDS,
  type RuntimeOptions,
  type StoreKind,
  type TransportKind,
} from './infra/runtime.js';

export interface ExampleConfig {
  transport: TransportKind;
  /** Where saga log, journal and dedupe stores live (`postgres`: DATABASE_URL). */
  store: StoreKind;
  prefix: string;
  orders: number;
  concurrency: number;
  /** Partitions per topic (Kafka, memory). */
  partitions: number;
  /** Consumers per service in its group. */
  consumers: number;
  /** RabbitMQ prefetch window per consumer. */
  prefetch: number;
  /** Publisher batching and Kafka producer linger, in ms. */
  lingerMs: number;
  /** Install the OpenTelemetry SDK (`--otel`, see infra/otel.ts). */
  otel: boolean;
  /** Port of the Prometheus endpoint with `--otel`. */
  metricsPort: number;
  flags: Record<string, string | boolean | undefined>;
}

/** The runtime options of the topology flags (`--partitions`, `--consumers`, ...). */
export function topologyOf(
  config: Pick<ExampleConfig, 'partitions' | 'consumers' | 'prefetch' | 'lingerMs'>,
): Pick<RuntimeOptions, 'partitions' | 'consumers' | 'prefetch' | 'lingerMs'> {
  return {
    partitions: config.partitions,
    consumers: config.consumers,
    prefetch: config.prefetch,
    lingerMs: config.lingerMs,
  };
}

export function readConfig(
  argv: string[] = process.argv.slice(2),
  defaults: { orders?: number; concurrency?: number } = {},
  extra: Record<string, { type: 'string' | 'boolean' }> = {},
): ExampleConfig {
  const { values } = parseArgs({
    args: argv,
    options: {
      transport: { type: 'string' },
      store: { type: 'string' },
      prefix: { type: 'string' },
      orders: { type: 'string' },
      concurrency: { type: 'string' },
      partitions: { type: 'string' },
      consumers: { type: 'string' },
      prefetch: { type: 'string' },
      'linger-ms': { type: 'string' },
      otel: { type: 'boolean' },
      'metrics-port': { type: 'string' },
      ...extra,
    },
    allowPositionals: false,
    strict: true,
  });
  const transport = (values.transport ?? process.env.BACKTRACK_TRANSPORT ?? 'memory') as string;
  if (!TRANSPORT_KINDS.includes(transport as TransportKind)) {
    throw new ConfigError(
      `--transport must be one of ${TRANSPORT_KINDS.join(', ')}, got "${transport}"`,
    );
  }
  const store = (values.store ?? process.env.BACKTRACK_STORE ?? 'default') as string;
  if (!STORE_KINDS.includes(store as StoreKind)) {
    throw new ConfigError(`--store must be one of ${STORE_KINDS.join(', ')}, got "${store}"`);
  }
  const orders = positiveInt('orders', values.orders, defaults.orders ?? 20);
  const concurrency = positiveInt('concurrency', values.concurrency, defaults.concurrency ?? 32);
  const partitions = positiveInt('partitions', values.partitions, 8);
  if (partitions > 64) throw new ConfigError(`--partitions must be at most 64, got ${partitions}`);
  const consumers = positiveInt('consumers', values.consumers, 1);
  if (transport !== 'rabbitmq' && consumers > partitions) {
    throw new ConfigError(
      `--consumers (${consumers}) must not exceed --partitions (${partitions}): a member without a partition idles`,
    );
  }
  const prefetch = positiveInt('prefetch', values.prefetch, 256);
  const lingerRaw = values['linger-ms'];
  const lingerMs = lingerRaw === undefined ? 0 : Number(lingerRaw);
  if (!Number.isFinite(lingerMs) || lingerMs < 0 || lingerMs > 1000) {
    throw new ConfigError(
      `--linger-ms must be a number from 0 to 1000, got "${String(lingerRaw)}"`,
    );
  }
  const metricsPort = positiveInt('metrics-port', values['metrics-port'], 9464);
  return {
    transport: transport as TransportKind,
    store: store as StoreKind,
    prefix: (values.prefix as string | undefined) ?? process.env.BACKTRACK_PREFIX ?? 'shop',
    orders,
    concurrency,
    partitions,
    consumers,
    prefetch,
    lingerMs,
    otel: values.otel === true,
    metricsPort,
    flags: values as Record<string, string | boolean | undefined>,
  };
}

/** The load driver's own options, beside the shared ones. */
export interface LoadConfig extends ExampleConfig {
  /** `--processes K`: participants in K child processes (per service, or shared); 0 = none. */
  processes: number;
  /** `--layout per-service|shared` (with `--processes`). */
  layout: ProcessLayout;
  /** `--warmup N`: orders placed, unmeasured, before the measured `--orders`. */
  warmup: number;
}

/** Reads the load driver's configuration (bin/load.ts): the shared flags and its own. */
export function readLoadConfig(argv: string[] = process.argv.slice(2)): LoadConfig {
  const config = readConfig(
    argv,
    { orders: 1_000, concurrency: 64 },
    {
      trace: { type: 'boolean' },
      json: { type: 'boolean' },
      processes: { type: 'string' },
      layout: { type: 'string' },
      warmup: { type: 'string' },
    },
  );
  const { processes: rawProcesses, layout = 'per-service', warmup: rawWarmup } = config.flags;
  const processes = rawProcesses === undefined ? 0 : positiveInt('processes', rawProcesses, 0);
  if (processes > 16) throw new ConfigError(`--processes must be at most 16, got ${processes}`);
  if (processes > 0 && config.transport === 'memory') {
    throw new ConfigError('--processes needs a broker (--transport kafka or rabbitmq)');
  }
  if (config.transport === 'kafka' && processes * config.consumers > config.partitions) {
    throw new ConfigError(
      `--processes × --consumers (${processes * config.consumers}) must not exceed --partitions (${config.partitions}): a member without a partition idles`,
    );
  }
  if (!PROCESS_LAYOUTS.includes(layout as ProcessLayout)) {
    throw new ConfigError(
      `--layout must be one of ${PROCESS_LAYOUTS.join(', ')}, got "${String(layout)}"`,
    );
  }
  const warmup = rawWarmup === undefined ? 0 : Number(rawWarmup);
  if (!Number.isSafeInteger(warmup) || warmup < 0) {
    throw new ConfigError(`--warmup must be a whole number, got "${String(rawWarmup)}"`);
  }
  return { ...config, processes, layout: layout as ProcessLayout, warmup };
}

function positiveInt(name: string, raw: unknown, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new ConfigError(`--${name} must be a positive integer, got "${String(raw)}"`);
  return n;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}
