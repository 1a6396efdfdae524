import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { pathToFileURL } from 'node:url';
import type { AnySagaDefinition, CompensationRegistry, EventRegistry } from '@backtrack/core';
import type { KafkaTransportOptions } from '@backtrack/kafka';
import { CliError, EXIT } from './errors.js';

/**
 * What a `backtrack.config.js` (or `.mjs`) module exports (default export, or named exports of
 * the same names). It tells the CLI about YOUR events and how to reverse them; connection
 * settings can also come from flags and environment variables, which win over the file.
 *
 * @example
 * // backtrack.config.mjs
 * import { defineConfig } from '@backtrack/cli';
 * import { registry, compensations } from './dist/events.js';
 * export default defineConfig({ registry, compensations, transport: 'kafka' });
 */
export interface BacktrackConfig {
  /** Every event type the services publish (needed to read journaled messages). */
  registry?: EventRegistry;
  /** How to reverse each event type (needed by `rollback plan --strategy compensate`). */
  compensations?: CompensationRegistry;
  /** Saga definitions, for `sagas retry|resolve` and to compensate sagas during a rollback. */
  sagas?: AnySagaDefinition[];
  redis?: {
    /** @default REDIS_URL, then redis://127.0.0.1:6379 */
    url?: string;
    /** @default 'backtrack:journal' (RedisJournal's default) */
    journalPrefix?: string;
    /** @default 'backtrack:rollback' */
    progressPrefix?: string;
    /** @default 'backtrack:saga:' */
    sagaPrefix?: string;
    /**
     * The saga store's key layout (RedisSagaStore `keyLayout`): `legacy` reads sagas written by
     * Backtrack before the Cluster-ready layout. @default 'sharded'
     */
    sagaKeyLayout?: 'sharded' | 'legacy';
    /** TLS options for a `rediss://` URL (ioredis `tls`): `ca`, `cert`/`key`, `servername`. */
    tls?: ConnectionOptions;
  };
  /** The broker rollbacks publish to and `dlq` reads. @default BACKTRACK_TRANSPORT */
  transport?: 'kafka' | 'rabbitmq';
  kafka?: {
    brokers?: string[];
    clientId?: string;
    /** `true` or `tls.connect` options (`ca`, `cert`/`key` for mTLS), as kafkajs takes them. */
    ssl?: KafkaTransportOptions['ssl'];
    /** kafkajs SASL settings: `{ mechanism: 'scram-sha-512', username, password }`, ... */
    sasl?: KafkaTransportOptions['sasl'];
  };
  rabbitmq?: {
    url?: string;
    /** TLS socket options for an `amqps://` URL: `ca`, `cert`/`key`, `servername`. */
    socketOptions?: ConnectionOptions;
  };
  /** Saved registry snapshot for `schemas check`. @default ./backtrack.schemas.json */
  schemaSnapshot?: string;
}

/** Types a config module; returns it unchanged. */
export function defineConfig(config: BacktrackConfig): BacktrackConfig {
  return config;
}

const DEFAULT_FILES = ['backtrack.config.mjs', 'backtrack.config.js', 'backtrack.config.ts'];

/**
 * Loads the config module: `--config`, else BACKTRACK_CONFIG, else ./backtrack.config.{mjs,js}.
 * Resolves to `{}` when no file is found and none was named.
 */
export async function loadConfig(
  path: string | undefined,
  cwd = process.cwd(),
): Promise<{ config: BacktrackConfig; file?: string }> {
  const named = path ?? process.env.BACKTRACK_CONFIG;
  const file = named
    ? resolve(cwd, named)
    : DEFAULT_FILES.map((f) => resolve(cwd, f)).find((f) => existsSync(f));
  if (!file) return { config: {} };
  if (!existsSync(file)) throw new CliError(`config file not found: ${file}`, EXIT.Usage);
  const typescript = /\.(c|m)?ts$/.test(file);
  let mod: Record<string, unknown>;
  try {
    mod = typescript ? await importTypeScript(file) : await importModule(file);
  } catch (error) {
    throw new CliError(
      `could not load config ${file}: ${error instanceof Error ? error.message : String(error)}`,
      EXIT.Usage,
      undefined,
      typescript
        ? 'a TypeScript config loads through tsx: `npm install --save-dev tsx` (or compile the config to .js/.mjs)'
        : undefined,
    );
  }
  const config = (mod.default ?? mod) as BacktrackConfig;
  if (typeof config !== 'object' || config === null) {
    throw new CliError(
      `config ${file} must export an object (default export or named exports)`,
      EXIT.Usage,
    );
  }
  return { config, file };
}

async function importModule(file: string): Promise<Record<string, unknown>> {
  return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
}

/**
 * A `.ts` config: through tsx's loader when tsx is installed (an optional peer: it maps the
 * `./x.js` imports of TypeScript sources to `./x.ts`), else Node's own import, which strips
 * types on Node 22.18+ and fails on older Node.
 */
async function importTypeScript(file: string): Promise<Record<string, unknown>> {
  try {
    const { register } = await import('tsx/esm/api');
    // Process-wide (not tsImport's namespace), so the config shares the CLI's module instances.
    register();
  } catch {
    // no tsx: Node's own import below
  }
  return importModule(file);
}

/** The registry from the config, or a usage error explaining how to provide it. */
export function requireRegistry(config: BacktrackConfig): EventRegistry {
  if (!config.registry) {
    throw new CliError(
      'this command needs your event registry',
      EXIT.Usage,
      undefined,
      'export `registry` (an EventRegistry) from backtrack.config.mjs, or pass --config <file>',
    );
  }
  return config.registry;
}
