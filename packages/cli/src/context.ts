import net from 'node:net';
import {
  type BacktrackError,
  createSagaEngine,
  redactionLoggerOptions,
  redactText,
  type Journal,
  type Logger,
  type SagaEngine,
  type Transport,
} from '@backtrack/core';
import { createKafkaTransport, type KafkaTransport } from '@backtrack/kafka';
import { createRabbitTransport, type RabbitTransport } from '@backtrack/rabbitmq';
import { RedisJournal, RedisRollbackProgressStore, RedisSagaStore } from '@backtrack/redis';
import { classifyRedisError } from '@backtrack/redis/adapter';
import { classifyRabbitError } from '@backtrack/rabbitmq/adapter';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import type { BacktrackConfig } from './config.js';
import { CliError, EXIT } from './errors.js';

/** Options every command accepts (commander's global options). */
export interface GlobalOptions {
  config?: string;
  json?: boolean;
  redisUrl?: string;
  kafkaBrokers?: string;
  amqpUrl?: string;
  transport?: string;
}

const CONNECT_TIMEOUT_MS = 3_000;

/**
 * The connections one command uses, opened on first use with a clear error when a service is
 * unreachable, and closed when the command ends.
 */
export class CliContext {
  readonly logger: Logger;
  #redis?: Promise<Redis>;
  #transport?: Promise<Transport>;
  readonly #closers: (() => Promise<unknown>)[] = [];

  constructor(
    readonly options: GlobalOptions,
    readonly config: BacktrackConfig,
  ) {
    // Library logs go to stderr, quiet unless BACKTRACK_LOG_LEVEL says otherwise; no secret in them.
    this.logger = pino(
      {
        name: 'backtrack-cli',
        level: process.env.BACKTRACK_LOG_LEVEL ?? 'warn',
        ...redactionLoggerOptions(),
      },
      pino.destination(2),
    );
  }

  get redisUrl(): string {
    return (
      this.options.redisUrl ??
      process.env.REDIS_URL ??
      this.config.redis?.url ??
      'redis://127.0.0.1:6379'
    );
  }

