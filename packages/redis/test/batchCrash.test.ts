/**
 * The batch path's crash window: every handler of a batch applied its effect, then the process
 * died before the batch's one `completeMany` wrote the done marks. Nothing was acknowledged, so
 * the transport delivers the batch again: once the dead consumer's leases expire, the handlers
 * run again with the same idempotency keys (their own defence keeps the effect at one), the
 * marks are written, and later deliveries are acknowledged as duplicates.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createConsumerPipeline, handle, type Disposition } from '@backtrack/core';
import { RedisDedupeStore, createRedisClient } from '@backtrack/redis';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { applyEffect } from './fixtures/effect.js';
import { Charged, crashBatch } from './fixtures/batchKilledBeforeFlush.js';
import { deleteByPrefix } from './support.js';

const redis = await probeService('redis');
const CHILD = fileURLToPath(new URL('./fixtures/batchKilledBeforeFlush.ts', import.meta.url));
const TSCONFIG = fileURLToPath(new URL('../../../tsconfig.json', import.meta.url));
const LEASE_MS = 2_000;

function runUntilFlush(args: string[]): Promise<ChildProcess> {
  const child = fork(CHILD, args, {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, TSX_TSCONFIG_PATH: TSCONFIG, BT_BATCH_CRASH_CHILD: '1' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('child never reached the flush')), 30_000);
    child.once('message', (m: { kind: string }) => {
      clearTimeout(timer);
      if (m.kind === 'before-flush') resolve(child);
      else reject(new Error(`unexpected message from the child: ${JSON.stringify(m)}`));
    });
    child.once('exit', (code) => reject(new Error(`child exited early with ${code}`)));
  });
}

describe.skipIf(!redis.available)('a batch killed before its done marks (real Redis)', () => {
  const client = createRedisClient(redis.url);
  const prefixes: string[] = [];
  afterAll(async () => {
    for (const p of prefixes) await deleteByPrefix(client, p);
    await client.quit();
  });

  it('is redelivered, runs again under the same keys, and is applied once', async () => {
    const prefix = `${uniqueName('bt-batch-crash')}:`;
    prefixes.push(prefix);
    const keyPrefix = `${prefix}dedupe:`;
    const effectPrefix = `${prefix}effect:`;
    const ids = ['c-1', 'c-2', 'c-3'];
    const child = await runUntilFlush([
      redis.url,
      keyPrefix,
      effectPrefix,
      String(LEASE_MS),
      ids.join(','),
    ]);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    // Every effect happened once; no done mark exists.
    expect(await client.get(`${effectPrefix}counter`)).toBe('3');

    const store = new RedisDedupeStore({ keyPrefix }, { redis: client });
    let calls = 0;
    const pipeline = createConsumerPipeline(
      {
        name: 'charges',
        idempotency: { leaseMs: 30_000, inProgressDelayMs: 100 },
        handlers: [
          handle(Charged, async ({ idempotencyKey }) => {
            calls += 1;
            await applyEffect(client, effectPrefix, idempotencyKey);
          }),
        ],
      },
      { dedupeStore: store },
    );
    // The transport redelivers the unacknowledged batch until it is acknowledged.
    let dispositions: Disposition[] = [];
    let redeliveries = 0;
    for (; redeliveries < 100; redeliveries++) {
      dispositions = await pipeline.processBatch(crashBatch(ids));
      if (dispositions.every((d) => d.kind === 'ack')) break;
      // While the dead consumer's leases live, the batch is held back, never acknowledged.
      expect(dispositions.map((d) => d.kind)).toEqual(['redeliver', 'redeliver', 'redeliver']);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(redeliveries).toBeGreaterThan(0);
    expect(dispositions).toEqual(ids.map(() => ({ kind: 'ack', outcome: 'handled' })));
    expect(calls).toBe(3);
    // The handlers ran again, but their idempotency keys kept the effect at one each.
    expect(await client.get(`${effectPrefix}counter`)).toBe('3');
    // The marks are durable now: the next delivery is absorbed without a handler call.
    expect((await pipeline.processBatch(crashBatch(ids))).map((d) => d.kind)).toEqual([
      'ack',
      'ack',
      'ack',
    ]);
    expect(calls).toBe(3);
    expect(await client.get(`${effectPrefix}counter`)).toBe('3');
  }, 60_000);
});
