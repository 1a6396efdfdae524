/**
 * A replay through the real brokers keeps every CloudEvents attribute (issue 16): an event
 * published with `subject`, a versioned `dataschema` and extensions is journaled, planned for
 * replay downcast to an older version, and run with `runRollback` onto Kafka and RabbitMQ. The
 * consumed replay keeps the subject and extensions, and its `dataschema` names the target version.
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createConsumerPipeline,
  createPublisher,
  handle,
  planRollback,
  runRollback,
  type Envelope,
  type Middleware,
  type Subscription,
} from '@backtrack/core';
import type { KafkaTransport } from '@backtrack/kafka';
import { RedisJournal, RedisRollbackProgressStore } from '@backtrack/redis';
import { probeService, uniqueName } from '../../support/services.js';
import {
  deleteKeysContaining,
  openTransport,
  registry,
  StockReserved,
  type TransportKind,
} from './scenario.js';

const redisService = await probeService('redis');
const kafka = await probeService('kafka');
const rabbitmq = await probeService('rabbitmq');
const redis = redisService.available ? new Redis(redisService.url) : undefined;
afterAll(async () => {
  await redis?.quit();
});

const attributes = {
  subject: 'sku/a',
  dataschema: 'https://schemas.example.com/stock.reserved/v2',
  extensions: {
    tenantid: 'acme',
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
  },
};

async function replayKeepsAttributes(kind: TransportKind, brokerUrl: string): Promise<void> {
  const topic = uniqueName(`bt-replay-attrs-${kind}`);
  const journalPrefix = uniqueName('bt-replay-journal');
  const progressPrefix = uniqueName('bt-replay-progress');
  const transport = await openTransport(kind, brokerUrl);
  let subscription: Subscription | undefined;
  try {
    if (kind === 'kafka') {
      await (transport as KafkaTransport).ensureTopics({ topics: [topic], partitions: 1 });
    }
    const journal = new RedisJournal({ keyPrefix: journalPrefix }, { redis: redis! });
    const progressStore = new RedisRollbackProgressStore(
      { keyPrefix: progressPrefix },
      { redis: redis! },
    );
    const received: {
      headers: Record<string, string>;
      envelope?: Envelope<unknown>;
      data?: unknown;
    }[] = [];
    const wire: Middleware = async (context, next) => {
      received.push({ headers: { ...context.message.message.headers } });
      return next();
    };
    subscription = await transport.subscribe({
      topics: [topic],
      group: uniqueName('bt-replay-attrs'),
      processor: createConsumerPipeline(
        {
          name: 'replay-attrs',
          middleware: [wire],
          handlers: [
            handle(StockReserved, ({ envelope, data }) => {
              Object.assign(received.at(-1)!, { envelope, data });
            }),
          ],
        },
        { registry },
      ),
    });

    const bad = createPublisher(
      { service: 'inventory', version: '2.0.0', topicFor: () => topic },
      { transport, journal, registry },
    );
    const original = await bad.publish(
      StockReserved,
      { sku: 'a', quantity: 3, warehouse: 'w' },
      attributes,
    );
    await waitFor(
      () => received.length >= 1 && received[0]!.envelope !== undefined,
      'the original',
    );

    const plan = await planRollback(
      {
        service: 'inventory',
        version: '2.0.0',
        strategy: 'replay',
        targetVersions: { 'stock.reserved': 1 },
      },
      { journal, registry },
    );
    expect(plan.items).toHaveLength(1);
    const runId = uniqueName('bt-replay-run');
    const result = await runRollback(
      plan,
      { runId, owner: `replay-attrs-${process.pid}` },
      { journal, transport, progressStore },
    );
    expect(result.status).toBe('completed');

    await waitFor(() => received.length >= 2 && received[1]!.envelope !== undefined, 'the replay');
    const replay = received[1]!;
    expect(replay.headers).toMatchObject({
      causationid: original.id,
      schemaversion: '1',
      subject: 'sku/a',
      dataschema: 'https://schemas.example.com/stock.reserved/v1',
      tenantid: 'acme',
      traceparent: attributes.extensions.traceparent,
    });
    expect(replay.headers.id).not.toBe(original.id);
    // The consumer's envelope: subject and extensions kept, dataschema naming version 1.
    expect(replay.envelope).toMatchObject({
      subject: 'sku/a',
      dataschema: 'https://schemas.example.com/stock.reserved/v1',
      causationid: original.id,
    });
    expect(replay.envelope!.extensions).toMatchObject(attributes.extensions);
    // Version 1 on the wire, upcast on the way in: the handler sees version 2's shape.
    expect(replay.envelope!.data).toEqual({ sku: 'a', qty: 3 });
    expect(replay.data).toEqual({ sku: 'a', quantity: 3, warehouse: 'main' });
  } finally {
    await subscription?.close().catch(() => undefined);
    await transport.close().catch(() => undefined);
    await deleteKeysContaining(redis!, [journalPrefix, progressPrefix]);
  }
}

async function waitFor(check: () => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('a replay through the real broker keeps subject, extensions and a versioned dataschema', () => {
  it.skipIf(!redisService.available || !kafka.available)(
    'Kafka',
    async () => {
      await replayKeepsAttributes('kafka', kafka.url);
    },
    90_000,
  );

  it.skipIf(!redisService.available || !rabbitmq.available)(
    'RabbitMQ',
    async () => {
      await replayKeepsAttributes('rabbitmq', rabbitmq.url);
    },
    90_000,
  );
});
