/**
 * 7. Rollback: reversing N journaled effects of a bad deploy (summarizeRollback + runRollback, which
 * plans and runs the items page by page from the journal, with the
 * Redis journal and RedisRollbackProgressStore, compensating events published in batches of the
 * run's default size, several batches in flight) onto Kafka and onto RabbitMQ, versus publishing
 * the same messages raw in the same batches (kafkajs send of one batch at a time, acks=all;
 * amqplib confirm channel with one batch in flight). The raw side publishes the run's own
 * compensating events (planned from the same journal window, so the same headers and bytes);
 * the lighter cancellations it published before session 9 are still timed (info, `*-lite`).
 */
import {
  DEFAULT_RUN_ROLLBACK_OPTIONS,
  runRollback,
  summarizeRollback,
  type Transport,
} from '@backtrack/core';
import { createKafkaTransport } from '@backtrack/kafka';
import { toKafkaRecord } from '@backtrack/kafka/adapter';
import { createRabbitTransport, type RabbitTransport } from '@backtrack/rabbitmq';
import { createRedisClient, RedisJournal, RedisRollbackProgressStore } from '@backtrack/redis';
import { Partitioners } from 'kafkajs';
import {
  benchRegistry,
  secondsSince,
  SERVICES,
  silentLogger,
  uniqueName,
  benchCompensations as compensations,
  encodedCancellations,
} from '../common.js';
import { createTopic, dropKafka, rawKafka } from '../kafkaSupport.js';
import { amqpOf, confirmPublish, rawConnect } from '../rabbitSupport.js';
import { deleteByPrefix } from '../redisKeys.js';
import { journalBadDeploy, rollbackMessagesOf } from '../rollbackMessages.js';
import type { Benchmark } from '../runner.js';

const SERVICE = 'bench-orders';
const BATCH = DEFAULT_RUN_ROLLBACK_OPTIONS.batchSize;

