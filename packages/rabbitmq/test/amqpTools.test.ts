/**
 * A client we did not write: `amqp-publish` from Debian's amqp-tools (librabbitmq-c) publishes
 * CloudEvents in binary mode (AMQP binding 1.0.2: `cloudEvents_<name>` application properties as
 * strings, `datacontenttype` as the content-type property) to a real broker, and a Backtrack
 * consumer reads them. A message whose body is not the JSON its content type says is
 * dead-lettered with the reason and its original bytes, and the consumer goes on.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createConsumerPipeline, defineEvent, handle, type Envelope } from '@backtrack/core';
import { readDeadLetter } from '@backtrack/rabbitmq';
import { ensureDebianTool } from '../../../test/support/debianTool.js';
import { probeService } from '../../../test/support/services.js';
import { uniqueName, useBroker, waitFor } from './support.js';

const rabbit = await probeService('rabbitmq');

const OrderPlaced = defineEvent('order.placed').version(
  1,
  z.object({ orderId: z.string(), amountCents: z.int() }),
);

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

/** Publishes one message with `amqp-publish`, the attributes as `cloudEvents_` headers. */
function amqpPublish(url: string, exchange: string, id: string, body: string): void {
  const attributes: Record<string, string> = {
    specversion: '1.0',
    id,
    source: '//foreign/amqp-tools',
    type: 'order.placed',
    time: '2026-03-04T05:06:07Z',
    subject: 'order/o-7',
    schemaversion: '1',
    tenantid: 'acme',
    traceparent: TRACEPARENT,
  };
  const headers = Object.entries(attributes).flatMap(([name, value]) => [
    '-H',
    `cloudEvents_${name}: ${value}`,
  ]);
  execFileSync(
    ensureDebianTool('amqp-publish', 'amqp-tools'),
    ['-u', url, '-e', exchange, '-r', 'order.placed', '-p', '-C', 'application/json', ...headers],
    { input: body, timeout: 30_000 },
  );
}

describe.skipIf(!rabbit.available)('amqp-tools (amqp-publish) as a foreign producer', () => {
  const broker = useBroker(rabbit.url);

  it('its binary-mode CloudEvent is handled; a body that is not JSON is dead-lettered whole and the consumer goes on', async () => {
    const exchange = uniqueName('amqp-tools');
    const group = uniqueName('amqp-tools-q');
    const seen: Envelope<unknown>[] = [];
    const pipeline = createConsumerPipeline({
      name: group,
      handlers: [handle(OrderPlaced, ({ envelope }) => void seen.push(envelope))],
    });
    const sub = await broker.transport.subscribe({
      topics: [exchange],
      group,
      processor: pipeline,
    });

    amqpPublish(
      rabbit.url,
      exchange,
      'tools-1',
      JSON.stringify({ orderId: 'o-7', amountCents: 700 }),
    );
    await waitFor('the foreign event', () => seen.length === 1);
    expect(seen[0]).toEqual({
      id: 'tools-1',
      source: '//foreign/amqp-tools',
      type: 'order.placed',
      specversion: '1.0',
      time: '2026-03-04T05:06:07Z',
      datacontenttype: 'application/json',
      subject: 'order/o-7',
      schemaversion: 1,
      extensions: { tenantid: 'acme', traceparent: TRACEPARENT },
      data: { orderId: 'o-7', amountCents: 700 },
    });

    const bad = '{"orderId": "o-8", amountCents: not json';
    amqpPublish(rabbit.url, exchange, 'tools-2', bad);
    const [letter] = await broker.probe.take(`${group}.dlq`, 1, 20_000);
    expect(letter).toBeDefined();
    const dl = readDeadLetter(letter!);
    expect(dl.code).toBe('BT_ERR_MALFORMED_MESSAGE');
    expect(dl.reasonCode).toBe('invalid-json');
    expect(dl.reason).toMatch(/body is not valid JSON/);
    expect(letter!.content.toString()).toBe(bad);

    amqpPublish(
      rabbit.url,
      exchange,
      'tools-3',
      JSON.stringify({ orderId: 'o-9', amountCents: 900 }),
    );
    await waitFor('the next event after the bad one', () => seen.length === 2);
    expect(seen[1]!.id).toBe('tools-3');
    await sub.close();
  });
});
