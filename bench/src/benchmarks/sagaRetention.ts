/**
 * 10. Saga retention on Redis: what finished sagas cost in memory, kept forever, kept with a
 * TTL (before it ends), and after it ended and the store swept its indexes.
 *
 * Each side writes N sagas as the engine finishes them: created `running`, then one update to
 * `completed` with three completed steps (results, start and end times), 64 at once. Memory is
 * measured two ways: the sum of `MEMORY USAGE` over every key under the side's own prefix (exact
 * for this benchmark, whatever else the shared server holds), and the server's `used_memory`
 * before and after (includes the expires dictionary's entries, but also anything other clients
 * wrote meanwhile: a noisy upper view). The retention side's TTL is set from the time the kept
 * side took to write, so no saga expires before its "before" measurement (checked: the
 * `idx:exp` sets hold all N).
 */
import type { Redis } from 'ioredis';
import { createRedisClient, RedisSagaStore } from '@backtrack/redis';
import type { SagaRecord } from '@backtrack/core';
import { runConcurrently, secondsSince, SERVICES, uniqueName } from '../common.js';
import { deleteByPrefix } from '../redisKeys.js';
import type { Benchmark } from '../runner.js';

const CONCURRENCY = 64;

function finishedRecord(i: number, at: string): SagaRecord {
  const step = (result: unknown) => ({
    status: 'completed' as const,
    attempts: 1,
    compensationAttempts: 0,
    result,
    startedAt: at,
    endedAt: at,
  });
  return {
    sagaId: `order-${i}`,
    sagaName: 'place-order',
    definitionVersion: 1,
    status: 'running',
    input: { orderId: `order-${i}`, customerId: `c-${i % 997}`, amountCents: 1250 + (i % 100) },
    steps: {
      'reserve-stock': step({ reservationId: `r-${i}` }),
      'charge-card': step({ chargeId: `ch-${i}` }),
      'ship-order': step({ shipmentId: `s-${i}` }),
    },
    completionOrder: ['reserve-stock', 'charge-card', 'ship-order'],
    compensationOrder: [],
    cancelRequested: false,
    revision: 0,
    createdAt: at,
    updatedAt: at,
  };
}

/** Writes N finished sagas; resolves with the seconds it took. */
async function writeFinished(store: RedisSagaStore, n: number): Promise<number> {
  const t = performance.now();
  await runConcurrently(n, CONCURRENCY, async (i) => {
    const at = new Date().toISOString();
    const { record } = await store.create(finishedRecord(i, at));
    await store.update({ ...record, status: 'completed' }, record.revision);
  });
  return secondsSince(t);
}

async function keysUnder(redis: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 5000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}

/** Sum of MEMORY USAGE (all samples: exact for sorted sets) over the keys under `prefix`. */
async function memoryUnder(
  redis: Redis,
  prefix: string,
): Promise<{ bytes: number; indexBytes: number; keys: number }> {
  const keys = await keysUnder(redis, prefix);
  let bytes = 0;
  let indexBytes = 0;
  for (let start = 0; start < keys.length; start += 1000) {
    const slice = keys.slice(start, start + 1000);
    const p = redis.pipeline();
    for (const k of slice) p.call('MEMORY', 'USAGE', k, 'SAMPLES', '0');
    ((await p.exec()) ?? []).forEach(([, v], i) => {
      bytes += Number(v ?? 0);
      if (slice[i]!.includes('idx:')) indexBytes += Number(v ?? 0);
    });
  }
  return { bytes, indexBytes, keys: keys.length };
}

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? NaN);
}

