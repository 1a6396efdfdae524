/**
 * Records written by foreign clients (kcat, a bare kafkajs producer) that Backtrack never writes
 * itself: null-valued headers, tombstones, binary keys, header values of any bytes. Every record
 * gets a disposition, dead letters keep the exact bytes, key and headers, and the consumer goes
 * on (issue 15, items 1, 9 and 10).
 */
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, type KafkaMessage } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createConsumerPipeline, defineEvent, handle } from '@backtrack/core';
import { pino } from 'pino';
import {
  createKafkaTransport,
  readDeadLetter,
  type DispositionEvent,
  type SubscriptionErrorEvent,
} from '@backtrack/kafka';
import {
  BACKTRACK_HEADERS,
  NULL_HEADERS_HEADER,
  createKafkajsClient,
  type KafkaClient,
} from '@backtrack/kafka/adapter';
import { kafkaBroker } from './broker.js';
import {
  ACK,
  committedOffsets,
  makeTransport,
  message,
  recordingProcessor,
  uniqueName,
  waitFor,
} from './helpers.js';
import { produceForeign, type ForeignRecord } from './kcat.js';
import { DEAD_LETTER_REASON_HEADER } from '@backtrack/core/adapter';

const broker = await kafkaBroker();
afterAll(() => broker.stop());

const Ping = defineEvent('test.ping').version(1, z.object({ n: z.number() }));

/** CloudEvents headers of a valid `test.ping` v1, as a foreign producer writes them. */
function ceHeaders(id = randomUUID()): [string, Buffer][] {
  return [
    ['ce_id', Buffer.from(id)],
    ['ce_source', Buffer.from('//foreign/kcat')],
    ['ce_type', Buffer.from('test.ping')],
    ['ce_specversion', Buffer.from('1.0')],
    ['ce_time', Buffer.from(new Date().toISOString())],
    ['ce_schemaversion', Buffer.from('1')],
    ['content-type', Buffer.from('application/json')],
  ];
}

/** Reads `count` records of a topic from the beginning with a bare kafkajs consumer. */
async function readRaw(brokers: string[], topic: string, count: number): Promise<KafkaMessage[]> {
  const kafka = new Kafka({ brokers, clientId: 'raw-reader', logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `raw-${randomUUID()}`, maxWaitTimeInMs: 200 });
  const out: KafkaMessage[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({ eachMessage: async ({ message }) => void out.push(message) });
    await waitFor(() => out.length >= count, `${count} records on ${topic} (got ${out.length})`);
    return out.sort((a, b) => Number(a.offset) - Number(b.offset));
  } finally {
    await consumer.disconnect();
  }
}

