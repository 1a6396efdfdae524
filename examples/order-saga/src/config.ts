/**
 * Command-line and environment configuration shared by the example's entry points.
 *
 *   --transport memory|kafka|rabbitmq   (env BACKTRACK_TRANSPORT; default memory)
 *   --store default|postgres            (env BACKTRACK_STORE; default default = memory or Redis)
 *   --prefix <name>                     (env BACKTRACK_PREFIX; default shop)
 *   --orders <n>                        (load driver and drill)
 */
import { parseArgs } from 'node:util';
import {
  STORE_KINDS,
  TRANSPORT_KINDS,
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
      store: { type: 'string' },
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
  const store = (values.store ?? process.env.BACKTRACK_STORE ?? 'default') as string;
  if (!STORE_KINDS.includes(store as StoreKind)) {
    throw new ConfigError(`--store must be one of ${STORE_KINDS.join(', ')}, got "${store}"`);
  }
  const orders = positiveInt('orders', values.orders, defaults.orders ?? 20);
  const concurrency = positiveInt('concurrency', values.concurrency, defaults.concurrency ?? 32);
  return {
    transport: transport as TransportKind,
    store: store as StoreKind,
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
