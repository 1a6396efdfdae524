/**
 * Duplicates and redelivery: a consumer that loses its channel before the ack gets the message
 * again, and core's idempotent middleware keeps the handler's effect to once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  InMemoryDedupeStore,
  createConsumerPipeline,
  defineEvent,
  encodeEnvelope,
  handle,
  type DedupeStore,
  type Disposition,
  type IncomingMessage,
  type MessageProcessor,
} from '@backtrack/core';
import { RedisDedupeStore, createRedisClient } from '@backtrack/redis';
import type { RabbitSubscription, RabbitTransport } from '@backtrack/rabbitmq';
import { probeService } from '../../../test/support/services.js';
import {
  BrokerProbe,
  declaredNames,
  openTransport,
  sleep,
  socketOf,
  uniqueName,
  waitFor,
} from './support.js';
import { ConsumerSpy } from '@backtrack/core/testing';

const rabbit = await probeService('rabbitmq');
const redis = await probeService('redis');

const PaymentRequested = defineEvent('payment.requested').version(
  1,
  z.object({ paymentId: z.string(), amountCents: z.int() }),
);
const source = '//backtrack/rabbit-tests';
const payment = (paymentId: string, id?: string) =>
  encodeEnvelope(
    PaymentRequested.envelope({ paymentId, amountCents: 100 }, { source, ...(id ? { id } : {}) }),
  );

/** A consumer whose effects are counted per payment id. */
function countingPipeline(
  name: string,
  store: DedupeStore,
  options: { delayMs?: number; gate?: Promise<void>; onStart?: (paymentId: string) => void } = {},
) {
  const effects = new Map<string, number>();
  const spy = new ConsumerSpy();
  const pipeline = createConsumerPipeline(
    {
      name,
      handlers: [
        handle(PaymentRequested, async ({ data }) => {
          options.onStart?.(data.paymentId);
          if (options.gate) await options.gate;
          if (options.delayMs) await sleep(options.delayMs);
          effects.set(data.paymentId, (effects.get(data.paymentId) ?? 0) + 1);
        }),
      ],
      idempotency: { leaseMs: 5_000, ttlMs: 600_000, inProgressDelayMs: 100 },
    },
    { dedupeStore: store, spy },
  );
  return { pipeline, effects, spy };
}

