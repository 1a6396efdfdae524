/**
 * Child process of the rollback drill: runs (or resumes) one rollback run whose plan the parent
 * stored, reporting `EVENT <name> <json>` lines on stdout. The parent SIGKILLs it half-way.
 */
import { Redis } from 'ioredis';
import { runRollback, type OutgoingMessage, type Transport } from '@backtrack/core';
import { RedisJournal, RedisRollbackProgressStore } from '@backtrack/redis';
import { compensations, openTransport, registry, type DrillConfig } from './scenario.js';

const report = (name: string, data: Record<string, unknown> = {}) =>
  process.stdout.write(`EVENT ${name} ${JSON.stringify(data)}\n`);

const config = JSON.parse(process.env.ROLLBACK_DRILL ?? '') as DrillConfig;
const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 2 });
const inner = await openTransport(config.kind, config.brokerUrl);
let publishedBatches = 0;
// The broker has acknowledged when `inner.publish` resolves; the pause keeps the runner between
// that acknowledgement and its journal mark, where the parent's SIGKILL lands.
const transport: Transport = {
  name: inner.name,
  async publish(messages: OutgoingMessage[]) {
    await inner.publish(messages);
    publishedBatches++;
    report('published', {
      batches: publishedBatches,
      ids: messages.map((m) => m.message.headers.id),
    });
    await new Promise((r) => setTimeout(r, config.pauseAfterPublishMs));
  },
  subscribe: (o) => inner.subscribe(o),
  close: () => inner.close(),
};
const journal = new RedisJournal({ keyPrefix: config.journalPrefix }, { redis });
const progressStore = new RedisRollbackProgressStore(
  { keyPrefix: config.progressPrefix },
  { redis },
);

const plan = await progressStore.getPlan(config.runId);
if (!plan) throw new Error(`no plan stored for run ${config.runId}`);
report('ready', { items: plan.counts.items });
const result = await runRollback(
  plan,
  {
    runId: config.runId,
    batchSize: 1,
    // One batch in flight: the drill's kill window and repeat bound are per batch.
    batchesInFlight: 1,
    leaseMs: config.leaseMs,
    waitForLeaseMs: config.waitForLeaseMs,
    owner: `drill-${process.pid}`,
    onProgress: (e) => report('progress', { finished: e.finished, total: e.total, state: e.state }),
  },
  // The stored plan is a summary: the run plans its items from the journal page by page.
  { journal, transport, progressStore, registry, compensations },
);
report('done', { status: result.status, summary: result.summary });
await inner.close();
await redis.quit();
