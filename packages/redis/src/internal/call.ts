import { StoreUnavailableError } from '@backtrack/core';
import { classifyRedisError, redisAccessFailure, watchRedisAccess } from '../connectionErrors.js';
import { RedisCommandError } from '../errors.js';
import type { RedisClient } from './cluster.js';
import { coalesceWrites } from './coalesce.js';

const DISCONNECTED = new Set(['reconnecting', 'close', 'end']);

/** Redis error replies that mean "not now" rather than "never": retry later. */
const TRANSIENT_REPLIES = [
  'LOADING',
  'BUSY',
  'READONLY',
  'TRYAGAIN',
  'CLUSTERDOWN',
  'MASTERDOWN',
  'OOM',
  'NOREPLICAS',
];

/**
 * Runs one store operation against Redis with a deadline, and maps failures to typed errors:
 * the connection being down, closed or slow (and transient error replies) become the retriable
 * `StoreUnavailableError`; any other error reply becomes `RedisCommandError`.
 *
 * Two guards keep a consumer from hanging while Redis is away:
 * - a client known to be disconnected (status `reconnecting`, `close` or `end`) fails the call
 *   at once instead of parking it in ioredis' offline queue until the next reconnection attempt;
 *   a client still making its first connection (`wait`, `connecting`, `connect`) is waited for;
 * - every call has a deadline: even with a client that queues commands without bound
 *   (`maxRetriesPerRequest: null`), the caller gets its answer within `timeoutMs`.
 *
 * With the client given, the commands `fn` sends leave with the others of the same tick in one
 * socket write (see `coalesceWrites`).
 */
export async function callRedis<T>(
  store: string,
  operation: string,
  timeoutMs: number,
  fn: () => Promise<T>,
  /** When given, a known-disconnected client fails the call at once (see above). */
  redis?: { readonly status: string },
): Promise<T> {
  if (redis !== undefined) watchRedisAccess(redis);
  const denied = redisAccessFailure(redis);
  if (denied) throw denied; // bad credentials or certificate: fail at once, not after a timeout
  if (redis !== undefined && DISCONNECTED.has(redis.status)) {
    throw new StoreUnavailableError(
      store,
      operation,
      `${store} store unavailable (${operation}): Redis connection is ${redis.status}`,
      { details: { connectionStatus: redis.status } },
    );
  }
  if (redis !== undefined) coalesceWrites(redis as RedisClient);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new StoreUnavailableError(
            store,
            operation,
            `${store} store did not answer ${operation} within ${timeoutMs} ms`,
            { details: { timeoutMs } },
          ),
        ),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([fn(), deadline]);
  } catch (error) {
    throw (
      classifyRedisError(error) ?? redisAccessFailure(redis) ?? classify(store, operation, error)
    );
  } finally {
    clearTimeout(timer);
  }
}

function classify(store: string, operation: string, error: unknown): Error {
  if (error instanceof StoreUnavailableError) return error;
  if (error instanceof Error && error.name === 'ReplyError') {
    const prefix = error.message.split(' ', 1)[0] ?? '';
    if (!TRANSIENT_REPLIES.includes(prefix)) return new RedisCommandError(operation, error);
  }
  const message = error instanceof Error ? error.message : String(error);
  return new StoreUnavailableError(
    store,
    operation,
    `${store} store unavailable (${operation}): ${message}`,
    {
      cause: error,
    },
  );
}
