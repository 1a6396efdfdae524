/**
 * Scenario 5: hostile input through the real brokers into a consumer running core's real
 * pipeline (decode → validate → idempotent with RedisDedupeStore → handler). Each bad message
 * must be dead-lettered with a reason, a code and its original bytes; no handler may see one;
 * the consumer must keep going (valid "canary" messages published before, between and after the
 * bad ones are each handled exactly once).
 */
import { Redis } from 'ioredis';
import type { IHeaders } from 'kafkajs';
import type { Options } from 'amqplib';
import { expect, it } from 'vitest';
import { createConsumerPipeline, handle, type ConsumerPipeline } from '@backtrack/core';
import { createKafkaTransport, readDeadLetter as readKafkaDeadLetter } from '@backtrack/kafka';
import { createRabbitTransport, readDeadLetter as readAmqpDeadLetter } from '@backtrack/rabbitmq';
import { createRedisClient, RedisDedupeStore } from '@backtrack/redis';
import { serviceUrl, uniqueName } from '../../support/services.js';
import {
  kafkaBrokers,
  produceRaw,
  RawAmqp,
  rabbitNames,
  rawKafka,
  readKafkaTopic,
} from '../support/brokers.js';
import { sleep } from '../support/child.js';
import { FaultOrderPlaced, orderMessage } from '../support/events.js';
import { recordRow } from '../support/summary.js';
import { generatedCases, handPickedCases, MAX_BYTES, type BadCase } from './badInputCases.js';
import { ConsumerSpy } from '@backtrack/core/testing';

export interface BadInputOptions {
  generated: number;
  seed: number;
}

interface Consumer {
  pipeline: ConsumerPipeline;
  spy: ConsumerSpy;
  handled: string[];
  ledgerKey: string;
  close(): Promise<void>;
}

async function newConsumer(name: string, ledger: Redis): Promise<Consumer> {
  const client = createRedisClient(serviceUrl('redis'));
  const spy = new ConsumerSpy();
  const handled: string[] = [];
  const ledgerKey = `${name}:ledger`;
  const pipeline = createConsumerPipeline(
    {
      name,
      limits: { maxBytes: MAX_BYTES },
      retry: { attempts: 2, initialDelayMs: 50, maxDelayMs: 100 },
      handlers: [
        handle(FaultOrderPlaced, async ({ envelope }) => {
          handled.push(envelope.id);
          await ledger.hincrby(ledgerKey, envelope.id, 1);
        }),
      ],
    },
    {
      dedupeStore: new RedisDedupeStore({ keyPrefix: `${name}:dedupe:` }, { redis: client }),
      spy,
    },
  );
  return {
    pipeline,
    spy,
    handled,
    ledgerKey,
    async close() {
      client.disconnect();
    },
  };
}

function kafkaHeaders(c: BadCase): IHeaders {
  const headers: IHeaders = {};
  const str = (v: unknown): string | Buffer =>
    typeof v === 'string' || Buffer.isBuffer(v) ? v : (JSON.stringify(v) ?? String(v));
  for (const [name, value] of Object.entries(c.attributes)) {
    if (value === undefined) continue;
    const header = name === 'content-type' ? 'content-type' : `ce_${name}`;
    headers[header] = Array.isArray(value) ? value.map(str) : str(value);
  }
  return headers;
}

function amqpOptions(c: BadCase): Options.Publish {
  const headers: Record<string, unknown> = { 'x-fault-case': c.id };
  const options: Options.Publish = { persistent: true, headers };
  for (const [name, value] of Object.entries(c.attributes)) {
    if (value === undefined) continue;
    if (name === 'content-type' && typeof value === 'string' && value.length > 0) {
      options.contentType = value;
    } else {
      headers[`cloudEvents_${name}`] = value;
    }
  }
  return options;
}

interface Letter {
  caseId: string;
  code: string;
  reason: string;
  body: Buffer;
}

