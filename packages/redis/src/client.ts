import { watchRedisAccess } from './connectionErrors.js';
import { Cluster, Redis, type ClusterNode, type ClusterOptions, type RedisOptions } from 'ioredis';

/**
 * ioredis settings that suit a dedupe or saga store: fail fast while Redis is away instead of
 * queueing commands without bound.
 *
 * - `maxRetriesPerRequest: 1`: a command waiting in the offline queue is rejected after one
 *   failed reconnection attempt (ioredis' default, 20, holds it for many seconds; `null` holds
 *   it forever). The store turns the rejection into a retriable `StoreUnavailableError`, and the
 *   consumer pauses and redelivers.
 * - `enableOfflineQueue: true`: commands sent while the first connection is still being made
 *   wait for it instead of failing at once (with `false`, every call right after start-up fails).
 * - `connectTimeoutMs` 2000 and a reconnect backoff capped at 2 s: a dead host is noticed quickly
 *   and retried in the background.
 */
export const DEFAULT_REDIS_CLIENT_OPTIONS = Object.freeze({
  maxRetriesPerRequest: 1,
  enableOfflineQueue: true,
  connectTimeout: 2_000,
  retryStrategy: (times: number) => Math.min(times * 100, 2_000),
} satisfies RedisOptions);

/**
 * Creates an ioredis client with {@link DEFAULT_REDIS_CLIENT_OPTIONS} merged under `options`.
 * The caller owns the client: `quit()` it on shutdown. Stores never close a client they were given.
 *
 * @param url `redis://[user:password@]host:port[/db]`; defaults to `REDIS_URL`, then
 *   `redis://127.0.0.1:6379`.
 * @example
 * const redis = createRedisClient(process.env.REDIS_URL);
 * const dedupe = new RedisDedupeStore({ keyPrefix: 'orders:dedupe:' }, { redis });
 */
export function createRedisClient(url?: string, options: RedisOptions = {}): Redis {
  const client = new Redis(url ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
    ...DEFAULT_REDIS_CLIENT_OPTIONS,
    ...options,
  });
  watchRedisAccess(client);
  return client;
}

/**
 * Creates an ioredis `Cluster` client with the fail-fast settings of
 * {@link DEFAULT_REDIS_CLIENT_OPTIONS} for every node connection, for the stores on Redis Cluster.
 * Every store accepts it where it accepts a `Redis` client; no hash tag is needed in the key
 * prefixes (see the package README's "Redis Cluster" section). The caller owns it: `quit()` it.
 *
 * @param nodes Seed nodes (`'host:port'` strings or `{ host, port }`); defaults to
 *   `REDIS_CLUSTER_NODES` (comma-separated `host:port`), then `127.0.0.1:7001`..`7003`.
 * @example
 * const redis = createRedisClusterClient(['10.0.0.1:6379', '10.0.0.2:6379']);
 * const dedupe = new RedisDedupeStore({}, { redis });
 */
export function createRedisClusterClient(
  nodes?: readonly (string | ClusterNode)[],
  options: ClusterOptions = {},
): Cluster {
  const seeds = nodes ?? parseNodes(process.env.REDIS_CLUSTER_NODES) ?? DEFAULT_CLUSTER_NODES;
  const { retryStrategy: _perNodeRetry, ...perNode } = DEFAULT_REDIS_CLIENT_OPTIONS;
  return new Cluster([...seeds] as ClusterNode[], {
    enableOfflineQueue: true,
    clusterRetryStrategy: (times: number) => Math.min(times * 100, 2_000),
    ...options,
    redisOptions: { ...perNode, ...options.redisOptions },
  });
}

const DEFAULT_CLUSTER_NODES = ['127.0.0.1:7001', '127.0.0.1:7002', '127.0.0.1:7003'];

function parseNodes(value: string | undefined): string[] | undefined {
  const nodes = value
    ?.split(',')
    .map((n) => n.trim())
    .filter((n) => n.length > 0);
  return nodes && nodes.length > 0 ? nodes : undefined;
}
