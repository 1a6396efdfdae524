import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { RedisDedupeStore, createRedisClient } from '@backtrack/redis';
import { dedupeStoreContract } from '@backtrack/core/adapter';
import { LuaScript } from '../src/internal/LuaScript.js';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { countCommands, countSocketWrites, deleteByPrefix, keysUnder } from './support.js';

const redis = await probeService('redis');

describe.skipIf(!redis.available)('RedisDedupeStore on real Redis', () => {
  const client = createRedisClient(redis.url);
  const peerClient = createRedisClient(redis.url);
  const prefixes: string[] = [];
  afterAll(async () => {
    for (const p of prefixes) await deleteByPrefix(client, p);
    await Promise.all([client.quit(), peerClient.quit()]);
  });

  dedupeStoreContract(
    'RedisDedupeStore',
    async () => {
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
    },
    { describe, it, expect },
  );

  function freshStore(redisClient = client) {
    const keyPrefix = `${uniqueName('bt-dedupe-x')}:`;
    prefixes.push(keyPrefix);
    return { keyPrefix, store: new RedisDedupeStore({ keyPrefix }, { redis: redisClient }) };
  }

  it('writes only under its key prefix, one key per dedupe key', async () => {
    const { keyPrefix, store } = freshStore();
    const c = await store.claim('orders:evt-1', { leaseMs: 10_000 });
    await store.claimMany(['orders:evt-2', 'orders:evt-3'], { leaseMs: 10_000 });
    if (c.status !== 'claimed') throw new Error('expected claim');
    await store.complete('orders:evt-1', c.token, { ttlMs: 60_000, result: 'r' });
    expect(await keysUnder(client, keyPrefix)).toEqual([
      `${keyPrefix}orders:evt-1`,
      `${keyPrefix}orders:evt-2`,
      `${keyPrefix}orders:evt-3`,
    ]);
  });

  it('claims a batch of 500 keys in one round trip, and each later call is one round trip', async () => {
    const own = createRedisClient(redis.url);
    try {
      await own.ping();
      const { store } = freshStore(own);
      const counter = countCommands(own);
      const keys = Array.from({ length: 500 }, (_, i) => `k${i}`);
      // Warm the script cache so the count is the steady state (a cold cache adds one EVAL).
      await store.claimMany(['warm'], { leaseMs: 10_000 });
      await store.complete('warm', 'x', { ttlMs: 1000 });
      await store.release('warm', 'x');
      await store.extend('warm', 'x', 1000);
      counter.reset();

      const results = await store.claimMany(keys, { leaseMs: 10_000 });
      expect(results.every((r) => r.status === 'claimed')).toBe(true);
      expect(counter.names).toEqual(['evalsha']);

      counter.reset();
      const first = results[0]!;
      if (first.status !== 'claimed') throw new Error('expected claim');
      await store.extend('k0', first.token, 20_000);
      await store.complete('k0', first.token, { ttlMs: 60_000 });
      await store.claim('k0', { leaseMs: 10_000 });
      expect(counter.names).toEqual(['evalsha', 'evalsha', 'evalsha']);
    } finally {
      await own.quit();
    }
  });

  it('completes a batch of 500 done marks in one round trip, each fenced by its token', async () => {
    const own = createRedisClient(redis.url);
    try {
      await own.ping();
      const { store } = freshStore(own);
      const counter = countCommands(own);
      // Warm the script cache so the count is the steady state (a cold cache adds one EVAL).
      await store.completeMany([{ key: 'warm', token: 'x' }], { ttlMs: 1000 });
      const keys = Array.from({ length: 500 }, (_, i) => `k${i}`);
      const claims = await store.claimMany(keys, { leaseMs: 10_000 });
      const entries = claims.map((c, i) => {
        if (c.status !== 'claimed') throw new Error('expected claim');
        // Every 50th entry carries a wrong token: fenced out, in place.
        return { key: keys[i]!, token: i % 50 === 0 ? 'stolen' : c.token, result: `r${i}` };
      });
      counter.reset();

      const answers = await store.completeMany(entries, { ttlMs: 60_000 });
      expect(counter.names).toEqual(['evalsha']);
      expect(answers).toEqual(keys.map((_, i) => i % 50 !== 0));
      const after = await store.claimMany(['k0', 'k1', 'k499'], { leaseMs: 10_000 });
      expect(after).toEqual([
        { status: 'in-progress' },
        { status: 'done', result: 'r1' },
        { status: 'done', result: 'r499' },
      ]);
    } finally {
      await own.quit();
    }
  });

  it('completes a batch without results (one shared done value) in one round trip, each fenced by its token', async () => {
    const own = createRedisClient(redis.url);
    try {
      await own.ping();
      const { store } = freshStore(own);
      const counter = countCommands(own);
      await store.completeMany([{ key: 'warm', token: 'x' }], { ttlMs: 1000 });
      const keys = Array.from({ length: 200 }, (_, i) => `s${i}`);
      const claims = await store.claimMany(keys, { leaseMs: 10_000 });
      const tokens = claims.map((c) => {
        if (c.status !== 'claimed') throw new Error('expected claim');
        return c.token;
      });
      expect(new Set(tokens).size).toBe(keys.length);
      // Every 40th entry carries the token of its neighbour: fenced out, in place.
      const entries = keys.map((key, i) => ({ key, token: tokens[i % 40 === 0 ? i + 1 : i]! }));
      counter.reset();

      const answers = await store.completeMany(entries, { ttlMs: 60_000 });
      expect(counter.names).toEqual(['evalsha']);
      expect(answers).toEqual(keys.map((_, i) => i % 40 !== 0));
      const after = await store.claimMany(['s0', 's1', 's199'], { leaseMs: 10_000 });
      expect(after).toEqual([{ status: 'in-progress' }, { status: 'done' }, { status: 'done' }]);
      const ttl = await own.pttl(store.redisKey('s1'));
      expect(ttl).toBeGreaterThan(50_000);
      expect(ttl).toBeLessThanOrEqual(60_000);
    } finally {
      await own.quit();
    }
  });

  it('refuses a completeMany result over maxResultBytes before writing any entry', async () => {
    const keyPrefix = `${uniqueName('bt-dedupe-x')}:`;
    prefixes.push(keyPrefix);
    const store = new RedisDedupeStore({ keyPrefix, maxResultBytes: 8 }, { redis: client });
    const [a, b] = await store.claimMany(['a', 'b'], { leaseMs: 10_000 });
    if (a?.status !== 'claimed' || b?.status !== 'claimed') throw new Error('expected claims');
    await expect(
      store.completeMany(
        [
          { key: 'a', token: a.token, result: 'ok' },
          { key: 'b', token: b.token, result: '123456789' },
        ],
        { ttlMs: 60_000 },
      ),
    ).rejects.toMatchObject({
      code: 'BT_ERR_DEDUPE_CONFIG_INVALID',
      details: { field: 'entries[1].result' },
    });
    expect(await store.claim('a', { leaseMs: 10_000 })).toEqual({ status: 'in-progress' });
  });

  it('falls back to EVAL when the server does not know a script yet', async () => {
    const script = new LuaScript('test.nonce', `-- ${randomUUID()}\nreturn ARGV[1] .. KEYS[1]`);
    expect(await client.script('EXISTS', script.sha)).toEqual([0]);
    expect(await script.run(client, ['k'], ['v'])).toBe('vk');
    expect(await client.script('EXISTS', script.sha)).toEqual([1]);
    expect(await script.run(client, ['k'], ['w'])).toBe('wk');
  });

  it('falls back to EVAL for each of several calls of an unknown script sent in one write', async () => {
    const script = new LuaScript('test.nonce', `-- ${randomUUID()}\nreturn ARGV[1] .. KEYS[1]`);
    const answers = await Promise.all(['a', 'b', 'c'].map((v) => script.run(client, ['k'], [v])));
    expect(answers).toEqual(['ak', 'bk', 'ck']);
    expect(await client.script('EXISTS', script.sha)).toEqual([1]);
  });

  it('sends the claims and done marks of consumers that call together in one socket write', async () => {
    const own = createRedisClient(redis.url);
    try {
      await own.ping();
      const { store } = freshStore(own);
      await store.claimMany(['warm'], { leaseMs: 10_000 }); // script cache warm
      await store.completeMany([{ key: 'warm', token: 'x' }], { ttlMs: 1000 });
      const writes = countSocketWrites(own);
      // Eight consumers (partitions, queues) claiming their batches at the same time.
      const batches = Array.from({ length: 8 }, (_, b) => [`b${b}.1`, `b${b}.2`, `b${b}.3`]);
      const claims = await Promise.all(
        batches.map((keys) => store.claimMany(keys, { leaseMs: 10_000 })),
      );
      expect(claims.flat().every((c) => c.status === 'claimed')).toBe(true);
      expect(writes.writes).toEqual([8]);
      writes.reset();
      const done = await Promise.all(
        claims.map((batch, b) =>
          store.completeMany(
            batch.map((c, i) => ({
              key: batches[b]![i]!,
              token: c.status === 'claimed' ? c.token : '',
            })),
            { ttlMs: 60_000 },
          ),
        ),
      );
      expect(done.flat().every(Boolean)).toBe(true);
      expect(writes.writes).toEqual([8]);
      // Each batch kept its own fencing: another token does not complete.
      expect(await store.completeMany([{ key: 'b0.1', token: 'stale' }], { ttlMs: 1 })).toEqual([
        false,
      ]);
    } finally {
      await own.quit();
    }
  });

  it('stores a result up to maxResultBytes and refuses a larger one with a coded error', async () => {
    const keyPrefix = `${uniqueName('bt-dedupe-x')}:`;
    prefixes.push(keyPrefix);
    const store = new RedisDedupeStore({ keyPrefix, maxResultBytes: 8 }, { redis: client });
    const c = await store.claim('k', { leaseMs: 10_000 });
    if (c.status !== 'claimed') throw new Error('expected claim');
    await expect(
      store.complete('k', c.token, { ttlMs: 60_000, result: '123456789' }),
    ).rejects.toMatchObject({ code: 'BT_ERR_DEDUPE_CONFIG_INVALID', details: { field: 'result' } });
    expect(await store.complete('k', c.token, { ttlMs: 60_000, result: 'ünï' })).toBe(true);
    expect(await store.claim('k', { leaseMs: 10_000 })).toEqual({ status: 'done', result: 'ünï' });
  });

  it('uses defaultRetentionMs when complete gets no ttlMs', async () => {
    const keyPrefix = `${uniqueName('bt-dedupe-x')}:`;
    prefixes.push(keyPrefix);
    const store = new RedisDedupeStore(
      { keyPrefix, defaultRetentionMs: 3_600_000 },
      { redis: client },
    );
    const c = await store.claim('k', { leaseMs: 10_000 });
    if (c.status !== 'claimed') throw new Error('expected claim');
    // A JavaScript caller omitting the required ttlMs.
    await store.complete('k', c.token, {} as { ttlMs: number });
    const pttl = await client.pttl(store.redisKey('k'));
    expect(pttl).toBeGreaterThan(3_500_000);
    expect(pttl).toBeLessThanOrEqual(3_600_000);
  });

  it('raises a non-retriable RedisCommandError when the key holds another type', async () => {
    const { store } = freshStore();
    await client.hset(store.redisKey('k'), 'f', 'v');
    await expect(store.claim('k', { leaseMs: 1000 })).rejects.toMatchObject({
      code: 'BT_ERR_REDIS_COMMAND_FAILED',
      retriable: false,
    });
  });
});
