/**
 * Per-key order after a redeliver, on the real broker with `prefetch` > 1 (the batch path):
 * core's pipeline holds back the later messages of a key inside a window after one of them is
 * redelivered (pipeline.spec.ts, "holds back later messages with the same key when there is no
 * partition"); this checks the promise end to end, across windows and channels. Messages of six
 * keys are interleaved; some are redelivered because their handler fails with a retriable store
 * outage, some because another consumer holds their dedupe lease, and the consumer channel is
 * closed twice in the middle of a window. Every message must be applied exactly once, and no
 * handler may run for a message while an earlier message of its key is not applied yet.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  InMemoryDedupeStore,
  StoreUnavailableError,
  createConsumerPipeline,
  createEnvelope,
  defaultIdempotencyKey,
  defineEvent,
  encodeEnvelope,
  handle,
} from '@backtrack/core';
import type { RabbitSubscription, RabbitTransport } from '@backtrack/rabbitmq';
import { probeService } from '../../../test/support/services.js';
import {
  BrokerProbe,
  declaredNames,
  openTransport,
  sleep,
  uniqueName,
  waitFor,
} from './support.js';

const rabbit = await probeService('rabbitmq');

const Step = defineEvent('order.step').version(1, z.object({ key: z.string(), seq: z.int() }));
const source = '//backtrack/rabbit-order';

describe.skipIf(!rabbit.available)('per-key order after a redeliver (prefetch > 1)', () => {
  const transports: RabbitTransport[] = [];
  afterAll(async () => {
    const probe = await BrokerProbe.open(rabbit.url);
    for (const t of transports) {
      const names = declaredNames(t);
      await t.close();
      await probe.remove(names.queues, names.exchanges);
    }
    await probe.close();
  });

  it('redelivered messages (retriable failure, lease held elsewhere, channel dropped mid-window) keep their key order; each applied once', async () => {
    const prefetch = 20;
    const keys = Array.from({ length: 6 }, (_, i) => `key-${i}`);
    const perKey = 25;
    const transport = await openTransport(rabbit.url, { consumer: { prefetch } });
    transports.push(transport);
    const exchange = uniqueName('bt-order');
    const group = uniqueName('bt-order-q');
    const store = new InMemoryDedupeStore();

    const applied = new Map<string, number[]>(keys.map((k) => [k, []]));
    const effects = new Map<string, number>();
    const violations: string[] = [];
    const failedOnce = new Set<string>();
    let calls = 0;
    let drops = 0;
    // Set once subscribed; the handler closes its channel.
    const live: { subscription?: RabbitSubscription } = {};
    const dropAt = new Set([40, 100]);

    const pipeline = createConsumerPipeline(
      {
        name: group,
        retry: { attempts: 10, initialDelayMs: 50, maxDelayMs: 200 },
        idempotency: { leaseMs: 5_000, inProgressDelayMs: 100, unavailableDelayMs: 100 },
        handlers: [
          handle(Step, async ({ data, envelope }) => {
            calls += 1;
            // Order: every earlier message of this key must already be applied.
            const done = applied.get(data.key)!;
            if (done.length !== data.seq) {
              violations.push(`${data.key}#${data.seq} ran after [${done.join(',')}]`);
            }
            if (dropAt.has(calls) && live.subscription?.channel) {
              // The consumer channel dies in the middle of this window: every unacknowledged
              // delivery goes back to the queue while this handler (and its window) still runs.
              drops += 1;
              void live.subscription.channel.close().catch(() => undefined);
            }
            await sleep(1 + Math.random() * 3);
            // A retriable failure (a store the handler uses is down): redeliver with a pause.
            if (data.seq % 5 === 2 && !failedOnce.has(envelope.id)) {
              failedOnce.add(envelope.id);
              throw new StoreUnavailableError('ledger', 'write');
            }
            done.push(data.seq);
            effects.set(envelope.id, (effects.get(envelope.id) ?? 0) + 1);
          }),
        ],
      },
      { dedupeStore: store },
    );

    const envelopes = [];
    for (let seq = 0; seq < perKey; seq++) {
      for (const key of keys) {
        envelopes.push(
          createEnvelope({
            type: Step.type,
            source,
            schemaversion: 1,
            data: { key, seq },
            id: `${group}-${key}-${seq}`,
            partitionkey: key,
          }),
        );
      }
    }
    // Another consumer holds the lease of every key's 8th message for a while: those deliveries
    // come back `redeliver` (in progress) until it expires.
    const heldElsewhere = envelopes.filter((e) => (e.data as { seq: number }).seq === 7);
    for (const e of heldElsewhere) {
      const claim = await store.claim(defaultIdempotencyKey(group, e), { leaseMs: 600 });
      expect(claim.status).toBe('claimed');
    }

    const subscription = (await transport.subscribe({
      topics: [exchange],
      group,
      processor: pipeline,
    })) as RabbitSubscription;
    live.subscription = subscription;
    await transport.publish(
      envelopes.map((e) => ({ topic: exchange, key: e.partitionkey, message: encodeEnvelope(e) })),
    );

    const total = keys.length * perKey;
    await waitFor('every message applied', () => effects.size === total, 60_000);
    await sleep(300);
    await subscription.close();

    const twice = [...effects].filter(([, n]) => n !== 1).map(([id]) => id);
    expect(twice).toEqual([]);
    for (const key of keys) {
      expect(applied.get(key), key).toEqual(Array.from({ length: perKey }, (_, i) => i));
    }
    expect(violations.slice(0, 10)).toEqual([]);
    // The faults happened: retriable failures, leases held elsewhere, two channels dropped.
    expect(failedOnce.size).toBe(keys.length * 5);
    expect(drops).toBe(2);
    expect(subscription.stats.redelivered).toBeGreaterThan(0);
    const probe = await BrokerProbe.open(rabbit.url);
    try {
      expect(await probe.messageCount(group)).toBe(0);
      expect(await probe.messageCount(subscription.topology.deadLetterQueue)).toBe(0);
    } finally {
      await probe.close();
    }
  });
});
