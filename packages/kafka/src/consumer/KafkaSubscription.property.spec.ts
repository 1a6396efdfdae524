/**
 * Property: any record a Kafka client can deliver (headers of any bytes, null header values,
 * repeated headers, Backtrack's own header names with garbage in them, null or binary keys,
 * tombstones, any value bytes) goes through decoding and the subscription's per-record path with
 * core's real pipeline: nothing throws, every record gets exactly one disposition, the offset ends
 * past the batch, and each dead letter gives back the original key, value and headers.
 */
import fc from 'fast-check';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createConsumerPipeline, defineEvent, handle, type Disposition } from '@backtrack/core';
import type {
  BatchControls,
  ConsumedRecord,
  KafkaAdminClient,
  KafkaConsumerClient,
  KafkaHeaderValue,
  KafkaProducerClient,
  TopicRecords,
} from '../client/KafkaClient.js';
import { readDeadLetter, restoreNullHeaders } from '../envelope/deadLetter.js';
import { fromKafkaRecord } from '../envelope/kafkaBinding.js';
import { resolveConsumerOptions } from '../options.js';
import { KafkaPublisher } from '../publisher/KafkaPublisher.js';
import { KafkaSubscription, type DispositionEvent } from './KafkaSubscription.js';

const logger = pino({ level: 'silent' });
const Ping = defineEvent('test.ping').version(1, z.object({ n: z.number() }));

const bytes = fc.uint8Array({ maxLength: 24 }).map((a) => Buffer.from(a));
const headerName = fc.oneof(
  fc.constantFrom(
    'ce_id',
    'ce_type',
    'ce_source',
    'ce_specversion',
    'ce_time',
    'ce_schemaversion',
    'ce_subject',
    'content-type',
    'traceparent',
    'x-backtrack-attempt',
    'x-backtrack-null-headers',
    'x-backtrack-group',
  ),
  fc.string({ maxLength: 12 }),
);
const single = fc.oneof(bytes, fc.constant(null), fc.string({ maxLength: 12 }));
const headerValue: fc.Arbitrary<KafkaHeaderValue> = fc.oneof(
  { weight: 4, arbitrary: single },
  { weight: 1, arbitrary: fc.array(single, { minLength: 1, maxLength: 3 }) },
);
const validValue = fc.integer().map((n) => Buffer.from(JSON.stringify({ n })));
const validHeaders = fc.uuid().map((id): Record<string, KafkaHeaderValue> => ({
  ce_id: Buffer.from(id),
  ce_source: Buffer.from('//prop'),
  ce_type: Buffer.from('test.ping'),
  ce_specversion: Buffer.from('1.0'),
  ce_time: Buffer.from('2026-01-01T00:00:00Z'),
  ce_schemaversion: Buffer.from('1'),
  'content-type': Buffer.from('application/json'),
}));
const recordArb = fc.record({
  key: fc.oneof(fc.constant(null), bytes),
  value: fc.oneof(fc.constant(null), bytes, validValue),
  headers: fc.oneof(
    fc.dictionary(headerName, headerValue, { maxKeys: 6 }),
    fc
      .tuple(validHeaders, fc.dictionary(headerName, headerValue, { maxKeys: 3 }))
      .map(([valid, extra]) => ({ ...valid, ...extra })),
    validHeaders,
  ),
});

function run(records: Omit<ConsumedRecord, 'offset' | 'timestamp'>[]) {
  let handler!: (
    b: Parameters<Parameters<KafkaConsumerClient['run']>[0]>[0],
    c: BatchControls,
  ) => Promise<void>;
  const log: string[] = [];
  const sent: TopicRecords[] = [];
  const consumer: KafkaConsumerClient = {
    connect: async () => {},
    subscribe: async () => {},
    run: async (h) => void (handler = h),
    pause: () => {},
    resume: () => {},
    seek: (_t, _p, o) => void log.push(`seek ${o}`),
    stop: async () => {},
    disconnect: async () => {},
    onCrash: () => {},
    onGroupJoin: (l) => queueMicrotask(() => l({})),
  };
  const producer: KafkaProducerClient = {
    connect: async () => {},
    disconnect: async () => {},
    send: async (b) => void sent.push(...b),
  };
  const events: DispositionEvent[] = [];
  const errors: unknown[] = [];
  const applied: number[] = [];
  const sub = new KafkaSubscription({
    topics: ['t'],
    group: 'g',
    processor: createConsumerPipeline({
      name: 'prop',
      unhandled: 'dead-letter',
      handlers: [handle(Ping, ({ data }) => void applied.push(data.n))],
    }),
    options: resolveConsumerOptions({ createTopics: false }),
    consumer,
    admin: {} as KafkaAdminClient,
    publisher: new KafkaPublisher(producer, logger, 1000),
    logger,
    onDisposition: (e) => events.push(e),
    onError: (e) => errors.push(e),
  });
  const consumed: ConsumedRecord[] = records.map((r, i) => ({
    ...r,
    offset: String(i),
    timestamp: '0',
  }));
  return {
    consumed,
    events,
    errors,
    sent,
    log,
    applied,
    go: async () => {
      await sub.start();
      await handler(
        { topic: 't', partition: 0, records: consumed, highWatermark: String(records.length) },
        {
          resolveOffset: (o) => void log.push(`resolve ${o}`),
          commit: async (o) => void log.push(`commit ${o}`),
          heartbeat: async () => {},
          isRunning: () => true,
          isStale: () => false,
        },
      );
      await sub.close();
    },
  };
}

