/**
 * The journaling publisher on the real RabbitMQ broker: concurrent publishes share one journal
 * round trip each way and go out on the confirm channel together; an unroutable message rejects
 * only its own publish.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { z } from 'zod';
import {
  createPublisher,
  defineEvent,
  EventRegistry,
  InMemoryJournal,
  type Journal,
} from '@backtrack/core';
import type { RabbitTransport } from '@backtrack/rabbitmq';
import { probeService } from '../../../test/support/services.js';
import { BrokerProbe, openTransport, uniqueName } from './support.js';

const rabbit = await probeService('rabbitmq');
const silent = pino({ level: 'silent' });

const Note = defineEvent('test.note').version(1, z.object({ n: z.number() }));
const Orphan = defineEvent('test.orphan').version(1, z.object({ n: z.number() }));
const registry = new EventRegistry([Note, Orphan]);

function countingJournal(journal: Journal) {
  const calls = { appendMany: [] as number[], markPublished: [] as number[] };
  const wrapped: Journal = {
    append: (r) => journal.append(r),
    appendMany: (rs) => {
      calls.appendMany.push(rs.length);
      return journal.appendMany(rs);
    },
    markPublished: (ids) => {
      calls.markPublished.push(ids.length);
      return journal.markPublished(ids);
    },
    unpublished: (q) => journal.unpublished(q),
    query: (q) => journal.query(q),
    get: (id) => journal.get(id),
    prune: (now) => journal.prune(now),
  };
  return { wrapped, calls };
}

describe.skipIf(!rabbit.available)(
  'journaling publisher batching on RabbitMQ (real broker)',
  () => {
    let transport: RabbitTransport;
    let probe: BrokerProbe;
    const exchange = uniqueName('bt-pub-batch');
    const queue = `${exchange}.q`;

    beforeAll(async () => {
      transport = await openTransport(rabbit.url);
      probe = await BrokerProbe.open(rabbit.url);
      await transport.declare({
        exchanges: [{ name: exchange }],
        queues: [{ name: queue, type: 'classic' }],
        bindings: [{ exchange, queue, routingKey: 'test.note' }],
      });
    });

    afterAll(async () => {
      await transport?.close();
      await probe?.remove([queue], [exchange]);
      await probe?.close();
    });

    it('journals concurrent publishes in one round trip each way; an unroutable one rejects alone', async () => {
      const journal = new InMemoryJournal();
      const { wrapped, calls } = countingJournal(journal);
      const publisher = createPublisher(
        { service: 'svc', version: '1.0.0', topicFor: () => exchange },
        { transport, journal: wrapped, registry, logger: silent },
      );
      const orphans = new Set([4, 9]);
      const results = await Promise.allSettled(
        Array.from({ length: 30 }, (_, n) =>
          orphans.has(n) ? publisher.publish(Orphan, { n }) : publisher.publish(Note, { n }),
        ),
      );
      expect(results.flatMap((r, n) => (r.status === 'rejected' ? [n] : []))).toEqual([4, 9]);
      expect((results[4] as PromiseRejectedResult).reason).toMatchObject({
        code: 'BT_ERR_PUBLISH_FAILED',
      });
      expect(calls.appendMany).toEqual([30]);
      // The confirms that arrive together share a mark: far fewer round trips than messages.
      expect(calls.markPublished.reduce((a, b) => a + b, 0)).toBe(28);
      expect(calls.markPublished.length).toBeLessThanOrEqual(10);
      const records = (await journal.query({})).items;
      expect(records.filter((r) => r.state === 'pending').map((r) => r.type)).toEqual([
        'test.orphan',
        'test.orphan',
      ]);
      const taken = await probe.take(queue, 28);
      const ns = taken.map((m) => (JSON.parse(m.content.toString()) as { n: number }).n);
      expect(ns.sort((a, b) => a - b)).toEqual(
        Array.from({ length: 30 }, (_, n) => n).filter((n) => !orphans.has(n)),
      );
      expect(await probe.messageCount(queue)).toBe(0);
    });
  },
);
