/**
 * Builds what the services run on, by configuration:
 *
 * | transport | messages          | journal, dedupe, saga log, service state |
 * |-----------|-------------------|------------------------------------------|
 * | memory    | InMemoryTransport | in process memory                        |
 * | kafka     | Kafka (kafkajs)   | Redis                                    |
 * | rabbitmq  | RabbitMQ (amqplib)| Redis                                    |
 *
 * On a real broker every service gets its own transport connection, and all state lives in
 * Redis under one key prefix, so each service can run as its own process (src/bin/*.ts) and
 * the checker can read every service's state from anywhere.
 *
 * With `store: 'postgres'` (any transport) the saga log, the journal and every service's dedupe
 * store (a `PostgresInbox` per consumer group) live in PostgreSQL instead, in the schema
 * `bt_<prefix>` of `DATABASE_URL` (migrated on start, dropped by `destroy()`); service state
 * and rollback progress stay where they were (memory or Redis).
 */
import {
  InMemoryDedupeStore,
  InMemoryJournal,
  InMemoryRollbackProgressStore,
  InMemorySagaStore,
  InMemoryTransport,
  type DedupeStore,
  type Journal,
  type Logger,
  type RollbackProgressStore,
  type SagaStore,
  type Transport,
} from '@backtrack/core';
import type { Redis } from 'ioredis';
import type { Pool } from 'pg';
import { pino } from 'pino';
import { createInMemoryStates } from '../state/memory.js';
import { createRedisStates } from '../state/redis.js';
import type { ServiceStates } from '../state/types.js';
import type { Story } from '../story.js';
import type { ServiceInfra, ServiceName } from './service.js';
import { shopTopics, type ShopTopics } from './topics.js';

const SERVICES: readonly ServiceName[] = ['orders', 'inventory', 'payments', 'shipping'];

export type TransportKind = 'memory' | 'kafka' | 'rabbitmq';
export const TRANSPORT_KINDS: readonly TransportKind[] = ['memory', 'kafka', 'rabbitmq'];

/** Where the saga log, journal and dedupe stores live: `default` = memory or Redis. */
export type StoreKind = 'default' | 'postgres';
export const STORE_KINDS: readonly StoreKind[] = ['default', 'postgres'];

/** The default `DATABASE_URL` of `store: 'postgres'`. */
export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';

export interface RuntimeOptions {
  transport: TransportKind;
  /**
   * `postgres` keeps the saga log, journal and dedupe stores in PostgreSQL (schema
   * `bt_<prefix>`), whatever the transport. @default 'default'
   */
  store?: StoreKind;
  /** @default DATABASE_URL or postgres://postgres@127.0.0.1:5432/test */
  databaseUrl?: string;
  /**
   * Prefix of every topic, exchange, queue, consumer group and Redis key of this run, so runs
   * (and parallel tests) never see each other's messages. @default 'shop'
   */
  prefix?: string;
  /** @default REDIS_URL or redis://127.0.0.1:6379 */
  redisUrl?: string;
  /** Comma-separated. @default KAFKA_BROKERS or 127.0.0.1:9092 */
  kafkaBrokers?: string;
  /** @default AMQP_URL or amqp://guest:guest@127.0.0.1:5672 */
  amqpUrl?: string;
  /**
   * Partitions of each topic (Kafka topics and the in-memory transport), keyed by order id, and
   * on Kafka the partitions each consumer processes at once (`partitionsConsumedConcurrently`).
   * @default 8
   */
  partitions?: number;
  /**
   * Consumers per service in one group (Kafka: the group's members share the partitions;
   * RabbitMQ: competing consumers on the service's queue, each with its own channel and prefetch
   * window; memory: members of the group). @default 1
   */
  consumers?: number;
  /** RabbitMQ prefetch of each consumer: the largest window `processBatch` gets. @default 256 */
  prefetch?: number;
  /**
   * How long the first of concurrent publishes waits for others, in ms: the journaling
   * publisher's `batching.lingerMs` and, on Kafka, the producer's `lingerMs`. @default 0
   */
  lingerMs?: number;
  /**
   * The services of this process share one transport (one broker client) instead of a
   * connection each. On Kafka that is one producer, so the publishes of the four services in
   * one event-loop turn go out in one produce request (2,000 orders: 752 -> 513 produce
   * requests); each subscription still has its own consumer. Closed with the runtime, not with
   * a service. `connect()` always makes a new one. @default true on Kafka, false otherwise
   */
  shareTransport?: boolean;
  /**
   * Kafka: least time between two offset commits of a consumer (`commitIntervalMs`), in ms: the
   * commits of the batches that end meanwhile share one request. Each OffsetCommit costs the
   * broker ~1 ms of CPU here; after a crash up to one interval of batches is handled again
   * (deduplicated). 0 commits after every turn that ended a batch. @default 1000
   */
  commitIntervalMs?: number;
  /** The library's logger. @default pino at `warn` (BACKTRACK_LOG_LEVEL overrides) */
  logger?: Logger;
  /**
   * Kafka: create the run's topics (topics.ts) with their retry and dead-letter topics on start
   * (and wait a second for their leaders); the subscriptions create none themselves. A child of
   * the load driver's `--processes` passes `false`: its parent created them. @default true
   */
  createTopics?: boolean;
}

