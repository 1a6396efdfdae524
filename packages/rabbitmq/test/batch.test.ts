/**
 * The batch path on the real broker: the deliveries of a prefetch window go to the pipeline's
 * processBatch (one claim round trip per window), windows keep delivery order, and a consumer
 * that dies after the handlers but before the acks gets the window again, absorbed by dedupe.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  InMemoryDedupeStore,
  createConsumerPipeline,
  defineEvent,
  encodeEnvelope,
  handle,
  type Disposition,
  type IncomingMessage,
  type MessageProcessor,
} from '@backtrack/core';
import type { RabbitSubscription } from '@backtrack/rabbitmq';
import { probeService } from '../../../test/support/services.js';
import { RecordingProcessor, sleep, uniqueName, useBroker, waitFor } from './support.js';
import { ConsumerSpy } from '@backtrack/core/testing';

const rabbit = await probeService('rabbitmq');

const StockMoved = defineEvent('stock.moved').version(
  1,
  z.object({ sku: z.string(), seq: z.int() }),
);
const source = '//backtrack/rabbit-tests';
const moved = (sku: string, seq: number) =>
  encodeEnvelope(StockMoved.envelope({ sku, seq }, { source }));

/** An in-memory dedupe store that counts its calls. */
class CountingStore extends InMemoryDedupeStore {
  readonly calls = { claim: 0, claimMany: 0, complete: 0, completeMany: 0 };
  override claim(...args: Parameters<InMemoryDedupeStore['claim']>) {
    this.calls.claim += 1;
    return super.claim(...args);
  }
  override claimMany(...args: Parameters<InMemoryDedupeStore['claimMany']>) {
    this.calls.claimMany += 1;
    return super.claimMany(...args);
  }
  override complete(...args: Parameters<InMemoryDedupeStore['complete']>) {
    this.calls.complete += 1;
    return super.complete(...args);
  }
  override completeMany(...args: Parameters<InMemoryDedupeStore['completeMany']>) {
    this.calls.completeMany += 1;
    return super.completeMany(...args);
  }
}

function stockPipeline(name: string, store: InMemoryDedupeStore, jitterMs = 0) {
  const seen = new Map<string, number[]>();
  const effects = new Map<string, number>();
  const spy = new ConsumerSpy();
  const pipeline = createConsumerPipeline(
    {
      name,
      handlers: [
        handle(StockMoved, async ({ data, envelope }) => {
          // A handler whose duration varies: concurrent processing would reorder.
          if (jitterMs > 0) await sleep(Math.floor(Math.random() * jitterMs));
          seen.set(data.sku, [...(seen.get(data.sku) ?? []), data.seq]);
          effects.set(envelope.id, (effects.get(envelope.id) ?? 0) + 1);
        }),
      ],
      idempotency: { leaseMs: 5_000, ttlMs: 600_000, inProgressDelayMs: 100 },
    },
    { dedupeStore: store, spy },
  );
  return { pipeline, seen, effects, spy };
}

