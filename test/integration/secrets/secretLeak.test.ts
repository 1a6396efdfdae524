/**
 * No secret leaves the process. With known, unique secrets in the configuration (passwords in
 * Redis, RabbitMQ and PostgreSQL URLs, Kafka SASL settings, a TLS private key and its passphrase),
 * operations that fail (wrong credentials against the real plain services) and that succeed are
 * run through the library and the `backtrack` CLI (text and --json), and everything they put out
 * is searched for the secrets: stdout, stderr, log lines (at trace level, stacks included), and
 * every thrown error (message, stack, details, cause chain, JSON and util.inspect forms).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { redactionLoggerOptions, type Logger } from '@backtrack/core';
import {
  createKafkaTransport,
  KafkaConfigError,
  type KafkaTransportOptions,
} from '@backtrack/kafka';
import { migrateDatabase, PostgresConfigError } from '@backtrack/postgres';
import { createRabbitTransport, RabbitConfigError } from '@backtrack/rabbitmq';
import { createRedisClient, RedisDedupeStore, RedisSagaStore } from '@backtrack/redis';
import { isCI, probeService, uniqueName } from '../../support/services.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const COMMAND = fileURLToPath(new URL('../../../packages/cli/bin/backtrack.js', import.meta.url));

const run = randomUUID().replaceAll('-', '').slice(0, 12);
/** The secrets; none may appear in anything the process puts out. */
const SECRETS = {
  redisPassword: `redisPw${run}`,
  amqpPassword: `amqpPw${run}`,
  pgPassword: `pgPw${run}`,
  kafkaPassword: `kafkaPw${run}`,
  keyPassphrase: `keyPass${run}`,
  privateKeyBody: `MIIEvFAKEKEY${run}`,
};
const PRIVATE_KEY = `-----BEGIN PRIVATE KEY-----\n${SECRETS.privateKeyBody}\n-----END PRIVATE KEY-----\n`;
const TLS_SECRETS = { key: PRIVATE_KEY, passphrase: SECRETS.keyPassphrase };
const SASL = {
  mechanism: 'scram-sha-512' as const,
  username: 'bt-app',
  password: SECRETS.kafkaPassword,
};

const services = {
  redis: await probeService('redis'),
  rabbitmq: await probeService('rabbitmq'),
  postgres: await probeService('postgres'),
  kafka: await probeService('kafka'),
};
const missing = Object.entries(services)
  .filter(([, info]) => !info.available)
  .map(([name]) => name);
if (missing.length > 0 && isCI()) throw new Error(`secret-leak test needs ${missing.join(', ')}`);

/** The secrets found in `text` (as they are, or URL-encoded). */
function leaks(text: string): string[] {
  return Object.entries(SECRETS)
    .filter(([, s]) => text.includes(s) || text.includes(encodeURIComponent(s)))
    .map(([name]) => name);
}

/** Everything an error shows: message, stack, fields, details, the cause chain, as JSON and inspected. */
function errorText(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error, depth = 0; e !== undefined && depth < 6; depth += 1) {
    parts.push(String(e), inspect(e, { depth: 10, showHidden: true }), safeJson(e));
    if (e instanceof Error) {
      parts.push(e.message, e.stack ?? '', safeJson((e as { details?: unknown }).details));
      if (e instanceof AggregateError) parts.push(...e.errors.map(errorText));
      e = e.cause;
    } else break;
  }
  return parts.join('\n');
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? '';
  } catch {
    return '';
  }
}

/** A pino logger at trace level (stacks kept) whose lines are collected in `lines`. */
function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { logger: pino({ level: 'trace', ...redactionLoggerOptions() }, stream), lines };
}

/** Runs `operation`, which must fail; returns the error. */
async function failure(operation: () => Promise<unknown>): Promise<unknown> {
  try {
    await operation();
  } catch (error) {
    return error;
  }
  throw new Error('the operation was expected to fail');
}

