/**
 * Shared start-up of the one-service-per-process entry points: configuration, the runtime, and
 * a clean shutdown on SIGINT/SIGTERM (close the subscription, then the connections).
 */
import { ConfigError, readConfig, topologyOf, type ExampleConfig } from '../config.js';
import { startOtel, type Otel } from '../infra/otel.js';
import { createRuntime, type Runtime } from '../infra/runtime.js';
import type { ServiceName } from '../infra/service.js';
import { color } from '../story.js';

export async function boot(
  service: string,
  extra: Record<string, { type: 'string' | 'boolean' }> = {},
): Promise<{ config: ExampleConfig; runtime: Runtime }> {
  let config: ExampleConfig;
  try {
    config = readConfig(process.argv.slice(2), {}, extra);
  } catch (error) {
    console.error(`${service}: ${(error as Error).message}`);
    process.exit(2);
  }
  if (config.transport === 'memory') {
    console.error(
      `${service}: the memory transport runs all four services in one process (npm run order-saga, or bin/load.ts); ` +
        'give --transport kafka or --transport rabbitmq (or BACKTRACK_TRANSPORT) to run services as separate processes',
    );
    process.exit(2);
  }
  const runtime = await createRuntime({
    transport: config.transport,
    store: config.store,
    prefix: config.prefix,
    ...topologyOf(config),
  });
  if (config.otel) {
    otel = await startOtel({ metricsPort: config.metricsPort });
    if ((['orders', 'inventory', 'payments', 'shipping'] as string[]).includes(service)) {
      await otel.monitor(runtime, [service as ServiceName]);
    }
    console.log(color.dim(`${service}: OpenTelemetry on, metrics at ${otel.metricsUrl}`));
  }
  return { config, runtime };
}

let otel: Otel | undefined;

/** Keeps the process alive until SIGINT/SIGTERM, then stops the service and closes everything. */
export function runUntilSignal(name: string, runtime: Runtime, stop: () => Promise<void>): void {
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(color.dim(`${name}: ${signal}, stopping`));
    try {
      await stop();
    } finally {
      await runtime.close();
      await otel?.shutdown();
      process.exit(0);
    }
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
}

export { ConfigError };
