import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { rollbackProgressStoreContract } from '@backtrack/core/adapter';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { RedisRollbackProgressStore } from '../src/rollback/RedisRollbackProgressStore.js';

const redis = await probeService('redis');

describe.skipIf(!redis.available)('RedisRollbackProgressStore', () => {
  const clients: Redis[] = [];
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.quit()));
  });
  const client = () => {
    const c = new Redis(redis.url);
    clients.push(c);
    return c;
  };

  rollbackProgressStoreContract(
    'RedisRollbackProgressStore',
    async () => {
      const keyPrefix = uniqueName('bt-rollback');
      const store = new RedisRollbackProgressStore({ keyPrefix }, { redis: client() });
      const peer = new RedisRollbackProgressStore({ keyPrefix }, { redis: client() });
      return { store, peer, cleanup: () => store.destroy() };
    },
    { describe, it, expect },
  );

  it('rejects bad options with BT_ERR_REDIS_CONFIG_INVALID', () => {
    expect(() => new RedisRollbackProgressStore({ runTtlMs: 0 }, { redis: client() })).toThrowError(
      expect.objectContaining({ code: 'BT_ERR_REDIS_CONFIG_INVALID' }),
    );
  });
});
