import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { contractPlan, rollbackProgressStoreContract } from '@backtrack/core/adapter';
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

  it('retention: a run expires runTtlMs after its last write, and its id leaves the run list', async () => {
    const keyPrefix = uniqueName('bt-rollback-ttl');
    const c = client();
    const store = new RedisRollbackProgressStore({ keyPrefix, runTtlMs: 300 }, { redis: c });
    try {
      await store.createRun('old-run', contractPlan('p-old'));
      expect((await store.listRuns()).map((r) => r.runId)).toEqual(['old-run']);
      await new Promise((r) => setTimeout(r, 450));
      expect(await store.getRun('old-run')).toBeUndefined();
      await store.createRun('new-run', contractPlan('p-new'));
      const runs = `${store.keyPrefix}:runs`;
      for (let i = 0; i < 50 && (await c.zscore(runs, 'old-run')) !== null; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(await c.zrange(runs, '0', '-1')).toEqual(['new-run']);
      expect((await store.listRuns()).map((r) => r.runId)).toEqual(['new-run']);
    } finally {
      await store.destroy();
    }
  });

  it('rejects bad options with BT_ERR_REDIS_CONFIG_INVALID', () => {
    expect(() => new RedisRollbackProgressStore({ runTtlMs: 0 }, { redis: client() })).toThrowError(
      expect.objectContaining({ code: 'BT_ERR_REDIS_CONFIG_INVALID' }),
    );
  });
});