function check(
  transport: string,
  cases: BadCase[],
  letters: Letter[],
  consumer: Consumer,
  canaries: string[],
  ledger: Record<string, string>,
) {
  const problems: string[] = [];
  const byCase = new Map<string, Letter[]>();
  for (const l of letters) byCase.set(l.caseId, [...(byCase.get(l.caseId) ?? []), l]);
  let lost = 0;
  for (const c of cases) {
    const got = byCase.get(c.id) ?? [];
    if (got.length !== 1) {
      if (got.length === 0) lost++;
      problems.push(`${transport} ${c.id} (${c.family}): ${got.length} dead letters`);
      continue;
    }
    const l = got[0]!;
    if (!c.expect.includes(l.code))
      problems.push(`${c.id} (${c.family}): code ${l.code}, expected ${c.expect.join('|')}`);
    if (l.reason.trim().length === 0) problems.push(`${c.id} (${c.family}): no reason`);
    if (!l.body.equals(c.body ?? Buffer.alloc(0)))
      problems.push(`${c.id} (${c.family}): dead letter bytes differ from the original`);
  }
  const caseIds = new Set(cases.map((c) => c.id));
  for (const id of consumer.handled) {
    if (!canaries.includes(id))
      problems.push(`${transport}: handler saw a non-canary message ${id}`);
  }
  for (const l of letters)
    if (!caseIds.has(l.caseId))
      problems.push(`${transport}: unexpected dead letter ${l.caseId} ${l.code}`);
  let appliedTwice = 0;
  for (const id of canaries) {
    const n = Number(ledger[id] ?? 0);
    if (n === 0) lost++;
    if (n > 1) appliedTwice++;
    if (n !== 1) problems.push(`${transport}: canary ${id} applied ${n} times`);
  }
  return { problems, lost, appliedTwice };
}

