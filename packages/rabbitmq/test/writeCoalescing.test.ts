/**
 * The client's write path on the real broker: publishes issued together reach the socket in a
 * few writes (not one per message), and the frames Backtrack encodes itself arrive as the
 * messages that were sent: properties, every header (UTF-8 included) and body, in order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEnvelope, encodeEnvelope } from '@backtrack/core';
import type { RabbitTransport } from '@backtrack/rabbitmq';
import { toAmqpMessage } from '@backtrack/rabbitmq/adapter';
import { probeService } from '../../../test/support/services.js';
import { BrokerProbe, openTransport, uniqueName } from './support.js';

const rabbit = await probeService('rabbitmq');

describe.skipIf(!rabbit.available)('AMQP write path (real broker)', () => {
  let transport: RabbitTransport;
  let probe: BrokerProbe;
  const exchange = uniqueName('bt-writes');
  const queue = `${exchange}.q`;

  beforeAll(async () => {
    transport = await openTransport(rabbit.url);
    probe = await BrokerProbe.open(rabbit.url);
    await transport.declare({
      exchanges: [{ name: exchange }],
      queues: [{ name: queue, type: 'classic' }],
      bindings: [{ exchange, queue, routingKey: '#' }],
    });
  });

  afterAll(async () => {
    await transport?.close();
    await probe?.remove([queue], [exchange]);
    await probe?.close();
  });

  it('sends 200 publishes of one turn in a few socket writes; they arrive as sent, in order', async () => {
    const socket = (
      transport.connection.model as unknown as {
        connection: { stream: { _write: unknown; _writev: unknown } };
      }
    ).connection.stream;
    let writes = 0;
    const { _write: write, _writev: writev } = socket;
    socket._write = function (this: unknown, ...args: unknown[]) {
      writes += 1;
      return (write as (...a: unknown[]) => unknown).apply(this, args);
    };
    socket._writev = function (this: unknown, ...args: unknown[]) {
      writes += 1;
      return (writev as (...a: unknown[]) => unknown).apply(this, args);
    };
    const messages = Array.from({ length: 200 }, (_, n) =>
      encodeEnvelope(
        createEnvelope({
          type: 'test.written',
          source: '//test/wrïtes',
          data: { n, note: n % 7 === 0 ? 'ünïcødé ✓ 𝄞'.repeat(n % 3) : 'plain' },
          schemaversion: 1,
          partitionkey: `k-${n % 5}`,
          subject: n % 2 === 0 ? `sübject-${n}` : undefined,
        }),
      ),
    );
    try {
      await transport.publish(messages.map((message) => ({ topic: exchange, message })));
    } finally {
      socket._write = write;
      socket._writev = writev;
    }
    // One write per publish without coalescing (200); the socket's high-water mark (16 KiB) splits
    // the turn into a handful of writevs.
    expect(writes).toBeLessThan(40);
    const received = await probe.take(queue, 200);
    expect(received).toHaveLength(200);
    received.forEach((got, n) => {
      const sent = toAmqpMessage(messages[n]!);
      expect(got.content.equals(sent.content)).toBe(true);
      expect(got.properties.headers).toEqual(sent.options.headers);
      expect(got.properties.messageId).toBe(sent.options.messageId);
      expect(got.properties.type).toBe(sent.options.type);
      expect(got.properties.contentType).toBe(sent.options.contentType);
      expect(got.properties.timestamp).toBe(sent.options.timestamp);
      expect(got.properties.deliveryMode).toBe(2);
      expect(got.fields.routingKey).toBe('test.written');
    });
  });
});
