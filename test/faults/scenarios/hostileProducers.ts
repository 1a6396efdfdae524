/**
 * Scenario 7: foreign and hostile producers. Records no Backtrack publisher writes (null-valued
 * headers through `kcat`, binary keys, tombstones, headers of any bytes, Backtrack's own header
 * names with garbage in them, a duplicate) go through the real Kafka broker into a running
 * Backtrack consumer (core's pipeline, RedisDedupeStore). Every record gets exactly one
 * disposition, the valid ones are applied once, every dead letter keeps its key, value and
 * headers, the committed offsets reach the end, and the consumer is never left dead.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { expect, it } from 'vitest';
import { createConsumerPipeline, handle, isDeadLetterReason } from '@backtrack/core';
import {
  createKafkaTransport,
  readDeadLetter,
  type DispositionEvent,
  type SubscriptionErrorEvent,
} from '@backtrack/kafka';
import { createRedisClient, RedisDedupeStore } from '@backtrack/redis';
import { produceForeign, type ForeignRecord } from '../../../packages/kafka/test/kcat.js';
import { serviceUrl, uniqueName } from '../../support/services.js';
import { kafkaBrokers, rawKafka, readKafkaTopic } from '../support/brokers.js';
import { prng, sleep, tracer } from '../support/child.js';
import { FaultOrderPlaced, orderMessage } from '../support/events.js';
import { recordRow } from '../support/summary.js';
import { DEAD_LETTER_REASON_HEADER } from '@backtrack/core/adapter';

export interface HostileProducersOptions {
  /** Generated foreign records (a third of them valid). */
  records: number;
  seed: number;
}

type Expect = 'applied' | 'dead-lettered' | 'either';
interface Case {
  label: string;
  record: ForeignRecord;
  expect: Expect;
  /** For valid records: the envelope id the ledger counts. */
  id?: string;
}

/** Headers of a valid `fault.order.placed` v2, as bytes (the CloudEvents Kafka binding). */
function validHeaders(id: string): [string, Buffer][] {
  const m = orderMessage(id);
  return Object.entries(m.headers).map(([k, v]) => [
    k === 'content-type' ? k : `ce_${k}`,
    Buffer.from(v),
  ]);
}
function validValue(id: string): Buffer {
  return Buffer.from(orderMessage(id).body);
}

