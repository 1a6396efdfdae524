/**
 * Redis unavailable: every store call fails fast with the retriable StoreUnavailableError
 * (code BT_ERR_STORE_UNAVAILABLE), never hangs, and the store works again once Redis is back.
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { StoreUnavailableError, isRetriable, type SagaRecord } from '@backtrack/core';
import { RedisDedupeStore, RedisSagaStore, createRedisClient } from '@backtrack/redis';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { startProxy } from '../../../test/support/tcpProxy.js';
import { deleteByPrefix } from './support.js';

const CLOSED = 'redis://127.0.0.1:1';

function sagaRecord(sagaId: string): SagaRecord {
  const now = new Date().toISOString();
  return {
    sagaId,
    sagaName: 'place-order',
    definitionVersion: 1,
    status: 'running',
    input: {},
    steps: {},
    completionOrder: [],
    compensationOrder: [],
    cancelRequested: false,
    revision: 0,
    createdAt: now,
    updatedAt: now,
  };
}

async function expectUnavailable(promise: Promise<unknown>, operation: string, withinMs: number) {
  const started = Date.now();
  const error = await promise.then(
    () => {
      throw new Error(`${operation} succeeded against an unreachable Redis`);
    },
    (e: unknown) => e,
  );
  const elapsed = Date.now() - started;
  expect(error).toBeInstanceOf(StoreUnavailableError);
  expect(error).toMatchObject({
    code: 'BT_ERR_STORE_UNAVAILABLE',
    retriable: true,
    details: { operation },
  });
  expect(isRetriable(error)).toBe(true);
  expect(elapsed).toBeLessThan(withinMs);
}

describe('Redis stores when Redis is unreachable', () => {
  it('fail fast with StoreUnavailableError through a createRedisClient() client (closed port)', async () => {
    const redis = createRedisClient(CLOSED);
    redis.on('error', () => undefined);
    try {
      const dedupe = new RedisDedupeStore({}, { redis });
      const sagas = new RedisSagaStore({}, { redis });
      await expectUnavailable(dedupe.claim('k', { leaseMs: 1000 }), 'claim', 1_500);
      await expectUnavailable(dedupe.claimMany(['a', 'b'], { leaseMs: 1000 }), 'claimMany', 1_500);
      await expectUnavailable(dedupe.complete('k', 't', { ttlMs: 1000 }), 'complete', 1_500);
      await expectUnavailable(dedupe.release('k', 't'), 'release', 1_500);
      await expectUnavailable(dedupe.extend('k', 't', 1000), 'extend', 1_500);
      await expectUnavailable(sagas.create(sagaRecord('s')), 'create', 1_500);
      await expectUnavailable(sagas.get('s'), 'get', 1_500);
      await expectUnavailable(sagas.update(sagaRecord('s'), 0), 'update', 1_500);
      await expectUnavailable(sagas.list(), 'list', 1_500);
    } finally {
      redis.disconnect();
    }
  });

  it('fail within commandTimeoutMs even with a client that would queue commands forever', async () => {
    // maxRetriesPerRequest: null keeps commands in ioredis' offline queue without bound.
    const redis = new Redis(CLOSED, { maxRetriesPerRequest: null, lazyConnect: false });
    redis.on('error', () => undefined);
    try {
      const dedupe = new RedisDedupeStore({ commandTimeoutMs: 300 }, { redis });
      await expectUnavailable(dedupe.claim('k', { leaseMs: 1000 }), 'claim', 1_000);
      const sagas = new RedisSagaStore({ commandTimeoutMs: 300 }, { redis });
      await expectUnavailable(sagas.get('s'), 'get', 1_000);
    } finally {
      redis.disconnect();
    }
  });

  it('fail at once with a client whose offline queue is disabled', async () => {
    const redis = new Redis(CLOSED, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    redis.on('error', () => undefined);
    try {
      const dedupe = new RedisDedupeStore({}, { redis });
      await expectUnavailable(dedupe.claim('k', { leaseMs: 1000 }), 'claim', 500);
    } finally {
      redis.disconnect();
    }
  });
});

const real = await probeService('redis');

describe.skipIf(!real.available)('Redis stores when Redis goes away mid-run and comes back', () => {
  const admin = createRedisClient(real.url);
  const prefix = `${uniqueName('bt-outage')}:`;
  afterAll(async () => {
    await deleteByPrefix(admin, prefix);
    await admin.quit();
  });

  it('answers StoreUnavailableError during the outage and works again after it, without losing a claim', async () => {
    const proxy = await startProxy(real);
    const redis = createRedisClient(`redis://127.0.0.1:${proxy.port}`);
    redis.on('error', () => undefined);
    try {
      const store = new RedisDedupeStore({ keyPrefix: prefix }, { redis });
      const before = await store.claim('held', { leaseMs: 60_000 });
      expect(before.status).toBe('claimed');

      await proxy.cut();
      await expectUnavailable(store.claim('during', { leaseMs: 60_000 }), 'claim', 2_500);
      if (before.status !== 'claimed') throw new Error('unreachable');
      await expectUnavailable(
        store.complete('held', before.token, { ttlMs: 60_000 }),
        'complete',
        2_500,
      );

      const restored = await startProxy(real, proxy.port);
      try {
        // The client reconnects in the background; a consumer retries until the store answers.
        let completed: boolean | undefined;
        for (let i = 0; i < 50 && completed === undefined; i++) {
          completed = await store
            .complete('held', before.token, { ttlMs: 60_000 })
            .catch((e: unknown) => {
              if (!(e instanceof StoreUnavailableError)) throw e;
              return new Promise<undefined>((r) => setTimeout(() => r(undefined), 200));
            });
        }
        expect(completed).toBe(true);
        expect(await store.claim('held', { leaseMs: 60_000 })).toEqual({ status: 'done' });
      } finally {
        redis.disconnect();
        await restored.cut();
      }
    } finally {
      redis.disconnect();
    }
  });
});
