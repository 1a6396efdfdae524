import { afterAll, describe } from 'vitest';
import { RedisSagaStore, createRedisClient } from '@backtrack/redis';
import { sagaStoreContract } from '../../core/src/testing/contracts/sagaStoreContract.js';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { deleteByPrefix } from './support.js';

const redis = await probeService('redis');

describe.skipIf(!redis.available)('RedisSagaStore on real Redis', () => {
  const client = createRedisClient(redis.url);
  const peerClient = createRedisClient(redis.url);
  afterAll(async () => {
    await Promise.all([client.quit(), peerClient.quit()]);
  });

  sagaStoreContract('RedisSagaStore', async () => {
    const keyPrefix = `${uniqueName('bt-saga')}:`;
    return {
      store: new RedisSagaStore({ keyPrefix }, { redis: client }),
      // A second engine's view, on its own connection.
      peer: new RedisSagaStore({ keyPrefix }, { redis: peerClient }),
      cleanup: () => deleteByPrefix(client, keyPrefix),
    };
  });
});
