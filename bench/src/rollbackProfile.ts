/**
 * Profiling aid (issue 14): `tsx bench/src/rollbackProfile.ts <kafka|rabbit> [effects]` journals N
 * effects in Redis (not timed), summarizes them, then times runRollback alone (Redis journal and
 * progress) onto Kafka or RabbitMQ.
 * With `PROFILE=<file>`, a CPU profile of the timed run alone (node:inspector) is written there:
 * `PROFILE=/tmp/kafka.cpuprofile tsx bench/src/rollbackProfile.ts kafka 20000`.
 * Prints one JSON line: effects/s and CPU µs per effect of the run, and (`raw`) the same for a raw
 * publish of the run's own compensating events (planned from the same journal window; with
 * `RAW=lite`, the lighter cancellations used before session 9) in batches of the run's size
 * (kafkajs send, acks=all; amqplib confirm channel), the CPU floor the rollback is compared with.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import {
  DEFAULT_RUN_ROLLBACK_OPTIONS,
  runRollback,
  summarizeRollback,
  type Transport,
} from '@backtrack/core';
import { createKafkaTransport } from '@backtrack/kafka';
import { toKafkaRecord } from '@backtrack/kafka/adapter';
import { Partitioners } from 'kafkajs';
import { createRabbitTransport } from '@backtrack/rabbitmq';
import { createRedisClient, RedisJournal, RedisRollbackProgressStore } from '@backtrack/redis';
import {
  benchRegistry,
  encodedOrders,
  runConcurrently,
  SERVICES,
  silentLogger,
  uniqueName,
  benchCompensations as compensations,
  encodedCancellations,
} from './common.js';
import { createTopic, dropKafka, rawKafka } from './kafkaSupport.js';
import { amqpOf, confirmPublish, rawConnect } from './rabbitSupport.js';
import { deleteByPrefix } from './redisKeys.js';
import { rollbackMessagesOf } from './rollbackMessages.js';

const side = process.argv[2] === 'rabbit' ? 'rabbit' : 'kafka';
const n = Number(process.argv[3] ?? 20_000);
const SERVICE = 'bench-orders';

const name = uniqueName('prof-rb');
const redis = createRedisClient(SERVICES.redis);
const journal = new RedisJournal(
  { keyPrefix: `${name}:journal`, recordFormat: 'fields' },
  { redis },
);
const progressPrefix = `${name}:progress`;
const progressStore = new RedisRollbackProgressStore({ keyPrefix: progressPrefix }, { redis });
const kafka = rawKafka();
const admin = kafka.admin();
const BATCH = DEFAULT_RUN_ROLLBACK_OPTIONS.batchSize;
/** What the raw side publishes: set to the run's own messages once they are journaled. */
let cancellations = encodedCancellations(n, SERVICE);
let transport: Transport;
let cleanup: () => Promise<void>;
/** The raw publish of the same number of messages (timed apart). */
let raw: () => Promise<void>;
if (side === 'kafka') {
  await admin.connect();
  await createTopic(admin, name);
  const t = createKafkaTransport(
    { brokers: SERVICES.kafka, clientId: 'prof-backtrack' },
    { logger: silentLogger },
  );
  await t.connect();
  transport = t;
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  raw = async () => {
    const records = cancellations.map((m) => toKafkaRecord(m));
    for (let start = 0; start < n; start += BATCH) {
      await producer.send({
        topic: name,
        acks: -1,
        messages: records.slice(start, start + BATCH).map((r) => ({
          key: r.key,
          value: r.value,
          headers: r.headers as Record<string, Buffer | string>,
        })),
      });
    }
  };
  cleanup = async () => {
    await producer.disconnect().catch(() => undefined);
    await t.close().catch(() => undefined);
    await dropKafka(admin, [name], []);
    await admin.disconnect().catch(() => undefined);
  };
} else {
  const model = await rawConnect();
  const channel = await model.createConfirmChannel();
  channel.on('error', () => undefined);
  await channel.assertExchange(name, 'topic', { durable: true });
  await channel.assertQueue(`${name}.sink`, {
    durable: true,
    arguments: { 'x-queue-type': 'quorum' },
  });
  await channel.bindQueue(`${name}.sink`, name, '#');
  const t = await createRabbitTransport(
    { url: SERVICES.amqp, connectionName: 'prof-backtrack' },
    { logger: silentLogger },
  );
  transport = t;
  raw = async () => {
    const messages = cancellations.map(amqpOf);
    await confirmPublish(channel, name, n, BATCH, (i) => messages[i]!);
  };
  cleanup = async () => {
    await t.close().catch(() => undefined);
    await channel.deleteQueue(`${name}.sink`).catch(() => undefined);
    await channel.deleteExchange(name).catch(() => undefined);
    await model.close().catch(() => undefined);
  };
}
try {
  const messages = encodedOrders(n, `//bench/${SERVICE}`);
  await runConcurrently(n, 32, (i) => {
    const m = messages[i]!;
    return journal.append({
      id: m.headers.id!,
      type: m.headers.type!,
      schemaVersion: 1,
      key: `o-${i}`,
      topic: name,
      service: SERVICE,
      version: 'bad',
      time: m.headers.time!,
      message: m,
    });
  });
  if (process.env.RAW !== 'lite') cancellations = await rollbackMessagesOf(journal, SERVICE, 'bad');
  const summarizeCpu = process.cpuUsage();
  const plan = await summarizeRollback(
    { service: SERVICE, version: 'bad', strategy: 'compensate' },
    { journal, registry: benchRegistry, compensations },
  );
  // The summary's CPU too: the run takes its planning of the first effects.
  const summarizeUsed = process.cpuUsage(summarizeCpu);
  const rawCpu = process.cpuUsage();
  const rawT = performance.now();
  await raw();
  const rawS = (performance.now() - rawT) / 1000;
  const rawUsed = process.cpuUsage(rawCpu);
  const session = process.env.PROFILE ? new Session() : undefined;
  if (session) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    await session.post('Profiler.start');
  }
  const cpu = process.cpuUsage();
  const t = performance.now();
  const result = await runRollback(
    plan,
    { runId: `${name}-run` },
    {
      journal,
      transport,
      progressStore,
      registry: benchRegistry,
      compensations,
      logger: silentLogger,
    },
  );
  const s = (performance.now() - t) / 1000;
  const used = process.cpuUsage(cpu);
  if (session) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(process.env.PROFILE!, JSON.stringify(profile));
    session.disconnect();
  }
  if (result.status !== 'completed' || result.summary.reversed !== n)
    throw new Error(`run ended ${result.status}, ${result.summary.reversed}/${n}`);
  console.log(
    JSON.stringify({
      side,
      effects: n,
      perS: Math.round(n / s),
      cpuUsPerEffect: Math.round((used.user + used.system) / n),
      summarizeCpuUsPerEffect: Math.round((summarizeUsed.user + summarizeUsed.system) / n),
      rawPerS: Math.round(n / rawS),
      rawCpuUsPerMessage: Math.round((rawUsed.user + rawUsed.system) / n),
    }),
  );
} finally {
  await cleanup();
  await journal.destroy().catch(() => undefined);
  await deleteByPrefix(redis, `{${progressPrefix}}`).catch(() => undefined);
  await redis.quit().catch(() => undefined);
}
