/**
 * The drill itself, run once per transport: a bad version publishes N events through the
 * journaling publisher, a consumer with the idempotent middleware applies them to stock levels in
 * Redis, then a rollback runs in a child process that is SIGKILLed half-way (right after the
 * broker acknowledged a batch, before its journal mark), and a second child resumes it.
 * At the end every effect was reversed exactly once in effect: stock is back where it was.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { expect } from 'vitest';
import {
  createConsumerPipeline,
  createPublisher,
  handle,
  planRollback,
  type Middleware,
  type Subscription,
  type Transport,
} from '@backtrack/core';
import { RedisDedupeStore, RedisJournal, RedisRollbackProgressStore } from '@backtrack/redis';
import { uniqueName } from '../../support/services.js';
import {
  StockReleased,
  StockReserved,
  compensations,
  deleteKeysContaining,
  openTransport,
  registry,
  type DrillConfig,
  type TransportKind,
} from './scenario.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const RUNNER = fileURLToPath(new URL('./runner.ts', import.meta.url));

interface Child {
  events: { name: string; data: Record<string, unknown> }[];
  waitFor(
    pred: (e: { name: string; data: Record<string, unknown> }) => boolean,
    ms?: number,
  ): Promise<void>;
  kill(): Promise<void>;
  exited(): Promise<number | null>;
  output(): string;
}

function startRunner(config: DrillConfig): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', RUNNER], {
    cwd: ROOT,
    env: { ...process.env, ROLLBACK_DRILL: JSON.stringify(config), BACKTRACK_LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const events: Child['events'] = [];
  let out = '';
  let err = '';
  let pending = '';
  let listeners: (() => void)[] = [];
  let code: number | null | undefined;
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    pending += chunk.toString();
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      const m = /^EVENT (\S+) (.*)$/.exec(line);
      if (m) events.push({ name: m[1]!, data: JSON.parse(m[2]!) as Record<string, unknown> });
    }
    for (const l of listeners) l();
  });
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exit = new Promise<number | null>((resolve) =>
    child.once('exit', (c, signal) => {
      code = c ?? (signal ? -1 : null);
      for (const l of listeners) l();
      resolve(code);
    }),
  );
  const output = () => `stdout:\n${out.slice(-3000)}\nstderr:\n${err.slice(-3000)}`;
  return {
    events,
    output,
    waitFor(pred, ms = 60_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`runner: timed out\n${output()}`)), ms);
        const check = () => {
          if (events.some(pred)) {
            clearTimeout(timer);
            listeners = listeners.filter((l) => l !== check);
            resolve();
          } else if (code !== undefined) {
            clearTimeout(timer);
            reject(new Error(`runner exited (${code}) early\n${output()}`));
          }
        };
        listeners.push(check);
        check();
      });
    },
    async kill() {
      child.kill('SIGKILL');
      await exit;
    },
    exited: () => exit,
  };
}

async function waitUntil(check: () => Promise<boolean>, what: string, ms = 60_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export interface DrillOptions {
  kind: TransportKind;
  brokerUrl: string;
  redisUrl: string;
  /** Events the bad version publishes. */
  count: number;
  /** Called once the destination exists (Kafka: create the topic). */
  prepare?(transport: Transport, topic: string): Promise<void>;
}

