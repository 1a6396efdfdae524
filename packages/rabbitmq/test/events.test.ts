import type { EventEmitter } from 'node:events';
import { afterAll, describe, expect, it } from 'vitest';
import type { TransportEventMap, TransportEventName } from '@backtrack/core';
import type { RabbitTransport } from '@backtrack/rabbitmq';
import { probeService } from '../../../test/support/services.js';
import {
  BrokerProbe,
  RecordingProcessor,
  brokerCloseConnection,
  declaredNames,
  eventMessage,
  openTransport,
  socketOf,
  uniqueName,
  waitFor,
} from './support.js';

const rabbit = await probeService('rabbitmq');

type Seen = { name: TransportEventName; event: TransportEventMap[TransportEventName] };

/** Records every transport event of `transport`, in order. */
function record(transport: RabbitTransport): Seen[] {
  const seen: Seen[] = [];
  for (const name of [
    'connection.blocked',
    'connection.unblocked',
    'connection.disconnected',
    'connection.reconnected',
    'consumer.crashed',
    'consumer.rebalancing',
  ] as const) {
    transport.on(name, (event) => seen.push({ name, event }));
  }
  return seen;
}

describe.skipIf(!rabbit.available)('RabbitMQ transport events', () => {
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

  it('a dropped socket and a broker-side close are each connection.disconnected then connection.reconnected', async () => {
    const transport = await openTransport(rabbit.url);
    transports.push(transport);
    const seen = record(transport);
    // A subscription: its channel closes with the connection, which is not a consumer crash.
    const processor = new RecordingProcessor();
    await transport.subscribe({
      topics: [uniqueName('bt-events-x')],
      group: uniqueName('bt-events-q'),
      processor,
    });

    socketOf(transport).destroy(new Error('ECONNRESET (simulated by the test)'));
    await waitFor('a reconnect', () => seen.some((s) => s.name === 'connection.reconnected'));
    expect(seen.map((s) => s.name)).toEqual(['connection.disconnected', 'connection.reconnected']);
    expect(seen[0]!.event).toMatchObject({ transport: 'rabbitmq', reconnecting: true });
    expect(seen[1]!.event).toMatchObject({ transport: 'rabbitmq', connects: 2 });
    expect((seen[1]!.event as { downtimeMs: number }).downtimeMs).toBeGreaterThanOrEqual(0);

    // The broker closes the connection (rabbitmqctl close_connection); the socket where
    // rabbitmqctl is not usable here.
    if (!(await brokerCloseConnection(socketOf(transport).localPort)))
      socketOf(transport).destroy();
    await waitFor(
      'a second reconnect',
      () => seen.filter((s) => s.name === 'connection.reconnected').length === 2,
      30_000,
    );
    expect(seen.map((s) => s.name)).toEqual([
      'connection.disconnected',
      'connection.reconnected',
      'connection.disconnected',
      'connection.reconnected',
    ]);
    expect(seen[3]!.event).toMatchObject({ connects: 3 });
    // Give a late consumer.crashed time to show up: none may.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(seen.map((s) => s.name)).toEqual([
      'connection.disconnected',
      'connection.reconnected',
      'connection.disconnected',
      'connection.reconnected',
    ]);
  });

  it('a consumer the broker cancelled (its queue deleted) is consumer.crashed, re-attached, and consumes on', async () => {
    const transport = await openTransport(rabbit.url);
    transports.push(transport);
    const seen = record(transport);
    const exchange = uniqueName('bt-events-x');
    const group = uniqueName('bt-events-q');
    const processor = new RecordingProcessor();
    const sub = await transport.subscribe({ topics: [exchange], group, processor });
    await transport.publish([{ topic: exchange, message: eventMessage('events.test', { n: 1 }) }]);
    await waitFor('the first message', () => processor.seen.length === 1);

    const probe = await BrokerProbe.open(rabbit.url);
    try {
      await probe.remove([group], []);
    } finally {
      await probe.close();
    }
    await waitFor('consumer.crashed', () => seen.some((s) => s.name === 'consumer.crashed'));
    expect(seen[0]).toEqual({
      name: 'consumer.crashed',
      event: expect.objectContaining({
        transport: 'rabbitmq',
        group,
        restarting: false,
        attempt: 1,
        retryInMs: 100,
      }),
    });
    // Re-attached (the queue and its bindings declared again): it consumes what comes next.
    await waitFor('the consumer back', () => sub.channel !== undefined);
    await transport.publish([{ topic: exchange, message: eventMessage('events.test', { n: 2 }) }]);
    await waitFor('the second message', () => processor.seen.length === 2);
    expect(seen.filter((s) => s.name.startsWith('connection.'))).toEqual([]);
  });

  it('connection.blocked and connection.unblocked follow what amqplib reports', async () => {
    // A real alarm needs the shared broker's memory or disk limits changed: the test emits the
    // amqplib connection's own `blocked`/`unblocked` events, which it raises on those frames.
    const transport = await openTransport(rabbit.url);
    transports.push(transport);
    const seen = record(transport);
    const amqpConnection = transport.connection.model!.connection as unknown as EventEmitter;
    amqpConnection.emit('blocked', 'low on memory');
    amqpConnection.emit('unblocked');
    expect(seen).toEqual([
      {
        name: 'connection.blocked',
        event: expect.objectContaining({ transport: 'rabbitmq', reason: 'low on memory' }),
      },
      { name: 'connection.unblocked', event: expect.objectContaining({ transport: 'rabbitmq' }) },
    ]);
  });
});