export interface Runtime {
  readonly transport: TransportKind;
  readonly store: StoreKind;
  readonly prefix: string;
  /** The run's topics (Kafka) or exchanges (RabbitMQ, memory): see topics.ts. */
  readonly topics: ShopTopics;
  readonly logger: Logger;
  /** Consumers per service (see {@link RuntimeOptions.consumers}). */
  readonly consumers: number;
  readonly journal: Journal;
  readonly sagaStore: SagaStore;
  /** Every service's state (each service is given only its own; the checker reads all). */
  readonly states: ServiceStates;
  /** Where rollback runs record their progress (so a killed run resumes). */
  readonly progressStore: RollbackProgressStore;
  /** The Redis client (real transports only). */
  readonly redis?: Redis;
  /** The PostgreSQL pool and schema (`store: 'postgres'` only). */
  readonly postgres?: { readonly pool: Pool; readonly schema: string };
  /** The infrastructure for one service (on real transports a new broker connection per call, or the process's one with `shareTransport`). */
  infraFor(service: ServiceName, story?: Story): Promise<ServiceInfra>;
  /** A transport for tools (the rollback runner): a new connection on real transports. */
  connect(): Promise<Transport>;
  /** Closes every transport, the Redis connection and the PostgreSQL pool. */
  close(): Promise<void>;
  /**
   * Deletes what this run left on the brokers and in Redis: its RabbitMQ queues and exchanges
   * and its Redis keys (Kafka topics stay; they are cheap and expire with retention), and its
   * PostgreSQL schema. Call it before `close()`. Nothing to do in memory.
   */
  destroy(): Promise<void>;
}

export function libraryLogger(): Logger {
  return pino({ name: 'backtrack', level: process.env.BACKTRACK_LOG_LEVEL ?? 'warn' });
}