function generate(count: number, seed: number, name: string): Case[] {
  const random = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  /** 1..max random bytes (an empty key or value may come back as null from some clients). */
  const bytes = (max: number) =>
    Buffer.from(
      Array.from({ length: 1 + Math.floor(random() * max) }, () => Math.floor(random() * 256)),
    );
  const textBytes = (max: number) =>
    Buffer.from(
      Array.from({ length: 1 + Math.floor(random() * max) }, () => 33 + Math.floor(random() * 90)),
    );
  const cases: Case[] = [];
  for (let i = 0; i < count; i++) {
    const id = `${name}-r${i}`;
    const kind = pick([
      'valid+null-headers',
      'valid+binary-key',
      'valid+binary-extra-headers',
      'tombstone',
      'null-ce-id',
      'garbage-value+null-headers',
      'binary-ce-headers',
      'backtrack-headers-garbage',
      'null-key-null-value-null-headers',
    ] as const);
    switch (kind) {
      case 'valid+null-headers':
        cases.push({
          label: kind,
          id,
          expect: 'applied',
          record: {
            key: textBytes(12),
            value: validValue(id),
            headers: [...validHeaders(id), ['ce_subject', null], ['traceparent', null]],
          },
        });
        break;
      case 'valid+binary-key':
        cases.push({
          label: kind,
          id,
          expect: 'applied',
          record: { key: bytes(16), value: validValue(id), headers: validHeaders(id) },
        });
        break;
      case 'valid+binary-extra-headers':
        cases.push({
          label: kind,
          id,
          expect: 'applied',
          record: {
            key: null,
            value: validValue(id),
            headers: [...validHeaders(id), ['x-foreign', bytes(20)], ['x-foreign', bytes(5)]],
          },
        });
        break;
      case 'tombstone':
        cases.push({
          label: kind,
          expect: 'dead-lettered',
          record: { key: textBytes(8), value: null, headers: validHeaders(id) },
        });
        break;
      case 'null-ce-id':
        cases.push({
          label: kind,
          expect: 'dead-lettered',
          record: {
            key: textBytes(8),
            value: validValue(id),
            headers: [...validHeaders(id).filter(([k]) => k !== 'ce_id'), ['ce_id', null]],
          },
        });
        break;
      case 'garbage-value+null-headers':
        cases.push({
          label: kind,
          expect: 'dead-lettered',
          record: {
            key: textBytes(8),
            value: bytes(64),
            headers: [
              ['ce_type', null],
              ['h', null],
            ],
          },
        });
        break;
      case 'binary-ce-headers':
        // any bytes under CloudEvents names: most are rejected, a lucky one may decode
        cases.push({
          label: kind,
          expect: 'either',
          record: {
            key: bytes(8),
            value: random() < 0.5 ? validValue(id) : bytes(32),
            headers: validHeaders(id).map(([k, v]) => [k, random() < 0.3 ? bytes(12) : v]),
          },
        });
        break;
      case 'backtrack-headers-garbage':
        cases.push({
          label: kind,
          id,
          expect: 'applied',
          record: {
            key: textBytes(8),
            value: validValue(id),
            headers: [
              ...validHeaders(id),
              ['x-backtrack-null-headers', bytes(16)],
              ['x-backtrack-attempt', bytes(4)],
              ['x-backtrack-group', textBytes(6)],
            ],
          },
        });
        break;
      case 'null-key-null-value-null-headers':
        cases.push({
          label: kind,
          expect: 'dead-lettered',
          record: {
            key: null,
            value: null,
            headers: [
              ['ce_id', null],
              ['ce_source', null],
            ],
          },
        });
        break;
    }
  }
  // A duplicate of a valid record (same envelope id): applied once. Its original is one the bare
  // kafkajs producer writes (no null header), so both go out in one produce request to one
  // partition (see `placeRecords`) and reach the consumer in one batch: the copy must be
  // absorbed there, with one final disposition of its own.
  const original =
    cases.find((c) => c.expect === 'applied' && c.record.headers.every(([, v]) => v !== null)) ??
    cases.find((c) => c.expect === 'applied');
  if (original) cases.push({ ...original, label: 'duplicate' });
  return cases;
}

/**
 * The records with their partitions (spread over 3), in produce order: the duplicate (the last
 * case) goes right behind its original, on its partition, so one produce request carries both.
 */
function placeRecords(cases: readonly Case[]): {
  records: (ForeignRecord & { partition: number })[];
  originalAt: number;
} {
  const records = cases.map((c, i) => ({ ...c.record, partition: i % 3 }));
  const last = cases.at(-1);
  if (last?.label !== 'duplicate') return { records, originalAt: -1 };
  const copy = records.pop()!;
  const originalAt = cases.findIndex((c) => c.record === last.record);
  records.splice(originalAt + 1, 0, { ...copy, partition: records[originalAt]!.partition });
  return { records, originalAt };
}

/** The records that got more than one disposition (or a non-final one), for an assertion message. */
function describeRepeats(events: readonly DispositionEvent[]): string {
  const at = new Map<string, DispositionEvent[]>();
  for (const e of events) {
    const position = `${e.message.origin.partition}@${e.message.origin.offset}`;
    at.set(position, [...(at.get(position) ?? []), e]);
  }
  const odd = [...at].filter(
    ([, list]) =>
      list.length > 1 || list.some((e) => e.action === 'retried' || e.action === 'redelivered'),
  );
  if (odd.length === 0) return '';
  return `; not settled once: ${odd
    .map(
      ([position, list]) =>
        `${position} [${list.map((e) => `${e.action} ${JSON.stringify(e.disposition, (k, v: unknown) => (k === 'error' ? String(v) : v))}`).join('; ')}]`,
    )
    .join(', ')}`;
}

