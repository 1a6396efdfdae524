import { createRedisClient } from '@backtrack/redis';
import { afterAll, describe } from 'vitest';
import { probeService, uniqueName } from '../../../../test/support/services.js';
import { createRedisStates } from './redis.js';
import { serviceStatesContract } from './statesContract.js';

const redis = await probeService('redis');

describe.skipIf(!redis.available)('Redis hashes', () => {
  const client = createRedisClient(redis.url);
  const prefixes: string[] = [];
  afterAll(async () => {
    for (const prefix of prefixes) {
      const keys = await client.keys(`${prefix}:*`);
      if (keys.length > 0) await client.unlink(...keys);
    }
    client.disconnect();
  });
  serviceStatesContract('Redis hashes', async () => {
    const prefix = uniqueName('states');
    prefixes.push(prefix);
    return createRedisStates(client, prefix);
  });
});
