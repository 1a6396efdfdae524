/**
 * The PostgreSQL stores over `sslmode=verify-full` with a role that has rights on one schema only
 * (scripts/secure/start): migrations, the saga store and the inbox (dedupe) contracts, client
 * certificate login (mTLS), and access failures as coded, non-retriable errors.
 */
import tls from 'node:tls';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectionAccessError } from '@backtrack/core';
import {
  POSTGRES_ACCESS_ERROR_CODES,
  PostgresInbox,
  PostgresSagaStore,
  migrate,
} from '@backtrack/postgres';
import { uniqueName } from '../../support/services.js';
import { secureServices } from '../../support/secure.js';
import { dedupeStoreContract, sagaStoreContract } from '@backtrack/core/adapter';

const secure = await secureServices();

describe.skipIf(!secure.available)(
  'PostgreSQL stores over verify-full TLS, one-schema role',
  () => {
    const pools: pg.Pool[] = [];
    const pool = (config: pg.PoolConfig = { connectionString: secure.postgresUrl() }): pg.Pool => {
      const p = new pg.Pool({ max: 5, connectionTimeoutMillis: 5_000, ...config });
      p.on('error', () => {});
      pools.push(p);
      return p;
    };
    let main: pg.Pool;
    let peer: pg.Pool;
    const schema = secure.available ? secure.conn.postgres.schema : '';
    beforeAll(async () => {
      main = pool();
      peer = pool();
      // The role owns its schema and nothing else: migrate must not need CREATE on the database.
      await migrate(main, { schema });
    });
    afterAll(async () => {
      await Promise.allSettled(pools.map((p) => p.end()));
    });

    it('connects with TLS, verified against the test CA', async () => {
      const { rows } = await main.query<{ ssl: boolean }>(
        'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
      );
      expect(rows[0]?.ssl).toBe(true);
    });

    // Fixed saga ids in the contract: one schema (the only one the role may use), emptied per test.
    sagaStoreContract(
      'PostgresSagaStore over verify-full',
      async ({ finishedRetentionMs }) => {
        await main.query(`DELETE FROM "${schema}".sagas`);
        // Retention cases: the store's own pruning pass, due every 50 ms.
        const options = { schema, finishedRetentionMs, retentionIntervalMs: 50 };
        return {
          store: new PostgresSagaStore({ pool: main }, options),
          peer: new PostgresSagaStore({ pool: peer }, options),
          cleanup: async () => {
            await main.query(`DELETE FROM "${schema}".sagas`);
          },
        };
      },
      { describe, it, expect },
    );

    dedupeStoreContract(
      'PostgresInbox over verify-full',
      async () => {
        const consumer = uniqueName('c');
        const store = new PostgresInbox({ pool: main }, { schema, consumer });
        return {
          store,
          peer: new PostgresInbox({ pool: peer }, { schema, consumer }),
          ttlOf: (key) => store.ttlOf(key),
          cleanup: async () => {
            await main.query(`DELETE FROM "${schema}".inbox WHERE consumer = $1`, [consumer]);
          },
        };
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
      expect(error).toMatchObject({ code, retriable: false, service: 'postgres', reason });
      expect(Date.now() - started).toBeLessThan(5_000);
      return error as ConnectionAccessError;
    }
    const inboxOn = (p: pg.Pool, s = schema) =>
      new PostgresInbox({ pool: p }, { schema: s, consumer: uniqueName('c') });

    it('logs in by client certificate (mTLS, cert authentication) with rights through bt_app', async () => {
      const c = secure.conn;
      const certPool = pool({
        host: c.postgres.host,
        port: c.postgres.port,
        database: c.postgres.database,
        user: c.postgres.certUser,
        ssl: { ca: secure.pem('ca'), cert: secure.pem('clientCert'), key: secure.pem('clientKey') },
      });
      const result = await inboxOn(certPool).claim('m-1', { leaseMs: 5_000 });
      expect(result.status).toBe('claimed');
    });

    it('refuses a wrong password: BT_ERR_PG_AUTHENTICATION_FAILED, not "store unavailable"', async () => {
      const denied = await expectDenied(
        () =>
          inboxOn(
            pool({ connectionString: secure.postgresUrl({ password: 'wrong-password' }) }),
          ).claim('m-1', { leaseMs: 5_000 }),
        POSTGRES_ACCESS_ERROR_CODES.AUTHENTICATION_FAILED,
        'authentication',
      );
      expect(denied.message).not.toContain('wrong-password');
    });

    it('verifies the certificate (verify-full): another CA fails with BT_ERR_PG_TLS_FAILED', async () => {
      await expectDenied(
        () =>
          inboxOn(
            pool({ connectionString: secure.postgresUrl({ root: secure.conn.certs.rogueCa }) }),
          ).claim('m-1', { leaseMs: 5_000 }),
        POSTGRES_ACCESS_ERROR_CODES.TLS_FAILED,
        'tls-untrusted',
      );
    });

    it('verifies the host name: a certificate for another name fails with tls-hostname', async () => {
      // pg always sends the host it dials as the TLS server name, so the wrong name is the one
      // Node's own identity check is asked about (what a DNS alias not in the certificate gets).
      const c = secure.conn;
      await expectDenied(
        () =>
          inboxOn(
            pool({
              host: c.postgres.host,
              port: c.postgres.port,
              database: c.postgres.database,
              user: c.postgres.user,
              password: c.postgres.password,
              ssl: {
                ca: secure.pem('ca'),
                checkServerIdentity: (_host, cert) =>
                  tls.checkServerIdentity('db.wrong.example.invalid', cert),
              },
            }),
          ).claim('m-1', { leaseMs: 5_000 }),
        POSTGRES_ACCESS_ERROR_CODES.TLS_FAILED,
        'tls-hostname',
      );
    });

    it('refuses a certificate login from another CA', async () => {
      const c = secure.conn;
      const rogue = pool({
        host: c.postgres.host,
        port: c.postgres.port,
        database: c.postgres.database,
        user: c.postgres.certUser,
        ssl: {
          ca: secure.pem('ca'),
          cert: secure.pem('rogueClientCert'),
          key: secure.pem('rogueClientKey'),
        },
      });
      await expectDenied(
        () => inboxOn(rogue).claim('m-1', { leaseMs: 5_000 }),
        POSTGRES_ACCESS_ERROR_CODES.TLS_FAILED,
        'tls-rejected',
      );
    });

    it('refuses a schema the role has no rights on: BT_ERR_PG_NOT_AUTHORIZED', async () => {
      await expectDenied(
        () => migrate(main, { schema: 'forbidden' }),
        POSTGRES_ACCESS_ERROR_CODES.NOT_AUTHORIZED,
        'authorization',
      );
    });
  },
);
