/**
 * CloudEvents interop on the real Kafka broker, against the official CloudEvents JavaScript SDK
 * (`cloudevents` 10, its Kafka binding): both directions, binary and structured content mode,
 * every attribute, extensions, subject and dataschema; then retries, dead letters and a redrive
 * keeping every attribute.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { CloudEvent, Kafka as CeKafka } from 'cloudevents';
import { Kafka, logLevel, type IHeaders } from 'kafkajs';
import { z } from 'zod';
import {
  createConsumerPipeline,
  createEnvelope,
  defineEvent,
  encodeEnvelope,
  EventRegistry,
  handle,
  type Envelope,
} from '@backtrack/core';
import { redriveDeadLetters } from '@backtrack/kafka';
import { kafkaBroker } from './broker.js';
import { makeTransport, readTopic, uniqueName, waitFor, type RawRecord } from './helpers.js';

const broker = await kafkaBroker();
afterAll(() => broker.stop());

const OrderPlaced = defineEvent('order.placed')
  .version(1, z.object({ orderId: z.string() }))
  .version(2, z.object({ orderId: z.string(), amountCents: z.number().int() }), {
    up: (v1) => ({ ...(v1 as { orderId: string }), amountCents: 0 }),
    down: ({ orderId }) => ({ orderId }),
  });

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

/** An SDK event with every attribute the spec defines plus extensions. */
function sdkEvent(id: string): CloudEvent<{ orderId: string; amountCents: number }> {
  return new CloudEvent({
    id,
    source: '//foreign/orders',
    type: 'order.placed',
    specversion: '1.0',
    time: '2026-03-04T05:06:07.890Z',
    datacontenttype: 'application/json',
    subject: 'order/o-7',
    dataschema: 'https://schemas.example.com/order.placed/v2',
    partitionkey: 'o-7',
    tenantid: 'acme',
    traceparent: TRACEPARENT,
    data: { orderId: 'o-7', amountCents: 700 },
  });
}

/** The envelope Backtrack must make of {@link sdkEvent}. */
function expectedEnvelope(id: string): Envelope<unknown> {
  return {
    id,
    source: '//foreign/orders',
    type: 'order.placed',
    specversion: '1.0',
    time: '2026-03-04T05:06:07.890Z',
    datacontenttype: 'application/json',
    subject: 'order/o-7',
    dataschema: 'https://schemas.example.com/order.placed/v2',
    schemaversion: 2,
    partitionkey: 'o-7',
    extensions: { tenantid: 'acme', traceparent: TRACEPARENT },
    data: { orderId: 'o-7', amountCents: 700 },
  };
}

/** kafkajs cannot send a header without a value: the SDK's output holds some for absent attributes. */
function kafkaHeaders(headers: Record<string, unknown>): IHeaders {
  const out: IHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && value !== null) out[name] = String(value);
  }
  return out;
}

async function produceRaw(
  brokers: string[],
  topic: string,
  records: { key?: string | Buffer | undefined; value: string; headers: IHeaders }[],
): Promise<void> {
  const kafka = new Kafka({ brokers, clientId: 'ce-sdk-producer', logLevel: logLevel.NOTHING });
  const producer = kafka.producer();
  await producer.connect();
  try {
    await producer.send({
      topic,
      messages: records.map((r) => ({ key: r.key ?? null, value: r.value, headers: r.headers })),
    });
  } finally {
    await producer.disconnect();
  }
}

/** The SDK reads a record as read back from the broker. */
function toSdkEvent(record: RawRecord): CloudEvent<unknown> {
  const event = CeKafka.toEvent({
    headers: record.headers,
    key: record.key ?? undefined,
    value: record.value,
  } as never) as CloudEvent<unknown>;
  expect(event.validate()).toBe(true);
  return event;
}

/** A Backtrack-produced envelope with every attribute. */
function backtrackEnvelope() {
  return createEnvelope({
    type: 'order.placed',
    source: '//backtrack/orders',
    schemaversion: 2,
    time: '2026-05-06T07:08:09.123Z',
    subject: 'order/o-8',
    dataschema: 'https://schemas.example.com/order.placed/v2',
    sagaid: 'saga-8',
    causationid: 'cmd-8',
    correlationid: 'corr-8',
    producerservice: 'orders',
    producerversion: '2.4.0',
    partitionkey: 'o-8',
    extensions: { tenantid: 'acme', traceparent: TRACEPARENT },
    data: { orderId: 'o-8', amountCents: 800 },
  });
}

