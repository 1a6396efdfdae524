/**
 * What the console tests look at: sagas (one stuck, one to retry) in the real Redis saga store,
 * a rollback run in the real Redis progress store, dead letters in a real RabbitMQ queue, and a
 * schema snapshot. Rollback runs publish to a recording transport (slowed down, so a progress bar
 * has something to show); everything else goes through the real services.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import amqplib from 'amqplib';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { z } from 'zod';
import {
  createPublisher,
  createSagaEngine,
  defineSaga,
  planRollback,
  serializeSnapshot,
  snapshotRegistry,
  type AnyEventDefinition,
  type CompensationRegistry,
  type EventRegistry,
  type OutgoingMessage,
  type Transport,
} from '@backtrack/core';
import { RedisJournal, RedisRollbackProgressStore, RedisSagaStore } from '@backtrack/redis';
import { CliContext } from '../../src/context.js';
import type { BacktrackConfig } from '../../src/config.js';
import { createConsole, type ConsoleServer } from '../../src/ui/server.js';
import { uniqueName, type ServiceInfo } from '../../../../test/support/services.js';

const CONFIG = fileURLToPath(new URL('../fixtures/backtrack.config.mjs', import.meta.url));
const fixture = (await import(CONFIG)) as {
  StockReserved: AnyEventDefinition;
  EmailSent: AnyEventDefinition;
  registry: EventRegistry;
  compensations: CompensationRegistry;
};

/** The refund of `charge` fails until a test says it works (the saga gets stuck on it). */
export const refunds = { work: false };

export const orderSaga = defineSaga('ui-order', { input: z.object({ orderId: z.string() }) })
  .step('reserve', { run: () => ({ reserved: true }), compensate: () => undefined })
  .step('charge', {
    run: ({ input }) => ({ chargeId: `ch-${input.orderId}`, amount: 42 }),
    compensate: () => {
      if (!refunds.work) throw new Error('payment provider refused the refund');
    },
    compensationRetry: { attempts: 1, initialDelayMs: 0 },
  })
  .step('ship', {
    run: () => {
      throw new Error('no courier available');
    },
    retry: { attempts: 1, initialDelayMs: 0 },
    onError: () => 'compensate',
  })
  .build();

/** A transport that records what a rollback publishes, `delayMs` per batch. */
class SlowTransport implements Transport {
  readonly name = 'recording';
  readonly sent: OutgoingMessage[] = [];
  constructor(private readonly delayMs: number) {}
  async publish(messages: OutgoingMessage[]): Promise<void> {
    await new Promise((r) => setTimeout(r, this.delayMs));
    this.sent.push(...messages);
  }
  async subscribe() {
    return { close: async () => {} };
  }
  async close() {}
}

/** The CLI's context, with rollbacks publishing to the recording transport. */
class TestContext extends CliContext {
  constructor(
    config: BacktrackConfig,
    readonly recording: SlowTransport,
    amqpUrl: string,
  ) {
    super({ amqpUrl, transport: 'rabbitmq' }, config);
  }
  override async transport(): Promise<Transport> {
    return this.recording;
  }
}

export interface World {
  ctx: TestContext;
  server: ConsoleServer;
  url: string;
  redis: Redis;
  sagaStore: RedisSagaStore;
  progress: RedisRollbackProgressStore;
  dlq: string;
  targetQueue: string;
  channel: amqplib.Channel;
  /** Audit log lines written by the console. */
  audit: Record<string, unknown>[];
  startStuckSaga(orderId?: string): Promise<string>;
  createRun(count: number): Promise<string>;
  deadLetter(id: string): void;
  dlqCount(): Promise<number>;
  close(): Promise<void>;
}

