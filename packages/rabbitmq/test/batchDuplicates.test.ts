/**
 * The same message twice in one prefetch window, on the real broker: the window goes to the
 * pipeline's processBatch, which claims the key once, runs the handler once and acknowledges the
 * copy as a duplicate in the same window. Neither delivery is sent back: the broker never
 * redelivers either (no `redelivered` flag, no second delivery).
 */
import { describe, expect, it } from 'vitest';
import type { Message } from 'amqplib';
import { z } from 'zod';
import {
  InMemoryDedupeStore,
  createConsumerPipeline,
  defineEvent,
  encodeEnvelope,
  handle,
  type IncomingMessage,
  type MessageProcessor,
} from '@backtrack/core';
import { ConsumerSpy } from '@backtrack/core/testing';
import { probeService } from '../../../test/support/services.js';
import { uniqueName, useBroker, waitFor } from './support.js';

const rabbit = await probeService('rabbitmq');

const InvoiceSent = defineEvent('invoice.sent').version(1, z.object({ invoice: z.string() }));
const source = '//backtrack/rabbit-tests';

describe.skipIf(!rabbit.available)('RabbitMQ: a duplicate within one prefetch window', () => {
  const broker = useBroker(rabbit.url);

  it('the same message id published twice back to back: one handler run, both acked in their window, none redelivered', async () => {
    const exchange = uniqueName('bt-dup-window');
    const group = uniqueName('bt-dup-window-q');
    const spy = new ConsumerSpy();
    const runs = new Map<string, number>();
    let openGate!: () => void;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    let gateStarted = false;
    const pipeline = createConsumerPipeline(
      {
        name: group,
        handlers: [
          handle(InvoiceSent, async ({ envelope, data }) => {
            runs.set(envelope.id, (runs.get(envelope.id) ?? 0) + 1);
            if (data.invoice === 'gate') {
              gateStarted = true;
              await gate;
            }
          }),
        ],
        // A copy that met its original's claim would come back after this delay.
        idempotency: { leaseMs: 10_000, ttlMs: 600_000, inProgressDelayMs: 200 },
      },
      { dedupeStore: new InMemoryDedupeStore(), spy },
    );
    const windows: string[][] = [];
    const processor: MessageProcessor = {
      process: (message: IncomingMessage) => pipeline.process(message),
      processBatch(messages: IncomingMessage[]) {
        windows.push(messages.map((m) => m.message.headers['id'] ?? '?'));
        return pipeline.processBatch(messages);
      },
    };
    const sub = await broker.transport.subscribe({
      topics: [exchange],
      group,
      processor,
      prefetch: 10,
    });
    // Every delivery the subscription acknowledges (or sends back), as the broker handed it over.
    const acked: Message[] = [];
    const nacked: Message[] = [];
    const channel = sub.channel!;
    const ack = channel.ack.bind(channel);
    const nack = channel.nack.bind(channel);
    channel.ack = (message, allUpTo) => {
      acked.push(message);
      ack(message, allUpTo);
    };
    channel.nack = (message, allUpTo, requeue) => {
      nacked.push(message);
      nack(message, allUpTo, requeue);
    };

    // A first message holds its window open, so the two copies arrive together behind it and
    // form the next window.
    await broker.transport.publish([
      {
        topic: exchange,
        message: encodeEnvelope(InvoiceSent.envelope({ invoice: 'gate' }, { source })),
      },
    ]);
    await waitFor('the gate window running', () => gateStarted);
    const copy = encodeEnvelope(
      InvoiceSent.envelope({ invoice: 'inv-1' }, { source, id: uniqueName('inv') }),
    );
    await broker.transport.publish([
      { topic: exchange, message: copy },
      { topic: exchange, message: copy },
    ]);
    // Both copies are with the consumer (unacknowledged, none ready on the queue).
    await waitFor(
      'both copies delivered',
      async () => (await broker.probe.messageCount(group)) === 0,
    );
    openGate();

    const id = copy.headers['id']!;
    await waitFor(
      'both copies settled',
      () => spy.records.filter((r) => r.messageId === id).length >= 2,
    );
    await waitFor('three acks', () => sub.stats.acked === 3);
    // They went to the pipeline together, in one window.
    expect(windows.some((w) => w.length === 2 && w.every((x) => x === id))).toBe(true);
    // One handler run; the copy acknowledged as a duplicate, both final.
    expect(runs.get(id)).toBe(1);
    expect(spy.records.filter((r) => r.messageId === id).map((r) => r.disposition)).toEqual([
      { kind: 'ack', outcome: 'handled' },
      { kind: 'ack', outcome: 'duplicate' },
    ]);
    // Nothing went back to the broker, and nothing came again: three deliveries in all, none
    // carrying the broker's redelivered flag.
    expect(nacked).toEqual([]);
    expect(sub.stats.redelivered).toBe(0);
    expect(sub.stats.received).toBe(3);
    expect(acked.length).toBeGreaterThan(0);
    expect(acked.every((m) => !m.fields.redelivered)).toBe(true);
    await sub.close();
    expect(await broker.probe.messageCount(group)).toBe(0);
  });
});
