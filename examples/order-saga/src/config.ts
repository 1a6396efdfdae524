/**
 * Command-line and environment configuration shared by the example's entry points.
 *
 *   --transport memory|kafka|rabbitmq   (env BACKTRACK_TRANSPORT; default memory)
 *   --prefix <name>                     (env BACKTRACK_PREFIX; default shop)
 *   --orders <n>                        (load driver and drill)
 */
import { parseArgs } from 'node:util';
import { TRANSPORT_KINDS, type TransportKind } from './infra/runtime.js';

export interface ExampleConfig {
  transport: TransportKind;
  prefix: string;
  orders: number;
  concurrency: number;
  flags: Record<string, string | boolean | undefined>;
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
      prefix: { type: 'string' },
      orders: { type: 'string' },
      concurrency: { type: 'string' },
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
  const orders = positiveInt('orders', values.orders, defaults.orders ?? 20);
  const concurrency = positiveInt('concurrency', values.concurrency, defaults.concurrency ?? 32);
  return {
    transport: transport as TransportKind,
    prefix: (values.prefix as string | undefined) ?? process.env.BACKTRACK_PREFIX ?? 'shop',
    orders,
    concurrency,
    flags: values as Record<string, string | boolean | undefined>,
  };
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
