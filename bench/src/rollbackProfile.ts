/**
 * Profiling aid (issue 14): `tsx bench/src/rollbackProfile.ts <kafka|rabbit> [effects]` journals N
 * effects in Redis (not timed), summarizes them, then times runRollback alone (Redis journal and
 * progress) onto Kafka or RabbitMQ. Run under `node --cpu-prof` to see where the run's CPU goes:
 * `node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/src/rollbackProfile.ts kafka 20000`.
 * With `PROFILE=<file>`, a CPU profile of the timed run alone (node:inspector) is written there:
 * `PROFILE=/tmp/kafka.cpuprofile tsx bench/src/rollbackProfile.ts kafka 20000`.
 * Prints one JSON line: effects/s and CPU µs per effect of the run.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import {
  defineCompensations,
  emit,
  runRollback,
  summarizeRollback,
  type Transport,
} from '@backtrack/core';
import { createKafkaTransport } from '@backtrack/kafka';
import { createRabbitTransport } from '@backtrack/rabbitmq';
import { createRedisClient, RedisJournal, RedisRollbackProgressStore } from '@backtrack/redis';
import {
  BenchOrderCancelled,
  benchRegistry,
  BenchOrderPlaced,
  encodedOrders,
  runConcurrently,
  SERVICES,
  silentLogger,
  uniqueName,
} from './common.js';
import { createTopic, dropKafka, rawKafka } from './kafkaSupport.js';
import { rawConnect } from './rabbitSupport.js';
import { deleteByPrefix } from './redisKeys.js';

const side = process.argv[2] === 'rabbit' ? 'rabbit' : 'kafka';
const n = Number(process.argv[3] ?? 20_000);
const SERVICE = 'bench-orders';
const compensations = defineCompensations().reversible(BenchOrderPlaced, (d) =>
  emit(BenchOrderCancelled, { orderId: d.orderId, reason: 'rollback of a bad deploy' }),
);

const name = uniqueName('prof-rb');
const redis = createRedisClient(SERVICES.redis);
const journal = new RedisJournal({ keyPrefix: `${name}:journal` }, { redis });
const progressPrefix = `${name}:progress`;
const progressStore = new RedisRollbackProgressStore({ keyPrefix: progressPrefix }, { redis });
const kafka = rawKafka();
const admin = kafka.admin();
let transport: Transport;
let cleanup: () => Promise<void>;
if (side === 'kafka') {
  await admin.connect();
  await createTopic(admin, name);
  const t = createKafkaTransport(
    { brokers: SERVICES.kafka, clientId: 'prof-backtrack' },
    { logger: silentLogger },
  );
  await t.connect();
  transport = t;
  cleanup = async () => {
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
  const plan = await summarizeRollback(
    { service: SERVICE, version: 'bad', strategy: 'compensate' },
    { journal, registry: benchRegistry, compensations },
  );
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
    }),
  );
} finally {
  await cleanup();
  await journal.destroy().catch(() => undefined);
  await deleteByPrefix(redis, `{${progressPrefix}}`).catch(() => undefined);
  await redis.quit().catch(() => undefined);
}
