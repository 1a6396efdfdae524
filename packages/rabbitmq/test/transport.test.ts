import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeEnvelope, type Disposition } from '@backtrack/core';
import {
  RABBIT_ERROR_CODES,
  RabbitPublishError,
  RabbitTopologyError,
  RabbitUnroutableError,
  readDeadLetter,
  type RabbitTransport,
} from '@backtrack/rabbitmq';
import { BACKTRACK_HEADERS, fromAmqpMessage } from '@backtrack/rabbitmq/adapter';
import { probeService } from '../../../test/support/services.js';
import {
  BrokerProbe,
  RecordingProcessor,
  declaredNames,
  eventMessage,
  openTransport,
  sleep,
  uniqueName,
  waitFor,
} from './support.js';

const rabbit = await probeService('rabbitmq');

describe.skipIf(!rabbit.available)('RabbitTransport against the real broker', () => {
  let transport: RabbitTransport;
  let probe: BrokerProbe;
  const cleanup = { queues: [] as string[], exchanges: [] as string[] };

  beforeAll(async () => {
    transport = await openTransport(rabbit.url);
    probe = await BrokerProbe.open(rabbit.url);
  });

  afterAll(async () => {
    const names = declaredNames(transport);
    await transport?.close();
    await probe?.remove(
      [...names.queues, ...cleanup.queues],
      [...names.exchanges, ...cleanup.exchanges],
    );
    await probe?.close();
  });

  it('maps the envelope to AMQP properties and cloudEvents_ headers, and back losslessly', async () => {
    const exchange = uniqueName('bt-map');
    const queue = uniqueName('bt-map-q');
    cleanup.queues.push(queue);
    cleanup.exchanges.push(exchange);
    await transport.declare({
      exchanges: [{ name: exchange }],
      queues: [{ name: queue, type: 'classic' }],
      bindings: [{ exchange, queue, routingKey: 'order.*' }],
    });
    const time = '2026-11-25T10:11:12.345678Z';
    const message = eventMessage(
      'order.placed',
      { orderId: 'o-1', amount: 12.5 },
      { time, sagaid: 's-1' },
    );
    await transport.publish([{ topic: exchange, message }]);

    const [raw] = await probe.take(queue, 1);
    expect(raw).toBeDefined();
    const p = raw!.properties;
    expect(p.messageId).toBe(message.headers['id']);
    expect(p.type).toBe('order.placed');
    expect(p.contentType).toBe('application/json');
    expect(p.timestamp).toBe(Math.floor(Date.parse(time) / 1000));
    expect(p.deliveryMode).toBe(2);
    expect(raw!.fields.routingKey).toBe('order.placed');
    expect(p.headers).toMatchObject({
      cloudEvents_time: time,
      cloudEvents_source: '//backtrack/tests',
      cloudEvents_specversion: '1.0',
      cloudEvents_schemaversion: '1',
      cloudEvents_sagaid: 's-1',
      cloudEvents_producerservice: 'rabbit-tests',
    });
    expect(Object.keys(p.headers ?? {}).filter((k) => !k.startsWith('cloudEvents_'))).toEqual([]);

    const decoded = fromAmqpMessage(raw!);
    expect(decoded.headers).toEqual(message.headers);
    expect(Buffer.from(decoded.body).equals(Buffer.from(message.body))).toBe(true);
    expect(decodeEnvelope(decoded).data).toEqual({ orderId: 'o-1', amount: 12.5 });
  });

  it('rejects a message no queue is bound for with RabbitUnroutableError, not a silent loss', async () => {
    const exchange = uniqueName('bt-unroutable');
    cleanup.exchanges.push(exchange);
    await transport.declare({ exchanges: [{ name: exchange }] });
    const error = await transport
      .publish([{ topic: exchange, message: eventMessage('nobody.listens', {}) }])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RabbitUnroutableError);
    expect((error as RabbitUnroutableError).code).toBe(RABBIT_ERROR_CODES.UNROUTABLE);
    expect((error as RabbitUnroutableError).retriable).toBe(false);
  });

  it('rejects a message to a missing exchange with BT_ERR_AMQP_EXCHANGE_NOT_FOUND and keeps publishing', async () => {
    const error = await transport
      .publish([{ topic: uniqueName('bt-missing'), message: eventMessage('x.y', {}) }])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RabbitPublishError);
    expect((error as RabbitPublishError).code).toBe(RABBIT_ERROR_CODES.EXCHANGE_NOT_FOUND);

    // The broker closed the channel; the publisher opens a new one.
    const exchange = uniqueName('bt-after-404');
    const queue = uniqueName('bt-after-404-q');
    cleanup.queues.push(queue);
    cleanup.exchanges.push(exchange);
    await transport.declare({
      exchanges: [{ name: exchange }],
      queues: [{ name: queue }],
      bindings: [{ exchange, queue, routingKey: '#' }],
    });
    await transport.publish([{ topic: exchange, message: eventMessage('x.y', {}) }]);
    expect(await probe.messageCount(queue)).toBe(1);
  });

  it('rejects a message the queue refuses (x-overflow reject-publish) with BT_ERR_AMQP_PUBLISH_NACKED', async () => {
    const exchange = uniqueName('bt-nack');
    const queue = uniqueName('bt-nack-q');
    cleanup.queues.push(queue);
    cleanup.exchanges.push(exchange);
    await transport.declare({
      exchanges: [{ name: exchange }],
      queues: [
        {
          name: queue,
          type: 'classic',
          arguments: { 'x-max-length': 1, 'x-overflow': 'reject-publish' },
        },
      ],
      bindings: [{ exchange, queue, routingKey: '#' }],
    });
    await transport.publish([{ topic: exchange, message: eventMessage('a.b', {}) }]);
    const error = await transport
      .publish([{ topic: exchange, message: eventMessage('a.b', {}) }])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RabbitPublishError);
    expect((error as RabbitPublishError).code).toBe(RABBIT_ERROR_CODES.PUBLISH_NACKED);
    expect((error as RabbitPublishError).retriable).toBe(true);
    expect(await probe.messageCount(queue)).toBe(1);
  });

  it('fails a message without an id before anything is sent', async () => {
    const error = await transport
      .publish([
        { topic: 'amq.topic', message: eventMessage('a.b', {}) },
        { topic: 'amq.topic', message: { headers: { type: 'a.b' }, body: new Uint8Array() } },
      ])
      .catch((e: unknown) => e);
    expect((error as RabbitPublishError).code).toBe(RABBIT_ERROR_CODES.MESSAGE_INVALID);
  });

  it('declares a quorum queue with an explicit delivery limit and at-least-once dead-lettering', async () => {
    const exchange = uniqueName('bt-args');
    const group = uniqueName('bt-args-q');
    const sub = await transport.subscribe({
      topics: [exchange],
      group,
      processor: new RecordingProcessor(),
      deliveryLimit: 7,
    });
    await sub.close();
    // Re-declaring with the same arguments is accepted, with any other value refused: the broker
    // holds exactly these.
    const expected = {
      'x-queue-type': 'quorum',
      'x-delivery-limit': 7,
      'x-dead-letter-exchange': `${group}.dlx`,
      'x-dead-letter-routing-key': group,
      'x-dead-letter-strategy': 'at-least-once',
      'x-overflow': 'reject-publish',
    };
    await transport.connection.withChannel((ch) =>
      ch.assertQueue(group, { durable: true, arguments: expected }),
    );
    const conflict = await transport.connection
      .withChannel((ch) =>
        ch.assertQueue(group, { durable: true, arguments: { ...expected, 'x-delivery-limit': 8 } }),
      )
      .catch((e: unknown) => e);
    expect(String(conflict)).toMatch(/PRECONDITION_FAILED|inequivalent arg/);
    await transport.connection.withChannel((ch) =>
      ch.assertQueue(`${group}.retry.200ms`, {
        durable: true,
        arguments: {
          'x-queue-type': 'quorum',
          // Explicit on the retry queue too: RabbitMQ 4 would otherwise apply 20.
          'x-delivery-limit': 7,
          'x-message-ttl': 200,
          'x-dead-letter-exchange': '',
          'x-dead-letter-routing-key': group,
          'x-dead-letter-strategy': 'at-least-once',
          'x-overflow': 'reject-publish',
        },
      }),
    );
    await probe.remove(
      sub.topology.topology.queues!.map((q) => q.name),
      sub.topology.topology.exchanges!.map((e) => e.name),
    );
  });

  it('fails subscribe with BT_ERR_AMQP_TOPOLOGY_FAILED when the queue exists with other arguments, and keeps working', async () => {
    const group = uniqueName('bt-conflict-q');
    const exchange = uniqueName('bt-conflict');
    cleanup.queues.push(group, `${group}.dlq`, `${group}.retry.200ms`);
    cleanup.exchanges.push(exchange, `${group}.dlx`);
    await transport.declare({ queues: [{ name: group, type: 'classic' }] });
    const error = await transport
      .subscribe({ topics: [exchange], group, processor: new RecordingProcessor() })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RabbitTopologyError);
    expect((error as RabbitTopologyError).code).toBe(RABBIT_ERROR_CODES.TOPOLOGY_FAILED);
    expect((error as RabbitTopologyError).details['declaration']).toBe(`queue "${group}"`);
    expect([...transport.subscriptions].some((s) => s.queue === group)).toBe(false);
    // The transport still publishes: the exchange was declared, the binding never was, so the
    // broker returns the message (an error, not a loss).
    await expect(
      transport.publish([{ topic: exchange, message: eventMessage('still.works', {}) }]),
    ).rejects.toBeInstanceOf(RabbitUnroutableError);
  });

  describe('consumer runner', () => {
    it('carries out ack, retry (attempt + 1 after the delay) and dead-letter (reason, code, original bytes)', async () => {
      const exchange = uniqueName('bt-disp');
      const group = uniqueName('bt-disp-q');
      const decide = (m: {
        message: { headers: Record<string, string> };
        attempt: number;
      }): Disposition => {
        const kind = m.message.headers['type'];
        if (kind === 'test.retry' && m.attempt < 3) {
          return {
            kind: 'retry',
            delayMs: 150,
            reason: 'flaky downstream',
            error: new Error('ECONNRESET'),
          };
        }
        if (kind === 'test.dead') {
          return {
            kind: 'dead-letter',
            reason: 'schema mismatch at /amount',
            code: 'BT_ERR_SCHEMA_VALIDATION',
          };
        }
        return { kind: 'ack', outcome: 'handled' };
      };
      const processor = new RecordingProcessor(decide);
      const sub = await transport.subscribe({ topics: [exchange], group, processor, prefetch: 5 });
      const ok = eventMessage('test.ok', { n: 1 });
      const retry = eventMessage('test.retry', { n: 2 });
      const dead = eventMessage('test.dead', { n: 3 });
      const sentAt = Date.now();
      await transport.publish([
        { topic: exchange, message: ok },
        { topic: exchange, message: retry },
        { topic: exchange, message: dead },
      ]);

      await waitFor('retry to reach attempt 3', () =>
        processor.seen.some((m) => m.message.headers['type'] === 'test.retry' && m.attempt === 3),
      );
      const retries = processor.seen.filter((m) => m.message.headers['id'] === retry.headers['id']);
      expect(retries.map((m) => m.attempt)).toEqual([1, 2, 3]);
      // Two waits in the 200 ms retry queue.
      expect(Date.now() - sentAt).toBeGreaterThanOrEqual(400);
      expect(retries[2]!.message.headers).toEqual(retry.headers);
      expect(retries[2]!.origin).toMatchObject({ transport: 'rabbitmq', topic: exchange, group });

      const [letter] = await probe.take(`${group}.dlq`, 1);
      expect(letter).toBeDefined();
      const dl = readDeadLetter(letter!);
      expect(dl).toMatchObject({
        reason: 'schema mismatch at /amount',
        code: 'BT_ERR_SCHEMA_VALIDATION',
        queue: group,
        attempt: 1,
        originalExchange: exchange,
        originalRoutingKey: 'test.dead',
      });
      expect(dl.message.headers).toEqual(dead.headers);
      expect(Buffer.from(dl.message.body).equals(Buffer.from(dead.body))).toBe(true);

      await waitFor('acks', () => sub.stats.acked === 2);
      expect(sub.stats).toMatchObject({ retried: 2, deadLettered: 1, acked: 2 });
      await sub.close();
      expect(await probe.messageCount(group)).toBe(0);
    });

    it('redeliver nacks with requeue, pauses the consumer when told to, and never drops', async () => {
      const exchange = uniqueName('bt-redeliver');
      const group = uniqueName('bt-redeliver-q');
      let refusals = 0;
      const processor = new RecordingProcessor(() =>
        refusals++ < 2
          ? { kind: 'redeliver', reason: 'dedupe store down', delayMs: 300, pause: true }
          : { kind: 'ack', outcome: 'handled' },
      );
      const sub = await transport.subscribe({ topics: [exchange], group, processor, prefetch: 1 });
      const m = eventMessage('test.redeliver', {});
      const t0 = Date.now();
      await transport.publish([{ topic: exchange, message: m }]);
      await waitFor('the third delivery acked', () => sub.stats.acked === 1);
      expect(processor.ids()).toEqual([m.headers['id'], m.headers['id'], m.headers['id']]);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(600);
      // Redeliveries do not count as handler attempts.
      expect(processor.seen.map((s) => s.attempt)).toEqual([1, 1, 1]);
      expect(sub.stats.redelivered).toBe(2);
      await sub.close();
    });

    it('the broker dead-letters a message redelivered deliveryLimit times into the DLQ (at-least-once), not drops it', async () => {
      const exchange = uniqueName('bt-limit');
      const group = uniqueName('bt-limit-q');
      // A consumer that never manages to process the message (for example a lease that never frees).
      const processor = new RecordingProcessor(() => ({
        kind: 'redeliver',
        reason: 'lease held',
        delayMs: 0,
        pause: false,
      }));
      const sub = await transport.subscribe({
        topics: [exchange],
        group,
        processor,
        deliveryLimit: 3,
      });
      const message = eventMessage('test.limit', { n: 1 });
      await transport.publish([{ topic: exchange, message }]);
      const [letter] = await probe.take(`${group}.dlq`, 1);
      expect(letter).toBeDefined();
      const dl = readDeadLetter(letter!);
      expect(dl.code).toBe('broker:delivery_limit');
      expect(dl.queue).toBe(group);
      expect(dl.message.headers).toEqual(message.headers);
      // The first delivery plus deliveryLimit redeliveries.
      expect(processor.seen.length).toBeGreaterThanOrEqual(3);
      expect(processor.seen.length).toBeLessThanOrEqual(4);
      await sub.close();
    });

    it('retries a processor that throws and dead-letters it at processorErrorMaxAttempts', async () => {
      const exchange = uniqueName('bt-throw');
      const group = uniqueName('bt-throw-q');
      const processor = new RecordingProcessor(() => {
        throw new Error('bug in the pipeline');
      });
      const sub = await transport.subscribe({
        topics: [exchange],
        group,
        processor,
        processorErrorMaxAttempts: 2,
      });
      await transport.publish([{ topic: exchange, message: eventMessage('test.throw', {}) }]);
      const [letter] = await probe.take(`${group}.dlq`, 1);
      const dl = readDeadLetter(letter!);
      expect(dl.code).toBe(RABBIT_ERROR_CODES.PROCESSOR_FAILED);
      expect(dl.attempt).toBe(2);
      expect(dl.reason).toContain('bug in the pipeline');
      expect(letter!.properties.headers?.[BACKTRACK_HEADERS.error]).toContain(
        'bug in the pipeline',
      );
      await sub.close();
    });

    it('comes back when the broker cancels the consumer (queue deleted): re-declares and resumes', async () => {
      const exchange = uniqueName('bt-cancel');
      const group = uniqueName('bt-cancel-q');
      const processor = new RecordingProcessor();
      const sub = await transport.subscribe({ topics: [exchange], group, processor });
      const before = sub.channel;
      await probe.remove([group], [exchange]);
      await waitFor(
        'a new consumer channel',
        () => sub.channel !== undefined && sub.channel !== before,
      );
      const message = eventMessage('test.cancel', {});
      await transport.publish([{ topic: exchange, message }]);
      await waitFor('the message', () => processor.ids().includes(message.headers['id']!));
      await sub.close();
    });

    it('close() waits for in-flight handlers and acknowledges them', async () => {
      const exchange = uniqueName('bt-close');
      const group = uniqueName('bt-close-q');
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const processor = new RecordingProcessor(async () => {
        await gate;
        return { kind: 'ack', outcome: 'handled' };
      });
      const sub = await transport.subscribe({ topics: [exchange], group, processor });
      await transport.publish([{ topic: exchange, message: eventMessage('test.slow', {}) }]);
      await waitFor('the handler to start', () => processor.seen.length === 1);
      let closed = false;
      const closing = sub.close().then(() => (closed = true));
      await sleep(200);
      expect(closed).toBe(false);
      expect(sub.inFlight).toBe(1);
      release();
      await closing;
      expect(sub.stats.acked).toBe(1);
      expect(await probe.messageCount(group)).toBe(0);
    });
  });
});
