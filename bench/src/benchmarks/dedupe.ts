/**
 * 6. Dedupe store: claims per second on Redis, single (`claim`, many in flight) and batched
 * (`claimMany`), against bare `SET NX PX` sent the same way (single commands with the same
 * number in flight, and one pipeline per batch); and the batch's done marks (`completeMany` of
 * the keys `claimMany` took) against one pipeline of `SET key done PX` per batch.
 */
import { randomUUID } from 'node:crypto';
import { createRedisClient, RedisDedupeStore } from '@backtrack/redis';
import { runConcurrently, secondsSince, SERVICES, silentLogger, uniqueName } from '../common.js';
import { deleteByPrefix } from '../redisKeys.js';
import type { Benchmark } from '../runner.js';

const LEASE_MS = 60_000;

export const dedupeBenchmark: Benchmark = {
  id: 'dedupe-claims',
  title: 'Dedupe store: claims/s on Redis, single and batched, vs bare SET NX PX',
  async run(o, rec) {
    const n = o.claims;
    const batch = o.batch;
    Object.assign(rec.params, { claims: n, inFlight: o.concurrency, batch, leaseMs: LEASE_MS });
    rec
      .metric('raw-single', {
        label: 'SET NX PX, single commands',
        role: 'baseline',
        unit: 'claims/s',
      })
      .metric('bt-single', { label: 'RedisDedupeStore.claim', role: 'backtrack', unit: 'claims/s' })
      .metric('raw-pipeline', { label: 'SET NX PX pipeline', role: 'baseline', unit: 'claims/s' })
      .metric('bt-batch', {
        label: 'RedisDedupeStore.claimMany',
        role: 'backtrack',
        unit: 'claims/s',
      })
      .metric('raw-marks', {
        label: 'SET done PX pipeline (done marks)',
        role: 'baseline',
        unit: 'marks/s',
      })
      .metric('bt-marks', {
        label: 'RedisDedupeStore.completeMany',
        role: 'backtrack',
        unit: 'marks/s',
      })
      .ratio('marks', {
        label: 'completeMany / SET done PX pipeline',
        numerator: 'bt-marks',
        denominator: 'raw-marks',
      })
      .ratio('single', {
        label: 'claim / SET NX PX (single)',
        numerator: 'bt-single',
        denominator: 'raw-single',
      })
      .ratio('batch', {
        label: 'claimMany / SET NX PX pipeline',
        numerator: 'bt-batch',
        denominator: 'raw-pipeline',
      });
    const prefix = `${uniqueName('bench-dedupe')}:`;
    const redis = createRedisClient(SERVICES.redis);
    const store = new RedisDedupeStore(
      { keyPrefix: `${prefix}bt:` },
      { redis, logger: silentLogger },
    );
    try {
      await redis.ping();
      // Loads the Lua script once, outside the timing.
      await store.claim('warm-up', { leaseMs: 1_000 });
      for (let run = 0; run < o.runs; run++) {
        rec.log(` run ${run + 1}/${o.runs}`);
        const order = run % 2 === 0 ? ['raw', 'bt'] : ['bt', 'raw'];
        for (const side of order) {
          if (side === 'raw') {
            let t = performance.now();
            await runConcurrently(n, o.concurrency, (i) =>
              redis.set(`${prefix}raw:${run}:s:${i}`, `p:${randomUUID()}`, 'PX', LEASE_MS, 'NX'),
            );
            rec.record('raw-single', n / secondsSince(t));
            t = performance.now();
            for (let start = 0; start < n; start += batch) {
              const p = redis.pipeline();
              for (let i = start; i < Math.min(n, start + batch); i++) {
                p.set(`${prefix}raw:${run}:b:${i}`, `p:${randomUUID()}`, 'PX', LEASE_MS, 'NX');
              }
              await p.exec();
            }
            rec.record('raw-pipeline', n / secondsSince(t));
            t = performance.now();
            for (let start = 0; start < n; start += batch) {
              const p = redis.pipeline();
              for (let i = start; i < Math.min(n, start + batch); i++) {
                p.set(`${prefix}raw:${run}:b:${i}`, 'done', 'PX', LEASE_MS);
              }
              await p.exec();
            }
            rec.record('raw-marks', n / secondsSince(t));
          } else {
            let t = performance.now();
            await runConcurrently(n, o.concurrency, (i) =>
              store.claim(`${run}:s:${i}`, { leaseMs: LEASE_MS }),
            );
            rec.record('bt-single', n / secondsSince(t));
            t = performance.now();
            const claimed: { key: string; token: string }[][] = [];
            for (let start = 0; start < n; start += batch) {
              const keys: string[] = [];
              for (let i = start; i < Math.min(n, start + batch); i++) keys.push(`${run}:b:${i}`);
              const claims = await store.claimMany(keys, { leaseMs: LEASE_MS });
              claimed.push(
                claims.flatMap((c, i) =>
                  c.status === 'claimed' ? [{ key: keys[i]!, token: c.token }] : [],
                ),
              );
            }
            rec.record('bt-batch', n / secondsSince(t));
            t = performance.now();
            let marked = 0;
            for (const entries of claimed) {
              const owned = await store.completeMany(entries, { ttlMs: LEASE_MS });
              marked += owned.filter(Boolean).length;
            }
            if (marked !== n) throw new Error(`completeMany marked ${marked} of ${n}`);
            rec.record('bt-marks', n / secondsSince(t));
          }
        }
      }
      rec.note(
        'Both sides send the same number of commands in flight (single) or one batch per round trip (batched); claimMany is one EVALSHA of a Lua script that also reads the done mark of a refused key. completeMany writes the marks of the keys claimMany took, token-fenced, one batch per call.',
      );
    } finally {
      await deleteByPrefix(redis, prefix).catch(() => undefined);
      await redis.quit().catch(() => undefined);
    }
  },
};