describe.skipIf(!broker.available)('foreign and hostile Kafka records (real broker)', () => {
  const brokers = broker.brokers;

  async function run(records: ForeignRecord[], expected: number) {
    const transport = makeTransport(brokers);
    const topic = uniqueName('bt-hostile');
    const group = uniqueName('g');
    const applied: number[] = [];
    const events: DispositionEvent[] = [];
    const pipeline = createConsumerPipeline({
      name: group,
      handlers: [handle(Ping, ({ data }) => void applied.push(data.n))],
    });
    await transport.ensureTopics({ topics: [topic], partitions: 1 });
    await produceForeign(brokers, topic, records);
    const sub = await transport.subscribe({
      topics: [topic],
      group,
      processor: pipeline,
      onDisposition: (e) => events.push(e),
    });
    await waitFor(() => events.length >= expected, `${expected} dispositions`, 30_000);
    await waitFor(
      async () => (await committedOffsets(brokers, group, topic))[0] === String(records.length),
      'commit past every record',
    );
    return { transport, topic, group, applied, events, sub };
  }

  it('a null-valued header reads as absent: the record is applied and the consumer goes on', async () => {
    const records: ForeignRecord[] = [
      {
        key: Buffer.from('k'),
        value: Buffer.from('{"n":1}'),
        headers: [...ceHeaders(), ['ce_subject', null]],
      },
      { key: Buffer.from('k'), value: Buffer.from('{"n":2}'), headers: ceHeaders() },
    ];
    const { transport, applied, events, sub } = await run(records, 2);
    try {
      expect(applied).toEqual([1, 2]);
      expect(events.map((e) => e.action)).toEqual(['acked', 'acked']);
      expect(sub.stats()).toMatchObject({ acked: 2, crashes: 0 });
    } finally {
      await transport.close();
    }
  });

  it('a tombstone is dead-lettered with a null value and a machine-readable reason', async () => {
    const records: ForeignRecord[] = [
      { key: Buffer.from('gone'), value: null, headers: ceHeaders() },
      { key: Buffer.from('k'), value: Buffer.from('{"n":3}'), headers: ceHeaders() },
    ];
    const { transport, topic, applied, events } = await run(records, 2);
    try {
      expect(applied).toEqual([3]);
      expect(events.map((e) => e.action)).toEqual(['dead-lettered', 'acked']);
      const [dl] = await readRaw(brokers, `${topic}.dlq`, 1);
      expect(dl!.value).toBeNull();
      expect(dl!.key).toEqual(Buffer.from('gone'));
      expect(dl!.headers![DEAD_LETTER_REASON_HEADER]!.toString()).toBe('invalid-json');
      expect(dl!.headers![BACKTRACK_HEADERS.deadLetterCode]!.toString()).toBe(
        'BT_ERR_MALFORMED_MESSAGE',
      );
    } finally {
      await transport.close();
    }
  });

  it('garbage with null headers, a binary key and binary headers is dead-lettered byte for byte', async () => {
    const value = Buffer.from([0xff, 0x00, 0xfe, 0x7b, 0x0a]);
    const key = Buffer.from([0xff, 0x01, 0x80]);
    const records: ForeignRecord[] = [
      // kcat: null headers (a null ce_id too)
      {
        key,
        value,
        headers: [
          ['ce_id', null],
          ['x-trace', Buffer.from('abc')],
          ['empty', null],
        ],
      },
      // bare kafkajs: header bytes that are not UTF-8, repeated headers
      {
        key,
        value,
        headers: [
          ['bin', Buffer.from([0xc3, 0x28, 0x00])],
          ['ce_type', Buffer.from([0xff])],
          ['ce_type', Buffer.from('test.ping')],
        ],
      },
      { key: null, value: Buffer.from('{"n":4}'), headers: ceHeaders() },
    ];
    const { transport, topic, applied, events } = await run(records, 3);
    try {
      expect(applied).toEqual([4]);
      expect(events.map((e) => e.action)).toEqual(['dead-lettered', 'dead-lettered', 'acked']);
      const [first, second] = await readRaw(brokers, `${topic}.dlq`, 2);
      for (const dl of [first!, second!]) {
        expect(dl.value).toEqual(value);
        expect(dl.key).toEqual(key);
        expect(dl.headers![DEAD_LETTER_REASON_HEADER]!.toString()).toBe('missing-attribute');
      }
      // null headers: kafkajs cannot write a null value, so they are written empty and named in
      // a marker header; readDeadLetter gives them back as null.
      expect(first!.headers!['ce_id']).toEqual(Buffer.alloc(0));
      expect(first!.headers!['empty']).toEqual(Buffer.alloc(0));
      expect(first!.headers!['x-trace']).toEqual(Buffer.from('abc'));
      expect(JSON.parse(first!.headers![NULL_HEADERS_HEADER]!.toString())).toEqual({
        ce_id: [0],
        empty: [0],
      });
      const read = readDeadLetter(
        {
          offset: first!.offset,
          key: first!.key,
          value: first!.value,
          headers: first!.headers!,
          timestamp: first!.timestamp,
        },
        0,
      );
      expect(read.headers).toEqual({ ce_id: null, 'x-trace': Buffer.from('abc'), empty: null });
      expect(read.reasonCode).toBe('missing-attribute');
      expect(second!.headers!['bin']).toEqual(Buffer.from([0xc3, 0x28, 0x00]));
      expect(second!.headers!['ce_type']).toEqual([Buffer.from([0xff]), Buffer.from('test.ping')]);
    } finally {
      await transport.close();
    }
  });

  it('a consumer kafkajs gives up on (a non-retriable crash) is restarted and reported, and consumes on', async () => {
    // A client whose batch handler throws a TypeError once, after the subscription's own
    // handler: kafkajs crashes the consumer with restart: false, as on any non-retriable error.
    const base = createKafkajsClient(
      { brokers, clientId: 'crash-test', clientLogLevel: 'nothing' },
      pino({ level: 'silent' }),
    );
    let injected = false;
    const client: KafkaClient = {
      name: base.name,
      consumer: (settings) => {
        const real = base.consumer(settings);
        return {
          ...real,
          connect: () => real.connect(),
          subscribe: (t) => real.subscribe(t),
          pause: (p) => real.pause(p),
          resume: (p) => real.resume(p),
          seek: (t, p, o) => real.seek(t, p, o),
          stop: () => real.stop(),
          disconnect: () => real.disconnect(),
          onCrash: (l) => real.onCrash(l),
          onGroupJoin: (l) => real.onGroupJoin(l),
          run: (handler) =>
            real.run(async (batch, controls) => {
              await handler(batch, controls);
              if (!injected) {
                injected = true;
                throw new TypeError("Cannot read properties of null (reading 'toString')");
              }
            }),
        };
      },
      producer: (s) => base.producer(s),
      admin: () => base.admin(),
    };
    const errors: SubscriptionErrorEvent[] = [];
    const crashing = createKafkaTransport(
      {
        brokers,
        clientId: 'crash-test',
        clientLogLevel: 'nothing',
        consumer: {
          maxWaitTimeMs: 200,
          sessionTimeoutMs: 10_000,
          heartbeatIntervalMs: 1_000,
          publishFailureBackoffMs: 100,
          failureMaxBackoffMs: 500,
        },
      },
      { client, onSubscriptionError: (e) => errors.push(e) },
    );
    const topic = uniqueName('bt-crash');
    const group = uniqueName('g');
    const processor = recordingProcessor(() => ACK);
    try {
      await crashing.ensureTopics({ topics: [topic], partitions: 1 });
      await crashing.publish([{ topic, message: message({ n: 1 }) }]);
      const sub = await crashing.subscribe({ topics: [topic], group, processor });
      await waitFor(() => sub.stats().restarts === 1, 'the restart');
      await crashing.publish([{ topic, message: message({ n: 2 }) }]);
      await waitFor(() => processor.calls.length >= 2, 'the record after the crash');
      expect(errors[0]).toMatchObject({ kind: 'consumer-crashed', restarting: false, group });
      expect(sub.stats()).toMatchObject({ crashes: 1, restarts: 1 });
      await waitFor(
        async () => (await committedOffsets(brokers, group, topic))[0] === '2',
        'commit past both',
      );
    } finally {
      await crashing.close();
    }
  });

  it('a dead letter the broker refuses (too large for the dead-letter topic) pauses the partition after bounded attempts, committing nothing', async () => {
    const transport = makeTransport(brokers);
    const topic = uniqueName('bt-refused');
    const group = uniqueName('g');
    const errors: SubscriptionErrorEvent[] = [];
    const processor = recordingProcessor(() => ({
      kind: 'dead-letter',
      reason: 'x'.repeat(5_000),
      code: 'BT_ERR_SCHEMA_VALIDATION',
    }));
    try {
      await transport.ensureTopics({ topics: [topic], partitions: 1, deadLetter: false });
      // The dead-letter topic takes no record over 512 bytes: every dead letter is refused.
      await transport.ensureTopics({
        topics: [`${topic}.dlq`],
        partitions: 1,
        retry: false,
        deadLetter: false,
        config: { 'max.message.bytes': '512' },
      });
      await transport.publish([{ topic, message: message({ big: 'y'.repeat(2_000) }) }]);
      const sub = await transport.subscribe({
        topics: [topic],
        group,
        processor,
        publishFailureAttempts: 3,
        publishFailureBackoffMs: 100,
        publishFailurePauseMs: 60_000,
        onError: (e) => errors.push(e),
      });
      await waitFor(() => errors.some((e) => e.kind === 'partition-paused'), 'the pause');
      expect(errors.map((e) => [e.kind, e.attempt])).toEqual([
        ['publish-failed', 1],
        ['publish-failed', 2],
        ['partition-paused', 3],
      ]);
      expect(errors[2]).toMatchObject({ topic, partition: 0, offset: '0', retryInMs: 60_000 });
      // Paused: no more attempts meanwhile, and nothing committed past the record.
      const calls = processor.calls.length;
      await new Promise((r) => setTimeout(r, 1_500));
      expect(processor.calls.length).toBe(calls);
      expect(errors).toHaveLength(3);
      expect((await committedOffsets(brokers, group, topic))[0] ?? '-1').toBe('-1');
      expect(sub.stats()).toMatchObject({ pausedPartitions: 1, deadLettered: 0, acked: 0 });
    } finally {
      await transport.close();
    }
  });
});
