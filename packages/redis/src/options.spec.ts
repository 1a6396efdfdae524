import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { BacktrackError } from '@backtrack/core';
import { DEFAULT_REDIS_DEDUPE_OPTIONS, RedisDedupeStore } from './dedupe/RedisDedupeStore.js';
import { DEFAULT_REDIS_SAGA_OPTIONS, RedisSagaStore } from './saga/RedisSagaStore.js';
import { DEFAULT_REDIS_CLIENT_OPTIONS } from './client.js';

// Never connects: validation happens at construction, before any command.
const redis = new Redis({ lazyConnect: true });
afterAll(() => redis.disconnect());

function configError(fn: () => unknown, field: string) {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(BacktrackError);
    expect(error).toMatchObject({
      code: 'BT_ERR_REDIS_CONFIG_INVALID',
      retriable: false,
      details: { field },
    });
    return;
  }
  throw new Error(`expected a config error for ${field}`);
}

describe('RedisDedupeStore options', () => {
  it('merges over DEFAULT_REDIS_DEDUPE_OPTIONS and freezes the result', () => {
    const store = new RedisDedupeStore({ keyPrefix: 'svc:' }, { redis });
    expect(store.options).toEqual({ ...DEFAULT_REDIS_DEDUPE_OPTIONS, keyPrefix: 'svc:' });
    expect(Object.isFrozen(store.options)).toBe(true);
    expect(new RedisDedupeStore({ keyPrefix: undefined }, { redis }).options.keyPrefix).toBe(
      'backtrack:dedupe:',
    );
  });

  it('defaults the retention inside 30 minutes .. 7 days', () => {
    const ms = DEFAULT_REDIS_DEDUPE_OPTIONS.defaultRetentionMs;
    expect(ms).toBeGreaterThanOrEqual(30 * 60 * 1000);
    expect(ms).toBeLessThanOrEqual(7 * 24 * 60 * 60 * 1000);
  });

  it('rejects each invalid option with a coded error naming the field', () => {
    configError(() => new RedisDedupeStore({ keyPrefix: '' }, { redis }), 'keyPrefix');
    configError(() => new RedisDedupeStore({ keyPrefix: 'x'.repeat(257) }, { redis }), 'keyPrefix');
    configError(
      () => new RedisDedupeStore({ defaultRetentionMs: 500 }, { redis }),
      'defaultRetentionMs',
    );
    configError(
      () => new RedisDedupeStore({ defaultRetentionMs: 31 * 24 * 3600 * 1000 }, { redis }),
      'defaultRetentionMs',
    );
    configError(() => new RedisDedupeStore({ commandTimeoutMs: 0 }, { redis }), 'commandTimeoutMs');
    configError(
      () => new RedisDedupeStore({ commandTimeoutMs: 1.5 }, { redis }),
      'commandTimeoutMs',
    );
    configError(() => new RedisDedupeStore({ maxResultBytes: -1 }, { redis }), 'maxResultBytes');
    configError(() => new RedisDedupeStore({}, {} as { redis: Redis }), 'dependencies.redis');
  });

  it('rejects invalid call arguments before touching Redis', async () => {
    const store = new RedisDedupeStore({}, { redis });
    await expect(store.claim('k', { leaseMs: 0 })).rejects.toMatchObject({
      code: 'BT_ERR_DEDUPE_CONFIG_INVALID',
      details: { field: 'leaseMs' },
    });
    await expect(store.claimMany(['a', ''], { leaseMs: 10 })).rejects.toMatchObject({
      details: { field: 'keys[1]' },
    });
    await expect(store.complete('k', 't', { ttlMs: -1 })).rejects.toMatchObject({
      details: { field: 'ttlMs' },
    });
    await expect(store.extend('', 't', 10)).rejects.toMatchObject({ details: { field: 'key' } });
    expect(redis.status).toBe('wait');
  });
});

describe('RedisSagaStore options', () => {
  it('merges over DEFAULT_REDIS_SAGA_OPTIONS', () => {
    const store = new RedisSagaStore({ commandTimeoutMs: 500 }, { redis });
    expect(store.options).toEqual({ ...DEFAULT_REDIS_SAGA_OPTIONS, commandTimeoutMs: 500 });
  });

  it('rejects each invalid option with a coded error naming the field', () => {
    configError(() => new RedisSagaStore({ keyPrefix: '' }, { redis }), 'keyPrefix');
    configError(() => new RedisSagaStore({ commandTimeoutMs: -5 }, { redis }), 'commandTimeoutMs');
    configError(() => new RedisSagaStore({ maxListLimit: 0 }, { redis }), 'maxListLimit');
    configError(() => new RedisSagaStore({}, {} as { redis: Redis }), 'dependencies.redis');
  });
});

describe('DEFAULT_REDIS_CLIENT_OPTIONS', () => {
  it('bounds the offline queue and the connect time', () => {
    expect(DEFAULT_REDIS_CLIENT_OPTIONS.maxRetriesPerRequest).toBe(1);
    expect(DEFAULT_REDIS_CLIENT_OPTIONS.connectTimeout).toBeLessThanOrEqual(2_000);
    expect(DEFAULT_REDIS_CLIENT_OPTIONS.retryStrategy(100)).toBe(2_000);
  });
});