export async function rollbackDrill(options: DrillOptions): Promise<void> {
  const { kind, count } = options;
  const redis = new Redis(options.redisUrl);
  const topic = uniqueName(`bt-drill-${kind}`);
  const journalPrefix = uniqueName('bt-drill-journal');
  const progressPrefix = uniqueName('bt-drill-progress');
  const state = uniqueName('bt-drill-state');
  const transport = await openTransport(kind, options.brokerUrl);
  let subscription: Subscription | undefined;
  try {
    await options.prepare?.(transport, topic);
    const journal = new RedisJournal({ keyPrefix: journalPrefix }, { redis });

    // The consumer side: stock levels, applied once per event id thanks to the idempotent step.
    const countDeliveries: Middleware = async (context, next) => {
      await redis.hincrby(`${state}:deliveries`, context.message.message.headers.id ?? '?', 1);
      return next();
    };
    const processor = createConsumerPipeline(
      {
        name: 'stock-levels',
        middleware: [countDeliveries],
        handlers: [
          handle(StockReserved, async ({ data }) => {
            await redis.hincrby(`${state}:stock`, data.sku, data.quantity);
          }),
          handle(StockReleased, async ({ data, envelope }) => {
            await redis.hincrby(`${state}:stock`, data.sku, -data.quantity);
            await redis.hincrby(`${state}:reversed`, envelope.causationid ?? '?', 1);
          }),
        ],
      },
      {
        registry,
        dedupeStore: new RedisDedupeStore({ keyPrefix: `${state}:dedupe:` }, { redis }),
      },
    );
    subscription = await transport.subscribe({
      topics: [topic],
      group: uniqueName('stock'),
      processor,
    });

    // A good deploy reserved 5 of `keep`; the bad deploy reserved `count` items of other skus.
    const good = createPublisher(
      { service: 'inventory', version: '1.9.0', topicFor: () => topic },
      { transport, journal, registry },
    );
    const bad = createPublisher(
      { service: 'inventory', version: '2.0.0', topicFor: () => topic },
      { transport, journal, registry },
    );
    await good.publish(StockReserved, { sku: 'keep', quantity: 5, warehouse: 'w' });
    const originals: string[] = [];
    for (let i = 0; i < count; i++) {
      const sku = `sku-${i % 7}`;
      const e = await bad.publish(
        StockReserved,
        { sku, quantity: 1 + (i % 3), warehouse: 'w' },
        { key: sku },
      );
      originals.push(e.id);
    }
    await waitUntil(
      async () => Number(await redis.hlen(`${state}:deliveries`)) >= count + 1,
      'the consumer to apply the bad version',
    );
    const before = await redis.hgetall(`${state}:stock`);
    expect(Number(before.keep)).toBe(5);

    // Plan in this process, store it under a run id; the child loads it from the store.
    const plan = await planRollback(
      { service: 'inventory', version: '2.0.0', strategy: 'compensate' },
      { journal, registry, compensations },
    );
    expect(plan.items).toHaveLength(count);
    const runId = uniqueName('run');
    const progressStore = new RedisRollbackProgressStore({ keyPrefix: progressPrefix }, { redis });
    await progressStore.createRun(runId, plan);

    const base: DrillConfig = {
      kind,
      brokerUrl: options.brokerUrl,
      redisUrl: options.redisUrl,
      journalPrefix,
      progressPrefix,
      runId,
      leaseMs: 1_500,
      waitForLeaseMs: 0,
      pauseAfterPublishMs: 50,
    };
    const half = Math.floor(count / 2);
    // Kill right after the broker acknowledged batch `half`, before its journal `published` mark.
    const first = startRunner({ ...base, pauseAfterPublishMs: 400 });
    await first.waitFor((e) => e.name === 'published' && Number(e.data.batches) === half);
    await first.kill();
    const inWindow = (
      first.events.find((e) => e.name === 'published' && Number(e.data.batches) === half)!.data
        .ids as string[]
    )[0]!;

    // A published item's progress is its journal marks (the progress store holds no entry for it):
    // batch k's marks are written with batch k + 2's append, so `half - 1` items are done.
    const items = await progressStore.getItems(runId);
    expect(Object.values(items).filter((i) => i.state === 'done')).toEqual([]);
    const marked = await Promise.all(
      plan.items.map(async (i) =>
        (await Promise.all(i.messages.map((m) => journal.get(m.id)))).every(
          (r) => r?.state === 'published',
        ),
      ),
    );
    const doneBefore = marked.filter(Boolean).length;
    expect(doneBefore).toBe(half - 1);
    expect((await progressStore.getRun(runId))!.status).toBe('running');

    // Resume in a new process; it waits for the dead runner's lease to expire.
    const second = startRunner({ ...base, waitForLeaseMs: 10_000 });
    expect(await second.exited(), second.output()).toBe(0);
    const done = second.events.find((e) => e.name === 'done')!.data as {
      status: string;
      summary: { reversed: number; failed: number; published: number };
    };
    expect(done.status).toBe('completed');
    expect(done.summary.reversed).toBe(count);
    expect(done.summary.failed).toBe(0);
    // The resumed run published the batch caught in the window again, plus the rest.
    expect(done.summary.published).toBe(count - half + 1);

    // Consumer side: every original reversed exactly once in effect.
    await waitUntil(
      async () => Number(await redis.hlen(`${state}:reversed`)) >= count,
      'the consumer to apply every compensation',
    );
    await waitUntil(
      async () => Number(await redis.hget(`${state}:deliveries`, inWindow)) >= 2,
      'the duplicate from the crash window to arrive',
    );
    await new Promise((r) => setTimeout(r, 500)); // let any stray duplicate arrive too
    const reversed = await redis.hgetall(`${state}:reversed`);
    expect(Object.keys(reversed).sort()).toEqual([...originals].sort());
    expect(Object.values(reversed).every((n) => n === '1')).toBe(true);
    // The compensation caught in the window was delivered twice, and applied once.
    expect(Number(await redis.hget(`${state}:deliveries`, inWindow))).toBe(2);
    const after = await redis.hgetall(`${state}:stock`);
    for (const [sku, level] of Object.entries(after))
      expect(Number(level), sku).toBe(sku === 'keep' ? 5 : 0);
  } finally {
    await subscription?.close().catch(() => undefined);
    await transport.close().catch(() => undefined);
    await deleteKeysContaining(redis, [journalPrefix, progressPrefix, state]);
    await redis.quit();
  }
}