/** Headers as a broker hands them back after a produce: text becomes bytes. */
function asConsumed(headers: Record<string, unknown>): Record<string, KafkaHeaderValue> {
  const toBuf = (v: unknown) => (typeof v === 'string' ? Buffer.from(v) : (v as Buffer));
  return Object.fromEntries(
    Object.entries(headers).map(([k, v]) => [k, Array.isArray(v) ? v.map(toBuf) : toBuf(v)]),
  );
}

function normalise(headers: Record<string, KafkaHeaderValue>): Record<string, unknown> {
  // Own data properties whatever the name (`__proto__` too): an assignment would set the prototype.
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of Object.entries(restoreNullHeaders(headers))) {
    if (v === undefined || k.startsWith('x-backtrack-')) continue;
    const one = (x: Buffer | string | null) => (typeof x === 'string' ? Buffer.from(x) : x);
    out[k] = Array.isArray(v) ? v.map(one) : one(v);
  }
  return out;
}

describe('KafkaSubscription: any record gets a disposition (property)', () => {
  it('decoding never throws on any record', () => {
    fc.assert(
      fc.property(recordArb, (r) => {
        const m = fromKafkaRecord(r);
        expect(m.body).toBeInstanceOf(Uint8Array);
        readDeadLetter({ ...r, offset: '0', timestamp: '0' }, 0);
      }),
      { numRuns: 500 },
    );
  }, 30_000);

  it('every record of a batch is acked or dead-lettered once, and dead letters keep key, value and headers', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(recordArb, { minLength: 1, maxLength: 8 }), async (records) => {
        const h = run(records);
        await expect(h.go()).resolves.toBeUndefined();
        expect(h.errors).toEqual([]);
        expect(h.events.map((e) => e.message.origin.offset)).toEqual(
          h.consumed.map((r) => r.offset),
        );
        const kinds = h.events.map((e) => e.disposition.kind as Disposition['kind']);
        for (const k of kinds) expect(['ack', 'dead-letter']).toContain(k);
        expect(h.log.at(-1)).toBe(`commit ${records.length}`);
        const letters = h.sent.flatMap((b) => b.records);
        expect(letters).toHaveLength(kinds.filter((k) => k === 'dead-letter').length);
        const deadIndexes = kinds.flatMap((k, i) => (k === 'dead-letter' ? [i] : []));
        letters.forEach((letter, j) => {
          const original = h.consumed[deadIndexes[j]!]!;
          const back = readDeadLetter(
            {
              offset: '0',
              timestamp: '0',
              key: letter.key as Buffer | null,
              value: letter.value,
              headers: asConsumed(letter.headers),
            },
            0,
          );
          expect(back.keyBytes).toEqual(original.key);
          expect(back.value).toEqual(original.value);
          expect(normalise(back.headers)).toEqual(normalise(original.headers));
          expect(back.reasonCode).not.toBe('other');
        });
      }),
      {
        numRuns: 100,
        // Found in CI (seed 1110165203): a header named like an Object.prototype member.
        examples: [
          // Found in CI (seed 1349670038): a header named `__proto__`, which the dead letter
          // keeps; the test's own copy of the headers turned it into a prototype before.
          [
            [
              {
                key: null,
                value: null,
                headers: Object.defineProperty({}, '__proto__', {
                  value: Buffer.from([]),
                  enumerable: true,
                  writable: true,
                  configurable: true,
                }) as Record<string, KafkaHeaderValue>,
              },
            ],
          ],
          [
            [
              { key: null, value: Buffer.from([]), headers: { toString: [null] } },
              { key: Buffer.from([]), value: Buffer.from('{"n":0}'), headers: {} },
            ],
          ],
        ],
      },
    );
  }, 60_000);
});