export async function createWorld(
  redisInfo: ServiceInfo,
  rabbitInfo: ServiceInfo,
  options: { publishDelayMs?: number; batchSize?: number; token?: string; host?: string } = {},
): Promise<World> {
  const prefix = uniqueName('console19-ui');
  const dir = await mkdtemp(join(tmpdir(), 'bt-ui-'));
  const snapshot = join(dir, 'backtrack.schemas.json');
  await writeFile(snapshot, serializeSnapshot(snapshotRegistry(fixture.registry)));
  const config: BacktrackConfig = {
    registry: fixture.registry,
    compensations: fixture.compensations,
    sagas: [orderSaga],
    redis: {
      url: redisInfo.url,
      journalPrefix: `${prefix}:journal`,
      progressPrefix: `${prefix}:progress`,
      sagaPrefix: `${prefix}:saga:`,
    },
    transport: 'rabbitmq',
    schemaSnapshot: snapshot,
  };
  const redis = new Redis(redisInfo.url);
  const sagaStore = new RedisSagaStore({ keyPrefix: `${prefix}:saga:` }, { redis });
  const progress = new RedisRollbackProgressStore({ keyPrefix: `${prefix}:progress` }, { redis });
  const journal = new RedisJournal({ keyPrefix: `${prefix}:journal` }, { redis });

  const amqp = await amqplib.connect(rabbitInfo.url);
  const channel = await amqp.createChannel();
  const exchange = uniqueName('console19-orders');
  const targetQueue = uniqueName('console19-watch');
  const dlq = uniqueName('console19-dlq');
  await channel.assertExchange(exchange, 'topic', { durable: false, autoDelete: false });
  await channel.assertQueue(targetQueue, { durable: false });
  await channel.bindQueue(targetQueue, exchange, '#');
  await channel.assertQueue(dlq, { durable: false });

  const audit: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) audit.push(JSON.parse(line));
      done();
    },
  });
  const recording = new SlowTransport(options.publishDelayMs ?? 0);
  const ctx = new TestContext(config, recording, rabbitInfo.url);
  const server = await createConsole(ctx, {
    host: options.host ?? '127.0.0.1',
    port: 0,
    token: options.token,
    deadLetters: [dlq],
    pollMs: 300,
    batchSize: options.batchSize,
    operator: 'test-operator',
    logger: pino({ level: 'info' }, sink),
  });
  const url = await server.listen();

  const engine = createSagaEngine(
    {},
    { store: sagaStore, logger: pino({ level: 'silent' }), sleep: async () => {} },
  );
  let runs = 0;

  return {
    ctx,
    server,
    url,
    redis,
    sagaStore,
    progress,
    dlq,
    targetQueue,
    channel,
    audit,
    async startStuckSaga(orderId = uniqueName('order')) {
      refunds.work = false;
      const result = await engine.start(orderSaga, { orderId }, { sagaId: orderId });
      if (result.status !== 'stuck') throw new Error(`expected a stuck saga, got ${result.status}`);
      return orderId;
    },
    async createRun(count) {
      // A bad deploy journaled `count` reservations and an email; the run is created, not run.
      const seed: Transport = {
        name: 'seed',
        publish: async () => {},
        subscribe: async () => ({ close: async () => {} }),
        close: async () => {},
      };
      const version = `2.0.${runs++}`;
      const bad = createPublisher(
        { service: 'ui-inventory', version, topicFor: () => 'inventory' },
        { transport: seed, journal, registry: fixture.registry },
      );
      for (let i = 0; i < count; i++)
        await bad.publish(fixture.StockReserved, {
          sku: `sku-${i}`,
          quantity: i + 1,
          warehouse: 'w',
        });
      await bad.publish(fixture.EmailSent, { to: 'someone@example.com' });
      const plan = await planRollback(
        { service: 'ui-inventory', version, strategy: 'compensate' },
        { journal, registry: fixture.registry, compensations: fixture.compensations },
      );
      const runId = `run-${plan.planId}`;
      await progress.createRun(runId, plan);
      return runId;
    },
    deadLetter(id) {
      channel.sendToQueue(
        dlq,
        Buffer.from(JSON.stringify({ sku: 'a', quantity: 1, note: 'x'.repeat(6000) })),
        {
          messageId: id,
          type: 'stock.released',
          contentType: 'application/json',
          headers: {
            cloudEvents_specversion: '1.0',
            cloudEvents_source: '//test',
            cloudEvents_schemaversion: '1',
            'x-backtrack-dead-letter-reason': 'handler kept failing',
            'x-backtrack-dead-letter-code': 'BT_ERR_CONSUMER_RETRIES_EXHAUSTED',
            'x-backtrack-original-exchange': exchange,
          },
        },
      );
    },
    async dlqCount() {
      return (await channel.checkQueue(dlq)).messageCount;
    },
    async close() {
      await server.close();
      await ctx.close();
      await channel.deleteQueue(dlq).catch(() => undefined);
      await channel.deleteQueue(targetQueue).catch(() => undefined);
      await channel.deleteExchange(exchange).catch(() => undefined);
      await amqp.close().catch(() => undefined);
      const keys = await redis.keys(`*${prefix}*`);
      if (keys.length) await redis.unlink(...keys);
      await redis.quit();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
