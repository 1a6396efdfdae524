import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { journalContract } from '@backtrack/core/adapter';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { RedisJournal } from '../src/journal/RedisJournal.js';
import { APPEND_MANY_SCRIPT } from '../src/journal/appendManyScript.js';
import { MARK_PUBLISHED_SCRIPT, PENDING_PIN } from '../src/journal/scripts.js';

const redis = await probeService('redis');

describe.skipIf(!redis.available)('RedisJournal', () => {
  const clients: Redis[] = [];
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.quit()));
  });
  const client = () => {
    const c = new Redis(redis.url, { lazyConnect: false });
    clients.push(c);
    return c;
  };

  for (const [recordFormat, indexes] of [
    ['json', 'all'],
    ['fields', 'all'],
    ['json', 'minimal'],
    ['fields', 'minimal'],
  ] as const) {
    journalContract(
      `RedisJournal (recordFormat: '${recordFormat}', indexes: '${indexes}')`,
      async (options) => {
        const journal = new RedisJournal(
          { ...options, keyPrefix: uniqueName('bt-journal'), recordFormat, indexes },
          { redis: client() },
        );
        return { journal, cleanup: () => journal.destroy() };
      },
      { describe, it, expect },
    );
  }

  it("indexes: 'minimal' writes i:all, i:pending and i:sv only, and every reader of this version queries it right (the mark)", async () => {
    const c = client();
    const keyPrefix = uniqueName('bt-journal');
    // A reader with the default option, created (and used) before any minimal writer exists.
    const reader = new RedisJournal({ keyPrefix, maxScanPerQuery: 3 }, { redis: c });
    const writer = new RedisJournal({ keyPrefix, indexes: 'minimal' }, { redis: c });
    const P = writer.keyPrefix;
    const now = Date.now();
    const rec = (id: string, service: string, type: string, sagaId: string) => ({
      ...record(id, new Date(now).toISOString()),
      service,
      type,
      sagaId,
    });
    try {
      await reader.append(rec('old', 'orders', 'order.placed', 'saga-1'));
      expect((await reader.query({ sagaId: 'saga-1' })).items.map((r) => r.id)).toEqual(['old']);
      await writer.appendMany([
        rec('m1', 'orders', 'order.placed', 'saga-1'),
        rec('m2', 'payments', 'payment.charged', 'saga-2'),
        rec('m3', 'orders', 'order.cancelled', 'saga-1'),
        rec('m4', 'payments', 'payment.charged', 'saga-1'),
      ]);
      expect(await c.get(`${P}:indexes`)).toBe('minimal');
      const keys = (await c.keys(`${P}:i:*`)).map((k) => k.slice(P.length)).sort();
      // The default reader's own record put the others there; the writer's only these.
      expect(keys).toEqual(
        [
          ':i:all',
          ':i:g:saga-1',
          ':i:pending',
          ':i:s:orders',
          ':i:sv:orders:1.0.0',
          ':i:sv:payments:1.0.0',
          ':i:t:order.placed',
        ].sort(),
      );
      expect(await c.zrange(`${P}:i:g:saga-1`, '0', '-1')).toEqual(['old']);
      expect(JSON.parse((await c.hget(`${P}:r:m1`, 'ix'))!)).toEqual([`${P}:i:sv:orders:1.0.0`]);
      const ids = async (q: Parameters<RedisJournal['query']>[0], j = reader) => {
        const out: string[] = [];
        let cursor: string | undefined;
        do {
          const page = await j.query({ ...q, cursor });
          out.push(...page.items.map((r) => r.id));
          cursor = page.nextCursor;
        } while (cursor);
        return out;
      };
      for (const j of [reader, writer]) {
        expect(await ids({ sagaId: 'saga-1' }, j)).toEqual(['old', 'm1', 'm3', 'm4']);
        expect(await ids({ type: 'payment.charged' }, j)).toEqual(['m2', 'm4']);
        expect(await ids({ service: 'orders' }, j)).toEqual(['old', 'm1', 'm3']);
        expect(await ids({ service: 'payments', version: '1.0.0' }, j)).toEqual(['m2', 'm4']);
        expect(await ids({ service: 'orders', direction: 'backward' }, j)).toEqual([
          'm3',
          'm1',
          'old',
        ]);
      }
      // Pruning removes a minimal record from the indexes it is in.
      expect(await writer.prune(now + 8 * 24 * 3_600_000)).toBe(5);
      expect((await c.keys(`${P}:i:*`)).filter((k) => !k.endsWith(':i:pending'))).toEqual([]);
    } finally {
      await writer.destroy();
    }
  });

  it("writes the 'json' format by default, exactly as every earlier version reads it", async () => {
    const c = client();
    const writer = new RedisJournal({ keyPrefix: uniqueName('bt-journal') }, { redis: c });
    const P = writer.keyPrefix;
    const reader = new RedisJournal({ keyPrefix: P, recordFormat: 'fields' }, { redis: c });
    const time = new Date().toISOString();
    const base = {
      type: 'order.placed',
      schemaVersion: 1,
      topic: 'orders',
      service: 'orders',
      version: '1.0.0',
      time,
      sagaId: 'saga-1',
    };
    const body = new Uint8Array([0, 255, 1, 128]);
    try {
      await writer.append({ ...base, id: 'one', message: { headers: { id: 'one' }, body } });
      await writer.appendMany([
        { ...base, id: 'two', key: 'k', message: { headers: { id: 'two' }, body } },
      ]);
      for (const id of ['one', 'two']) {
        // What a reader before the 'fields' format parses: `j` alone, the body in base64.
        expect(await c.hexists(`${P}:r:${id}`, 'm')).toBe(0);
        expect(await c.hexists(`${P}:r:${id}`, 'b')).toBe(0);
        const j = JSON.parse((await c.hget(`${P}:r:${id}`, 'j'))!) as Record<string, unknown>;
        expect(j).toMatchObject({ ...base, id, headers: { id }, body: 'AP8BgA==' });
      }
      // A journal that writes 'fields' reads them, and the default one reads its records.
      const got = await reader.get('two');
      expect(got).toMatchObject({ ...base, id: 'two', key: 'k', state: 'pending' });
      expect(Array.from(got!.message.body)).toEqual([0, 255, 1, 128]);
      await reader.append({ ...base, id: 'three', message: { headers: { id: 'three' }, body } });
      expect(await c.hexists(`${P}:r:three`, 'j')).toBe(0);
      const page = await writer.query({ sagaId: 'saga-1' });
      expect(page.items.map((r) => r.id)).toEqual(['one', 'two', 'three']);
      expect(Array.from(page.items[2]!.message.body)).toEqual([0, 255, 1, 128]);
    } finally {
      await writer.destroy();
    }
  });

  it('refuses an unknown recordFormat', () => {
    expect(
      () => new RedisJournal({ recordFormat: 'binary' as unknown as 'json' }, { redis: client() }),
    ).toThrow(expect.objectContaining({ code: 'BT_ERR_REDIS_CONFIG_INVALID' }) as Error);
  });

  it('appendMany is one round trip: one script call, no other command', async () => {
    const c = client();
    const journal = new RedisJournal({ keyPrefix: uniqueName('bt-journal') }, { redis: c });
    const record = (i: number) => ({
      id: `m-${i}`,
      type: 'order.placed',
      schemaVersion: 1,
      topic: 'orders',
      service: 'orders',
      version: '1.0.0',
      time: new Date().toISOString(),
      sagaId: `saga-${i % 3}`,
      message: { headers: { a: 'b' }, body: new Uint8Array([i]) },
    });
    try {
      await journal.appendMany([record(0)]); // loads the scripts
      // evalshaBuffer: ioredis' Buffer-reply twin, missing from its type declarations.
      const methods = ['evalshaBuffer', 'pipeline', 'evalsha', 'eval', 'script', 'get', 'hmget'];
      const spies = methods.map((m) => vi.spyOn(c as unknown as Record<string, () => void>, m));
      const stored = await journal.appendMany(Array.from({ length: 50 }, (_, i) => record(i + 1)));
      expect(stored).toHaveLength(50);
      expect(spies.map((s) => s.mock.calls.length)).toEqual([1, 0, 0, 0, 0, 0, 0]);
      // The next batch carries the marks of this one: still one command.
      const marked = await journal.appendAndMarkPublished(
        Array.from({ length: 50 }, (_, i) => record(i + 51)),
        stored.map((r) => r.id),
      );
      expect(marked).toBe(50);
      expect(spies.map((s) => s.mock.calls.length)).toEqual([2, 0, 0, 0, 0, 0, 0]);
      expect((await journal.get('m-7'))?.state).toBe('published');
      expect((await journal.get('m-57'))?.state).toBe('pending');
      expect((await journal.get('m-7'))?.sagaId).toBe('saga-1');
      // What appendMany hands back: the append's fields, its sequence number, pending.
      const first = record(1);
      expect(stored[0]).toEqual({
        ...first,
        time: stored[0]!.time,
        seq: expect.any(Number) as number,
        state: 'pending',
      });
      expect(stored[0]!.message.body).not.toBe(first.message.body);
      expect(new Set(stored.map((r) => r.seq)).size).toBe(50);
      // Each record is indexed under its saga (the batch's index-key sets carry the saga's key).
      const bySaga = await journal.query({ sagaId: 'saga-2', limit: 100 });
      expect(bySaga.items.map((r) => r.id).sort()).toEqual(
        Array.from({ length: 101 }, (_, i) => i)
          .filter((i) => i % 3 === 2)
          .map((i) => `m-${i}`)
          .sort(),
      );
    } finally {
      vi.restoreAllMocks();
      await journal.destroy();
    }
  });

  it('appendMany works on a server that lost its scripts (SCRIPT FLUSH, a restart, a new cluster node)', async () => {
    const c = client();
    const journal = new RedisJournal({ keyPrefix: uniqueName('bt-journal') }, { redis: c });
    const record = (id: string) => ({
      id,
      type: 'order.placed',
      schemaVersion: 1,
      topic: 'orders',
      service: 'orders',
      version: '1.0.0',
      time: new Date().toISOString(),
      message: { headers: {}, body: new Uint8Array([1]) },
    });
    try {
      await journal.appendMany([record('before')]);
      // Every other script of the stores falls back to EVAL too, so flushing is safe here.
      await c.script('FLUSH');
      const stored = await journal.appendMany([record('after-1'), record('after-2')]);
      expect(stored.map((r) => r.id)).toEqual(['after-1', 'after-2']);
      expect((await journal.get('after-2'))?.state).toBe('pending');
      // The marks ride with the append: an id of the refused (then re-run) batch is marked too,
      // though the marks script (loaded again here) ran before the append was re-run.
      await c.script('FLUSH');
      await journal.markPublished(['no-such-id']);
      expect(
        await journal.appendAndMarkPublished([record('after-3')], ['after-1', 'after-3']),
      ).toBe(2);
      expect((await journal.get('after-3'))?.state).toBe('published');
    } finally {
      await journal.destroy();
    }
  });

  it('marks without reading i:pending first (one HSET per id, one ZREM) and never recreate a deleted record', async () => {
    const c = client();
    const journal = new RedisJournal({ keyPrefix: uniqueName('bt-journal') }, { redis: c });
    const P = journal.keyPrefix;
    const now = new Date().toISOString();
    try {
      await journal.appendMany(['a', 'b', 'c', 'd'].map((id) => record(id, now)));
      // The marks need no ZMSCORE (Redis 6.2+): the same script runs on an older server.
      const old = MARK_PUBLISHED_SCRIPT.replace("'ZMSCORE'", "'NO_SUCH_COMMAND'");
      expect(old).not.toBe(MARK_PUBLISHED_SCRIPT);
      const ids = ['a', 'b', 'a', 'unknown'];
      const keys = [`${P}:i:pending`, ...ids.map((id) => `${P}:r:${id}`)];
      expect(await c.eval(old, keys.length, ...keys, ...ids)).toBe(2);
      // Marked again: already published, nothing changes.
      expect(await c.eval(old, keys.length, ...keys, ...ids)).toBe(0);
      expect((await journal.get('a'))?.state).toBe('published');
      expect((await journal.get('b'))?.state).toBe('published');
      expect((await journal.get('c'))?.state).toBe('pending');
      expect(await c.exists(`${P}:r:unknown`)).toBe(0);
      // A record whose hash is gone while its id is still pending (a teardown cut short):
      // the mark drops the pending entry, does not count it, and leaves no stub hash behind.
      await c.del(`${P}:r:d`);
      expect(await journal.markPublished(['d', 'c'])).toBe(1);
      expect(await c.exists(`${P}:r:d`)).toBe(0);
      // Only the pin is left (see PENDING_PIN).
      expect(await c.zrange(`${P}:i:pending`, '0', '-1')).toEqual([PENDING_PIN]);
      expect((await journal.unpublished({ olderThanMs: -60_000 })).map((r) => r.id)).toEqual([]);
    } finally {
      await journal.destroy();
    }
  });

  it('appends a batch of stored, repeated and new ids like one read of i:all first would (also without ZMSCORE)', async () => {
    const c = client();
    let redirected = 0;
    for (const script of ['as is', 'without ZMSCORE'] as const) {
      const journal = new RedisJournal({ keyPrefix: uniqueName('bt-journal') }, { redis: c });
      const P = journal.keyPrefix;
      const now = Date.now();
      try {
        const [a] = await journal.appendMany([record('a', new Date(now).toISOString())]);
        if (script === 'without ZMSCORE') {
          // Redis before 6.2: the append's fallback (a ZSCORE per id) in place of ZMSCORE.
          const old = APPEND_MANY_SCRIPT.replace("'ZMSCORE'", "'NO_SUCH_COMMAND'");
          expect(old).not.toBe(APPEND_MANY_SCRIPT);
          // The journal runs its script by sha: the append's calls run this one instead.
          const sha = createHash('sha1').update(APPEND_MANY_SCRIPT).digest('hex');
          const buffers = c as unknown as Record<string, (...args: unknown[]) => unknown>;
          const original = buffers.evalshaBuffer!.bind(c);
          vi.spyOn(buffers, 'evalshaBuffer').mockImplementation((...args: unknown[]) =>
            args[0] === sha
              ? (redirected++, buffers.evalBuffer!.call(c, old, ...args.slice(1)))
              : original(...args),
          );
        }
        const t = new Date(now).toISOString();
        const out = await journal.appendMany([
          record('b', t),
          record('a', t),
          record('c', t),
          record('b', t),
        ]);
        expect(out.map((r) => r.id)).toEqual(['b', 'a', 'c', 'b']);
        // The stored record wins for 'a' and for the repeated 'b'; b and c get the next seqs.
        expect(out[1]!.seq).toBe(a!.seq);
        expect(out[0]!.seq).toBe(a!.seq + 1);
        expect(out[2]!.seq).toBe(a!.seq + 2);
        expect(out[3]!.seq).toBe(out[0]!.seq);
        expect(await c.get(`${P}:seq`)).toBe(String(a!.seq + 2));
        const all = await c.zrange(`${P}:i:all`, '0', '-1', 'WITHSCORES');
        expect(all).toEqual([
          'a',
          String(a!.seq),
          'b',
          String(a!.seq + 1),
          'c',
          String(a!.seq + 2),
        ]);
        for (const r of out) expect(await c.hget(`${P}:r:${r.id}`, 'q')).toBe(String(r.seq));
        expect((await journal.query({})).items.map((r) => r.id)).toEqual(['a', 'b', 'c']);
        expect(redirected).toBe(script === 'as is' ? 0 : 1);
      } finally {
        vi.restoreAllMocks();
        await journal.destroy();
      }
    }
  });

  it('keeps i:pending a skiplist with a pin member that no reader sees', async () => {
    const c = client();
    const journal = new RedisJournal({ keyPrefix: uniqueName('bt-journal') }, { redis: c });
    const P = journal.keyPrefix;
    const now = Date.now();
    try {
      await journal.appendMany([record('a', new Date(now).toISOString())]);
      await journal.append(record('b', new Date(now).toISOString()));
      // A small sorted set would be a listpack (every ZADD and ZREM walks it).
      expect(await c.object('ENCODING', `${P}:i:pending`)).toBe('skiplist');
      expect(await c.zscore(`${P}:i:pending`, PENDING_PIN)).toBe('0');
      // The relay's read, and the one of every earlier version (a seq range from the
      // retention cut-off), never contain it.
      expect((await journal.unpublished({ olderThanMs: -60_000 })).map((r) => r.id)).toEqual([
        'a',
        'b',
      ]);
      const cut = (now - 7 * 24 * 3_600_000) * 1024;
      expect(await c.zrangebyscore(`${P}:i:pending`, cut, '+inf')).toEqual(['a', 'b']);
      expect(
        await journal.appendAndMarkPublished(
          [record('c', new Date(now).toISOString())],
          ['a', 'b'],
        ),
      ).toBe(2);
      expect(await c.zrange(`${P}:i:pending`, '0', '-1')).toEqual([PENDING_PIN, 'c']);
      expect(await journal.prune(now + 8 * 24 * 3_600_000)).toBe(3);
      expect(await c.zrange(`${P}:i:pending`, '0', '-1')).toEqual([PENDING_PIN]);
    } finally {
      await journal.destroy();
    }
  });

  it('appends and marks a batch larger than one command chunk (Lua unpack limit)', async () => {
    const c = client();
    const journal = new RedisJournal({ keyPrefix: uniqueName('bt-journal') }, { redis: c });
    const P = journal.keyPrefix;
    const now = new Date().toISOString();
    const ids = Array.from({ length: 4_100 }, (_, i) => `big-${i}`);
    try {
      const stored = await journal.appendMany(ids.map((id) => record(id, now)));
      expect(new Set(stored.map((r) => r.seq)).size).toBe(ids.length);
      expect(await c.zcard(`${P}:i:all`)).toBe(ids.length);
      expect(await c.zcard(`${P}:i:t:order.placed`)).toBe(ids.length);
      // Again, with one new record: every other id is found stored, in chunks.
      const again = await journal.appendMany([...ids, 'big-new'].map((id) => record(id, now)));
      expect(again.slice(0, -1).map((r) => r.seq)).toEqual(stored.map((r) => r.seq));
      expect(await journal.markPublished([...ids, 'big-new'])).toBe(ids.length + 1);
      expect(await c.zrange(`${P}:i:pending`, '0', '-1')).toEqual([PENDING_PIN]);
    } finally {
      await journal.destroy();
    }
  });

  it('wraps the prefix in a hash tag so the journal lives in one cluster slot', () => {
    const journal = new RedisJournal({ keyPrefix: 'app:journal' }, { redis: client() });
    expect(journal.keyPrefix).toBe('{app:journal}');
  });

  it('rejects bad options with BT_ERR_REDIS_CONFIG_INVALID', () => {
    const c = client();
    for (const options of [
      { retentionMs: -1 },
      { keyPrefix: '' },
      { maxScanPerQuery: 0 },
      { indexes: 'some' as 'all' },
    ]) {
      expect(() => new RedisJournal(options, { redis: c })).toThrowError(
        expect.objectContaining({ code: 'BT_ERR_REDIS_CONFIG_INVALID' }),
      );
    }
  });

  it('deletes expired records while appending (retention enforced by the store)', async () => {
    const c = client();
    const journal = new RedisJournal(
      { keyPrefix: uniqueName('bt-journal'), retentionMs: 60_000, pruneOnAppend: 5 },
      { redis: c },
    );
    try {
      const old = Date.now() - 120_000;
      for (let i = 0; i < 8; i++) {
        await journal.append(record(`old-${i}`, new Date(old + i).toISOString()));
      }
      await journal.append(record('new-1', new Date().toISOString()));
      await journal.append(record('new-2', new Date().toISOString()));
      // Every append deleted up to 5 expired records: the old ones are gone from storage, not just hidden.
      expect(await c.exists(`${journal.keyPrefix}:r:old-0`, `${journal.keyPrefix}:r:old-7`)).toBe(
        0,
      );
      expect(await c.zcard(`${journal.keyPrefix}:i:all`)).toBe(2);
      expect(await c.zcard(`${journal.keyPrefix}:i:s:orders`)).toBe(2);
    } finally {
      await journal.destroy();
    }
  });

  /**
   * `count` records two minutes old (`old-0`...), written by a journal that does not prune, so
   * only the journal under test can delete them (a 60 s retention). Returns the first one's time
   * (ms).
   */
  const seedExpired = async (c: Redis, keyPrefix: string, count: number): Promise<number> => {
    const seeding = new RedisJournal(
      { keyPrefix, retentionMs: 60_000, pruneOnAppend: 0 },
      { redis: c },
    );
    const old = Date.now() - 120_000;
    await seeding.appendMany(
      Array.from({ length: count }, (_, i) => record(`old-${i}`, new Date(old + i).toISOString())),
    );
    return old;
  };

  it('deletes expired records while appending a batch (appendMany prunes like append)', async () => {
    const c = client();
    const keyPrefix = uniqueName('bt-journal');
    const journal = new RedisJournal(
      { keyPrefix, retentionMs: 60_000, pruneOnAppend: 5 },
      { redis: c },
    );
    try {
      // Written by a journal that does not prune, so only appendMany can delete them.
      await seedExpired(c, keyPrefix, 8);
      expect(await c.zcard(`${journal.keyPrefix}:i:all`)).toBe(8);
      await journal.appendMany([record('new-1', new Date().toISOString())]);
      await journal.appendMany([record('new-2', new Date().toISOString())]);
      expect(await c.exists(`${journal.keyPrefix}:r:old-0`, `${journal.keyPrefix}:r:old-7`)).toBe(
        0,
      );
      expect(await c.zcard(`${journal.keyPrefix}:i:all`)).toBe(2);
      expect(await c.zcard(`${journal.keyPrefix}:i:s:orders`)).toBe(2);
    } finally {
      await journal.destroy();
    }
  });

  it('prunes as many records per append call as it appends when that is more than pruneOnAppend (deletion keeps up)', async () => {
    const c = client();
    const keyPrefix = uniqueName('bt-journal');
    const journal = new RedisJournal(
      { keyPrefix, retentionMs: 60_000, pruneOnAppend: 5 },
      { redis: c },
    );
    try {
      const old = await seedExpired(c, keyPrefix, 40);
      const now = new Date().toISOString();
      // Two batches of 20: 20 deleted per call, where 5 per call would leave 30.
      await journal.appendMany(Array.from({ length: 20 }, (_, i) => record(`a-${i}`, now)));
      await journal.appendMany(Array.from({ length: 20 }, (_, i) => record(`b-${i}`, now)));
      expect(await c.zcard(`${journal.keyPrefix}:i:all`)).toBe(40);
      expect(
        await c.zrangebyscore(`${journal.keyPrefix}:i:all`, '-inf', (old + 60) * 1024),
      ).toEqual([]);
    } finally {
      await journal.destroy();
    }
  });

  it('does not look for expired records until the retention cut-off passes the oldest record it saw', async () => {
    const c = client();
    const T = Date.now();
    let now = T;
    const journal = new RedisJournal(
      { keyPrefix: uniqueName('bt-journal'), retentionMs: 60_000, pruneOnAppend: 5 },
      { redis: c, now: () => now },
    );
    const P = journal.keyPrefix;
    try {
      const [first] = await journal.appendMany([record('first', new Date(T).toISOString())]);
      // An expired record no writer would make (seqs only grow): the pruning does not look for it
      // while nothing it knows of can have expired.
      const seq = (T - 120_000) * 1024;
      await c.hset(`${P}:r:planted`, 'q', String(seq), 's', 'pending', 'j', '{}', 'ix', '[]');
      await c.zadd(`${P}:i:all`, seq, 'planted');
      now = T + 1_000;
      await journal.appendMany([record('second', new Date(now).toISOString())]);
      expect(await c.exists(`${P}:r:planted`)).toBe(1);
      // Past the oldest record's expiry, the next append prunes (and finds the planted one too).
      now = T + 60_001;
      await journal.appendMany([record('third', new Date(now).toISOString())]);
      expect(await c.exists(`${P}:r:planted`, `${P}:r:first`)).toBe(0);
      expect(await c.zrange(`${P}:i:all`, '0', '-1')).toEqual(['second', 'third']);
      expect(first!.seq).toBe(T * 1024);
    } finally {
      await journal.destroy();
    }
  });

  it('once caught up, prunes at most every 100 ms', async () => {
    const c = client();
    const T = Date.now();
    let now = T;
    const journal = new RedisJournal(
      { keyPrefix: uniqueName('bt-journal'), retentionMs: 60_000, pruneOnAppend: 5 },
      { redis: c, now: () => now },
    );
    const P = journal.keyPrefix;
    try {
      await journal.appendMany([record('r1', new Date(T).toISOString())]);
      await journal.appendMany([record('r2', new Date(T + 10).toISOString())]);
      now = T + 60_005; // r1 expired: pruned (the last pruning was 60 s ago)
      await journal.appendMany([record('r3', new Date(now).toISOString())]);
      expect(await c.exists(`${P}:r:r1`, `${P}:r:r2`)).toBe(1);
      now = T + 60_050; // r2 expired too, but the last pruning was 45 ms ago
      await journal.appendMany([record('r4', new Date(now).toISOString())]);
      expect(await c.exists(`${P}:r:r2`)).toBe(1);
      // Hidden all the same: retention is applied on every read.
      expect(await journal.get('r2')).toBeUndefined();
      now = T + 60_106;
      await journal.appendMany([record('r5', new Date(now).toISOString())]);
      expect(await c.exists(`${P}:r:r2`)).toBe(0);
      expect(await c.zrange(`${P}:i:all`, '0', '-1')).toEqual(['r3', 'r4', 'r5']);
    } finally {
      await journal.destroy();
    }
  });

  it('an expired record whose ix does not parse neither fails an append nor stops pruning', async () => {
    const c = client();
    const journal = new RedisJournal(
      { keyPrefix: uniqueName('bt-journal'), retentionMs: 60_000, pruneOnAppend: 5 },
      { redis: c },
    );
    const P = journal.keyPrefix;
    try {
      const seq = (Date.now() - 120_000) * 1024;
      await c.hset(`${P}:r:broken`, 'q', String(seq), 's', 'pending', 'j', '{}', 'ix', 'not json');
      await c.zadd(`${P}:i:all`, seq, 'broken');
      const [stored] = await journal.appendMany([record('new-1', new Date().toISOString())]);
      expect(stored!.state).toBe('pending');
      expect(await journal.appendAndMarkPublished([], ['new-1'])).toBe(1);
      expect((await journal.get('new-1'))?.state).toBe('published');
      // Pruning goes past it: deleted from storage and from i:all.
      expect(await c.exists(`${P}:r:broken`)).toBe(0);
      expect(await c.zscore(`${P}:i:all`, 'broken')).toBeNull();
    } finally {
      await journal.destroy();
    }
  });

  it('bounds the work of one call: a selective filter over a big index returns short pages with a cursor', async () => {
    const c = client();
    const journal = new RedisJournal(
      { keyPrefix: uniqueName('bt-journal'), maxScanPerQuery: 50 },
      { redis: c },
    );
    try {
      const t = Date.now() - 10_000;
      for (let i = 0; i < 300; i++) {
        await journal.append({
          ...record(`r-${i}`, new Date(t + i).toISOString()),
          type: i === 250 ? 'rare' : 'common',
        });
      }
      // `type` picks the index (299 'common' entries); `service` is left to filter, and matches none.
      let cursor: string | undefined;
      let calls = 0;
      const found: string[] = [];
      do {
        const page = await journal.query({ type: 'common', service: 'nope', cursor, limit: 10 });
        found.push(...page.items.map((r) => r.id));
        cursor = page.nextCursor;
        calls++;
      } while (cursor && calls < 100);
      expect(found).toEqual([]);
      // 299 entries at most 50 per call: the scan was split over several calls, each bounded.
      expect(calls).toBeGreaterThanOrEqual(6);
      const rare = await journal.query({ type: 'rare' });
      expect(rare.items.map((r) => r.id)).toEqual(['r-250']);
    } finally {
      await journal.destroy();
    }
  });

  it("reads records of the 'json' format (one JSON with a base64 body) next to 'fields' ones", async () => {
    const c = client();
    const journal = new RedisJournal(
      { keyPrefix: uniqueName('bt-journal'), recordFormat: 'fields' },
      { redis: c },
    );
    const P = journal.keyPrefix;
    const now = Date.now();
    const seq = now * 1024;
    // A record exactly as every version writes it in the 'json' format: `j` holds everything.
    const body = Buffer.from([0, 255, 1, 128, 10, 13]);
    const old = {
      id: 'old-1',
      type: 'order.placed',
      schemaVersion: 2,
      key: 'order-1',
      topic: 'orders',
      service: 'orders',
      version: '1.0.0',
      time: new Date(now).toISOString(),
      sagaId: 'saga-1',
      headers: { id: 'old-1', a: 'b' },
      body: body.toString('base64'),
    };
    const ix = [
      `${P}:i:s:orders`,
      `${P}:i:sv:orders:1.0.0`,
      `${P}:i:t:order.placed`,
      `${P}:i:g:saga-1`,
    ];
    await c.hset(
      `${P}:r:old-1`,
      'q',
      String(seq),
      's',
      'pending',
      'j',
      JSON.stringify(old),
      'ix',
      JSON.stringify(ix),
    );
    for (const key of [`${P}:i:all`, `${P}:i:pending`, ...ix]) await c.zadd(key, seq, 'old-1');
    await c.set(`${P}:seq`, String(seq));
    try {
      // The stored record's fields come back as they were, with its seq and state.
      const { headers: _headers, body: _body, ...fields } = old;
      const expected = {
        ...fields,
        seq,
        state: 'pending',
      };
      const got = await journal.get('old-1');
      expect({ ...got!, message: undefined }).toEqual({ ...expected, message: undefined });
      expect(Buffer.from(got!.message.body)).toEqual(body);
      expect(got!.message.headers).toEqual({ id: 'old-1', a: 'b' });
      // New records (a binary body, a UTF-8 one) next to it; queries, marks and appends see both.
      const binary = { ...record('new-1', new Date(now + 1).toISOString()), sagaId: 'saga-1' };
      binary.message = { headers: { id: 'new-1' }, body: new Uint8Array([0xff, 0xfe, 0, 0xc3]) };
      await journal.appendMany([binary, record('new-2', new Date(now + 2).toISOString())]);
      expect(await c.hexists(`${P}:r:new-1`, 'j')).toBe(0);
      expect(await c.hgetBuffer(`${P}:r:new-1`, 'b')).toEqual(Buffer.from([0xff, 0xfe, 0, 0xc3]));
      expect(await c.hget(`${P}:r:new-2`, 'b')).toBe('{}');
      const page = await journal.query({ sagaId: 'saga-1' });
      expect(page.items.map((r) => r.id)).toEqual(['old-1', 'new-1']);
      expect(Array.from(page.items[1]!.message.body)).toEqual([0xff, 0xfe, 0, 0xc3]);
      const again = await journal.append({ ...record('old-1', old.time), type: 'other' });
      expect({ ...again, message: undefined }).toEqual({ ...expected, message: undefined });
      expect(Buffer.from(again.message.body)).toEqual(body);
      const [stored] = await journal.appendMany([record('old-1', old.time)]);
      expect(stored!.type).toBe('order.placed');
      expect(await journal.appendAndMarkPublished([], ['old-1', 'new-1'])).toBe(2);
      expect((await journal.unpublished({ olderThanMs: -60_000 })).map((r) => r.id)).toEqual([
        'new-2',
      ]);
      expect(await journal.prune(now + 8 * 24 * 3_600_000)).toBe(3);
      expect(await c.exists(`${P}:r:old-1`)).toBe(0);
      expect(await c.zcard(`${P}:i:g:saga-1`)).toBe(0);
    } finally {
      await journal.destroy();
    }
  });

  it('maps a dead connection to a retriable BT_ERR_STORE_UNAVAILABLE', async () => {
    const dead = new Redis('redis://127.0.0.1:1', {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    const journal = new RedisJournal({}, { redis: dead });
    await expect(journal.query({})).rejects.toMatchObject({
      code: 'BT_ERR_STORE_UNAVAILABLE',
      retriable: true,
    });
    dead.disconnect();
  });
});

function record(id: string, time: string) {
  return {
    id,
    type: 'order.placed',
    schemaVersion: 1,
    topic: 'orders',
    service: 'orders',
    version: '1.0.0',
    time,
    message: { headers: { id }, body: new TextEncoder().encode('{}') },
  };
}
