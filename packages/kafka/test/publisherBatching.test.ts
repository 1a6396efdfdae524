/**
 * The journaling publisher on the real broker: concurrent publishes coalesce into one produce
 * request and one journal round trip each way, and a record the broker refuses rejects only its
 * own publish.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Kafka, logLevel } from 'kafkajs';
import { pino } from 'pino';
import { z } from 'zod';
import {
  createPublisher,
  defineEvent,
  EventRegistry,
  InMemoryJournal,
  type Journal,
} from '@backtrack/core';
import { KafkaTransport } from '@backtrack/kafka';
import { createKafkajsClient, type KafkaClient } from '@backtrack/kafka/adapter';
import { kafkaBroker } from './broker.js';
import { readTopic, uniqueName } from './helpers.js';

const broker = await kafkaBroker();
const silent = pino({ level: 'silent' });
afterAll(() => broker.stop());

const Note = defineEvent('test.note').version(1, z.object({ n: z.number(), pad: z.string() }));
const registry = new EventRegistry([Note]);

/** A kafkajs client whose producer counts its `send` calls (produce requests) and their sizes. */
function countingClient(brokers: string[]) {
  const sends: number[] = [];
  const inner = createKafkajsClient(
    { brokers, clientId: 'bt-batching-test', clientLogLevel: 'nothing' },
    silent,
  );
  const client: KafkaClient = {
    name: inner.name,
    producer: (settings) => {
      const p = inner.producer(settings);
      return {
        connect: () => p.connect(),
        disconnect: () => p.disconnect(),
        send: (batches) => {
          sends.push(batches.reduce((n, b) => n + b.records.length, 0));
          return p.send(batches);
        },
      };
    },
    consumer: (s) => inner.consumer(s),
    admin: () => inner.admin(),
  };
  return { client, sends };
}

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

describe.skipIf(!broker.available)('journaling publisher batching on Kafka (real broker)', () => {
  const brokers = broker.brokers;

  it('coalesces concurrent publishes into one produce request, one appendMany and one markPublished', async () => {
    const topic = uniqueName('bt-pub-batch');
    const { client, sends } = countingClient(brokers);
    const transport = new KafkaTransport(
      { brokers, clientLogLevel: 'nothing' },
      { client, logger: silent },
    );
    const journal = new InMemoryJournal();
    const { wrapped, calls } = countingJournal(journal);
    const publisher = createPublisher(
      { service: 'svc', version: '1.0.0', topicFor: () => topic },
      { transport, journal: wrapped, registry, logger: silent },
    );
    try {
      await transport.ensureTopics({
        topics: [topic],
        partitions: 1,
        retry: false,
        deadLetter: false,
      });
      const envelopes = await Promise.all(
        Array.from({ length: 40 }, (_, n) =>
          publisher.publish(Note, { n, pad: '' }, { key: `k-${n % 4}` }),
        ),
      );
      expect(sends).toEqual([40]);
      expect(calls).toEqual({ appendMany: [40], markPublished: [40] });
      const records = await readTopic(brokers, topic, 40);
      expect(records).toHaveLength(40);
      const ids = records.map((r) => r.headers.ce_id);
      expect(new Set(ids)).toEqual(new Set(envelopes.map((e) => e.id)));
      const journaled = (await journal.query({ limit: 100 })).items;
      expect(journaled).toHaveLength(40);
      expect(journaled.every((r) => r.state === 'published')).toBe(true);
    } finally {
      await transport.close();
    }
  });

  it('rejects exactly the publishes whose records the broker refuses (too large); the rest resolve, once each', async () => {
    const topic = uniqueName('bt-pub-refuse');
    const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        { topic, numPartitions: 1, configEntries: [{ name: 'max.message.bytes', value: '4000' }] },
      ],
    });
    await admin.disconnect();
    const { client, sends } = countingClient(brokers);
    const transport = new KafkaTransport(
      { brokers, clientLogLevel: 'nothing', producer: { retries: 1 } },
      { client, logger: silent },
    );
    const journal = new InMemoryJournal();
    const publisher = createPublisher(
      { service: 'svc', version: '1.0.0', topicFor: () => topic },
      { transport, journal, registry, logger: silent },
    );
    const big = new Set([2, 5]);
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, (_, n) =>
          publisher.publish(Note, { n, pad: big.has(n) ? 'x'.repeat(10_000) : 'y'.repeat(300) }),
        ),
      );
      expect(results.flatMap((r, n) => (r.status === 'rejected' ? [n] : []))).toEqual([2, 5]);
      expect((results[2] as PromiseRejectedResult).reason).toMatchObject({
        code: 'BT_ERR_PUBLISH_FAILED',
      });
      expect(sends[0]).toBe(8); // the coalesced request first, then one per publish
      await publisher.flush(); // published marks follow the acknowledgement (folded into a later append or written within markDelayMs)
      const journaled = (await journal.query({})).items;
      expect(
        journaled
          .filter((r) => r.state === 'pending')
          .map((r) => JSON.parse(new TextDecoder().decode(r.message.body)).n),
      ).toEqual([2, 5]);
      const records = await readTopic(brokers, topic, 6);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const ns = records.map((r) => JSON.parse(r.value!.toString()).n as number);
      expect([...new Set(ns)].sort()).toEqual([0, 1, 3, 4, 6, 7]);
    } finally {
      await transport.close();
    }
  });
});