function expectSdkEventMatches(event: CloudEvent<unknown>, envelope: Envelope<unknown>): void {
  expect(event).toMatchObject({
    id: envelope.id,
    source: envelope.source,
    type: envelope.type,
    specversion: '1.0',
    time: envelope.time,
    subject: envelope.subject,
    dataschema: envelope.dataschema,
    sagaid: envelope.sagaid,
    causationid: envelope.causationid,
    correlationid: envelope.correlationid,
    producerservice: envelope.producerservice,
    producerversion: envelope.producerversion,
    partitionkey: envelope.partitionkey,
    tenantid: 'acme',
    traceparent: TRACEPARENT,
    data: envelope.data,
  });
  expect(String(event['schemaversion'])).toBe(String(envelope.schemaversion));
  expect(event.datacontenttype).toMatch(/^application\/json/);
}

describe.skipIf(!broker.available)(
  'CloudEvents interop on Kafka (real broker, cloudevents SDK)',
  () => {
    const brokers = broker.brokers;

    it.each(['binary', 'structured'] as const)(
      'SDK → Backtrack in %s mode: every attribute, subject, dataschema and extensions reach ctx.envelope',
      async (mode) => {
        const topic = uniqueName(`bt-ce-in-${mode}`);
        const group = uniqueName('ce-reader');
        const transport = makeTransport(brokers);
        const seen: Envelope<unknown>[] = [];
        const versions: number[] = [];
        const pipeline = createConsumerPipeline(
          {
            name: group,
            handlers: [
              handle(OrderPlaced, ({ envelope, version }) => {
                seen.push(envelope);
                versions.push(version);
              }),
            ],
          },
          // A plain SDK event says no schema version: the registry's default for the type applies.
          {
            registry: new EventRegistry([OrderPlaced], {
              defaultSchemaVersions: { 'order.placed': 1 },
            }),
          },
        );
        try {
          await transport.ensureTopics({ topics: [topic], partitions: 1 });
          const full = sdkEvent(`sdk-${mode}-1`);
          // A minimal event: no time, no dataschema, no schemaversion.
          const minimal = new CloudEvent({
            id: `sdk-${mode}-2`,
            source: '//foreign/orders',
            type: 'order.placed',
            data: { orderId: 'o-min' },
          });
          const records = [full, minimal].map((event) => {
            const m = mode === 'binary' ? CeKafka.binary(event) : CeKafka.structured(event);
            const value = typeof m.value === 'string' ? m.value : JSON.stringify(m.value);
            return { key: m.key, value, headers: kafkaHeaders(m.headers) };
          });
          // The SDK fills in `time` (its events are frozen): take it out of the minimal one.
          const bare = records[1]!;
          if (mode === 'binary') delete bare.headers['ce_time'];
          else {
            const { time: _time, ...rest } = JSON.parse(bare.value) as Record<string, unknown>;
            bare.value = JSON.stringify(rest);
          }
          if (mode === 'structured') {
            expect(Object.keys(records[0]!.headers)).toEqual(['content-type']);
            expect(records[0]!.headers['content-type']).toMatch(/^application\/cloudevents\+json/);
          }
          await produceRaw(brokers, topic, records);
          await transport.subscribe({ topics: [topic], group, processor: pipeline });
          await waitFor(() => seen.length === 2, 'both SDK events');
          expect(seen[0]).toEqual(expectedEnvelope(`sdk-${mode}-1`));
          expect(seen[1]).toMatchObject({ id: `sdk-${mode}-2`, schemaversion: 1 });
          expect(seen[1]!.subject).toBeUndefined();
          expect(seen[1]!.time).toBeUndefined();
          expect(versions).toEqual([2, 2]);
        } finally {
          await transport.close();
        }
      },
    );

    it.each(['binary', 'structured'] as const)(
      'Backtrack → SDK in %s mode: Kafka.toEvent reads every attribute and validate() passes',
      async (mode) => {
        const topic = uniqueName(`bt-ce-out-${mode}`);
        const transport = makeTransport(brokers, { producer: { contentMode: mode } });
        try {
          await transport.ensureTopics({ topics: [topic], partitions: 1 });
          const envelope = backtrackEnvelope();
          await transport.publish([{ topic, message: encodeEnvelope(envelope) }]);
          const [record] = await readTopic(brokers, topic, 1);
          if (mode === 'structured') {
            expect(record!.headers).toEqual({
              'content-type': 'application/cloudevents+json; charset=utf-8',
            });
          } else {
            expect(record!.headers).toMatchObject({
              ce_id: envelope.id,
              ce_type: 'order.placed',
              ce_subject: 'order/o-8',
              ce_tenantid: 'acme',
              'content-type': 'application/json',
            });
          }
          expect(record!.key).toBe('o-8');
          const event = toSdkEvent(record!);
          expectSdkEventMatches(event, envelope);
        } finally {
          await transport.close();
        }
      },
    );

    it('retries, dead letters and a redrive keep every attribute (SDK reads the dead letter)', async () => {
      const topic = uniqueName('bt-ce-dlq');
      const group = uniqueName('ce-failing');
      const transport = makeTransport(brokers, { consumer: { maxAttempts: 2 } });
      const attempts: Envelope<unknown>[] = [];
      let fail = true;
      const pipeline = createConsumerPipeline({
        name: group,
        retry: { attempts: 2, initialDelayMs: 10, maxDelayMs: 20 },
        handlers: [
          handle(OrderPlaced, ({ envelope }) => {
            attempts.push(envelope);
            if (fail) throw new Error('downstream unavailable');
          }),
        ],
      });
      try {
        const id = 'sdk-dlq-1';
        const m = CeKafka.binary(sdkEvent(id));
        await transport.ensureTopics({ topics: [topic], partitions: 1, group });
        await produceRaw(brokers, topic, [
          { key: m.key, value: JSON.stringify(m.value), headers: kafkaHeaders(m.headers) },
        ]);
        const sub = await transport.subscribe({ topics: [topic], group, processor: pipeline });
        await waitFor(() => attempts.length === 2, 'the first delivery and the retry');
        // The retry (a record on the retry topic) carried every attribute.
        expect(attempts[0]).toEqual(expectedEnvelope(id));
        expect(attempts[1]).toEqual(expectedEnvelope(id));

        const [dead] = await readTopic(brokers, `${topic}.dlq`, 1);
        expect(dead!.headers['x-backtrack-dead-letter-code']).toBeDefined();
        const event = toSdkEvent(dead!);
        expect(event).toMatchObject({
          id,
          subject: 'order/o-7',
          dataschema: 'https://schemas.example.com/order.placed/v2',
          time: '2026-03-04T05:06:07.890Z',
          tenantid: 'acme',
          traceparent: TRACEPARENT,
          data: { orderId: 'o-7', amountCents: 700 },
        });

        // Redriven after the fix, it is consumed again with every attribute.
        fail = false;
        const result = await redriveDeadLetters(transport, { from: `${topic}.dlq` });
        expect(result.redriven).toBe(1);
        await waitFor(() => attempts.length === 3, 'the redriven delivery');
        expect(attempts[2]).toEqual(expectedEnvelope(id));
        await sub.close();
      } finally {
        await transport.close();
      }
    });

    it('a batched-mode message is dead-lettered whole with BT_ERR_CLOUDEVENTS_BATCH_UNSUPPORTED', async () => {
      const topic = uniqueName('bt-ce-batch');
      const group = uniqueName('ce-batch');
      const transport = makeTransport(brokers);
      const pipeline = createConsumerPipeline({
        name: group,
        handlers: [handle(OrderPlaced, () => undefined)],
      });
      try {
        await transport.ensureTopics({ topics: [topic], partitions: 1, group });
        const batch = JSON.stringify([sdkEvent('b-1'), sdkEvent('b-2')]);
        await produceRaw(brokers, topic, [
          {
            value: batch,
            headers: { 'content-type': 'application/cloudevents-batch+json; charset=utf-8' },
          },
        ]);
        const sub = await transport.subscribe({ topics: [topic], group, processor: pipeline });
        const [dead] = await readTopic(brokers, `${topic}.dlq`, 1);
        expect(dead!.headers['x-backtrack-dead-letter-code']).toBe(
          'BT_ERR_CLOUDEVENTS_BATCH_UNSUPPORTED',
        );
        expect(dead!.headers['x-backtrack-reason']).toBe('batch-mode-unsupported');
        expect(dead!.headers['x-backtrack-dead-letter-reason']).toMatch(/batched content mode/);
        expect(dead!.value!.toString()).toBe(batch);
        await sub.close();
      } finally {
        await transport.close();
      }
    });
  },
);
