/**
 * The Redis journal's share of a rollback run, alone (issue 14): `tsx bench/src/rollbackJournal.ts
 * [records] [rounds]` appends N encoded messages in batches of 100 (`appendMany`, as the run and
 * the batching publisher do), marks each batch published, and reads them all back in pages of
 * 1,000 (`query`, as planning does), then prints the client CPU µs per record of each phase (the
 * median of the rounds). No broker: the numbers move only with the journal's own code, so a
 * change in its record format is measured without the broker clients' noise.
 */
import { createRedisClient, RedisJournal } from '@backtrack/redis';
import type { JournalAppend } from '@backtrack/core';
import { encodedOrders, SERVICES, uniqueName } from './common.js';

const n = Number(process.argv[2] ?? 20_000);
const rounds = Number(process.argv[3] ?? 3);
const BATCH = 100;
const redis = createRedisClient(SERVICES.redis);

const messages = encodedOrders(n);
const cpuUs = (from: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(from);
  return used.user + used.system;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const results = { append: [] as number[], mark: [] as number[], read: [] as number[] };
try {
  for (let round = 0; round < rounds; round++) {
    const journal = new RedisJournal(
      { keyPrefix: uniqueName('bench-rbj'), recordFormat: 'fields' },
      { redis },
    );
    const records: JournalAppend[] = messages.map((m, i) => ({
      id: `${m.headers.id!}-${round}`,
      type: m.headers.type!,
      schemaVersion: 1,
      key: `o-${i}`,
      topic: 'orders',
      service: 'bench-orders',
      version: 'bad',
      time: m.headers.time!,
      causationId: `cause-${i}`,
      message: m,
    }));
    try {
      let cpu = process.cpuUsage();
      for (let start = 0; start < n; start += BATCH) {
        await journal.appendMany(records.slice(start, start + BATCH));
      }
      results.append.push(cpuUs(cpu) / n);
      cpu = process.cpuUsage();
      for (let start = 0; start < n; start += BATCH) {
        await journal.markPublished(records.slice(start, start + BATCH).map((r) => r.id));
      }
      results.mark.push(cpuUs(cpu) / n);
      cpu = process.cpuUsage();
      let read = 0;
      let cursor: string | undefined;
      do {
        const page = await journal.query({
          service: 'bench-orders',
          version: 'bad',
          direction: 'backward',
          limit: 1000,
          cursor,
        });
        read += page.items.length;
        cursor = page.nextCursor;
      } while (cursor);
      results.read.push(cpuUs(cpu) / n);
      if (read !== n) throw new Error(`read ${read} of ${n}`);
    } finally {
      await journal.destroy();
    }
  }
  console.log(
    JSON.stringify({
      records: n,
      rounds,
      appendCpuUsPerRecord: +median(results.append).toFixed(1),
      markCpuUsPerRecord: +median(results.mark).toFixed(1),
      readCpuUsPerRecord: +median(results.read).toFixed(1),
    }),
  );
} finally {
  await redis.quit().catch(() => undefined);
}
