/**
 * The Redis stores over rediss:// with an ACL user limited to `secure:*` keys (scripts/secure/
 * start): the dedupe, saga, journal and rollback-progress contracts on that connection, mTLS,
 * and access failures as coded, non-retriable errors (never the retriable "store unavailable").
 */
import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ConnectionAccessError } from '@backtrack/core';
import {
  REDIS_ACCESS_ERROR_CODES,
  RedisDedupeStore,
  RedisJournal,
  RedisRollbackProgressStore,
  RedisSagaStore,
  createRedisClient,
} from '@backtrack/redis';
import { deleteByPrefix } from '../../../packages/redis/test/support.js';
import { uniqueName } from '../../support/services.js';
import { secureServices } from '../../support/secure.js';
import {
  dedupeStoreContract,
  journalContract,
  rollbackProgressStoreContract,
  sagaStoreContract,
} from '@backtrack/core/adapter';

const secure = await secureServices();

describe.skipIf(!secure.available)('Redis stores over rediss with an ACL user', () => {
  const clients: Redis[] = [];
  const client = (url = secure.redisUrl(), tls: object = { ca: [secure.pem('ca')] }): Redis => {
    const c = createRedisClient(url, { tls });
    clients.push(c);
    return c;
  };
  const main = secure.available ? client() : (undefined as unknown as Redis);
  const prefix = (name: string) => `secure:${uniqueName(name)}:`;
  afterAll(async () => {
    await deleteByPrefix(main, 'secure:').catch(() => 0);
    for (const c of clients) c.disconnect();
  });

  dedupeStoreContract(
    'RedisDedupeStore over rediss',
    async () => {
      const keyPrefix = prefix('dedupe');
      const store = new RedisDedupeStore({ keyPrefix }, { redis: main });
      return {
        store,
        peer: new RedisDedupeStore({ keyPrefix }, { redis: client() }),
        ttlOf: async (key) => {
          const pttl = await main.pttl(store.redisKey(key));
          return pttl === -2 ? undefined : pttl === -1 ? null : pttl;
        },
        cleanup: () => deleteByPrefix(main, keyPrefix),
      };
    },
    { describe, it, expect },
  );

  sagaStoreContract(
    'RedisSagaStore over rediss',
    async ({ finishedRetentionMs }) => {
      // Retention cases: real TTLs of a few hundred ms and a sweep every 50 ms.
      const options = { keyPrefix: prefix('saga'), finishedRetentionMs, sweepIntervalMs: 50 };
      const { keyPrefix } = options;
      return {
        store: new RedisSagaStore(options, { redis: main }),
        peer: new RedisSagaStore(options, { redis: client() }),
        cleanup: () => deleteByPrefix(main, keyPrefix),
      };
    },
    { describe, it, expect },
  );

  journalContract(
    'RedisJournal over rediss',
    async (options) => {
      const journal = new RedisJournal(
        { ...options, keyPrefix: prefix('journal') },
        { redis: main },
      );
      return { journal, cleanup: () => journal.destroy() };
    },
    { describe, it, expect },
  );

  rollbackProgressStoreContract(
    'RedisRollbackProgressStore over rediss',
    async () => {
      const keyPrefix = prefix('rollback');
      const store = new RedisRollbackProgressStore({ keyPrefix }, { redis: main });
      const peer = new RedisRollbackProgressStore({ keyPrefix }, { redis: client() });
      return { store, peer, cleanup: () => store.destroy() };
    },
    { describe, it, expect },
  );

  async function expectDenied(run: () => Promise<unknown>, code: string, reason: string) {
    const started = Date.now();
    const error = await run().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConnectionAccessError);
    expect(error).toMatchObject({ code, retriable: false, service: 'redis', reason });
    expect(Date.now() - started).toBeLessThan(5_000);
    return error as ConnectionAccessError;
  }
  const dedupeOn = (redis: Redis, keyPrefix = prefix('denied')) =>
    new RedisDedupeStore({ keyPrefix }, { redis });

  it('works with a client certificate (mTLS)', async () => {
    const c = client(secure.redisUrl(), {
      ca: [secure.pem('ca')],
      cert: secure.pem('clientCert'),
      key: secure.pem('clientKey'),
    });
    const store = dedupeOn(c);
    expect((await store.claim('m-1', { leaseMs: 5_000 })).status).toBe('claimed');
  });

  it('refuses a wrong password: BT_ERR_REDIS_AUTHENTICATION_FAILED, not "store unavailable"', async () => {
    const denied = await expectDenied(
      () => dedupeOn(client(secure.redisUrl('wrong-password'))).claim('m-1', { leaseMs: 5_000 }),
      REDIS_ACCESS_ERROR_CODES.AUTHENTICATION_FAILED,
      'authentication',
    );
    expect(denied.message).not.toContain('wrong-password');
  });

  it('verifies the certificate by default: another CA fails with BT_ERR_REDIS_TLS_FAILED', async () => {
    await expectDenied(
      () =>
        dedupeOn(client(secure.redisUrl(), { ca: [secure.pem('rogueCa')] })).claim('m-1', {
          leaseMs: 5_000,
        }),
      REDIS_ACCESS_ERROR_CODES.TLS_FAILED,
      'tls-untrusted',
    );
  });

  it('verifies the host name: a certificate for another name fails with tls-hostname', async () => {
    await expectDenied(
      () =>
        new RedisSagaStore(
          { keyPrefix: prefix('saga') },
          {
            redis: client(secure.redisUrl(), {
              ca: [secure.pem('ca')],
              servername: 'wrong.example.invalid',
            }),
          },
        ).get('s-1'),
      REDIS_ACCESS_ERROR_CODES.TLS_FAILED,
      'tls-hostname',
    );
  });

  it('refuses keys outside the user ACL: BT_ERR_REDIS_NOT_AUTHORIZED', async () => {
    await expectDenied(
      () => dedupeOn(main, `forbidden:${uniqueName('d')}:`).claim('m-1', { leaseMs: 5_000 }),
      REDIS_ACCESS_ERROR_CODES.NOT_AUTHORIZED,
      'authorization',
    );
  });
});