describe.skipIf(!rabbit.available)('duplicates and redelivery on RabbitMQ', () => {
  let transport: RabbitTransport;
  let probe: BrokerProbe;
  const extra: RabbitTransport[] = [];

  beforeAll(async () => {
    transport = await openTransport(rabbit.url);
    probe = await BrokerProbe.open(rabbit.url);
  });
  afterAll(async () => {
    for (const t of [transport, ...extra]) {
      const names = declaredNames(t);
      await t?.close();
      await probe?.remove(names.queues, names.exchanges);
    }
    await probe?.close();
  });

  it('the channel closes after the handler but before the ack: the message comes again and is acked as a duplicate', async () => {
    const exchange = uniqueName('bt-dup');
    const group = uniqueName('bt-dup-q');
    const { pipeline, effects } = countingPipeline(group, new InMemoryDedupeStore());
    const dispositions: Disposition[] = [];
    const holder: { sub?: RabbitSubscription } = {};
    let killed = false;
    const processor: MessageProcessor = {
      async process(message: IncomingMessage) {
        const disposition = await pipeline.process(message);
        dispositions.push(disposition);
        if (!killed) {
          // The consumer "dies" after its effect and dedupe mark, before the ack goes out.
          killed = true;
          await holder.sub!.channel!.close();
        }
        return disposition;
      },
    };
    const sub = await transport.subscribe({ topics: [exchange], group, processor });
    holder.sub = sub;
    await transport.publish([{ topic: exchange, message: payment('p-1') }]);
    await waitFor('the redelivery', () => dispositions.length === 2);
    expect(dispositions).toEqual([
      { kind: 'ack', outcome: 'handled' },
      { kind: 'ack', outcome: 'duplicate' },
    ]);
    expect(effects.get('p-1')).toBe(1);
    expect(sub.stats.abandoned).toBe(1);
    await waitFor('the ack', () => sub.stats.acked === 1);
    await sub.close();
    expect(await probe.messageCount(group)).toBe(0);
  });

  it('the channel closes while the handler runs: the redelivery waits for the lease, then is a duplicate', async () => {
    const exchange = uniqueName('bt-mid');
    const group = uniqueName('bt-mid-q');
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const { pipeline, effects, spy } = countingPipeline(group, new InMemoryDedupeStore(), { gate });
    const sub = await transport.subscribe({ topics: [exchange], group, processor: pipeline });
    await transport.publish([{ topic: exchange, message: payment('p-2') }]);
    await waitFor('the handler to start', () => sub.inFlight === 1);
    await sub.channel!.close();
    // The broker redelivers at once on the new channel; the lease makes it wait (redeliver).
    await waitFor('a lease-held redelivery', () =>
      spy.records.some((r) => r.disposition.kind === 'redeliver'),
    );
    open();
    await waitFor('the duplicate ack', () =>
      spy.records.some(
        (r) => r.disposition.kind === 'ack' && r.disposition.outcome === 'duplicate',
      ),
    );
    expect(effects.get('p-2')).toBe(1);
    await sub.close();
    expect(await probe.messageCount(group)).toBe(0);
  });

  it('the same message published twice has one effect', async () => {
    const exchange = uniqueName('bt-twice');
    const group = uniqueName('bt-twice-q');
    const { pipeline, effects, spy } = countingPipeline(group, new InMemoryDedupeStore());
    const sub = await transport.subscribe({ topics: [exchange], group, processor: pipeline });
    const message = payment('p-3');
    await transport.publish([{ topic: exchange, message }]);
    await transport.publish([{ topic: exchange, message }]);
    await waitFor('both deliveries', () => spy.records.length === 2);
    expect(effects.get('p-3')).toBe(1);
    expect(spy.records.map((r) => r.disposition)).toContainEqual({
      kind: 'ack',
      outcome: 'duplicate',
    });
    await sub.close();
  });

  it.skipIf(!redis.available)(
    'two consumers share a RedisDedupeStore; one loses its connection mid-batch: every payment takes effect once',
    async () => {
      const exchange = uniqueName('bt-two');
      const group = uniqueName('bt-two-q');
      const keyPrefix = `${uniqueName('bt-rabbit-dedupe')}:`;
      const clients = [createRedisClient(redis.url), createRedisClient(redis.url)];
      const second = await openTransport(rabbit.url);
      extra.push(second);
      try {
        const a = countingPipeline(
          group,
          new RedisDedupeStore({ keyPrefix }, { redis: clients[0]! }),
          {
            delayMs: 30,
          },
        );
        // B's connection dies while one of its handlers runs (its claim held, its ack not sent
        // yet): deterministic, where waiting for `inFlight > 0` could catch B between a window's
        // delivery and its claim (then A takes those messages as new, and nothing comes again).
        let lost = false;
        const b = countingPipeline(
          group,
          new RedisDedupeStore({ keyPrefix }, { redis: clients[1]! }),
          {
            delayMs: 30,
            onStart: () => {
              if (lost) return;
              lost = true;
              socketOf(second).destroy(new Error('ECONNRESET (simulated by the test)'));
            },
          },
        );
        const subA = await transport.subscribe({
          topics: [exchange],
          group,
          processor: a.pipeline,
          prefetch: 10,
        });
        const subB = await second.subscribe({
          topics: [exchange],
          group,
          processor: b.pipeline,
          prefetch: 10,
        });
        const ids = Array.from({ length: 60 }, (_, i) => `pay-${i}`);
        await transport.publish(ids.map((id) => ({ topic: exchange, message: payment(id) })));
        await waitFor('consumer B to lose its connection mid-handler', () => lost);
        const total = () =>
          ids.filter((id) => (a.effects.get(id) ?? 0) + (b.effects.get(id) ?? 0) > 0).length;
        await waitFor('every payment to take effect', () => total() === ids.length, 30_000);
        await sleep(500);
        for (const id of ids) {
          expect((a.effects.get(id) ?? 0) + (b.effects.get(id) ?? 0), id).toBe(1);
        }
        // B's unacknowledged messages came again and were recognised.
        expect(subB.stats.abandoned).toBeGreaterThan(0);
        const again = [...a.spy.records, ...b.spy.records].filter(
          (r) =>
            r.disposition.kind === 'redeliver' ||
            (r.disposition.kind === 'ack' && r.disposition.outcome === 'duplicate'),
        );
        expect(again.length).toBeGreaterThan(0);
        await subA.close();
        await subB.close();
        expect(await probe.messageCount(group)).toBe(0);
      } finally {
        const keys = await clients[0]!.keys(`${keyPrefix}*`);
        if (keys.length > 0) await clients[0]!.del(...keys);
        await Promise.all(clients.map((c) => c.quit()));
      }
    },
  );
});
