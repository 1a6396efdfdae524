/**
 * 4. RabbitMQ publish: a raw amqplib confirm channel (persistent, mandatory, the same number of
 * unconfirmed messages in flight) versus the Backtrack journaling publisher on the RabbitMQ
 * transport (Redis journal), plus the RabbitTransport alone. The publisher's time is split into
 * its phases (mean latency per publish).
 */
import { createPublisher, encodeEnvelope, type Publisher } from '@backtrack/core';
import { createRabbitTransport, type RabbitTransport } from '@backtrack/rabbitmq';
import { createRedisClient, RedisJournal } from '@backtrack/redis';
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
import { newPhaseTimes, timedJournal, timedTransport } from '../publishSupport.js';
import { amqpOf, confirmPublish, rawConnect } from '../rabbitSupport.js';
import type { Benchmark } from '../runner.js';

export const rabbitPublishBenchmark: Benchmark = {
  id: 'rabbitmq-publish',
  title: 'RabbitMQ publish: raw confirm channel vs Backtrack publisher (Redis journal)',
  async run(o, rec) {
    const n = o.publish;
    const exchange = uniqueName('bench-rp');
    const queue = `${exchange}.sink`;
    Object.assign(rec.params, {
      messages: n,
      inFlight: o.concurrency,
      exchange,
      queueType: 'quorum',
    });
    rec
      .metric('raw', { label: 'amqplib confirm channel', role: 'baseline', unit: 'msg/s' })
      .metric('bt-transport', {
        label: 'RabbitTransport.publish (no journal)',
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
        label: 'journaling publisher / raw',
        numerator: 'bt',
        denominator: 'raw',
        target: 0.9,
      })
      .ratio('transport', {
        label: 'RabbitTransport / raw',
        numerator: 'bt-transport',
        denominator: 'raw',
      });

    const model = await rawConnect();
    const channel = await model.createConfirmChannel();
    channel.on('error', () => undefined); // a failed call rejects; see rawConnect
    const redis = createRedisClient(SERVICES.redis);
    const journal = new RedisJournal(
      { keyPrefix: uniqueName('bench-rp-journal'), recordFormat: 'fields' },
      { redis },
    );
    let transport: RabbitTransport | undefined;
    try {
      transport = await createRabbitTransport(
        { url: SERVICES.amqp, connectionName: 'bench-backtrack' },
        { logger: silentLogger },
      );
      const t0 = transport;
      await channel.assertExchange(exchange, 'topic', { durable: true });
      // Every message is routed (the Backtrack publisher publishes `mandatory`).
      await channel.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
      await channel.bindQueue(queue, exchange, '#');
      const times = newPhaseTimes();
      const publisher: Publisher = createPublisher(
        { service: 'bench', version: '1.0.0', topicFor: () => exchange },
        {
          transport: timedTransport(t0, times),
          journal: timedJournal(journal, times),
          registry: benchRegistry,
          logger: silentLogger,
        },
      );
      const publishOne = (i: number) => {
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
      };
      await runConcurrently(Math.min(50, n), o.concurrency, publishOne); // warm-up
      for (let run = 0; run < o.runs; run++) {
        rec.log(` run ${run + 1}/${o.runs}`);
        const sides = ['raw', 'bt-transport', 'bt'];
        const order = sides.map((_, i) => sides[(i + run) % sides.length]!);
        for (const side of order) {
          if (side === 'raw') {
            // The same AMQP messages as Backtrack sends, built before the clock starts.
            const messages = encodedOrders(n).map(amqpOf);
            const t = performance.now();
            await confirmPublish(channel, exchange, n, o.concurrency, (i) => messages[i]!);
            rec.record('raw', n / secondsSince(t));
          } else if (side === 'bt-transport') {
            const t = performance.now();
            await runConcurrently(n, o.concurrency, (i) => {
              const message = encodeEnvelope(
                BenchOrderPlaced.envelope(orderData(i), { source: '//bench', version: 1 }),
              );
              return t0.publish([{ topic: exchange, message }]);
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
        `The raw channel sends the same AMQP messages (CloudEvents properties and headers, body) built before timing. Each side keeps ${o.concurrency} unconfirmed publishes in flight, one message per publish, persistent and mandatory, into one quorum queue.`,
      );
    } finally {
      await channel.deleteQueue(queue).catch(() => undefined);
      await channel.deleteExchange(exchange).catch(() => undefined);
      await transport?.close().catch(() => undefined);
      await model.close().catch(() => undefined);
      await journal.destroy().catch(() => undefined);
      await redis.quit().catch(() => undefined);
    }
  },
};