export function hostileProducersScenario(options: HostileProducersOptions): void {
  it(`kafka: ${options.records} records from foreign and hostile producers (kcat null headers, binary keys, tombstones, any header bytes): each gets a disposition, valid ones applied once, no consumer left dead`, async () => {
    const trace = tracer('hostile');
    const name = uniqueName('faults-hostile');
    const group = `${name}-g`;
    const ledger = new Redis(serviceUrl('redis'));
    const ledgerKey = `${name}:ledger`;
    const dedupe = createRedisClient(serviceUrl('redis'));
    const transport = createKafkaTransport({
      brokers: kafkaBrokers(),
      clientId: 'faults-hostile',
      clientLogLevel: 'nothing',
    });
    const cases = generate(options.records, options.seed, name);
    const canaries = [`${name}-canary-0`, `${name}-canary-1`];
    const events: DispositionEvent[] = [];
    const errors: SubscriptionErrorEvent[] = [];
    let deliveries = 0;
    const pipeline = createConsumerPipeline(
      {
        name: group,
        retry: { attempts: 3, initialDelayMs: 50, maxDelayMs: 200 },
        handlers: [
          handle(FaultOrderPlaced, async ({ envelope }) => {
            await ledger.hincrby(ledgerKey, envelope.id, 1);
          }),
        ],
        middleware: [
          async (_context, next) => {
            deliveries++;
            await next();
          },
        ],
      },
      { dedupeStore: new RedisDedupeStore({ keyPrefix: `${name}:dedupe:` }, { redis: dedupe }) },
    );
    try {
      await transport.ensureTopics({ topics: [name], partitions: 3 });
      const sub = await transport.subscribe({
        topics: [name],
        group,
        processor: pipeline,
        sessionTimeoutMs: 10_000,
        heartbeatIntervalMs: 1_000,
        maxWaitTimeMs: 100,
        onDisposition: (e) => events.push(e),
        onError: (e) => errors.push(e),
      });
      trace('subscribed');
      await transport.publish([
        { topic: name, key: canaries[0], message: orderMessage(canaries[0]!) },
      ]);
      // Spread over the partitions, produced while the consumer runs; the duplicate and its
      // original in the same produce request (a chunk ends after a pair, never inside it).
      const { records: withPartitions, originalAt } = placeRecords(cases);
      for (let i = 0; i < withPartitions.length;) {
        let end = Math.min(i + 10, withPartitions.length);
        if (end === originalAt + 1) end += 1;
        await produceForeign(kafkaBrokers(), name, withPartitions.slice(i, end));
        i = end;
      }
      await transport.publish([
        { topic: name, key: canaries[1], message: orderMessage(canaries[1]!) },
      ]);
      const total = cases.length + canaries.length;
      trace(`produced ${total}`);
      // Each record gets exactly one disposition, a final one (acked or dead-lettered): the
      // duplicate too, though it reaches the consumer in its original's batch.
      const until = Date.now() + 90_000;
      while (events.length < total && Date.now() < until) await sleep(100);
      // (On a mismatch, the message names the records not settled once, with their dispositions.)
      expect(events.length, `one disposition per record${describeRepeats(events)}`).toBe(total);

      // The offsets of every partition are committed to the end.
      const admin = rawKafka().admin();
      await admin.connect();
      try {
        const committedAtEnd = async () => {
          const ends = await admin.fetchTopicOffsets(name);
          const [c] = await admin.fetchOffsets({ groupId: group, topics: [name] });
          return ends.every(
            (e) => c?.partitions.find((p) => p.partition === e.partition)?.offset === e.high,
          );
        };
        const deadline = Date.now() + 30_000;
        while (!(await committedAtEnd()) && Date.now() < deadline) await sleep(200);
        expect(await committedAtEnd()).toBe(true);
      } finally {
        await admin.disconnect();
      }

      // Exactly one disposition per (partition, offset).
      const positions = new Set(
        events.map((e) => `${e.message.origin.partition}@${e.message.origin.offset}`),
      );
      expect(positions.size).toBe(total);
      const byAction = (a: DispositionEvent['action']) =>
        events.filter((e) => e.action === a).length;
      expect(byAction('retried') + byAction('redelivered')).toBe(0);
      // The duplicate was absorbed (acked as a duplicate), right behind its original.
      const absorbed = events.filter(
        (e) => e.disposition.kind === 'ack' && e.disposition.outcome === 'duplicate',
      );
      expect(absorbed.length, 'the duplicate acked as a duplicate').toBe(1);

      // Valid records (and the canaries) applied once; the duplicate absorbed.
      const effects = await ledger.hgetall(ledgerKey);
      const validIds = [
        ...new Set([...cases.filter((c) => c.expect === 'applied').map((c) => c.id!), ...canaries]),
      ];
      const lost = validIds.filter((id) => Number(effects[id] ?? 0) === 0);
      const twice = Object.entries(effects)
        .filter(([, n]) => Number(n) > 1)
        .map(([id]) => id);
      expect(lost).toEqual([]);
      expect(twice).toEqual([]);
      const applied = Object.values(effects).reduce((a, n) => a + Number(n), 0);

      // Dead letters: as many as dead-lettered dispositions, each with its original bytes.
      const dead = events.filter((e) => e.action === 'dead-lettered');
      const expectedDead = cases.filter((c) => c.expect === 'dead-lettered').length;
      expect(dead.length).toBeGreaterThanOrEqual(expectedDead);
      const letters = await readKafkaTopic(`${name}.dlq`, dead.length, 30_000);
      expect(letters.length).toBe(dead.length);
      for (const { record, partition } of letters) {
        const dl = readDeadLetter(record, partition);
        expect(isDeadLetterReason(record.headers[DEAD_LETTER_REASON_HEADER]?.toString())).toBe(
          true,
        );
        expect(dl.originalTopic).toBe(name);
      }
      // Byte for byte: match each dead letter to its source record by origin partition + order.
      const sourceByPartition = new Map<number, ForeignRecord[]>();
      withPartitions.forEach((r) =>
        sourceByPartition.set(r.partition, [...(sourceByPartition.get(r.partition) ?? []), r]),
      );
      let compared = 0;
      for (const { record, partition } of letters) {
        const dl = readDeadLetter(record, partition);
        const p = dl.originalPartition!;
        const foreign = sourceByPartition.get(p)!;
        const candidates = foreign.filter(
          (r) =>
            (r.value === null
              ? dl.value === null
              : dl.value !== null && r.value.equals(dl.value)) &&
            (r.key === null
              ? dl.keyBytes === null
              : dl.keyBytes !== null && r.key.equals(dl.keyBytes)),
        );
        expect(
          candidates.length,
          `dead letter ${partition}@${record.offset} matches a source record`,
        ).toBeGreaterThan(0);
        const headersMatch = candidates.some((r) => {
          const names = new Set(
            r.headers.map(([k]) => k).filter((k) => !k.startsWith('x-backtrack-')),
          );
          return [...names].every((k) => {
            const values = r.headers.filter(([n]) => n === k).map(([, v]) => v);
            const got = dl.headers[k];
            const list = Array.isArray(got) ? got : [got];
            return (
              list.length === values.length &&
              values.every((v, j) =>
                v === null
                  ? list[j] === null
                  : Buffer.from(v).equals(Buffer.from(list[j] as Buffer)),
              )
            );
          });
        });
        expect(headersMatch, `dead letter ${partition}@${record.offset} keeps its headers`).toBe(
          true,
        );
        compared++;
      }

      // No consumer left dead: nothing crashed or failed, the subscription still consumes.
      expect(errors).toEqual([]);
      expect(sub.stats()).toMatchObject({ crashes: 0, batchFailures: 0, restarts: 0 });
      const late = `${name}-late-${randomUUID()}`;
      await transport.publish([{ topic: name, key: late, message: orderMessage(late) }]);
      const lateUntil = Date.now() + 30_000;
      while (!(await ledger.hexists(ledgerKey, late)) && Date.now() < lateUntil) await sleep(100);
      // The liveness probe: a record published after all the hostile ones is applied.
      const leftDead = (await ledger.hget(ledgerKey, late)) === '1' ? 0 : 1;
      expect(leftDead, 'consumers left dead').toBe(0);
      await sub.close();

      const kcatCount = cases.filter((c) => c.record.headers.some(([, v]) => v === null)).length;
      recordRow({
        scenario: '7 foreign and hostile producers (Kafka)',
        sent: total,
        processed: deliveries,
        applied,
        duplicates: 1,
        lost: lost.length,
        appliedTwice: twice.length,
        consumersLeftDead: leftDead,
        faults: `${kcatCount} via kcat (null headers), ${cases.length - kcatCount} raw (binary keys/headers, tombstones); ${dead.length} dead-lettered (${compared} checked byte for byte)`,
      });
    } finally {
      await transport.close().catch(() => undefined);
      const admin = rawKafka().admin();
      await admin.connect().catch(() => undefined);
      await admin
        .deleteTopics({ topics: [name, `${name}.retry`, `${name}.dlq`] })
        .catch(() => undefined);
      await admin.deleteGroups([group]).catch(() => undefined);
      await admin.disconnect().catch(() => undefined);
      const keys = await ledger.keys(`${name}:*`);
      if (keys.length > 0) await ledger.del(...keys);
      ledger.disconnect();
      dedupe.disconnect();
    }
  });
}
