import { afterAll, describe, expect, it } from 'vitest';
import { InMemorySagaStore, SagaStatus, type SagaRecord, type SagaStore } from '@backtrack/core';
import { RedisSagaStore, createRedisClient } from '@backtrack/redis';
import { SAGA_INDEX_SHARDS, SAGA_SHARD_TAGS, shardOf } from '../src/saga/keyLayout.js';
import { makeSagaRecord, sagaStoreContract } from '@backtrack/core/adapter';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { countCommands, countSocketWrites, deleteByPrefix, keysUnder } from './support.js';

const redis = await probeService('redis');

describe.skipIf(!redis.available)('RedisSagaStore on real Redis', () => {
  const client = createRedisClient(redis.url);
  const peerClient = createRedisClient(redis.url);
  const prefixes: string[] = [];
  afterAll(async () => {
    for (const p of prefixes) await deleteByPrefix(client, p);
    await Promise.all([client.quit(), peerClient.quit()]);
  });

  sagaStoreContract(
    'RedisSagaStore',
    async ({ finishedRetentionMs }) => {
      const keyPrefix = `${uniqueName('bt-saga')}:`;
      // Retention cases: real Redis TTLs (PX of a few hundred ms) and a sweep every 50 ms.
      const options = { keyPrefix, finishedRetentionMs, sweepIntervalMs: 50 };
      return {
        store: new RedisSagaStore(options, { redis: client }),
        // A second engine's view, on its own connection.
        peer: new RedisSagaStore(options, { redis: peerClient }),
        cleanup: () => deleteByPrefix(client, keyPrefix),
      };
    },
    { describe, it, expect },
  );

  function freshStore(redisClient = client) {
    const keyPrefix = `${uniqueName('bt-saga-x')}:`;
    prefixes.push(keyPrefix);
    return { keyPrefix, store: new RedisSagaStore({ keyPrefix }, { redis: redisClient }) };
  }

  it('takes one round trip per create, get, update (step transition) and list page', async () => {
    const own = createRedisClient(redis.url);
    try {
      await own.ping();
      const { store } = freshStore(own);
      // Warm the script cache: a cold cache costs one extra EVAL once per script and server.
      await store.create(makeSagaRecord('warm'));
      await store.update(makeSagaRecord('warm'), 0);
      await store.list({ status: ['running', 'stuck'] });
      const counter = countCommands(own);

      await store.create(makeSagaRecord('s1'));
      expect(counter.names).toEqual(['evalsha']);
      counter.reset();
      let current = (await store.get('s1'))!;
      expect(counter.names).toEqual(['hget']);
      for (const status of ['running', 'compensating', 'stuck', 'compensated'] as const) {
        counter.reset();
        current = await store.update({ ...current, status }, current.revision);
        expect(counter.names).toEqual(['evalsha']);
      }
      // A list page: one call per index shard (sent at once, pipelined), then one per shard
      // holding records of the page (here: s1's).
      counter.reset();
      const page = await store.list({ status: ['running', 'stuck', 'compensated'], limit: 10 });
      expect(page.items.map((r) => r.sagaId)).toEqual(['s1', 'warm']);
      expect(counter.names).toEqual(
        Array(SAGA_INDEX_SHARDS + new Set([shardOf('s1', 16), shardOf('warm', 16)]).size).fill(
          'evalsha',
        ),
      );
    } finally {
      await own.quit();
    }
  });

  it('sends the creates and transitions of concurrent sagas issued together in one socket write', async () => {
    const own = createRedisClient(redis.url);
    try {
      await own.ping();
      const { store } = freshStore(own);
      await store.create(makeSagaRecord('warm')); // script cache warm: no NOSCRIPT retry below
      await store.update(makeSagaRecord('warm'), 0);
      const writes = countSocketWrites(own);
      const ids = Array.from({ length: 40 }, (_, i) => `c${i}`);
      const created = await Promise.all(ids.map((id) => store.create(makeSagaRecord(id))));
      expect(created.every((c) => c.created)).toBe(true);
      expect(writes.writes).toEqual([40]);
      writes.reset();
      const updated = await Promise.all(
        created.map(({ record }) => store.update({ ...record, status: 'compensating' }, 0)),
      );
      expect(updated.map((r) => r.revision)).toEqual(ids.map(() => 1));
      expect(writes.writes).toEqual([40]);
      // Each call still has its own answer: a stale revision among them fails alone.
      writes.reset();
      const mixed = await Promise.allSettled([
        store.update({ ...updated[0]!, status: 'compensated' }, 1),
        store.update({ ...updated[1]!, status: 'compensated' }, 0),
      ]);
      expect(mixed.map((m) => m.status)).toEqual(['fulfilled', 'rejected']);
      expect((await store.get('c1'))?.revision).toBe(1);
    } finally {
      await own.quit();
    }
  });

  it('keeps the indexes exact: a saga is in the sets of its current status only', async () => {
    const { keyPrefix, store } = freshStore();
    const v0 = (await store.create(makeSagaRecord('s1', { sagaName: 'ship' }))).record;
    const v1 = await store.update({ ...v0, status: 'compensating' }, 0);
    await store.update({ ...v1, status: 'stuck' }, 1);
    const p = `${keyPrefix}{${SAGA_SHARD_TAGS[shardOf('s1', SAGA_INDEX_SHARDS)]}}:`;
    expect(await keysUnder(client, keyPrefix)).toEqual([
      `${p}idx:all`,
      `${p}idx:n:ship`,
      `${p}idx:ns:stuck:ship`,
      `${p}idx:s:stuck`,
      `${p}rec:s1`,
    ]);
    for (const key of ['idx:all', 'idx:n:ship', 'idx:ns:stuck:ship', 'idx:s:stuck']) {
      expect(await client.zcard(`${p}${key}`)).toBe(1);
    }
  });

  it('an update whose remembered status is stale (the saga was pruned and created again) falls back to the full write and keeps the indexes exact', async () => {
    const { keyPrefix, store } = freshStore();
    const peer = new RedisSagaStore({ keyPrefix }, { redis: peerClient });
    // `store` remembers s1 at revision 0, running.
    const v0 = (await store.create(makeSagaRecord('s1', { sagaName: 'ship' }))).record;
    // Another engine finishes it, prunes it and creates it again: revision 0 again, stuck.
    await peer.update({ ...v0, status: 'completed' }, 0);
    expect(await peer.prune({ updatedBefore: new Date('2100-01-01T00:00:00.000Z') })).toBe(1);
    await peer.create(makeSagaRecord('s1', { sagaName: 'ship', status: 'stuck' }));
    const counter = countCommands(client);
    const v1 = await store.update({ ...v0, status: 'compensating' }, 0);
    // The short write was refused (status not the remembered one), the full one applied.
    expect(counter.names.filter((n) => n === 'evalsha' || n === 'eval').length).toBeGreaterThan(1);
    expect(v1.revision).toBe(1);
    expect(await peer.get('s1')).toEqual(v1);
    const p = `${keyPrefix}{${SAGA_SHARD_TAGS[shardOf('s1', SAGA_INDEX_SHARDS)]}}:`;
    expect(await keysUnder(client, keyPrefix)).toEqual([
      `${p}idx:all`,
      `${p}idx:n:ship`,
      `${p}idx:ns:compensating:ship`,
      `${p}idx:s:compensating`,
      `${p}rec:s1`,
    ]);
    // And the next write, from what it now remembers, goes on in one round trip.
    counter.reset();
    await store.update({ ...v1, status: 'stuck' }, 1);
    expect(counter.names).toEqual(['evalsha']);
    expect((await peer.list({ status: 'stuck' })).items.map((r) => r.sagaId)).toEqual(['s1']);
  });

  it("keyLayout 'legacy' reads and writes exactly the keys of earlier versions, in one round trip each", async () => {
    const keyPrefix = `${uniqueName('bt-saga-legacy')}:`;
    prefixes.push(keyPrefix);
    // A saga an earlier version stored (its exact keys), read and advanced by this version.
    const old = makeSagaRecord('old-1', { sagaName: 'ship' });
    await client.hset(`${keyPrefix}rec:old-1`, {
      doc: JSON.stringify(old),
      rev: String(old.revision),
      status: old.status,
      name: old.sagaName,
      member: `${old.createdAt}\0old-1`,
    });
    for (const idx of [
      'idx:all',
      `idx:s:${old.status}`,
      'idx:n:ship',
      `idx:ns:${old.status}:ship`,
    ]) {
      await client.zadd(`${keyPrefix}${idx}`, 0, `${old.createdAt}\0old-1`);
    }
    const own = createRedisClient(redis.url);
    try {
      const store = new RedisSagaStore({ keyPrefix, keyLayout: 'legacy' }, { redis: own });
      expect(await store.get('old-1')).toEqual(old);
      expect((await store.list({ status: old.status })).items).toEqual([old]);
      const counter = countCommands(own);
      await store.update({ ...old, status: 'stuck' }, old.revision);
      expect(counter.names).toEqual(['evalsha']);
      counter.reset();
      expect((await store.list({ status: 'stuck' })).items.map((r) => r.sagaId)).toEqual(['old-1']);
      expect(counter.names).toEqual(['evalsha', 'evalsha']);
      expect(await keysUnder(client, keyPrefix)).toEqual([
        `${keyPrefix}idx:all`,
        `${keyPrefix}idx:n:ship`,
        `${keyPrefix}idx:ns:stuck:ship`,
        `${keyPrefix}idx:s:stuck`,
        `${keyPrefix}rec:old-1`,
      ]);
      // The sharded default does not see it: the README's migration note says so.
      expect(await new RedisSagaStore({ keyPrefix }, { redis: own }).get('old-1')).toBeUndefined();
    } finally {
      await own.quit();
    }
  });

  it('retention: the write that finishes a saga sets its TTL; the sweep leaves no index entry of an expired saga', async () => {
    const keyPrefix = `${uniqueName('bt-saga-ttl')}:`;
    prefixes.push(keyPrefix);
    // A long sweep interval: only the explicit sweep() below trims.
    const store = new RedisSagaStore(
      { keyPrefix, keyLayout: 'legacy', finishedRetentionMs: 300, sweepIntervalMs: 3_600_000 },
      { redis: client },
    );
    const drive = async (id: string, statuses: SagaStatus[], sagaName = 'ship') => {
      let r = (await store.create(makeSagaRecord(id, { sagaName }))).record;
      for (const status of statuses) r = await store.update({ ...r, status }, r.revision);
    };
    await drive('live', ['compensating', 'stuck']);
    await drive('done', ['completed']);
    await drive('undone', ['compensating', 'compensated'], 'refund');
    await drive('reopened', ['failed', 'compensating']);
    expect(await client.pttl(`${keyPrefix}rec:live`)).toBe(-1);
    expect(await client.pttl(`${keyPrefix}rec:reopened`)).toBe(-1);
    const ttl = await client.pttl(`${keyPrefix}rec:done`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(300);
    expect(await client.zcard(`${keyPrefix}idx:exp`)).toBe(2);
    await new Promise((r) => setTimeout(r, 450));
    // Redis expired the records; their index entries wait for the sweep, and list skips them.
    expect(await client.exists(`${keyPrefix}rec:done`, `${keyPrefix}rec:undone`)).toBe(0);
    expect((await store.list({ limit: 1 })).items.map((r) => r.sagaId)).toEqual(['live']);
    expect(await store.sweep()).toBe(2);
    expect(await keysUnder(client, keyPrefix)).toEqual([
      `${keyPrefix}idx:all`,
      `${keyPrefix}idx:n:ship`,
      `${keyPrefix}idx:ns:compensating:ship`,
      `${keyPrefix}idx:ns:stuck:ship`,
      `${keyPrefix}idx:s:compensating`,
      `${keyPrefix}idx:s:stuck`,
      `${keyPrefix}rec:live`,
      `${keyPrefix}rec:reopened`,
    ]);
    expect(await client.zcard(`${keyPrefix}idx:all`)).toBe(2);
    expect(await store.sweep()).toBe(0);
  });

  it('retention: finishedRetentionMs false keeps finished sagas; invalid values are refused', async () => {
    const { keyPrefix } = freshStore();
    const store = new RedisSagaStore({ keyPrefix, finishedRetentionMs: false }, { redis: client });
    const r = (await store.create(makeSagaRecord('kept'))).record;
    await store.update({ ...r, status: 'completed' }, r.revision);
    const key = (await keysUnder(client, keyPrefix)).find((k) => k.endsWith('rec:kept'))!;
    expect(await client.pttl(key)).toBe(-1);
    for (const bad of [0, -1, 1.5, true]) {
      expect(
        () =>
          new RedisSagaStore(
            { keyPrefix, finishedRetentionMs: bad as unknown as number },
            { redis: client },
          ),
      ).toThrow(
        expect.objectContaining({
          details: expect.objectContaining({ field: 'finishedRetentionMs' }),
        }),
      );
    }
  });

  it('refuses an update that renames the saga, with a coded error, and keeps the record', async () => {
    const { store } = freshStore();
    const v0 = (await store.create(makeSagaRecord('r1', { sagaName: 'ship' }))).record;
    await expect(store.update({ ...v0, sagaName: 'other' }, 0)).rejects.toMatchObject({
      code: 'BT_ERR_REDIS_CONFIG_INVALID',
      details: { field: 'record.sagaName' },
    });
    expect(await store.get('r1')).toEqual(v0);
  });

  it('lists exactly what InMemorySagaStore lists after a random history (differential test)', async () => {
    const { store } = freshStore();
    const reference = new InMemorySagaStore();
    const statuses = Object.values(SagaStatus);
    const names = ['place-order', 'refund', 'ship:express'];
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const records: SagaRecord[] = [];
    for (let i = 0; i < 120; i++) {
      const r = makeSagaRecord(`saga-${rand(1000)}-${i}`, {
        seq: rand(40), // many share a createdAt: ordering falls back to sagaId
        sagaName: names[rand(names.length)]!,
        status: statuses[rand(statuses.length)]!,
      });
      records.push(r);
    }
    const apply = async (s: SagaStore) => {
      for (const r of records) await s.create(r);
    };
    await Promise.all([apply(store), apply(reference)]);
    for (let i = 0; i < 200; i++) {
      const id = records[rand(records.length)]!.sagaId;
      const cur = (await reference.get(id))!;
      const next = { ...cur, status: statuses[rand(statuses.length)]! };
      await reference.update(next, cur.revision);
      await store.update(next, cur.revision);
    }
    const queries = [
      {},
      { status: 'stuck' as const },
      { status: ['running', 'compensating', 'stuck'] as SagaStatus[] },
      { sagaName: 'ship:express' },
      { sagaName: 'refund', status: ['completed', 'failed'] as SagaStatus[] },
    ];
    const all = async (s: SagaStore, q: object, limit: number) => {
      const out: SagaRecord[] = [];
      let cursor: string | undefined;
      do {
        const page = await s.list({ ...q, limit, ...(cursor ? { cursor } : {}) });
        out.push(...page.items);
        cursor = page.nextCursor;
      } while (cursor);
      return out;
    };
    for (const q of queries) {
      for (const limit of [1, 7, 100]) {
        expect(await all(store, q, limit)).toEqual(await all(reference, q, limit));
      }
    }
  });

  it('rejects invalid list arguments and records with a coded error naming the field', async () => {
    const { store } = freshStore();
    await expect(store.list({ limit: 0 })).rejects.toMatchObject({
      code: 'BT_ERR_REDIS_CONFIG_INVALID',
      details: { field: 'limit' },
    });
    await expect(store.list({ cursor: 'not-a-cursor' })).rejects.toMatchObject({
      details: { field: 'cursor' },
    });
    await expect(store.list({ status: 'sleeping' as SagaStatus })).rejects.toMatchObject({
      details: { field: 'status' },
    });
    await expect(store.create({ ...makeSagaRecord('x'), sagaId: '' })).rejects.toMatchObject({
      details: { field: 'record.sagaId' },
    });
    await expect(
      store.create({ ...makeSagaRecord('x'), status: 'paused' as SagaStatus }),
    ).rejects.toMatchObject({ details: { field: 'record.status' } });
    expect(await store.list({ status: [] })).toEqual({ items: [] });
  });
});
