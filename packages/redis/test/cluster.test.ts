/**
 * Every Redis store on a real Redis Cluster (three masters, scripts/redis-cluster/start): the
 * dedupe, saga and rollback progress contract suites on an ioredis `Cluster` client, with the
 * DEFAULT key prefixes (no hash tags), and the load of a batch spread over the masters.
 */
import type { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRedisClusterClient,
  RedisDedupeStore,
  RedisJournal,
  RedisRollbackProgressStore,
  RedisSagaStore,
} from '@backtrack/redis';
import { dedupeStoreContract } from '@backtrack/core/adapter';
import { journalContract } from '@backtrack/core/adapter';
import { rollbackProgressStoreContract } from '@backtrack/core/adapter';
import { makeSagaRecord, sagaStoreContract } from '@backtrack/core/adapter';
import { uniqueName } from '../../../test/support/services.js';
import { slotOf } from '../src/internal/cluster.js';
import {
  commandCalls,
  deleteClusterPrefix,
  ensureRedisCluster,
  keysPerMaster,
  openCluster,
} from './clusterSupport.js';
import { countSocketWrites } from './support.js';

const cluster = await ensureRedisCluster();

describe.skipIf(!cluster.available)('Redis stores on a 3-master Redis Cluster', () => {
  let client: Cluster;
  let peerClient: Cluster;
  const prefixes: string[] = [];
  beforeAll(async () => {
    client = await openCluster(cluster.nodes);
    peerClient = await openCluster(cluster.nodes);
  });
  afterAll(async () => {
    for (const p of prefixes) await deleteClusterPrefix(client, p);
    await Promise.all([client?.quit(), peerClient?.quit()]);
  });

  /** A prefix like the default ones (no hash tag), unique to the test. */
  const prefix = (kind: string) => {
    const p = `${uniqueName(`bt-cl-${kind}`)}:`;
    prefixes.push(p);
    return p;
  };

  it('runs on three masters that own the whole slot space', async () => {
    expect(client.nodes('master')).toHaveLength(3);
    const info = String(await client.nodes('master')[0]!.call('CLUSTER', 'INFO'));
    expect(info).toContain('cluster_state:ok');
    expect(info).toContain('cluster_slots_assigned:16384');
  });

  dedupeStoreContract(
    'RedisDedupeStore on Redis Cluster',
    async () => {
      const keyPrefix = prefix('dedupe');
      const store = new RedisDedupeStore({ keyPrefix }, { redis: client });
      return {
        store,
        peer: new RedisDedupeStore({ keyPrefix }, { redis: peerClient }),
        ttlOf: async (key) => {
          const pttl = await client.pttl(store.redisKey(key));
          if (pttl === -2) return undefined;
          if (pttl === -1) return null;
          return pttl;
        },
        cleanup: () => deleteClusterPrefix(client, keyPrefix),
      };
    },
    { describe, it, expect },
  );

  sagaStoreContract(
    'RedisSagaStore on Redis Cluster',
    async ({ finishedRetentionMs }) => {
      const keyPrefix = prefix('saga');
      const options = { keyPrefix, finishedRetentionMs, sweepIntervalMs: 50 };
      return {
        store: new RedisSagaStore(options, { redis: client }),
        peer: new RedisSagaStore(options, { redis: peerClient }),
        cleanup: () => deleteClusterPrefix(client, keyPrefix),
      };
    },
    { describe, it, expect },
  );

  rollbackProgressStoreContract(
    'RedisRollbackProgressStore on Redis Cluster',
    async () => {
      const keyPrefix = uniqueName('bt-cl-rollback');
      const store = new RedisRollbackProgressStore({ keyPrefix }, { redis: client });
      const peer = new RedisRollbackProgressStore({ keyPrefix }, { redis: peerClient });
      return { store, peer, cleanup: () => store.destroy() };
    },
    { describe, it, expect },
  );

  journalContract(
    'RedisJournal on Redis Cluster',
    async (options) => {
      const keyPrefix = uniqueName('bt-cl-journal');
      // RedisJournal's dependency type names the single-node client; the Cluster client has the
      // same command surface.
      const journal = new RedisJournal(
        { ...options, keyPrefix },
        { redis: client as unknown as Redis },
      );
      return {
        journal,
        cleanup: async () => {
          await deleteClusterPrefix(client, `{${keyPrefix}}`);
        },
      };
    },
    { describe, it, expect },
  );

  it('spreads a batch of 3,000 claims over the masters (default prefix, no hash tag)', async () => {
    const keyPrefix = prefix('spread');
    const store = new RedisDedupeStore({ keyPrefix }, { redis: client });
    const keys = Array.from({ length: 3_000 }, (_, i) => `order-${i}`);
    await store.claimMany(['warm-up'], { leaseMs: 60_000 }); // script cache, every master below
    await store.completeMany([{ key: 'warm-up', token: 'x' }], { ttlMs: 60_000 });
    const evals = ['evalsha', 'eval'];
    const before = await commandCalls(client, evals);

    const claims = await store.claimMany(keys, { leaseMs: 60_000 });
    const afterClaims = await commandCalls(client, evals);
    expect(claims.every((c) => c.status === 'claimed')).toBe(true);
    const answers = await store.completeMany(
      claims.map((c, i) => ({ key: keys[i]!, token: c.status === 'claimed' ? c.token : '' })),
      { ttlMs: 60_000 },
    );
    expect(answers.every(Boolean)).toBe(true);
    expect(
      (await store.claimMany(keys.slice(0, 10), { leaseMs: 60_000 })).map((r) => r.status),
    ).toEqual(Array(10).fill('done'));

    const slots = new Set(keys.map((k) => slotOf(store.redisKey(k)))).size;
    const calls = [...afterClaims].map(([node, n]) => [node, n - before.get(node)!] as const);
    const perMasterKeys = await keysPerMaster(client, keyPrefix);
    const total = calls.reduce((a, [, n]) => a + n, 0);
    console.info(
      `3,000 claims on 3 masters: ${slots} slots; script calls per master ${calls
        .map(([node, n]) => `${node}=${n}`)
        .join(
          ' ',
        )}; keys per master ${[...perMasterKeys].map(([node, n]) => `${node}=${n}`).join(' ')}`,
    );
    // One script call per slot of the batch, and every master carries a fair share of them and
    // of the keys (an even split is 1/3 each; one hash tag per prefix would put all on one).
    expect(total).toBe(slots);
    expect(calls).toHaveLength(3);
    for (const [, n] of calls) expect(n).toBeGreaterThan(total * 0.25);
    for (const n of perMasterKeys.values()) expect(n).toBeGreaterThan(3_000 * 0.25);
  });

  it('spreads sagas over the masters with the default saga prefix and layout', async () => {
    const keyPrefix = prefix('saga-spread');
    const store = new RedisSagaStore({ keyPrefix }, { redis: client });
    await Promise.all(
      Array.from({ length: 300 }, (_, i) => store.create(makeSagaRecord(`s-${i}`))),
    );
    const perMasterKeys = await keysPerMaster(client, keyPrefix);
    console.info(
      `300 sagas: keys per master ${[...perMasterKeys].map(([node, n]) => `${node}=${n}`).join(' ')}`,
    );
    const total = [...perMasterKeys.values()].reduce((a, n) => a + n, 0);
    for (const n of perMasterKeys.values()) expect(n).toBeGreaterThan(total * 0.2);
    let listed = 0;
    let cursor: string | undefined;
    do {
      const page = await store.list({ limit: 70, ...(cursor ? { cursor } : {}) });
      listed += page.items.length;
      cursor = page.nextCursor;
    } while (cursor);
    expect(listed).toBe(300);
  });

  it('sends the creates of concurrent sagas in one socket write per master', async () => {
    const store = new RedisSagaStore({ keyPrefix: prefix('saga-writes') }, { redis: client });
    await Promise.all(['w1', 'w2', 'w3', 'w4'].map((id) => store.create(makeSagaRecord(id))));
    const writes = client.nodes('master').map((node) => countSocketWrites(node));
    const created = await Promise.all(
      Array.from({ length: 60 }, (_, i) => store.create(makeSagaRecord(`c-${i}`))),
    );
    expect(created.every((c) => c.created)).toBe(true);
    const perMaster = writes.map((w) => w.writes);
    expect(perMaster.flat().reduce((a, n) => a + n, 0)).toBe(60);
    for (const w of perMaster) expect(w.length).toBeLessThanOrEqual(1);
  });
});

describe('Redis stores on an unreachable Redis Cluster', () => {
  it('fail within commandTimeoutMs with the retriable StoreUnavailableError, never hang', async () => {
    const redis = createRedisClusterClient(['127.0.0.1:1']);
    redis.on('error', () => undefined);
    try {
      const dedupe = new RedisDedupeStore({ commandTimeoutMs: 500 }, { redis });
      const sagas = new RedisSagaStore({ commandTimeoutMs: 500 }, { redis });
      const started = Date.now();
      await expect(dedupe.claimMany(['a', 'b'], { leaseMs: 1_000 })).rejects.toMatchObject({
        code: 'BT_ERR_STORE_UNAVAILABLE',
        retriable: true,
      });
      await expect(
        dedupe.completeMany([{ key: 'a', token: 't' }], { ttlMs: 1_000 }),
      ).rejects.toMatchObject({ code: 'BT_ERR_STORE_UNAVAILABLE' });
      await expect(sagas.create(makeSagaRecord('x'))).rejects.toMatchObject({
        code: 'BT_ERR_STORE_UNAVAILABLE',
      });
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      redis.disconnect();
    }
  });
});