export const rollbackBenchmark: Benchmark = {
  id: 'rollback',
  title: 'Rollback: reversing N journaled effects onto Kafka and RabbitMQ vs raw publish',
  async run(o, rec) {
    const n = o.effects;
    const name = uniqueName('bench-rb');
    const topic = name;
    const exchange = name;
    const sinkQueue = `${name}.sink`;
    Object.assign(rec.params, { effects: n, batchSize: BATCH, topic, exchange });
    rec
      .metric('plan-kafka', {
        label: 'summarizeRollback (Redis journal), Kafka effects',
        role: 'info',
        unit: 'effects/s',
      })
      .metric('plan-rabbit', {
        label: 'summarizeRollback (Redis journal), RabbitMQ effects',
        role: 'info',
        unit: 'effects/s',
      })
      .metric('total-kafka', {
        label: 'summarizeRollback + runRollback, Kafka effects',
        role: 'info',
        unit: 'effects/s',
      })
      .metric('total-rabbit', {
        label: 'summarizeRollback + runRollback, RabbitMQ effects',
        role: 'info',
        unit: 'effects/s',
      })
      .metric('raw-kafka-lite', {
        label: `kafkajs send of ${BATCH} records, acks=all, lighter cancellations (before session 9)`,
        role: 'info',
        unit: 'msg/s',
      })
      .metric('raw-rabbit-lite', {
        label: `amqplib confirm channel, ${BATCH} in flight, lighter cancellations (before session 9)`,
        role: 'info',
        unit: 'msg/s',
      })
      .metric('raw-kafka', {
        label: `kafkajs send of ${BATCH} records, acks=all`,
        role: 'baseline',
        unit: 'msg/s',
      })
      .metric('bt-kafka', {
        label: 'runRollback onto KafkaTransport',
        role: 'backtrack',
        unit: 'effects/s',
      })
      .metric('raw-rabbit', {
        label: `amqplib confirm channel, ${BATCH} in flight`,
        role: 'baseline',
        unit: 'msg/s',
      })
      .metric('bt-rabbit', {
        label: 'runRollback onto RabbitTransport',
        role: 'backtrack',
        unit: 'effects/s',
      })
      .ratio('kafka', {
        label: 'rollback onto Kafka / raw publish',
        numerator: 'bt-kafka',
        denominator: 'raw-kafka',
        target: 0.8,
      })
      .ratio('rabbit', {
        label: 'rollback onto RabbitMQ / raw publish',
        numerator: 'bt-rabbit',
        denominator: 'raw-rabbit',
        target: 0.8,
      })
      .ratio('kafka-lite', {
        label: 'rollback onto Kafka / raw publish of the lighter cancellations (before session 9)',
        numerator: 'bt-kafka',
        denominator: 'raw-kafka-lite',
      })
      .ratio('rabbit-lite', {
        label: 'rollback onto RabbitMQ / raw publish of the lighter cancellations',
        numerator: 'bt-rabbit',
        denominator: 'raw-rabbit-lite',
      });

    const redis = createRedisClient(SERVICES.redis);
    const journal = new RedisJournal(
      { keyPrefix: `${name}:journal`, recordFormat: 'fields' },
      { redis },
    );
    const progressPrefix = `${name}:progress`;
    const progressStore = new RedisRollbackProgressStore({ keyPrefix: progressPrefix }, { redis });
    const kafka = rawKafka();
    const admin = kafka.admin();
    await admin.connect();
    const producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    const kafkaTransport = createKafkaTransport(
      { brokers: SERVICES.kafka, clientId: 'bench-backtrack' },
      { logger: silentLogger },
    );
    const model = await rawConnect();
    const channel = await model.createConfirmChannel();
    channel.on('error', () => undefined); // a failed call rejects; see rawConnect
    let rabbitTransport: RabbitTransport | undefined;
    try {
      rabbitTransport = await createRabbitTransport(
        { url: SERVICES.amqp, connectionName: 'bench-backtrack' },
        { logger: silentLogger },
      );
      await createTopic(admin, topic);
      await channel.assertExchange(exchange, 'topic', { durable: true });
      await channel.assertQueue(sinkQueue, {
        durable: true,
        arguments: { 'x-queue-type': 'quorum' },
      });
      await channel.bindQueue(sinkQueue, exchange, '#');
      await producer.connect();
      await kafkaTransport.connect();

      // The bad deploys' effects: N journaled events per transport (set-up, not timed).
      rec.log(` journaling ${n} effects per transport`);
      for (const version of ['bad-kafka', 'bad-rabbit']) {
        const where = version === 'bad-kafka' ? topic : exchange;
        await journalBadDeploy(journal, n, { service: SERVICE, version, topic: where });
      }
      // What the raw side publishes: the run's own compensating events, encoded up front (and,
      // as before session 9, the same number of lighter cancellations).
      const cancellations = encodedCancellations(n, SERVICE);
      const runMessages = {
        kafka: await rollbackMessagesOf(journal, SERVICE, 'bad-kafka'),
        rabbit: await rollbackMessagesOf(journal, SERVICE, 'bad-rabbit'),
      };
      for (const side of ['kafka', 'rabbit'] as const) {
        if (runMessages[side].length !== n)
          throw new Error(`${side}: planned ${runMessages[side].length} messages, expected ${n}`);
      }
      for (let run = 0; run < o.runs; run++) {
        rec.log(` run ${run + 1}/${o.runs}`);
        const sides = [
          'raw-kafka-lite',
          'raw-kafka',
          'bt-kafka',
          'raw-rabbit-lite',
          'raw-rabbit',
          'bt-rabbit',
        ];
        const order =
          run % 2 === 0
            ? sides
            : [
                'bt-kafka',
                'raw-kafka',
                'raw-kafka-lite',
                'bt-rabbit',
                'raw-rabbit',
                'raw-rabbit-lite',
              ];
        for (const side of order) {
          if (side === 'raw-kafka' || side === 'raw-kafka-lite') {
            const source = side === 'raw-kafka' ? runMessages.kafka : cancellations;
            const records = source.map((m) => toKafkaRecord(m));
            const t = performance.now();
            for (let start = 0; start < n; start += BATCH) {
              await producer.send({
                topic,
                acks: -1,
                messages: records.slice(start, start + BATCH).map((r) => ({
                  key: r.key,
                  value: r.value,
                  headers: r.headers as Record<string, Buffer | string>,
                })),
              });
            }
            rec.record(side, n / secondsSince(t));
          } else if (side === 'raw-rabbit' || side === 'raw-rabbit-lite') {
            const source = side === 'raw-rabbit' ? runMessages.rabbit : cancellations;
            const messages = source.map(amqpOf);
            const t = performance.now();
            await confirmPublish(channel, exchange, n, BATCH, (i) => messages[i]!);
            rec.record(side, n / secondsSince(t));
          } else {
            const kafkaSide = side === 'bt-kafka';
            const transport: Transport = kafkaSide ? kafkaTransport : rabbitTransport;
            const start = performance.now();
            let t = start;
            // Streamed: the summary (planId, counts) in bounded memory; the run plans page by page.
            const plan = await summarizeRollback(
              {
                service: SERVICE,
                version: kafkaSide ? 'bad-kafka' : 'bad-rabbit',
                strategy: 'compensate',
              },
              { journal, registry: benchRegistry, compensations },
            );
            rec.record(kafkaSide ? 'plan-kafka' : 'plan-rabbit', n / secondsSince(t));
            if (plan.counts.items !== n)
              throw new Error(`plan has ${plan.counts.items} items, expected ${n}`);
            t = performance.now();
            const result = await runRollback(
              plan,
              { runId: `${name}-${side}-${run}` },
              {
                journal,
                transport,
                progressStore,
                registry: benchRegistry,
                compensations,
                logger: silentLogger,
              },
            );
            const s = secondsSince(t);
            if (result.status !== 'completed' || result.summary.reversed !== n) {
              throw new Error(
                `rollback ended ${result.status} with ${result.summary.reversed} of ${n} reversed`,
              );
            }
            rec.record(side, n / s);
            // The whole way back (the run takes the summary's planning of its first effects).
            rec.record(kafkaSide ? 'total-kafka' : 'total-rabbit', n / secondsSince(start));
          }
        }
      }
      rec.note(
        `Default ${n.toLocaleString('en-US')} effects per run (the issue asks for 100k; pass --effects 100000). Summarizing is timed apart (info), and summary + run (info): the runs time runRollback alone (it takes the planning of a summary of at most 5,000 effects), which reads and plans the effects page by page from the journal, journals every compensating event, publishes it in batches of ${BATCH} (${DEFAULT_RUN_ROLLBACK_OPTIONS.batchesInFlight} in flight) and records progress before and after each batch.`,
      );
    } finally {
      await producer.disconnect().catch(() => undefined);
      await kafkaTransport.close().catch(() => undefined);
      await rabbitTransport?.close().catch(() => undefined);
      await channel.deleteQueue(sinkQueue).catch(() => undefined);
      await channel.deleteExchange(exchange).catch(() => undefined);
      await model.close().catch(() => undefined);
      await dropKafka(admin, [topic], []);
      await admin.disconnect().catch(() => undefined);
      await journal.destroy().catch(() => undefined);
      await deleteByPrefix(redis, `{${progressPrefix}}`).catch(() => undefined);
      await redis.quit().catch(() => undefined);
    }
  },
};
