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
 *
 * Measurement knobs (session 12): `WARM=k` journals k more versions and runs and publishes them
 * first, unmeasured (a warm JIT, as in a benchmark's later runs); `PIDS=kafka=PID,redis=PID` adds
 * those processes' CPU µs per effect during the run (`brokerUs`, `redisUs`) and the raw publish
 * (`rawBrokerUs`), from /proc; `STATS=<file>` writes Redis' commandstats of the run there and, in
 * `<file>.slow`, its commands' time grouped by command and script (slowlog at 0 during the run:
 * it costs Redis time too); `HEAP=<file>` a sampling allocation profile of the run (objects
 * collected by GC included); `EXP=nojournal,noprogress` switches those writes off;
 * `MAX_BATCH_RECORDS=n` the Kafka transport's `producer.maxBatchRecords`; `LANES=n` the run's
 * `batchesInFlight`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
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
  SERVICES,
  silentLogger,
  uniqueName,
  benchCompensations as compensations,
  encodedCancellations,
} from './common.js';
import { createTopic, dropKafka, rawKafka } from './kafkaSupport.js';
import { amqpOf, confirmPublish, rawConnect } from './rabbitSupport.js';
import { deleteByPrefix } from './redisKeys.js';
import { journalBadDeploy, rollbackMessagesOf } from './rollbackMessages.js';

/** utime + stime of a process in µs (PIDS env: kafka=PID,redis=PID), 0 when not given. */
const procPids = Object.fromEntries(
  (process.env.PIDS ?? '')
    .split(',')
    .filter(Boolean)
    .map((kv) => kv.split('=') as [string, string]),
);
const procCpu = (name: string): number => {
  const pid = procPids[name];
  if (!pid) return 0;
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1e6) / 100;
};
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
    {
      brokers: SERVICES.kafka,
      clientId: 'prof-backtrack',
      ...(process.env.MAX_BATCH_RECORDS
        ? { producer: { maxBatchRecords: Number(process.env.MAX_BATCH_RECORDS) } }
        : {}),
    },
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
  const warm = Number(process.env.WARM ?? 0);
  for (const version of ['bad', ...Array.from({ length: warm }, (_, w) => `warm${w}`)]) {
    await journalBadDeploy(journal, n, { service: SERVICE, version, topic: name });
  }
  // What planning and the run are given, for the warm-up runs and the measured one alike (the
  // EXP switches below change the journal and progress store objects themselves).
  const planDeps = { journal, registry: benchRegistry, compensations };
  const runDeps = { ...planDeps, transport, progressStore, logger: silentLogger };
  // Warm-up runs (not measured): the JIT warm, as in a benchmark's later runs.
  for (let w = 0; w < warm; w++) {
    const p = await summarizeRollback(
      { service: SERVICE, version: `warm${w}`, strategy: 'compensate' },
      planDeps,
    );
    await runRollback(p, { runId: `${name}-warm${w}` }, runDeps);
    await raw();
  }
  if (process.env.RAW !== 'lite') cancellations = await rollbackMessagesOf(journal, SERVICE, 'bad');
  const summarizeCpu = process.cpuUsage();
  const plan = await summarizeRollback(
    { service: SERVICE, version: 'bad', strategy: 'compensate' },
    planDeps,
  );
  // The summary's CPU too: the run takes its planning of the first effects.
  const summarizeUsed = process.cpuUsage(summarizeCpu);
  const rawCpu = process.cpuUsage();
  const rawK = procCpu('kafka');
  const rawT = performance.now();
  await raw();
  const rawKafkaUs = (procCpu('kafka') - rawK) / n;
  const rawS = (performance.now() - rawT) / 1000;
  const rawUsed = process.cpuUsage(rawCpu);
  const session = process.env.PROFILE ? new Session() : undefined;
  if (session) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    await session.post('Profiler.start');
  }
  const heap = process.env.HEAP ? new Session() : undefined;
  if (heap) {
    heap.connect();
    await heap.post('HeapProfiler.startSampling', {
      samplingInterval: 4096,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    } as never);
  }
  // Parts of the run switched off (measurement only; the run's output is then not journaled):
  // EXP=nojournal (the journal's appends and marks), EXP=noprogress (the item writes), or both.
  const exp = process.env.EXP ?? '';
  if (exp.includes('nojournal')) {
    Object.assign(journal, { appendAndMarkPublished: async () => 0, markPublished: async () => 0 });
  }
  if (exp.includes('noprogress')) Object.assign(progressStore, { setItems: async () => undefined });
  const cpu = process.cpuUsage();
  if (process.env.STATS) {
    await redis.config('RESETSTAT');
    await redis.slowlog('RESET');
    await redis.config('SET', 'slowlog-log-slower-than', '0');
  }
  const k0 = procCpu('kafka');
  const r0 = procCpu('redis');
  const t = performance.now();
  const result = await runRollback(
    plan,
    {
      runId: `${name}-run`,
      ...(process.env.LANES ? { batchesInFlight: Number(process.env.LANES) } : {}),
    },
    runDeps,
  );
  const s = (performance.now() - t) / 1000;
  const used = process.cpuUsage(cpu);
  const kafkaUs = (procCpu('kafka') - k0) / n;
  const redisUs = (procCpu('redis') - r0) / n;
  if (process.env.STATS) {
    await redis.config('SET', 'slowlog-log-slower-than', '10000');
    writeFileSync(process.env.STATS, await redis.info('commandstats'));
    const log = (await redis.slowlog('GET', -1)) as [number, number, number, string[]][];
    const by = new Map<string, [number, number]>();
    for (const [, , us, args] of log) {
      const k =
        args[0] === 'evalsha' ? `evalsha ${String(args[1]).slice(0, 8)} keys=${args[2]}` : args[0]!;
      const kk = k.replace(/keys=\d+/, 'keys');
      const v = by.get(kk) ?? [0, 0];
      v[0] += 1;
      v[1] += us;
      by.set(kk, v);
    }
    writeFileSync(
      `${process.env.STATS}.slow`,
      [...by].map(([k, [c, us]]) => `${k}\t${c}\t${us}\t${(us / n).toFixed(2)}`).join('\n'),
    );
  }
  if (session) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(process.env.PROFILE!, JSON.stringify(profile));
    session.disconnect();
  }
  if (heap) {
    const { profile } = await heap.post('HeapProfiler.stopSampling');
    writeFileSync(process.env.HEAP!, JSON.stringify(profile));
    heap.disconnect();
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
      ...(process.env.PIDS
        ? {
            brokerUs: Math.round(kafkaUs),
            rawBrokerUs: Math.round(rawKafkaUs),
            redisUs: Math.round(redisUs),
          }
        : {}),
    }),
  );
} finally {
  await cleanup();
  await journal.destroy().catch(() => undefined);
  await deleteByPrefix(redis, `{${progressPrefix}}`).catch(() => undefined);
  await redis.quit().catch(() => undefined);
}
