/**
 * One side of the RabbitMQ consume benchmark alone, for profiles: loads N messages into a quorum
 * queue, then consumes them with the Backtrack consumer (Redis dedupe) or the hand-written one,
 * `rounds` times, printing CPU µs per message. Profile with
 * `TSX_TSCONFIG_PATH=../tsconfig.json node --import tsx src/rabbitCpu.ts bt 20000 3 /tmp/prof`
 * (side `bt` or `hand`, messages, rounds, and a directory for one `.cpuprofile` per round that
 * covers the consume only, not the loading; made with `node:inspector`).
 */
import { consumerTopology, DEFAULT_RABBIT_CONSUMER_OPTIONS } from '@backtrack/rabbitmq';
import { RedisDedupeStore } from '@backtrack/redis';
import { writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { Session } from 'node:inspector/promises';
import { encodedOrders, silentLogger, uniqueName } from './common.js';
import { amqpOf, confirmPublish } from './rabbitSupport.js';
import {
  backtrackConsume,
  handWrittenConsume,
  openConsumeWorld,
} from './benchmarks/rabbitConsume.js';

const side = process.argv[2] ?? 'bt';
const n = Number(process.argv[3] ?? 20000);
const rounds = Number(process.argv[4] ?? 3);
const prefetch = 50;
const profileDir = process.argv[5];
// Socket writes per remote port (Redis, AMQP) during the consume.
const writes: Record<string, number> = {};
let counting = false;
const write = Socket.prototype.write;
Socket.prototype.write = function (this: Socket, ...args: unknown[]) {
  if (counting) writes[String(this.remotePort)] = (writes[String(this.remotePort)] ?? 0) + 1;
  return (write as (...a: unknown[]) => boolean).apply(this, args);
} as typeof write;
const session = profileDir === undefined ? undefined : new Session();
session?.connect();
await session?.post('Profiler.enable');

const exchange = uniqueName('bench-rcpu');
const prefix = `${exchange}:`;
const world = await openConsumeWorld('bench-rabbit-cpu', exchange, prefix);
const { model, channel, redis, transport, queues, topologies } = world;
try {
  await channel.assertExchange(exchange, 'topic', { durable: true });
  const messages = encodedOrders(n).map(amqpOf);
  for (let round = 0; round < rounds; round++) {
    const queue = `${exchange}.${side}.${round}`;
    queues.push(queue);
    if (side === 'bt') {
      const topology = consumerTopology({
        queue,
        exchanges: [exchange],
        deliveryLimit: DEFAULT_RABBIT_CONSUMER_OPTIONS.deliveryLimit,
        retryDelaysMs: DEFAULT_RABBIT_CONSUMER_OPTIONS.retryDelaysMs,
      });
      topologies.push(topology);
      await transport.declare(topology.topology);
    } else {
      await channel.assertQueue(queue, {
        durable: true,
        arguments: {
          'x-queue-type': 'quorum',
          'x-delivery-limit': DEFAULT_RABBIT_CONSUMER_OPTIONS.deliveryLimit,
        },
      });
      await channel.bindQueue(queue, exchange, '#');
    }
    await confirmPublish(channel, exchange, n, 500, (i) => messages[i]!);
    await session?.post('Profiler.start');
    for (const k of Object.keys(writes)) delete writes[k];
    counting = true;
    const r =
      side === 'bt'
        ? await backtrackConsume(
            transport,
            exchange,
            queue,
            n,
            prefetch,
            new RedisDedupeStore({ keyPrefix: prefix }, { redis, logger: silentLogger }),
          )
        : await handWrittenConsume(model, redis, `${prefix}${queue}:`, queue, n, prefetch);
    counting = false;
    console.log(
      `socket writes per message: ${Object.entries(writes)
        .map(([port, count]) => `${port}: ${(count / n).toFixed(3)}`)
        .join(', ')}`,
    );
    if (session) {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(`${profileDir}/${side}-${round}.cpuprofile`, JSON.stringify(profile));
    }
    console.log(
      `${side} round ${round}: ${r.cpuUs.toFixed(1)} µs CPU/msg, ${r.rate.toFixed(0)} msg/s, ${(n / (r.windows ?? n) || 0).toFixed(1)} msg/window`,
    );
    await channel.unbindQueue(queue, exchange, '#').catch(() => undefined);
  }
} finally {
  await world.close();
}