describe.skipIf(missing.length > 0)('no secret leaves the process', () => {
  describe('library: errors and log lines', () => {
    it('Redis: a wrong user and password (the store error wraps the AUTH reply)', async () => {
      const redis = createRedisClient(`redis://bt-nobody:${SECRETS.redisPassword}@127.0.0.1:6379`, {
        retryStrategy: () => null,
      });
      redis.on('error', () => undefined); // the application's own client: its events are its own
      try {
        const store = new RedisSagaStore({ keyPrefix: `${uniqueName('bt-leak')}:` }, { redis });
        const error = await failure(() => store.get('saga-1'));
        expect(errorText(error)).toMatch(/WRONGPASS|closed|unavailable/i);
        expect(leaks(errorText(error))).toEqual([]);
      } finally {
        redis.disconnect();
      }
    });

    it('Redis: a password that works (default user), with a store that logs', async () => {
      const { logger, lines } = capturingLogger();
      // maxRetriesPerRequest null: the dedupe store logs a warning about the client.
      const redis = createRedisClient(`redis://:${SECRETS.redisPassword}@127.0.0.1:6379`, {
        maxRetriesPerRequest: null,
      });
      try {
        const store = new RedisDedupeStore(
          { keyPrefix: `${uniqueName('bt-leak')}:` },
          { redis, logger },
        );
        const claim = await store.claim('m1', { leaseMs: 1_000 });
        expect(claim.status).toBe('claimed');
        expect(lines.length).toBeGreaterThan(0);
        expect(leaks(lines.join(''))).toEqual([]);
        await store.release('m1', (claim as { token: string }).token);
      } finally {
        redis.disconnect();
      }
    });

    it('RabbitMQ: guest with a wrong password is refused', async () => {
      const { logger, lines } = capturingLogger();
      const error = await failure(() =>
        createRabbitTransport(
          {
            url: `amqp://guest:${SECRETS.amqpPassword}@127.0.0.1:5672`,
            reconnect: { initialMaxRetries: 0, initialDelayMs: 50 },
            socketOptions: TLS_SECRETS,
          },
          { logger },
        ),
      );
      expect(errorText(error)).toMatch(/ACCESS_REFUSED|refused|403/i);
      expect(leaks(errorText(error))).toEqual([]);
      expect(lines.length).toBeGreaterThan(0);
      expect(leaks(lines.join(''))).toEqual([]);
    });

    it('RabbitMQ: amqps with socketOptions (they reach the TLS socket, which rejects the key)', async () => {
      const { logger, lines } = capturingLogger();
      const error = await failure(() =>
        createRabbitTransport(
          {
            url: `amqps://guest:${SECRETS.amqpPassword}@127.0.0.1:5672`,
            reconnect: { initialMaxRetries: 0, initialDelayMs: 50 },
            socketOptions: TLS_SECRETS,
          },
          { logger },
        ),
      );
      expect(errorText(error)).toMatch(/DECODER|PEM|key/i);
      expect(leaks(errorText(error))).toEqual([]);
      expect(leaks(lines.join(''))).toEqual([]);
    });

    it('RabbitMQ: a connection that works, with TLS settings among its options', async () => {
      const { logger, lines } = capturingLogger();
      const transport = await createRabbitTransport(
        { url: services.rabbitmq.url, socketOptions: TLS_SECRETS, connectionName: 'bt-leak' },
        { logger },
      );
      await transport.close();
      expect(lines.length).toBeGreaterThan(0);
      expect(leaks(lines.join(''))).toEqual([]);
    });

    /** Publishes once with `secrets` among the options; the failure and the logs hide them. */
    async function kafkaFailureLeaksNothing(
      secrets: Pick<KafkaTransportOptions, 'ssl' | 'sasl'>,
    ): Promise<void> {
      const { logger, lines } = capturingLogger();
      const transport = createKafkaTransport(
        {
          brokers: [services.kafka.url],
          clientId: 'bt-leak',
          ...secrets,
          connectionTimeoutMs: 2_000,
          requestTimeoutMs: 5_000,
          clientLogLevel: 'debug',
          producer: { retries: 1, publishTimeoutMs: 15_000 },
        },
        { logger },
      );
      try {
        const error = await failure(() =>
          transport.publish([
            {
              topic: uniqueName('bt-leak'),
              message: { headers: { id: 'm1' }, body: new TextEncoder().encode('x') },
            },
          ]),
        );
        expect(leaks(errorText(error))).toEqual([]);
        expect(lines.length).toBeGreaterThan(0);
        expect(leaks(lines.join(''))).toEqual([]);
      } finally {
        await transport.close().catch(() => undefined);
      }
    }

    it('Kafka: SASL/SCRAM against the plaintext broker fails', async () => {
      await kafkaFailureLeaksNothing({ sasl: SASL });
    }, 60_000);

    it('Kafka: TLS with a private key against the plaintext broker fails', async () => {
      await kafkaFailureLeaksNothing({
        ssl: { ...TLS_SECRETS, rejectUnauthorized: true },
        sasl: SASL,
      });
    }, 60_000);

    it('PostgreSQL: a role that does not exist, and a migration that works', async () => {
      const { logger, lines } = capturingLogger();
      const schema = uniqueName('bt_leak').replaceAll('-', '_');
      const error = await failure(() =>
        migrateDatabase({
          url: `postgresql://bt_nobody:${SECRETS.pgPassword}@127.0.0.1:5432/postgres`,
          schema,
          logger,
          connectTimeoutMs: 5_000,
        }),
      );
      expect(errorText(error)).toMatch(/bt_nobody|authentication|does not exist/);
      expect(leaks(errorText(error))).toEqual([]);
      const base = new URL(services.postgres.url);
      base.password = SECRETS.pgPassword; // the server trusts 127.0.0.1: the password is ignored
      const url = base.toString();
      const result = await migrateDatabase({ url, schema, logger });
      expect(result.applied.length).toBeGreaterThan(0);
      expect(leaks(lines.join(''))).toEqual([]);
      const { default: pg } = await import('pg');
      const pool = new pg.Pool({ connectionString: url, max: 1 });
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).finally(() => pool.end());
    });

    it('option validation errors do not echo a secret value', () => {
      const errors = [
        new KafkaConfigError('sasl.password', 'must be a string', SECRETS.kafkaPassword),
        new KafkaConfigError('sasl', 'is not a SASL setting', SASL),
        new RabbitConfigError(
          'socketOptions.passphrase',
          'must be a string',
          SECRETS.keyPassphrase,
        ),
        new RabbitConfigError(
          'url',
          'must be an amqp(s) URL',
          `amqps://app:${SECRETS.amqpPassword}@mq.example.com/orders`,
        ),
        new PostgresConfigError(
          'url',
          'must be a connection string',
          `postgres://app:${SECRETS.pgPassword}@db.example.com/app`,
        ),
        new PostgresConfigError('ssl.key', 'must be a PEM string', PRIVATE_KEY),
      ];
      for (const error of errors) expect(leaks(errorText(error)), error.message).toEqual([]);
    });

    it('the default logger (no logger given) writes no secret', async () => {
      const saved = process.env.BACKTRACK_LOG_LEVEL;
      process.env.BACKTRACK_LOG_LEVEL = 'trace';
      const lines: string[] = [];
      const spy = vi
        .spyOn(process.stdout, 'write')
        .mockImplementation((chunk: string | Uint8Array) => {
          lines.push(String(chunk));
          return true;
        });
      try {
        const error = await failure(() =>
          createRabbitTransport({
            url: `amqp://guest:${SECRETS.amqpPassword}@127.0.0.1:5672`,
            reconnect: { initialMaxRetries: 0, initialDelayMs: 50 },
            socketOptions: TLS_SECRETS,
          }),
        );
        expect(leaks(errorText(error))).toEqual([]);
      } finally {
        spy.mockRestore();
        if (saved === undefined) delete process.env.BACKTRACK_LOG_LEVEL;
        else process.env.BACKTRACK_LOG_LEVEL = saved;
      }
      expect(lines.length).toBeGreaterThan(0);
      expect(leaks(lines.join(''))).toEqual([]);
    });
  });

  describe('the backtrack CLI: text and --json, logs at trace, debug stacks', () => {
    let dir: string;
    /** Secrets of every service, Redis TLS settings among them. */
    let config: string;
    /** The same without Redis TLS settings (the plain Redis cannot speak TLS). */
    let plainConfig: string;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'bt-leak-'));
      config = join(dir, 'backtrack.config.mjs');
      plainConfig = join(dir, 'plain.config.mjs');
      // The secrets in a config file, as an application would keep them (from its secret store).
      const settings = {
        redis: { tls: TLS_SECRETS, sagaPrefix: `${uniqueName('bt-leak')}:` },
        kafka: { brokers: [services.kafka.url], clientId: 'bt-leak', sasl: SASL },
        rabbitmq: {
          url: `amqp://guest:${SECRETS.amqpPassword}@127.0.0.1:5672`,
          socketOptions: TLS_SECRETS,
        },
      };
      await writeFile(config, `export default ${JSON.stringify(settings)};\n`);
      const plain = { ...settings, redis: { sagaPrefix: settings.redis.sagaPrefix } };
      await writeFile(plainConfig, `export default ${JSON.stringify(plain)};\n`);
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    function cli(args: string[], env: Record<string, string> = {}) {
      return new Promise<{ code: number | null; output: string }>((resolve) => {
        const child = spawn(process.execPath, [COMMAND, ...args], {
          cwd: ROOT,
          env: { ...process.env, BACKTRACK_LOG_LEVEL: 'trace', BACKTRACK_DEBUG: '1', ...env },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let output = '';
        child.stdout.on('data', (c: Buffer) => (output += c.toString()));
        child.stderr.on('data', (c: Buffer) => (output += c.toString()));
        const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
        child.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code, output });
        });
      });
    }

    const pw = SECRETS.redisPassword;
    const cases: {
      name: string;
      args: string[];
      env?: Record<string, string>;
      /** The config file: `plain` has no Redis TLS settings. @default the one with every secret */
      config?: 'plain';
      code: number;
      /** What the output says (the failure is the intended one). */
      says: RegExp;
    }[] = [
      {
        name: 'Redis: wrong user and password',
        args: ['sagas', 'list', '--redis-url', `redis://bt-nobody:${pw}@127.0.0.1:6379`],
        code: 1,
        config: 'plain',
        says: /WRONGPASS|BT_ERR_REDIS_AUTHENTICATION_FAILED/,
      },
      {
        name: 'Redis: a password with an unencoded / (an invalid URL, echoed)',
        args: ['sagas', 'list', '--redis-url', `redis://bt-nobody:${pw}/x@127.0.0.1:6379`],
        code: 2,
        config: 'plain',
        says: /invalid Redis URL redis:\/\/bt-nobody:\*\*\*@127/,
      },
      {
        name: 'Redis: a password with an unencoded @',
        args: ['sagas', 'list', '--redis-url', `redis://bt-nobody:x@${pw}@127.0.0.1:6379`],
        code: 1,
        config: 'plain',
        says: /WRONGPASS|BT_ERR_REDIS_AUTHENTICATION_FAILED/,
      },
      {
        name: 'Redis: ?password= in the URL, nobody listening',
        args: ['sagas', 'list'],
        env: { REDIS_URL: `redis://127.0.0.1:1?password=${pw}` },
        code: 1,
        config: 'plain',
        says: /ECONNREFUSED/,
      },
      {
        name: 'Redis: TLS settings with a private key the client cannot read',
        args: ['sagas', 'list', '--redis-url', `redis://:${pw}@127.0.0.1:6379`],
        code: 1,
        says: /cannot connect to Redis at redis:\/\/:\*\*\*@127.*(DECODER|PEM|key)/i,
      },
      {
        name: 'Redis: a password that works',
        args: ['sagas', 'list', '--redis-url', `redis://:${pw}@127.0.0.1:6379`],
        code: 0,
        config: 'plain',
        says: /No saga needs attention|\[\]/,
      },
      {
        name: 'RabbitMQ: guest with a wrong password (URL and TLS options from the config)',
        args: ['dlq', 'list', '--transport', 'rabbitmq', '--queue', uniqueName('bt-leak')],
        code: 1,
        says: /ACCESS_REFUSED|refused/i,
      },
      {
        name: 'Kafka: SASL against the plaintext broker',
        args: ['dlq', 'list', '--transport', 'kafka', '--topic', uniqueName('bt-leak')],
        code: 1,
        says: /SASL/,
      },
      {
        name: 'RabbitMQ: amqps with the TLS options of the config (they reach the TLS socket)',
        args: ['dlq', 'list', '--transport', 'rabbitmq', '--queue', uniqueName('bt-leak')],
        env: { AMQP_URL: `amqps://guest:${SECRETS.amqpPassword}@127.0.0.1:5672` },
        code: 1,
        says: /cannot connect to RabbitMQ at amqps:\/\/guest:\*\*\*@127.*(DECODER|PEM|key)/i,
      },
      {
        name: 'PostgreSQL: a role that does not exist',
        args: [
          'postgres',
          'migrate',
          '--schema',
          'bt_leak_never',
          '--database-url',
          `postgresql://bt_nobody:${SECRETS.pgPassword}@127.0.0.1:5432/postgres`,
        ],
        code: 1,
        says: /bt_nobody|BT_ERR_PG_AUTHENTICATION_FAILED/,
      },
      {
        name: 'PostgreSQL: a password in a dry run that works',
        args: ['postgres', 'migrate', '--schema', 'bt_leak_never', '--dry-run'],
        env: { DATABASE_URL: withPassword(services.postgres.url, SECRETS.pgPassword) },
        code: 0,
        says: /bt_leak_never|migration/i,
      },
    ];

    for (const c of cases) {
      it(
        c.name,
        async () => {
          for (const json of [false, true]) {
            const file = c.config === 'plain' ? plainConfig : config;
            const r = await cli([...c.args, '--config', file, ...(json ? ['--json'] : [])], c.env);
            expect(r.code, r.output).toBe(c.code);
            expect(r.output).toMatch(c.says);
            expect(leaks(r.output), r.output).toEqual([]);
          }
        },
        120_000,
      );
    }
  });
});

function withPassword(url: string, password: string): string {
  const u = new URL(url);
  u.password = password;
  return u.toString();
}
