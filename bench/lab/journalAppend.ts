// Lab: Redis CPU (INFO cpu deltas) and client CPU (process.cpuUsage) per journal record on the
// publisher's write shape: RedisJournal.appendAndMarkPublished with batches of `batch` records of
// ~1.2 KB (11 CloudEvents headers), each call marking a previous batch, 4 writers in flight.
// Usage (from bench/): REDIS_URL=redis://127.0.0.1:PORT npx tsx --tsconfig ../tsconfig.json \
//   lab/journalAppend.ts [records=50000] [batch=14]
// Env: NOMARK=1 appendMany without marks; FMT=fields for recordFormat 'fields'; INDEXES=minimal
// for indexes 'minimal'; WARM=n records
// written (and marked) first, not measured; KEEP=1 leaves the keys; HOOK_BEFORE / HOOK_AFTER
// shell commands around the measured part. Redis CPU on a shared machine is noisy (±15 %); for
// A/B of the scripts, run a redis-server under `valgrind --tool=callgrind` and zero/dump its
// counters with the hooks (`callgrind_control -z PID` / `-d PID`): instructions per record are
// repeatable to ±0.3 % (see bench/README.md, "Session 13, journal13").
import { execSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisJournal } from '@backtrack/redis';
import type { JournalAppend } from '@backtrack/core';

const total = Number(process.argv[2] ?? 50_000);
const batch = Number(process.argv[3] ?? 14);
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const prefix = `lab-journal-${randomUUID().slice(0, 8)}`;
const journal = new RedisJournal(
  {
    keyPrefix: prefix,
    recordFormat: (process.env.FMT as 'json' | 'fields') ?? 'json',
    // INDEXES=minimal: the opt-in index layout (this branch; the base ignores it).
    ...(process.env.INDEXES ? { indexes: process.env.INDEXES as 'minimal' } : {}),
  },
  { redis },
);
const headers: Record<string, string> = {
  ce_specversion: '1.0',
  ce_id: '',
  ce_source: '//backtrack/orders',
  ce_type: 'order.placed',
  ce_time: '',
  ce_subject: '',
  'content-type': 'application/json',
  ce_dataschema: 'order.placed/v1',
  ce_sagaid: '',
  ce_version: '1.4.2',
  traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
};
const body = Buffer.from(
  JSON.stringify({ orderId: 'o-123456', amount: 4200, items: [{ sku: 'a', qty: 2 }] }),
);
function record(i: number): JournalAppend {
  const id = randomUUID();
  const sagaId = `place-order:o-${Math.floor(i / 4)}`;
  const time = new Date().toISOString();
  return {
    id,
    type: ['order.placed', 'payment.charged', 'stock.reserved', 'shipment.created'][i % 4]!,
    schemaVersion: 1,
    key: `o-${Math.floor(i / 4)}`,
    topic: 'orders',
    service: ['orders', 'payments', 'inventory', 'shipping'][i % 4]!,
    version: '1.4.2',
    time,
    sagaId,
    message: {
      headers: { ...headers, ce_id: id, ce_time: time, ce_subject: sagaId, ce_sagaid: sagaId },
      body,
    },
  };
}
async function cpu(): Promise<number> {
  const info = await redis.info('cpu');
  const u = Number(/used_cpu_user:([\d.]+)/.exec(info)![1]);
  const s = Number(/used_cpu_sys:([\d.]+)/.exec(info)![1]);
  return (u + s) * 1e6;
}
const batches: JournalAppend[][] = [];
for (let i = 0; i < total; i += batch)
  batches.push(Array.from({ length: Math.min(batch, total - i) }, (_, k) => record(i + k)));
// WARM=n: n records written first, not measured, so the indexes are past Redis' small-set
// encoding (a listpack up to 128 entries) as in a running system. HOOK_BEFORE / HOOK_AFTER:
// shell commands run right before and after the measured part (e.g. callgrind_control -z / -d
// on a redis-server run under valgrind: instruction counts, not disturbed by a noisy machine).
const warm = Number(process.env.WARM ?? 0);
let warmPrev: string[] = [];
for (let i = 0; i < warm; i += batch) {
  // Marked as the measured part marks, so i:pending stays as small as a publisher keeps it.
  const b = Array.from({ length: Math.min(batch, warm - i) }, (_, k) => record(total + i + k));
  await journal.appendAndMarkPublished(b, warmPrev);
  warmPrev = b.map((r) => r.id);
}
if (process.env.HOOK_BEFORE) execSync(process.env.HOOK_BEFORE);
// PIN=1 (experiment): a long member makes i:pending a skiplist from the start (a listpack otherwise while small).
if (process.env.PIN) await redis.zadd(`${journal.keyPrefix}:i:pending`, 0, 'x'.repeat(80));
const c0 = await cpu();
const u0 = process.cpuUsage();
const t0 = performance.now();
let prev: string[] = [];
// 4 writers in flight, like the example's four services.
let next = 0;
await Promise.all(
  Array.from({ length: 4 }, async () => {
    while (next < batches.length) {
      const b = batches[next++]!;
      if (process.env.NOMARK) await journal.appendMany(b);
      else await journal.appendAndMarkPublished(b, prev);
      prev = b.map((r) => r.id);
    }
  }),
);
const ms = performance.now() - t0;
const u = process.cpuUsage(u0);
const c1 = await cpu();
if (process.env.HOOK_AFTER) execSync(process.env.HOOK_AFTER);
const mem = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
console.log(
  JSON.stringify({
    records: total,
    batch,
    redisUsPerRecord: +((c1 - c0) / total).toFixed(2),
    clientUsPerRecord: +((u.user + u.system) / total).toFixed(2),
    recordsPerS: Math.round((total / ms) * 1000),
    usedMemoryMB: +(mem / 1e6).toFixed(1),
  }),
);
// Clean up the lab's keys (KEEP=1: left for the caller, e.g. a FLUSHALL outside a measurement).
if (!process.env.KEEP) {
  let cursor = '0';
  do {
    const [c, keys] = await redis.scan(cursor, 'MATCH', `{${prefix}}*`, 'COUNT', 1000);
    cursor = c;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
}
redis.disconnect();
