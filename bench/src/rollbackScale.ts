/**
 * Rollback at scale (issue 14): `tsx bench/src/rollbackScale.ts <effects> [--memory-journal]`.
 * summarizeRollback + runRollback of N effects with the in-memory progress store and a transport
 * that only counts, reading either an InMemoryJournal (holds the N records: its memory is in the
 * RSS) or, by default, a generated journal that makes each page's records on demand (so the RSS
 * high-water mark is the rollback's own). Prints one JSON line: effects/s of the run, the RSS
 * before and its maximum sampled every 20 ms during the run.
 */
import {
  encodeEnvelope,
  InMemoryJournal,
  InMemoryRollbackProgressStore,
  runRollback,
  summarizeRollback,
  type Journal,
  type JournalPage,
  type JournalQuery,
  type JournalRecord,
  type Transport,
} from '@backtrack/core';
import {
  BenchOrderPlaced,
  benchRegistry,
  orderData,
  silentLogger,
  benchCompensations as compensations,
} from './common.js';

const n = Number(process.argv[2] ?? 5000);
const memoryJournal = process.argv.includes('--memory-journal');
const T0 = Date.parse('2026-11-27T00:00:00.000Z');

function record(i: number): JournalRecord {
  const message = encodeEnvelope(
    BenchOrderPlaced.envelope(orderData(i), {
      source: '//bench/orders',
      version: 1,
      id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
      time: new Date(T0 + i).toISOString(),
      producerservice: 'svc',
      producerversion: 'bad',
      partitionkey: `o-${i}`,
    }),
  );
  return {
    id: message.headers.id!,
    type: message.headers.type!,
    schemaVersion: 1,
    key: `o-${i}`,
    topic: 't',
    service: 'svc',
    version: 'bad',
    time: message.headers.time!,
    message,
    seq: (T0 + i) * 1024,
    state: 'published',
  } as JournalRecord;
}

/** N records of svc@bad, one per ms from T0, made when a page is read; writes are counted only. */
function generatedJournal(): Journal {
  return {
    async query(q: JournalQuery = {}): Promise<JournalPage> {
      if (q.version !== 'bad') return { items: [] };
      const limit = q.limit ?? 100;
      // Backward (compensate): from the newest, the cursor is the next index to read.
      const from = q.cursor === undefined ? n - 1 : Number(q.cursor);
      const items: JournalRecord[] = [];
      for (let i = from; i >= 0 && items.length < limit; i--) items.push(record(i));
      const next = from - items.length;
      return next >= 0 ? { items, nextCursor: String(next) } : { items };
    },
    append: async (r) => ({ ...r, seq: 0, state: 'pending' }) as JournalRecord,
    appendMany: async (rs) => rs.map((r) => ({ ...r, seq: 0, state: 'pending' }) as JournalRecord),
    markPublished: async (ids) => ids.length,
    unpublished: async () => [],
    get: async () => undefined,
    prune: async () => 0,
  };
}

let journal: Journal = generatedJournal();
if (memoryJournal) {
  const memory = new InMemoryJournal({ retentionMs: 3650 * 86_400_000 });
  for (let i = 0; i < n; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      const { seq: _seq, state: _state, ...append } = record(j);
      batch.push(append);
    }
    await memory.appendMany(batch);
  }
  journal = memory;
}

let published = 0;
const transport = {
  name: 'count',
  publish: async (messages: unknown[]) => {
    published += messages.length;
  },
  subscribe: async () => {
    throw new Error('not used');
  },
  close: async () => {},
} as unknown as Transport;

const options = {
  service: 'svc',
  version: 'bad',
  strategy: 'compensate',
  until: new Date(T0 + n + 1000),
} as const;
const deps = { journal, registry: benchRegistry, compensations };
global.gc?.();
const rssBefore = process.memoryUsage().rss;
let rssMax = rssBefore;
const sampler = setInterval(() => {
  rssMax = Math.max(rssMax, process.memoryUsage().rss);
}, 20);
const summarizeCpu = process.cpuUsage();
let t = performance.now();
const summary = await summarizeRollback(options, deps);
const summarizeS = (performance.now() - t) / 1000;
const summarizeCpuUs = process.cpuUsage(summarizeCpu);
const store = new InMemoryRollbackProgressStore();
const cpu = process.cpuUsage();
t = performance.now();
const result = await runRollback(
  summary,
  { runId: 'scale' },
  { ...deps, transport, progressStore: store, logger: silentLogger },
);
const runS = (performance.now() - t) / 1000;
const cpuUs = process.cpuUsage(cpu);
clearInterval(sampler);
rssMax = Math.max(rssMax, process.memoryUsage().rss);
if (result.status !== 'completed' || result.summary.reversed !== n || published !== n)
  throw new Error(`run ended ${result.status}, ${result.summary.reversed}/${n} reversed`);
console.log(
  JSON.stringify({
    effects: n,
    journal: memoryJournal ? 'in-memory' : 'generated',
    summarizePerS: Math.round(n / summarizeS),
    runPerS: Math.round(n / runS),
    runS: +runS.toFixed(1),
    cpuUsPerEffect: Math.round((cpuUs.user + cpuUs.system) / n),
    // The summary's CPU too: the run takes its planning of the first effects.
    summarizeCpuUsPerEffect: Math.round((summarizeCpuUs.user + summarizeCpuUs.system) / n),
    rssBeforeMB: Math.round(rssBefore / 1e6),
    rssMaxMB: Math.round(rssMax / 1e6),
    storedItems: Object.keys(await store.getItems('scale')).length,
  }),
);
