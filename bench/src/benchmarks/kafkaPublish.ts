/**
 * 2. Kafka publish: a raw kafkajs idempotent producer (acks=all, one message per send, the same
 * number of sends in flight), the same producer batched (as many records per send as there are
 * publishes in flight, one send at a time), versus Backtrack's journaling publisher (validate,
 * envelope, encode, Redis journal appendMany, KafkaTransport publish coalesced into one produce
 * request, journal markPublished), plus the KafkaTransport alone. The journaling publisher's
 * time is split into its phases (summed journal/transport call time, divided by messages).
 */
import { createPublisher, encodeEnvelope, type Publisher } from '@backtrack/core';
import { createKafkaTransport } from '@backtrack/kafka';
import { toKafkaRecord } from '@backtrack/kafka/adapter';
import { createRedisClient, RedisJournal } from '@backtrack/redis';
import { Partitioners } from 'kafkajs';
import {
  benchRegistry,
  BenchOrderPlaced,
  encodedOrders,
  orderData,
  runConcurrently,
  secondsSince,
  SERVICES,
  silentLogger,
  uniqueName,
} from '../common.js';
import { createTopic, dropKafka, rawKafka } from '../kafkaSupport.js';
import { newPhaseTimes, timedJournal, timedTransport } from '../publishSupport.js';
import type { Benchmark } from '../runner.js';

