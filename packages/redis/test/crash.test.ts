/**
 * A handler killed mid-way (SIGKILL of the consumer process while it holds the claim) does not
 * lose the message and does not apply it twice: the lease expires, a second consumer claims it,
 * runs the handler and completes; the effect counter ends at exactly 1.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { RedisDedupeStore, createRedisClient } from '@backtrack/redis';
import type { ClaimResult } from '@backtrack/core';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { applyEffect } from './fixtures/effect.js';
import { deleteByPrefix } from './support.js';

const redis = await probeService('redis');
const CHILD = fileURLToPath(new URL('./fixtures/claimThenHang.ts', import.meta.url));
const TSCONFIG = fileURLToPath(new URL('../../../tsconfig.json', import.meta.url));
const LEASE_MS = 2_500;

/** Starts the child consumer and resolves once it holds the claim (and maybe applied the effect). */
function startDoomedConsumer(args: string[]): Promise<ChildProcess> {
  const child = fork(CHILD, args, {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, TSX_TSCONFIG_PATH: TSCONFIG },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('child never claimed')), 20_000);
    child.once('message', (m: { kind: string }) => {
      clearTimeout(timer);
      if (m.kind === 'claimed') resolve(child);
      else reject(new Error(`child did not claim: ${JSON.stringify(m)}`));
    });
    child.once('exit', (code) => reject(new Error(`child exited early with ${code}`)));
  });
}

async function killed(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** Redelivers until the lease has expired and this consumer gets the claim. */
async function claimWhenFree(
  store: RedisDedupeStore,
  key: string,
): Promise<{ token: string; redeliveries: number }> {
  for (let redeliveries = 0; redeliveries < 100; redeliveries++) {
    const result: ClaimResult = await store.claim(key, { leaseMs: 30_000 });
    if (result.status === 'claimed') return { token: result.token, redeliveries };
    // A live lease: the message is not acknowledged and comes again (here: after a pause).
    expect(result.status).toBe('in-progress');
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('lease never expired');
}

describe.skipIf(!redis.available)('a handler killed mid-way (RedisDedupeStore, real Redis)', () => {
  const client = createRedisClient(redis.url);
  const prefixes: string[] = [];
  afterAll(async () => {
    for (const p of prefixes) await deleteByPrefix(client, p);
    await client.quit();
  });

  function setup() {
    const prefix = `${uniqueName('bt-crash')}:`;
    prefixes.push(prefix);
    const keyPrefix = `${prefix}dedupe:`;
    const effectPrefix = `${prefix}effect:`;
    const store = new RedisDedupeStore({ keyPrefix }, { redis: client });
    return { keyPrefix, effectPrefix, store };
  }

  it('killed before its effect: the message is processed again after the lease, exactly once in effect', async () => {
    const { keyPrefix, effectPrefix, store } = setup();
    const key = 'orders:evt-1';
    const child = await startDoomedConsumer([
      redis.url,
      keyPrefix,
      key,
      String(LEASE_MS),
      'before-effect',
      effectPrefix,
    ]);
    const killedAt = Date.now();
    await killed(child);

    // While the dead consumer's lease lives, the redelivered message is held back, not dropped.
    expect(await store.claim(key, { leaseMs: 30_000 })).toEqual({ status: 'in-progress' });
    const { token, redeliveries } = await claimWhenFree(store, key);
    expect(redeliveries).toBeGreaterThan(0);
    expect(Date.now() - killedAt).toBeLessThan(LEASE_MS + 2_000);

    expect(await applyEffect(client, effectPrefix, key)).toBe(true);
    expect(await store.complete(key, token, { ttlMs: 60_000 })).toBe(true);
    // Further redeliveries are acknowledged as duplicates without running the handler.
    expect((await store.claim(key, { leaseMs: 30_000 })).status).toBe('done');
    expect(await client.get(`${effectPrefix}counter`)).toBe('1');
  });

  it('killed after its effect but before complete: the handler runs again, and its idempotency key keeps the effect at 1', async () => {
    const { keyPrefix, effectPrefix, store } = setup();
    const key = 'orders:evt-2';
    const child = await startDoomedConsumer([
      redis.url,
      keyPrefix,
      key,
      String(LEASE_MS),
      'after-effect',
      effectPrefix,
    ]);
    await killed(child);
    expect(await client.get(`${effectPrefix}counter`)).toBe('1');

    const { token } = await claimWhenFree(store, key);
    // The dedupe store cannot know the effect happened: the handler is called a second time.
    // Its own idempotency key (applied:<key>) is what turns that second call into a no-op.
    expect(await applyEffect(client, effectPrefix, key)).toBe(false);
    expect(await store.complete(key, token, { ttlMs: 60_000 })).toBe(true);
    expect(await client.get(`${effectPrefix}counter`)).toBe('1');
  });

  it('many consumers racing for redeliveries of one message after a crash: one effect', async () => {
    const { keyPrefix, effectPrefix } = setup();
    const key = 'orders:evt-3';
    const child = await startDoomedConsumer([
      redis.url,
      keyPrefix,
      key,
      String(LEASE_MS),
      'before-effect',
      effectPrefix,
    ]);
    await killed(child);
    const consumers = Array.from({ length: 5 }, () => createRedisClient(redis.url));
    try {
      const runs = await Promise.all(
        consumers.map(async (c) => {
          const store = new RedisDedupeStore({ keyPrefix }, { redis: c });
          for (;;) {
            const result = await store.claim(key, { leaseMs: 30_000 });
            if (result.status === 'done') return 'duplicate';
            if (result.status === 'claimed') {
              // Naive effect (no idempotency key): only the dedupe claim protects it here.
              await applyEffect(c, effectPrefix, key, false);
              await store.complete(key, result.token, { ttlMs: 60_000 });
              return 'handled';
            }
            await new Promise((r) => setTimeout(r, 50));
          }
        }),
      );
      expect(runs.filter((r) => r === 'handled')).toHaveLength(1);
      expect(runs.filter((r) => r === 'duplicate')).toHaveLength(4);
      expect(await client.get(`${effectPrefix}counter:naive`)).toBe('1');
    } finally {
      await Promise.all(consumers.map((c) => c.quit()));
    }
  });
});
