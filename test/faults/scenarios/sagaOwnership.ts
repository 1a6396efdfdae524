/**
 * Scenario 10: two saga engines in two processes on one RedisSagaStore, one SIGKILLed mid-run.
 * A `starter` process starts the sagas; a `requester` process asks for the compensation of every
 * third saga while the starter drives it, and both call `recover()` in a loop, each trying to take
 * over what the other drives. The starter is killed mid-run and a new starter takes its place.
 * Checked against a ledger outside the processes: no two processes ever ran a call of one saga at
 * the same time (the lease), no effect applied twice, every saga completed or, when asked,
 * compensated with every completed step undone once in reverse order (nothing half-done).
 */
import { Redis } from 'ioredis';
import { expect, it } from 'vitest';
import { SagaStatus, type SagaRecord } from '@backtrack/core';
import { RedisSagaStore } from '@backtrack/redis';
import { serviceUrl, uniqueName } from '../../support/services.js';
import { prng, sleep, startChild, type FaultChild } from '../support/child.js';
import { recordRow } from '../support/summary.js';
import { OWNERSHIP_STEPS, ownershipKeys } from '../fixtures/ownershipSaga.js';
import type { OwnershipWorkerConfig } from '../fixtures/ownershipWorker.js';

export interface SagaOwnershipOptions {
  sagas: number;
  seed: number;
}

interface Interval {
  pid: string;
  call: string;
  start: number;
  end: number;
}

async function deleteByPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length > 0) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

/** Calls of one saga by pid; a call of the killed process with no end ends at the kill. */
function intervals(lines: string[], killedPid: string, killedAt: number): Interval[] {
  const open = new Map<string, Interval>();
  const out: Interval[] = [];
  for (const line of lines) {
    const [kind, pid, step, phase, attempt, ts] = line.split('|');
    const call = `${step}|${phase}|${attempt}`;
    const key = `${pid}|${call}`;
    if (kind === 'start') open.set(key, { pid: pid!, call, start: Number(ts), end: Infinity });
    else {
      const iv = open.get(key);
      if (iv) {
        iv.end = Number(ts);
        out.push(iv);
        open.delete(key);
      }
    }
  }
  for (const iv of open.values())
    out.push({ ...iv, end: iv.pid === killedPid ? killedAt : iv.end });
  return out;
}

