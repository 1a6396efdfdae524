import { afterAll, describe, expect, it } from 'vitest';
import { InMemoryDedupeStore } from '@backtrack/core';
import type { RabbitTransport } from '@backtrack/rabbitmq';
import { probeService } from '../../../test/support/services.js';
import {
  BrokerProbe,
  brokerCloseConnection,
  declaredNames,
  eventMessage,
  idempotentProcessor,
  openTransport,
  sleep,
  socketOf,
  uniqueName,
  waitFor,
} from './support.js';

const rabbit = await probeService('rabbitmq');

describe.skipIf(!rabbit.available)('connection drop while publishing and consuming', () => {
  const transports: RabbitTransport[] = [];
  afterAll(async () => {
    const probe = await BrokerProbe.open(rabbit.url);
    for (const t of transports) {
      const names = declaredNames(t);
      await t.close();
      await probe.remove(names.queues, names.exchanges);
    }
    await probe.close();
  });

  it('every confirmed message is consumed exactly once in effect across three forced closes (reset, broker close, silent)', async () => {
    // A short heartbeat so the silent drop (3) is noticed in seconds.
    const transport = await openTransport(rabbit.url, {
      heartbeatSeconds: 2,
      consumer: { prefetch: 20 },
    });
    transports.push(transport);
    const exchange = uniqueName('bt-drop');
    const group = uniqueName('bt-drop-q');
    const effects = new Map<string, number>();
    const store = new InMemoryDedupeStore();
    const processor = idempotentProcessor(store, group, async (m) => {
      await sleep(Math.random() * 4);
      const id = m.message.headers['id']!;
      effects.set(id, (effects.get(id) ?? 0) + 1);
    });
    const sub = await transport.subscribe({ topics: [exchange], group, processor });

    const total = 900;
    const confirmed = new Set<string>();
    const failed = new Map<string, unknown>();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < total) {
        const n = next++;
        const message = eventMessage('drop.test', { n });
        try {
          await transport.publish([{ topic: exchange, message }]);
          confirmed.add(message.headers['id']!);
        } catch (error) {
          failed.set(message.headers['id']!, error);
        }
      }
    };
    const publishing = Promise.all(Array.from({ length: 8 }, worker));

    // Drop 1: the socket fails under the client (a connection reset).
    await waitFor('150 confirmed', () => confirmed.size >= 150, 30_000);
    const connectsBefore = transport.connection.connects;
    socketOf(transport).destroy(new Error('ECONNRESET (simulated by the test)'));
    await waitFor('a reconnect', () => transport.connection.connects > connectsBefore, 30_000);

    // Drop 2: the broker closes the connection (rabbitmqctl), or the socket again where
    // rabbitmqctl is not usable.
    await waitFor('400 confirmed', () => confirmed.size >= 400, 30_000);
    const connectsMid = transport.connection.connects;
    const brokerClosed = await brokerCloseConnection(socketOf(transport).localPort);
    if (!brokerClosed) socketOf(transport).destroy();
    await waitFor('a second reconnect', () => transport.connection.connects > connectsMid, 30_000);

    // Drop 3: the socket vanishes silently (no error, no FIN seen by the client): only the
    // heartbeat notices.
    await waitFor('650 confirmed', () => confirmed.size >= 650, 30_000);
    const connectsLate = transport.connection.connects;
    socketOf(transport).destroy();
    await waitFor('a third reconnect', () => transport.connection.connects > connectsLate, 30_000);

    await publishing;
    await waitFor(
      'every confirmed message to take effect',
      () => [...confirmed].every((id) => effects.has(id)),
      30_000,
    );
    // Let late redeliveries arrive before counting effects.
    await sleep(500);

    expect(
      failed.size,
      `publishes that failed: ${[...failed.values()].map(String).join('; ')}`,
    ).toBe(0);
    expect(confirmed.size).toBe(total);
    const twice = [...effects].filter(([, count]) => count !== 1);
    expect(twice).toEqual([]);
    for (const id of confirmed) expect(effects.get(id)).toBe(1);
    expect(transport.connection.connects).toBeGreaterThanOrEqual(4);
    // Messages in flight when the connection died were sent again, not reported as sent.
    expect(transport.publisher.stats.resent).toBeGreaterThan(0);
    expect(transport.publisher.stats.failed).toBe(0);
    const deliveries = processor.seen.length;
    console.info(
      `connection drop: ${total} confirmed, ${deliveries} deliveries (${deliveries - total} duplicates absorbed), ` +
        `broker-side close: ${brokerClosed}, consumer ${JSON.stringify(sub.stats)}, ` +
        `publisher ${JSON.stringify(transport.publisher.stats)}`,
    );
    expect(await new BrokerProbeCount(rabbit.url).count(`${group}.dlq`)).toBe(0);
  });
});

class BrokerProbeCount {
  constructor(private readonly url: string) {}
  async count(queue: string): Promise<number> {
    const probe = await BrokerProbe.open(this.url);
    try {
      return await probe.messageCount(queue);
    } finally {
      await probe.close();
    }
  }
}