  redis(): Promise<Redis> {
    this.#redis ??= (async () => {
      const url = this.redisUrl;
      let redis: Redis;
      try {
        redis = new Redis(url, {
          lazyConnect: true,
          connectTimeout: CONNECT_TIMEOUT_MS,
          maxRetriesPerRequest: 2,
          retryStrategy: (times) => (times > 3 ? null : Math.min(times * 200, 1_000)),
          ...(this.config.redis?.tls ? { tls: this.config.redis.tls } : {}),
        });
      } catch (error) {
        throw new CliError(`invalid Redis URL ${redact(url)}: ${messageOf(error)}`, EXIT.Usage);
      }
      // Reported through the failed command instead; the server's reply (WRONGPASS, NOPERM)
      // says more than ioredis' "Connection is closed".
      let refusal: unknown;
      redis.on('error', (error: unknown) => {
        refusal ??= error;
      });
      try {
        await redis.connect();
      } catch (error) {
        redis.disconnect();
        // Bad credentials or certificate: say so (with its code) instead of "connection closed".
        const denied = classifyRedisError(error) ?? classifyRedisError(refusal);
        throw connectionFailure(
          `Redis at ${redact(url)}`,
          denied ?? refusal ?? error,
          denied,
          'set --redis-url or REDIS_URL',
        );
      }
      this.#closers.push(() => redis.quit().catch(() => redis.disconnect()));
      return redis;
    })();
    return this.#redis;
  }

  async journal(): Promise<Journal> {
    const prefix = this.config.redis?.journalPrefix;
    return new RedisJournal(prefix ? { keyPrefix: prefix } : {}, { redis: await this.redis() });
  }

  async progressStore(): Promise<RedisRollbackProgressStore> {
    const prefix = this.config.redis?.progressPrefix;
    return new RedisRollbackProgressStore(prefix ? { keyPrefix: prefix } : {}, {
      redis: await this.redis(),
    });
  }

  async sagaStore(): Promise<RedisSagaStore> {
    const prefix = this.config.redis?.sagaPrefix;
    const layout = this.config.redis?.sagaKeyLayout;
    return new RedisSagaStore(
      { ...(prefix ? { keyPrefix: prefix } : {}), ...(layout ? { keyLayout: layout } : {}) },
      { redis: await this.redis() },
    );
  }

  /** A saga engine over the Redis saga store with the config's definitions registered. */
  async sagaEngine(): Promise<SagaEngine> {
    const engine = createSagaEngine({ store: await this.sagaStore(), logger: this.logger });
    if (this.config.sagas?.length) engine.register(...this.config.sagas);
    return engine;
  }

  get transportKind(): 'kafka' | 'rabbitmq' {
    const kind = this.options.transport ?? process.env.BACKTRACK_TRANSPORT ?? this.config.transport;
    if (kind === 'kafka' || kind === 'rabbitmq') return kind;
    if (kind === undefined) {
      if (this.options.kafkaBrokers ?? process.env.KAFKA_BROKERS ?? this.config.kafka)
        return 'kafka';
      if (this.options.amqpUrl ?? process.env.AMQP_URL ?? this.config.rabbitmq) return 'rabbitmq';
      throw new CliError(
        'no transport chosen',
        EXIT.Usage,
        undefined,
        'pass --transport kafka|rabbitmq (or set BACKTRACK_TRANSPORT, KAFKA_BROKERS or AMQP_URL)',
      );
    }
    throw new CliError(`unknown transport "${kind}": use kafka or rabbitmq`, EXIT.Usage);
  }

  get kafkaBrokers(): string[] {
    const raw = this.options.kafkaBrokers ?? process.env.KAFKA_BROKERS;
    const brokers = raw
      ? raw
          .split(',')
          .map((b) => b.trim())
          .filter(Boolean)
      : this.config.kafka?.brokers;
    return brokers?.length ? brokers : ['127.0.0.1:9092'];
  }

  get amqpUrl(): string {
    return (
      this.options.amqpUrl ??
      process.env.AMQP_URL ??
      this.config.rabbitmq?.url ??
      'amqp://guest:guest@127.0.0.1:5672'
    );
  }

  transport(): Promise<Transport> {
    this.#transport ??= (async () => {
      const kind = this.transportKind;
      if (kind === 'kafka') {
        const brokers = this.kafkaBrokers;
        await probe(brokers[0]!, 'Kafka', 'set --kafka-brokers or KAFKA_BROKERS');
        const transport = createKafkaTransport(
          {
            brokers,
            clientId: this.config.kafka?.clientId ?? 'backtrack-cli',
            clientLogLevel: 'nothing',
            ...(this.config.kafka?.ssl !== undefined ? { ssl: this.config.kafka.ssl } : {}),
            ...(this.config.kafka?.sasl !== undefined ? { sasl: this.config.kafka.sasl } : {}),
          },
          { logger: this.logger },
        );
        this.#closers.unshift(() => transport.close());
        return transport;
      }
      const url = this.amqpUrl;
      try {
        const transport = await createRabbitTransport(
          {
            url,
            connectionName: 'backtrack-cli',
            reconnect: { initialMaxRetries: 1, initialDelayMs: 200 },
            ...(this.config.rabbitmq?.socketOptions
              ? { socketOptions: this.config.rabbitmq.socketOptions }
              : {}),
          },
          { logger: this.logger },
        );
        this.#closers.unshift(() => transport.close());
        return transport;
      } catch (error) {
        throw connectionFailure(
          `RabbitMQ at ${redact(url)}`,
          error,
          classifyRabbitError(error),
          'set --amqp-url or AMQP_URL',
        );
      }
    })();
    return this.#transport;
  }

  async kafkaTransport(): Promise<KafkaTransport> {
    if (this.transportKind !== 'kafka')
      throw new CliError('this needs --transport kafka', EXIT.Usage);
    return (await this.transport()) as KafkaTransport;
  }

  async rabbitTransport(): Promise<RabbitTransport> {
    if (this.transportKind !== 'rabbitmq')
      throw new CliError('this needs --transport rabbitmq', EXIT.Usage);
    return (await this.transport()) as RabbitTransport;
  }

  async close(): Promise<void> {
    for (const close of this.#closers.splice(0)) await close().catch(() => undefined);
  }
}

/**
 * The error for a store or broker the CLI could not connect to. An access failure (bad password,
 * missing permission, certificate refused) keeps the library's own code (`BT_ERR_REDIS_...`,
 * `BT_ERR_AMQP_...`) so a script can tell "wrong credentials" from "not running" without parsing
 * the message (the error line ends with that code); anything else is `BT_ERR_CLI_CONNECTION`.
 * Both exit 1.
 */
export function connectionFailure(
  what: string,
  error: unknown,
  denied: BacktrackError | undefined,
  hint: string,
): CliError {
  return new CliError(
    `cannot connect to ${what}: ${messageOf(denied ?? error)}`,
    EXIT.Error,
    denied?.code ?? 'BT_ERR_CLI_CONNECTION',
    denied ? `check the credentials and certificates; ${hint}` : hint,
  );
}

async function probe(hostPort: string, what: string, hint: string): Promise<void> {
  const [host, port] = hostPort.split(':');
  const ok = await new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: host || '127.0.0.1', port: Number(port || 9092) });
    const done = (value: boolean) => {
      socket.destroy();
      resolve(value);
    };
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
  if (!ok) {
    throw new CliError(
      `cannot connect to ${what} at ${hostPort}`,
      EXIT.Error,
      'BT_ERR_CLI_CONNECTION',
      hint,
    );
  }
}

export function messageOf(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length) return messageOf(error.errors[0]);
  const message = error instanceof Error ? error.message : String(error);
  return message || (error as { code?: string })?.code || 'unknown error';
}

/**
 * The text with every secret hidden (URL passwords, `password=` parameters, private keys): core's
 * {@link redactText}, the one redaction every CLI output goes through.
 */
export const redact = redactText;