export const sagaRetentionBenchmark: Benchmark = {
  id: 'saga-retention',
  title: 'Saga retention: Redis memory per 100k finished sagas, kept, before and after expiry',
  async run(o, rec) {
    const n = o.retentionSagas;
    const per100k = (bytes: number) => (bytes * 100_000) / n / 1_000_000;
    Object.assign(rec.params, { sagas: n, concurrency: CONCURRENCY });
    rec
      .metric('kept', {
        label: 'kept forever (finishedRetentionMs: false), MEMORY USAGE',
        // The baseline: the same store without retention, what every saga cost before.
        role: 'baseline',
        unit: 'MB / 100k sagas',
      })
      .metric('before', {
        label: 'with retention, before expiry, MEMORY USAGE',
        role: 'backtrack',
        unit: 'MB / 100k sagas',
      })
      .metric('after', {
        label: 'with retention, after expiry + sweep, MEMORY USAGE',
        role: 'backtrack',
        unit: 'MB / 100k sagas',
      })
      .metric('before-indexes', {
        label: 'of which index sets (idx:all, idx:s, idx:n, idx:ns, idx:exp)',
        role: 'info',
        unit: 'MB / 100k sagas',
      })
      .metric('kept-used', {
        label: 'kept forever, used_memory delta (server-wide)',
        role: 'info',
        unit: 'MB / 100k sagas',
      })
      .metric('before-used', {
        label: 'before expiry, used_memory delta (server-wide)',
        role: 'info',
        unit: 'MB / 100k sagas',
      })
      .metric('after-used', {
        label: 'after expiry + sweep, used_memory delta (server-wide)',
        role: 'info',
        unit: 'MB / 100k sagas',
      })
      .metric('keys-after', {
        label: 'keys left under the prefix after expiry + sweep',
        role: 'info',
        unit: 'keys',
      })
      .metric('sweep', {
        label: 'sweep of the expired sagas (index entries trimmed)',
        role: 'info',
        unit: 'sagas/s',
      });
    const redis = createRedisClient(SERVICES.redis);
    try {
      await redis.ping();
      // Memory per saga does not depend on the machine's load: one run, whatever --runs says.
      rec.params.runs = 1;
      for (let run = 0; run < 1; run++) {
        // 1. Kept forever.
        const keptPrefix = `${uniqueName('bench-retention-kept')}:`;
        let writeSeconds: number;
        let scanSeconds: number;
        try {
          const kept = new RedisSagaStore(
            { keyPrefix: keptPrefix, finishedRetentionMs: false },
            { redis },
          );
          const used0 = await usedMemory(redis);
          writeSeconds = await writeFinished(kept, n);
          rec.record('kept-used', per100k((await usedMemory(redis)) - used0));
          const t = performance.now();
          rec.record('kept', per100k((await memoryUnder(redis, keptPrefix)).bytes));
          scanSeconds = secondsSince(t);
        } finally {
          await deleteByPrefix(redis, keptPrefix);
        }
        // 2. With retention: a TTL well past the time the kept side took to write and to be
        //    measured (at least 5 s), so nothing expires before the "before" measurement.
        const ttlMs = Math.max(
          o.quick ? 1_000 : 5_000,
          Math.ceil(2_000 * writeSeconds + 3_000 * scanSeconds),
        );
        rec.params.finishedRetentionMs = ttlMs;
        const prefix = `${uniqueName('bench-retention-ttl')}:`;
        try {
          const store = new RedisSagaStore(
            // The sweep runs only when called below.
            { keyPrefix: prefix, finishedRetentionMs: ttlMs, sweepIntervalMs: 86_400_000 },
            { redis },
          );
          const used0 = await usedMemory(redis);
          const t0 = Date.now();
          await writeFinished(store, n);
          const lastWrite = Date.now();
          rec.record('before-used', per100k((await usedMemory(redis)) - used0));
          const before = await memoryUnder(redis, prefix);
          rec.record('before', per100k(before.bytes));
          rec.record('before-indexes', per100k(before.indexBytes));
          const measured = Date.now();
          if (measured >= t0 + ttlMs) {
            rec.note(`the "before" measurement ended after the first sagas' TTL: it under-counts`);
          }
          rec.log(`  wrote in ${((lastWrite - t0) / 1000).toFixed(1)} s; TTL ${ttlMs} ms`);
          await new Promise((r) =>
            setTimeout(r, Math.max(0, lastWrite + ttlMs + 500 - Date.now())),
          );
          const t = performance.now();
          const swept = await store.sweep();
          rec.record('sweep', swept / secondsSince(t));
          if (swept !== n) rec.note(`the sweep trimmed ${swept} of ${n} expired sagas`);
          const after = await memoryUnder(redis, prefix);
          rec.record('after', per100k(after.bytes));
          rec.record('keys-after', after.keys);
          rec.record('after-used', per100k((await usedMemory(redis)) - used0));
        } finally {
          await deleteByPrefix(redis, prefix);
        }
      }
    } finally {
      await redis.quit();
    }
  },
};