export const kafkaPublishBenchmark: Benchmark = {
  id: 'kafka-publish',
  title: 'Kafka publish: raw idempotent producer vs journaling publisher (Redis journal)',
  async run(o, rec) {
    const n = o.publish;
    const topic = uniqueName('bench-kp');
    Object.assign(rec.params, {
      messages: n,
      inFlight: o.concurrency,
      topic,
      acks: 'all',
      maxInFlightRequests: 1,
    });
    rec
      .metric('raw', { label: 'kafkajs idempotent producer.send', role: 'baseline', unit: 'msg/s' })
      .metric('raw-batched', {
        label: `kafkajs producer.send, ${o.concurrency} records per send`,
        role: 'baseline',
        unit: 'msg/s',
      })
      .metric('bt-transport', {
        label: 'KafkaTransport.publish (no journal)',
        role: 'backtrack',
        unit: 'msg/s',
      })
      .metric('bt', {
        label: 'journaling publisher, Redis journal',
        role: 'backtrack',
        unit: 'msg/s',
      })
      .metric('t-append', { label: 'journal.appendMany time / message', role: 'info', unit: 'ms' })
      .metric('t-publish', { label: 'transport.publish time / message', role: 'info', unit: 'ms' })
      .metric('t-mark', { label: 'journal.markPublished time / message', role: 'info', unit: 'ms' })
      .metric('t-rest', { label: 'validate + envelope + encode + rest', role: 'info', unit: 'ms' })
      .ratio('publisher', {
        label: 'journaling publisher / raw one by one',
        numerator: 'bt',
        denominator: 'raw',
        target: 0.9,
      })
      .ratio('publisher-batched', {
        label: 'journaling publisher / raw batched',
        numerator: 'bt',
        denominator: 'raw-batched',
        target: 0.5,
      })
      .ratio('transport', {
        label: 'KafkaTransport / raw',
        numerator: 'bt-transport',
        denominator: 'raw',
      });

    const kafka = rawKafka();
    const admin = kafka.admin();
    await admin.connect();
    const producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    const redis = createRedisClient(SERVICES.redis);
    const journal = new RedisJournal(
      { keyPrefix: uniqueName('bench-kp-journal'), recordFormat: 'fields' },
      { redis },
    );
    const transport = createKafkaTransport(
      { brokers: SERVICES.kafka, clientId: 'bench-backtrack' },
      { logger: silentLogger },
    );
    const times = newPhaseTimes();
    const publisher: Publisher = createPublisher(
      { service: 'bench', version: '1.0.0', topicFor: () => topic },
      {
        transport: timedTransport(transport, times),
        journal: timedJournal(journal, times),
        registry: benchRegistry,
        logger: silentLogger,
      },
    );
    try {
      await createTopic(admin, topic);
      await producer.connect();
      await transport.connect();
      // Warm-up (connections, metadata, Lua scripts), not timed.
      await runConcurrently(Math.min(50, n), o.concurrency, (i) => publishOne(i));
      for (let run = 0; run < o.runs; run++) {
        rec.log(` run ${run + 1}/${o.runs}`);
        const sides = ['raw', 'raw-batched', 'bt-transport', 'bt'];
        const order = sides.map((_, i) => sides[(i + run) % sides.length]!);
        for (const side of order) {
          if (side === 'raw') {
            // The same bytes on the wire as Backtrack sends (CloudEvents headers and body), built
            // before the clock starts: the baseline is kafkajs alone.
            const records = encodedOrders(n).map((m) => toKafkaRecord(m));
            const t = performance.now();
            await runConcurrently(n, o.concurrency, (i) => {
              const r = records[i]!;
              return producer.send({
                topic,
                acks: -1,
                messages: [
                  {
                    key: r.key,
                    value: r.value,
                    headers: r.headers as Record<string, Buffer | string>,
                  },
                ],
              });
            });
            rec.record('raw', n / secondsSince(t));
          } else if (side === 'raw-batched') {
            const records = encodedOrders(n).map((m) => toKafkaRecord(m));
            const t = performance.now();
            for (let i = 0; i < n; i += o.concurrency) {
              await producer.send({
                topic,
                acks: -1,
                messages: records.slice(i, i + o.concurrency).map((r) => ({
                  key: r.key,
                  value: r.value,
                  headers: r.headers as Record<string, Buffer | string>,
                })),
              });
            }
            rec.record('raw-batched', n / secondsSince(t));
          } else if (side === 'bt-transport') {
            const t = performance.now();
            await runConcurrently(n, o.concurrency, (i) => {
              const data = orderData(i);
              const message = encodeEnvelope(
                BenchOrderPlaced.envelope(data, { source: '//bench', version: 1 }),
              );
              return transport.publish([{ topic, key: data.orderId, message }]);
            });
            rec.record('bt-transport', n / secondsSince(t));
          } else {
            Object.assign(times, newPhaseTimes());
            let total = 0;
            const t = performance.now();
            await runConcurrently(n, o.concurrency, async (i) => {
              const s = performance.now();
              await publishOne(i);
              total += performance.now() - s;
            });
            rec.record('bt', n / secondsSince(t));
            rec.record('t-append', times.append / n);
            rec.record('t-publish', times.publish / n);
            rec.record('t-mark', times.mark / n);
            rec.record('t-rest', (total - times.append - times.publish - times.mark) / n);
          }
        }
      }
      rec.note(
        `The raw producer sends the same records (CloudEvents headers and body) built before timing. Each side keeps ${o.concurrency} publishes in flight, one message per publish (the journaling publisher publishes one event per call and coalesces concurrent calls); the batched raw producer sends ${o.concurrency} records per send, one send at a time. Phase times are the summed time of the journal and transport calls divided by messages (a batch's call counts once).`,
      );
    } finally {
      await producer.disconnect().catch(() => undefined);
      await transport.close().catch(() => undefined);
      await journal.destroy().catch(() => undefined);
      await redis.quit().catch(() => undefined);
      await dropKafka(admin, [topic], []);
      await admin.disconnect().catch(() => undefined);
    }

    function publishOne(i: number) {
      const v1 = orderData(i);
      return publisher.publish(
        BenchOrderPlaced,
        {
          orderId: v1.orderId,
          amountCents: Math.round(v1.amount * 100),
          currency: 'EUR',
          customer: v1.customer,
          sku: v1.sku,
        },
        { key: v1.orderId },
      );
    }
  },
};