export async function createRuntime(options: RuntimeOptions): Promise<Runtime> {
  const prefix = options.prefix ?? 'shop';
  const logger = options.logger ?? libraryLogger();
  const topics = shopTopics(prefix);
  const group = (service: ServiceName) => `${prefix}.${service}`;

  const store = options.store ?? 'default';
  const partitions = options.partitions ?? 8;
  const consumers = options.consumers ?? 1;
  const lingerMs = options.lingerMs ?? 0;
  const batching = { lingerMs, maxBatchSize: 256 };
  const pg = store === 'postgres' ? await postgresStores(options, prefix, logger) : undefined;

  if (options.transport === 'memory') {
    const transport = new InMemoryTransport({ partitions }, { logger });
    const journal = pg?.journal ?? new InMemoryJournal();
    const dedupeStore = new InMemoryDedupeStore();
    return {
      transport: 'memory',
      store,
      prefix,
      topics,
      logger,
      consumers,
      journal,
      sagaStore: pg?.sagaStore ?? new InMemorySagaStore(),
      progressStore: new InMemoryRollbackProgressStore(),
      states: createInMemoryStates(),
      ...(pg ? { postgres: { pool: pg.pool, schema: pg.schema } } : {}),
      connect: async () => transport,
      async infraFor(service, story) {
        return {
          transport,
          journal,
          dedupeStore: pg ? pg.inbox(group(service)) : dedupeStore,
          logger,
          topics,
          group,
          consumers,
          batching,
          bindHandledTypes: true, // as on the brokers below
          ...(story ? { story } : {}),
        };
      },
      async close() {
        await transport.close();
        await pg?.pool.end();
      },
      destroy: async () => pg?.drop(),
    };
  }

  const {
    createRedisClient,
    RedisDedupeStore,
    RedisJournal,
    RedisRollbackProgressStore,
    RedisSagaStore,
  } = await import('@backtrack/redis');
  const redis = createRedisClient(options.redisUrl ?? process.env.REDIS_URL, {
    maxRetriesPerRequest: 3,
  });
  const journal: Journal =
    pg?.journal ??
    new RedisJournal(
      // 'minimal' indexes: its rollbacks read the service-and-version index, and nothing here
      // queries by saga or type (about a third less Redis CPU per journal record written).
      { keyPrefix: `${prefix}:journal`, recordFormat: 'fields', indexes: 'minimal' },
      { redis },
    );
  const dedupeStore: DedupeStore = new RedisDedupeStore(
    { keyPrefix: `${prefix}:dedupe:` },
    { redis, logger },
  );
  const sagaStore: SagaStore =
    pg?.sagaStore ?? new RedisSagaStore({ keyPrefix: `${prefix}:saga:` }, { redis });
  const transports: Transport[] = [];
  const factory = await transportFactory(options, topics, logger);
  const connect = async () => {
    const transport = await factory();
    transports.push(transport);
    return transport;
  };
  // Kafka: the services of this process share one transport (see RuntimeOptions.shareTransport).
  let shared: Promise<Transport> | undefined;
  const share = options.shareTransport ?? options.transport === 'kafka';
  const serviceTransport = (): Promise<Transport> => (share ? (shared ??= connect()) : connect());
  return {
    transport: options.transport,
    store,
    prefix,
    topics,
    logger,
    consumers,
    journal,
    sagaStore,
    progressStore: new RedisRollbackProgressStore({ keyPrefix: `${prefix}:rollback` }, { redis }),
    states: createRedisStates(redis, prefix),
    redis,
    ...(pg ? { postgres: { pool: pg.pool, schema: pg.schema } } : {}),
    connect,
    async infraFor(service, story) {
      const transport = await serviceTransport();
      return {
        transport,
        journal,
        dedupeStore: pg ? pg.inbox(group(service)) : dedupeStore,
        logger,
        topics,
        group,
        consumers,
        batching,
        // Every transport binds a group to its handled types: RabbitMQ binds each queue to them,
        // Kafka skips other types' records before decoding them (bindingKeys on ce_type). The
        // topics (one per receiving service, see topics.ts) already keep most of that out.
        bindHandledTypes: true,
        ...(story ? { story } : {}),
      };
    },
    async close() {
      await Promise.allSettled(transports.map((t) => t.close()));
      redis.disconnect();
      await pg?.pool.end();
    },
    async destroy() {
      if (options.transport === 'rabbitmq' && transports[0]) {
        await deleteRabbitTopology(transports[0], topics, group);
      }
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `*${prefix}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await redis.unlink(...keys);
      } while (cursor !== '0');
      await pg?.drop();
    },
  };
}

/** The run's PostgreSQL schema: `bt_` + the prefix, with anything but `[A-Za-z0-9_]` as `_`. */
export function postgresSchemaFor(prefix: string): string {
  return `bt_${prefix.replace(/[^A-Za-z0-9_]/g, '_')}`.slice(0, 63);
}

/** Saga store, journal and inboxes on a new pool, in the run's own (migrated) schema. */
async function postgresStores(options: RuntimeOptions, prefix: string, logger: Logger) {
  const [{ createPostgresBackend }, { default: pgDriver }] = await Promise.all([
    import('@backtrack/postgres'),
    import('pg'),
  ]);
  const pool = new pgDriver.Pool({
    connectionString: options.databaseUrl ?? process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL,
    max: 10,
  });
  const schema = postgresSchemaFor(prefix);
  try {
    const backend = await createPostgresBackend({ pool, logger }, { schema });
    return {
      pool,
      schema,
      journal: backend.journal,
      sagaStore: backend.sagaStore,
      inbox: (consumer: string) => backend.inbox(consumer),
      /** Drops the run's schema and everything in it. */
      drop: async () => {
        await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      },
    };
  } catch (error) {
    await pool.end();
    throw error;
  }
}

async function transportFactory(
  options: RuntimeOptions,
  topics: ShopTopics,
  logger: Logger,
): Promise<() => Promise<Transport>> {
  if (options.transport === 'kafka') {
    const { createKafkaTransport } = await import('@backtrack/kafka');
    const brokers = (options.kafkaBrokers ?? process.env.KAFKA_BROKERS ?? '127.0.0.1:9092')
      .split(',')
      .map((b) => b.trim());
    const partitions = options.partitions ?? 8;
    const create = () =>
      createKafkaTransport(
        {
          brokers,
          clientId: `${options.prefix ?? 'shop'}-example`,
          consumer: {
            createPartitions: partitions,
            partitionsConsumedConcurrently: Math.min(partitions, 64),
            commitIntervalMs: options.commitIntervalMs ?? 1_000,
            // The run's topics, their retry and dead-letter topics included, are created below,
            // once: a subscription that creates its own asks the broker for the metadata of
            // every topic it has, several times (~4 ms of broker CPU each on the shared bench broker).
            createTopics: false,
          },
          producer: { lingerMs: options.lingerMs ?? 0 },
        },
        { logger },
      );
    // Create the run's topics up front with their partitions (and each one's retry and
    // dead-letter topic, with the consumer's default names), so no service races another to
    // create one, then give the broker a moment to publish the new leaders.
    if (options.createTopics === false) return async () => create();
    const admin = create();
    try {
      await admin.ensureTopics({ topics: [...topics.all], partitions });
      await new Promise((r) => setTimeout(r, 1_000));
    } finally {
      await admin.close();
    }
    return async () => create();
  }
  const { createRabbitTransport } = await import('@backtrack/rabbitmq');
  const url = options.amqpUrl ?? process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
  const prefetch = options.prefetch ?? 256;
  return async () => createRabbitTransport({ url, consumer: { prefetch } }, { logger });
}

/** Deletes the queues and exchanges the four services' subscriptions declared. */
async function deleteRabbitTopology(
  transport: Transport,
  topics: ShopTopics,
  group: (service: ServiceName) => string,
): Promise<void> {
  const { DEFAULT_RABBIT_CONSUMER_OPTIONS, RabbitTransport } = await import('@backtrack/rabbitmq');
  if (!(transport instanceof RabbitTransport)) return;
  const queues = SERVICES.flatMap((s) => [
    group(s),
    `${group(s)}.dlq`,
    ...DEFAULT_RABBIT_CONSUMER_OPTIONS.retryDelaysMs.map((ms) => `${group(s)}.retry.${ms}ms`),
  ]);
  const exchanges = [...topics.all, ...SERVICES.map((s) => `${group(s)}.dlx`)];
  await transport.connection.withChannel(async (channel) => {
    for (const queue of queues) await channel.deleteQueue(queue);
    for (const exchange of exchanges) await channel.deleteExchange(exchange);
  });
}
