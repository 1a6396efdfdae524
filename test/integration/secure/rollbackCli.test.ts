/**
 * A rollback run and the CLI over the secured services (scripts/secure/start): effects published
 * on Kafka over SASL_SSL and journaled in Redis over rediss with an ACL user are replayed by
 * `runRollback`; the `backtrack` CLI lists sagas over rediss with the test CA, and fails fast
 * and clearly (no password printed) on a wrong one.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createConsumerPipeline,
  createPublisher,
  handle,
  planRollback,
  runRollback,
} from '@backtrack/core';
import { createKafkaTransport } from '@backtrack/kafka';
import {
  RedisJournal,
  RedisRollbackProgressStore,
  RedisSagaStore,
  createRedisClient,
} from '@backtrack/redis';
import { deleteByPrefix } from '../../../packages/redis/test/support.js';
import { registry, StockReserved } from '../rollback/scenario.js';
import { uniqueName } from '../../support/services.js';
import { ROOT, secureServices } from '../../support/secure.js';
import { makeSagaRecord } from '@backtrack/core/adapter';

const secure = await secureServices();
const COMMAND = fileURLToPath(new URL('../../../packages/cli/bin/backtrack.js', import.meta.url));
const CONFIG = fileURLToPath(
  new URL('../../../packages/cli/test/fixtures/backtrack.config.mjs', import.meta.url),
);

async function waitFor(check: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(!secure.available)('rollback and CLI over the secured services', () => {
  const { conn } = secure;
  const redis: Redis = secure.available
    ? createRedisClient(secure.redisUrl(), { tls: { ca: [secure.pem('ca')] } })
    : (undefined as unknown as Redis);
  afterAll(async () => {
    await deleteByPrefix(redis, 'secure:cli').catch(() => 0);
    redis?.disconnect();
  });

  /** A journal and a progress store of their own, over rediss. */
  function stores() {
    return {
      journal: new RedisJournal({ keyPrefix: `secure:${uniqueName('rj')}` }, { redis }),
      progressStore: new RedisRollbackProgressStore(
        { keyPrefix: `secure:${uniqueName('rp')}` },
        { redis },
      ),
    };
  }

  /** A Kafka transport over SASL_SSL as the test user, with this password. */
  function kafkaTransport(password = conn.kafka.password) {
    return createKafkaTransport({
      brokers: [conn.kafka.broker],
      clientLogLevel: 'nothing',
      ssl: { ca: [secure.pem('ca')] },
      sasl: { mechanism: 'scram-sha-512', username: conn.kafka.user, password },
      consumer: { maxWaitTimeMs: 200, heartbeatIntervalMs: 1000, sessionTimeoutMs: 10_000 },
    });
  }

  it('replays a journaled effect with runRollback: Kafka SASL_SSL, Redis rediss', async () => {
    const topic = uniqueName('secure.rollback');
    const { journal, progressStore } = stores();
    const transport = kafkaTransport();
    const received: unknown[] = [];
    try {
      const sub = await transport.subscribe({
        topics: [topic],
        group: `${topic}.g`,
        processor: createConsumerPipeline(
          {
            name: 'secure-rollback',
            handlers: [handle(StockReserved, ({ data }) => void received.push(data))],
          },
          { registry },
        ),
      });
      const bad = createPublisher(
        { service: 'inventory', version: '9.9.9', topicFor: () => topic },
        { transport, journal, registry },
      );
      await bad.publish(StockReserved, { sku: 'a', quantity: 3, warehouse: 'w' });
      await waitFor(() => received.length >= 1, 'the original');
      const plan = await planRollback(
        {
          service: 'inventory',
          version: '9.9.9',
          strategy: 'replay',
          targetVersions: { 'stock.reserved': 1 },
        },
        { journal, registry },
      );
      expect(plan.items).toHaveLength(1);
      const result = await runRollback(
        plan,
        { runId: uniqueName('secure-run'), owner: `secure-${process.pid}` },
        { journal, transport, progressStore },
      );
      expect(result.status).toBe('completed');
      await waitFor(() => received.length >= 2, 'the replay');
      expect(received[1]).toEqual({ sku: 'a', quantity: 3, warehouse: 'main' });
      await sub.close();
    } finally {
      await transport.close();
      await journal.destroy().catch(() => undefined);
      await progressStore.destroy().catch(() => undefined);
    }
  }, 120_000);

  it('a rollback run with a wrong SASL password stops at once with BT_ERR_KAFKA_AUTHENTICATION_FAILED, and a resume with the right one completes', async () => {
    const topic = uniqueName('secure.rollback-denied');
    const { journal, progressStore } = stores();
    const good = kafkaTransport();
    const denied = kafkaTransport('not-the-password');
    try {
      const bad = createPublisher(
        { service: 'inventory', version: '9.9.8', topicFor: () => topic },
        { transport: good, journal, registry },
      );
      await bad.publish(StockReserved, { sku: 'a', quantity: 1, warehouse: 'w' });
      await bad.publish(StockReserved, { sku: 'b', quantity: 2, warehouse: 'w' });
      const plan = await planRollback(
        {
          service: 'inventory',
          version: '9.9.8',
          strategy: 'replay',
          targetVersions: { 'stock.reserved': 1 },
        },
        { journal, registry },
      );
      expect(plan.items).toHaveLength(2);
      const runId = uniqueName('secure-denied');
      const stopped = await runRollback(
        plan,
        { runId, batchSize: 1, batchesInFlight: 1 },
        { journal, transport: denied, progressStore },
      ).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(stopped).toMatchObject({ code: 'BT_ERR_KAFKA_AUTHENTICATION_FAILED' });
      expect(String((stopped as Error).message)).not.toContain('not-the-password');
      const items = await progressStore.getItems(runId);
      expect(Object.values(items).filter((i) => i.state === 'failed')).toEqual([]);
      const resumed = await runRollback(
        plan,
        { runId, batchSize: 1 },
        { journal, transport: good, progressStore },
      );
      expect(resumed.status).toBe('completed');
      expect(resumed.summary).toMatchObject({ replayed: 2, failed: 0 });
    } finally {
      await denied.close().catch(() => undefined);
      await good.close();
      await journal.destroy().catch(() => undefined);
      await progressStore.destroy().catch(() => undefined);
    }
  }, 120_000);

  function cli(
    args: string[],
    env: Record<string, string>,
  ): Promise<{ code: number | null; out: string; ms: number }> {
    const started = Date.now();
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [COMMAND, ...args], {
        cwd: ROOT,
        env: {
          ...process.env,
          BACKTRACK_LOG_LEVEL: 'silent',
          NODE_EXTRA_CA_CERTS: conn.certs.ca,
          ...env,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, out, ms: Date.now() - started });
      });
    });
  }

  it('the CLI lists sagas over rediss (CA from NODE_EXTRA_CA_CERTS), and refuses a wrong password clearly', async () => {
    const prefix = `secure:cli-${uniqueName('s')}:`;
    const record = makeSagaRecord(uniqueName('saga'));
    await new RedisSagaStore({ keyPrefix: prefix }, { redis }).create(record);
    const env = { BT_TEST_SAGA_PREFIX: prefix };
    const ok = await cli(
      ['sagas', 'list', '--json', '--config', CONFIG, '--redis-url', secure.redisUrl()],
      env,
    );
    expect(ok.code, ok.out).toBe(0);
    expect(ok.out).toContain(record.sagaId);
    expect(ok.out).not.toContain(conn.redis.password);

    const bad = await cli(
      ['sagas', 'list', '--config', CONFIG, '--redis-url', secure.redisUrl('wrong-password')],
      env,
    );
    expect(bad.code).not.toBe(0);
    expect(bad.out).toContain('BT_ERR_REDIS_AUTHENTICATION_FAILED');
    expect(bad.out).not.toContain('wrong-password');
    expect(bad.ms).toBeLessThan(15_000);
  }, 120_000);
});
