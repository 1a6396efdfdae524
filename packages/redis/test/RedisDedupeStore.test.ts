import { afterAll, describe } from 'vitest';
import { RedisDedupeStore, createRedisClient } from '@backtrack/redis';
import { dedupeStoreContract } from '../../core/src/testing/contracts/dedupeStoreContract.js';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { deleteByPrefix } from './support.js';

const redis = await probeService('redis');

describe.skipIf(!redis.available)('RedisDedupeStore on real Redis', () => {
  const client = createRedisClient(redis.url);
  const peerClient = createRedisClient(redis.url);
  afterAll(async () => {
    await Promise.all([client.quit(), peerClient.quit()]);
  });

  dedupeStoreContract('RedisDedupeStore', async () => {
    const keyPrefix = `${uniqueName('bt-dedupe')}:`;
    const store = new RedisDedupeStore({ keyPrefix }, { redis: client });
    // A second store on a second connection: claims must be atomic across clients.
    const peer = new RedisDedupeStore({ keyPrefix }, { redis: peerClient });
    return {
      store,
      peer,
      ttlOf: async (key) => {
        const pttl = await client.pttl(store.redisKey(key));
        if (pttl === -2) return undefined;
        if (pttl === -1) return null;
        return pttl;
      },
      cleanup: () => deleteByPrefix(client, keyPrefix),
    };
  });
});