describe.skipIf(!rabbit.available)('RabbitMQ batch path (processBatch per prefetch window)', () => {
  const broker = useBroker(rabbit.url);

  it('hands each window to processBatch: one claim round trip per window, none per message, and keeps order per key', async () => {
    const exchange = uniqueName('bt-batch');
    const group = uniqueName('bt-batch-q');
    const store = new CountingStore();
    const { pipeline, seen, effects } = stockPipeline(group, store, 3);
    const sub = await broker.transport.subscribe({
      topics: [exchange],
      group,
      processor: pipeline,
      prefetch: 50,
    });
    // Every ack the subscription sends on its channel: one multiple-ack per window expected.
    const acks: boolean[] = [];
    const channel = sub.channel!;
    const ack = channel.ack.bind(channel);
    channel.ack = (message, allUpTo) => {
      acks.push(allUpTo === true);
      ack(message, allUpTo);
    };
    const skus = ['a', 'b', 'c', 'd', 'e'];
    const perSku = 40;
    const messages = [];
    for (let seq = 0; seq < perSku; seq++)
      for (const sku of skus) messages.push({ topic: exchange, message: moved(sku, seq) });
    await broker.transport.publish(messages);
    await waitFor('every message handled', () => effects.size === messages.length, 30_000);
    await waitFor('every ack', () => sub.stats.acked === messages.length);
    for (const sku of skus)
      expect(seen.get(sku), sku).toEqual(Array.from({ length: perSku }, (_, i) => i));
    expect([...effects.values()].every((n) => n === 1)).toBe(true);
    expect(sub.stats.batches).toBeGreaterThan(0);
    expect(sub.stats.batches).toBeLessThan(messages.length / 2);
    expect(store.calls.claim).toBe(0);
    expect(store.calls.claimMany).toBe(sub.stats.batches);
    expect(acks.length).toBe(sub.stats.batches);
    expect(acks.every((multiple) => multiple)).toBe(true);
    await sub.close();
    expect(await broker.probe.messageCount(group)).toBe(0);
  });

  it('the channel closes after the handlers but before the acks: the window comes again and is absorbed, each message applied once', async () => {
    const exchange = uniqueName('bt-batch-crash');
    const group = uniqueName('bt-batch-crash-q');
    const { pipeline, effects, spy } = stockPipeline(group, new InMemoryDedupeStore());
    const holder: { sub?: RabbitSubscription } = {};
    let firstWindow = 0;
    const processor: MessageProcessor = {
      process: (message: IncomingMessage) => pipeline.process(message),
      async processBatch(messages: IncomingMessage[]) {
        const dispositions = await pipeline.processBatch(messages);
        if (firstWindow === 0) {
          // The consumer "dies" after the effects and their done marks, before any ack.
          firstWindow = messages.length;
          await holder.sub!.channel!.close();
        }
        return dispositions;
      },
    };
    const sub = await broker.transport.subscribe({
      topics: [exchange],
      group,
      processor,
      prefetch: 20,
    });
    holder.sub = sub;
    const messages = Array.from({ length: 20 }, (_, i) => ({
      topic: exchange,
      message: moved('x', i),
    }));
    await broker.transport.publish(messages);
    await waitFor('every message acked', () => sub.stats.acked === messages.length, 30_000);
    expect(firstWindow).toBeGreaterThan(0);
    expect(effects.size).toBe(messages.length);
    expect([...effects.values()].every((n) => n === 1)).toBe(true);
    const duplicates = spy.records.filter(
      (r) => r.disposition.kind === 'ack' && r.disposition.outcome === 'duplicate',
    ).length;
    expect(duplicates).toBe(firstWindow);
    expect(sub.stats.abandoned).toBeGreaterThanOrEqual(firstWindow);
    await sub.close();
    expect(await broker.probe.messageCount(group)).toBe(0);
  });

  it('carries out a window of mixed dispositions: ack, retry, dead-letter, redeliver; a throwing processBatch is retried', async () => {
    const exchange = uniqueName('bt-batch-mixed');
    const group = uniqueName('bt-batch-mixed-q');
    const seen: string[] = [];
    let threw = false;
    const decide = (m: IncomingMessage): Disposition => {
      const seq = (JSON.parse(Buffer.from(m.message.body).toString()) as { seq: number }).seq;
      seen.push(`${seq}@${m.attempt}`);
      if (seq === 1 && m.attempt === 1) return { kind: 'retry', delayMs: 100, reason: 'later' };
      if (seq === 2) return { kind: 'dead-letter', reason: 'bad', code: 'BT_ERR_TEST_BAD' };
      if (seq === 3 && seen.filter((x) => x.startsWith('3@')).length === 1)
        return { kind: 'redeliver', reason: 'busy', delayMs: 50, pause: false };
      return { kind: 'ack', outcome: 'handled' };
    };
    const processor: MessageProcessor = {
      process: async (m) => decide(m),
      async processBatch(messages) {
        if (!threw && messages.some((m) => m.message.headers['type'] === 'stock.moved')) {
          const poison = messages.find(
            (m) =>
              (JSON.parse(Buffer.from(m.message.body).toString()) as { seq: number }).seq === 4,
          );
          if (poison) {
            threw = true;
            throw new Error('processBatch bug');
          }
        }
        return messages.map(decide);
      },
    };
    const sub = await broker.transport.subscribe({
      topics: [exchange],
      group,
      processor,
      prefetch: 10,
    });
    await broker.transport.publish(
      [0, 1, 2, 3, 4].map((i) => ({ topic: exchange, message: moved('m', i) })),
    );
    // 0, 3 and 4 acked (4 via the retry after the throw, 1 via its retry); 2 dead-lettered.
    await waitFor(
      'everything settled',
      () => sub.stats.acked >= 4 && sub.stats.deadLettered === 1,
      20_000,
    );
    expect(threw).toBe(true);
    expect(sub.stats.retried).toBeGreaterThanOrEqual(1);
    const dlq = await broker.probe.take(`${group}.dlq`, 1);
    expect(dlq).toHaveLength(1);
    expect(JSON.parse(dlq[0]!.content.toString())).toMatchObject({ seq: 2 });
    expect(dlq[0]!.properties.headers?.['x-backtrack-dead-letter-code']).toBe('BT_ERR_TEST_BAD');
    await waitFor('the queue empty', async () => (await broker.probe.messageCount(group)) === 0);
    await sub.close();
  });

  it('a processor without processBatch (or batch: false) keeps the per-message path', async () => {
    const exchange = uniqueName('bt-batch-off');
    const plain = new RecordingProcessor();
    const sub = await broker.transport.subscribe({
      topics: [exchange],
      group: uniqueName('bt-batch-off-q'),
      processor: plain,
    });
    const { pipeline, effects } = stockPipeline('off', new InMemoryDedupeStore());
    const off = await broker.transport.subscribe({
      topics: [exchange],
      group: uniqueName('bt-batch-off-q2'),
      processor: pipeline,
      batch: false,
    });
    await broker.transport.publish(
      [0, 1, 2].map((i) => ({ topic: exchange, message: moved('y', i) })),
    );
    await waitFor('both consumers', () => plain.seen.length === 3 && effects.size === 3);
    expect(sub.stats.batches).toBe(0);
    expect(off.stats.batches).toBe(0);
    await sub.close();
    await off.close();
  });
});