export function badInputScenario(options: BadInputOptions): void {
  it(`bad input on Kafka: hand-picked + ${options.generated} generated (fast-check seed ${options.seed}) are dead-lettered with reason and bytes; the consumer survives`, async () => {
    const ledger = new Redis(serviceUrl('redis'));
    const name = uniqueName('faults-bad-kafka');
    const topic = name;
    const cases = [
      ...handPickedCases(name),
      ...generatedCases(name, options.generated, options.seed),
    ].filter((c) => c.only !== 'amqp');
    const consumer = await newConsumer(name, ledger);
    const transport = createKafkaTransport(
      { brokers: kafkaBrokers(), clientId: 'backtrack-faults', clientLogLevel: 'nothing' },
      {},
    );
    const canaries = [0, 1, 2].map((i) => `${name}-canary-${i}`);
    try {
      await transport.ensureTopics({ topics: [topic], partitions: 1 });
      const sub = await transport.subscribe({
        topics: [topic],
        group: name,
        processor: consumer.pipeline,
        sessionTimeoutMs: 10_000,
        heartbeatIntervalMs: 1_000,
        maxWaitTimeMs: 200,
        maxBytesPerPartition: 4 * 1024 * 1024,
      });
      const half = Math.floor(cases.length / 2);
      const raw = (cs: BadCase[]) =>
        produceRaw(
          topic,
          cs.map((c) => ({ key: c.id, value: c.body, headers: kafkaHeaders(c) })),
        );
      await transport.publish([{ topic, key: canaries[0], message: orderMessage(canaries[0]!) }]);
      await raw(cases.slice(0, half));
      await transport.publish([{ topic, key: canaries[1], message: orderMessage(canaries[1]!) }]);
      await raw(cases.slice(half));
      await transport.publish([{ topic, key: canaries[2], message: orderMessage(canaries[2]!) }]);

      const records = await readKafkaTopic(`${topic}.dlq`, cases.length, 60_000);
      const until = Date.now() + 30_000;
      while (consumer.handled.length < canaries.length && Date.now() < until) await sleep(100);
      await sleep(500); // anything extra (a second dead letter, a late handler call) shows now
      const letters = records.map(({ record, partition }) => {
        const dl = readKafkaDeadLetter(record, partition);
        return {
          caseId: dl.key ?? '?',
          code: dl.code,
          reason: dl.reason,
          body: Buffer.from(dl.message.body),
        };
      });
      const verdict = check(
        'kafka',
        cases,
        letters,
        consumer,
        canaries,
        await ledger.hgetall(consumer.ledgerKey),
      );
      recordRow({
        scenario: '5 bad input (Kafka)',
        sent: cases.length + canaries.length,
        processed: consumer.spy.records.length,
        applied: consumer.handled.length,
        duplicates: 0,
        lost: verdict.lost,
        appliedTwice: verdict.appliedTwice,
        // The last canary went out after every bad message: a consumer that stopped misses it.
        consumersLeftDead: consumer.handled.includes(canaries[2]!) ? 0 : 1,
        faults: `${cases.length} bad (${cases.filter((c) => c.family !== 'generated').length} hand-picked incl. a tombstone; ${cases.filter((c) => c.family === 'generated').length} generated); ${letters.length} dead letters`,
      });
      expect(verdict.problems).toEqual([]);
      expect(sub.stats().deadLettered).toBe(cases.length);
      await sub.close();
    } finally {
      await transport.close().catch(() => undefined);
      await consumer.close();
      const admin = rawKafka().admin();
      await admin.connect();
      await admin
        .deleteTopics({ topics: [topic, `${topic}.retry`, `${topic}.dlq`] })
        .catch(() => undefined);
      await admin.disconnect();
      await ledger.del(consumer.ledgerKey);
      ledger.disconnect();
    }
  });

  it(`bad input on RabbitMQ: hand-picked (typed AMQP headers too) + ${options.generated} generated are dead-lettered with reason and bytes; the consumer survives`, async () => {
    const ledger = new Redis(serviceUrl('redis'));
    const name = uniqueName('faults-bad-amqp');
    const exchange = name;
    const group = `${name}-q`;
    const cases = [
      ...handPickedCases(name),
      ...generatedCases(name, options.generated, options.seed + 1),
    ].filter((c) => c.only !== 'kafka');
    const consumer = await newConsumer(name, ledger);
    const raw = await RawAmqp.open();
    const transport = await createRabbitTransport({
      url: serviceUrl('rabbitmq'),
      connectionName: name,
      consumer: { retryDelaysMs: [100, 200], shutdownTimeoutMs: 5_000 },
    });
    const canaries = [0, 1, 2].map((i) => `${name}-canary-${i}`);
    let names = { queues: [group] as string[], exchanges: [exchange] as string[] };
    try {
      const sub = await transport.subscribe({
        topics: [exchange],
        group,
        processor: consumer.pipeline,
      });
      names = rabbitNames(transport);
      const send = (cs: BadCase[]) =>
        raw.publish(
          exchange,
          cs.map((c) => ({
            routingKey: 'fault',
            body: c.body ?? Buffer.alloc(0),
            options: amqpOptions(c),
          })),
        );
      const half = Math.floor(cases.length / 2);
      await transport.publish([{ topic: exchange, message: orderMessage(canaries[0]!) }]);
      await send(cases.slice(0, half));
      await transport.publish([{ topic: exchange, message: orderMessage(canaries[1]!) }]);
      await send(cases.slice(half));
      await transport.publish([{ topic: exchange, message: orderMessage(canaries[2]!) }]);

      const messages = await raw.take(`${group}.dlq`, cases.length, 60_000);
      const until = Date.now() + 30_000;
      while (consumer.handled.length < canaries.length && Date.now() < until) await sleep(100);
      await sleep(500);
      messages.push(...(await raw.take(`${group}.dlq`, 1, 200)));
      const letters = messages.map((m) => {
        const dl = readAmqpDeadLetter(m);
        const header = m.properties.headers?.['x-fault-case'];
        return {
          caseId: typeof header === 'string' ? header : '?',
          code: dl.code,
          reason: dl.reason,
          body: Buffer.from(dl.message.body),
        };
      });
      const verdict = check(
        'rabbitmq',
        cases,
        letters,
        consumer,
        canaries,
        await ledger.hgetall(consumer.ledgerKey),
      );
      recordRow({
        scenario: '5 bad input (RabbitMQ)',
        sent: cases.length + canaries.length,
        processed: consumer.spy.records.length,
        applied: consumer.handled.length,
        duplicates: 0,
        lost: verdict.lost,
        appliedTwice: verdict.appliedTwice,
        // The last canary went out after every bad message: a consumer that stopped misses it.
        consumersLeftDead: consumer.handled.includes(canaries[2]!) ? 0 : 1,
        faults: `${cases.length} bad (${cases.filter((c) => c.family !== 'generated').length} hand-picked incl. typed AMQP headers; ${cases.filter((c) => c.family === 'generated').length} generated); ${letters.length} dead letters`,
      });
      expect(verdict.problems).toEqual([]);
      expect(sub.stats.deadLettered).toBe(cases.length);
      await sub.close();
    } finally {
      await transport.close().catch(() => undefined);
      await raw.remove(names.queues, names.exchanges);
      await raw.close();
      await consumer.close();
      await ledger.del(consumer.ledgerKey);
      ledger.disconnect();
    }
  });
}