export function sagaOwnershipScenario(options: SagaOwnershipOptions): void {
  it(`saga ownership: two engine processes on one saga log, one SIGKILLed (${options.sagas} sagas, redis saga store)`, async () => {
    const random = prng(options.seed);
    const redis = new Redis(serviceUrl('redis'));
    const prefix = uniqueName('faults:own');
    const storePrefix = `${prefix}:log:`;
    const store = new RedisSagaStore({ keyPrefix: storePrefix }, { redis });
    const base: Omit<OwnershipWorkerConfig, 'role'> = {
      redisUrl: serviceUrl('redis'),
      storePrefix,
      prefix,
      count: options.sagas,
      concurrency: 6,
      leaseMs: 1_500,
      // Above the lease: only the owner's heartbeat keeps another engine from taking over.
      longStepMs: 2_500,
    };
    const children: FaultChild[] = [];
    try {
      const requester = startChild('ownershipWorker.ts', { ...base, role: 'requester' });
      const starter = startChild('ownershipWorker.ts', { ...base, role: 'starter' });
      children.push(requester, starter);
      await Promise.all([requester.waitFor('ready'), starter.waitFor('ready')]);
      const killedPid = String((await starter.waitFor('ready')).data.pid);

      // Kill the starter once it started about half of the sagas, at a random moment after.
      const until = Date.now() + 120_000;
      const started = () =>
        Math.max(
          -1,
          ...starter.events.filter((e) => e.name === 'progress').map((e) => Number(e.data.n)),
        );
      while (started() < options.sagas / 2 && Date.now() < until) await sleep(10);
      await sleep(Math.floor(random() * 400));
      const inFlight = (
        await store.list({ status: [SagaStatus.Running, SagaStatus.Compensating], limit: 1000 })
      ).items.filter((r) => r.lease?.owner === `starter/${killedPid}`).length;
      await starter.kill();
      const killedAt = Date.now();

      const second = startChild('ownershipWorker.ts', { ...base, role: 'starter' });
      children.push(second);
      await requester.waitFor('done', 180_000);
      await second.waitFor('done', 180_000);
      expect(await requester.exited(30_000)).toBe(0);
      expect(await second.exited(30_000)).toBe(0);

      const keys = ownershipKeys(prefix);
      const violations: string[] = [];
      let compensated = 0;
      let overlaps = 0;
      let lost = 0;
      let takeovers = 0;
      const effects = await redis.hgetall(keys.effects);
      const appliedTwice = Object.values(effects).filter((v) => Number(v) > 1).length;
      for (let n = 0; n < options.sagas; n++) {
        const id = `${prefix}-s${n}`;
        const record: SagaRecord | undefined = await store.get(id);
        const order = await redis.lrange(keys.order(id), 0, -1);
        const calls = intervals(await redis.lrange(keys.intervals(id), 0, -1), killedPid, killedAt);
        if (new Set(calls.map((c) => c.pid)).size > 1) takeovers++;
        for (const a of calls) {
          for (const b of calls) {
            if (a.pid < b.pid && a.start < b.end && b.start < a.end) {
              overlaps++;
              violations.push(`${id}: ${a.pid} ${a.call} and ${b.pid} ${b.call} ran at once`);
            }
          }
        }
        if (!record) {
          lost++;
          violations.push(`${id}: missing`);
          continue;
        }
        if (record.lease) violations.push(`${id}: ended ${record.status} still leased`);
        const runs = order.filter((o) => o.startsWith('run:')).map((o) => o.slice(4));
        const undos = order.filter((o) => o.startsWith('compensate:')).map((o) => o.slice(11));
        if (n % 3 === 0) {
          compensated++;
          if (record.status !== SagaStatus.Compensated)
            violations.push(`${id}: asked to compensate, ended ${record.status}`);
          const expected = [...runs].reverse();
          if (JSON.stringify(undos) !== JSON.stringify(expected)) {
            lost++;
            violations.push(
              `${id}: ran ${runs.join(',')} but undid ${undos.join(',') || 'nothing'}`,
            );
          }
        } else {
          if (record.status !== SagaStatus.Completed)
            violations.push(`${id}: ended ${record.status}, expected completed`);
          if (JSON.stringify(runs) !== JSON.stringify(OWNERSHIP_STEPS) || undos.length > 0) {
            lost++;
            violations.push(`${id}: effects ${order.join(',')}`);
          }
        }
      }
      recordRow({
        scenario: '10 saga ownership: 2 engine processes, 1 SIGKILL (redis log)',
        sent: options.sagas,
        processed: (
          await Promise.all(
            Array.from({ length: options.sagas }, (_, n) =>
              redis.llen(keys.intervals(`${prefix}-s${n}`)),
            ),
          )
        ).reduce((a, b) => a + b / 2, 0),
        applied: Object.keys(effects).length,
        duplicates: 0,
        lost,
        appliedTwice,
        consumersLeftDead: '-',
        faults: `starter killed with ${inFlight} sagas leased in flight; ${compensated} compensations requested across engines; ${takeovers} sagas driven by 2+ processes; ${overlaps} overlapping calls`,
      });
      expect(violations.slice(0, 20), `violations: ${violations.length}`).toEqual([]);
      expect(appliedTwice).toBe(0);
      expect(overlaps).toBe(0);
      expect(inFlight).toBeGreaterThan(0);
      expect(takeovers).toBeGreaterThan(0);
    } finally {
      for (const child of children) await child.kill();
      await deleteByPrefix(redis, prefix).catch(() => undefined);
      redis.disconnect();
    }
  });
}
