/**
 * Dead-letter tooling on the real broker: re-drive never removes a dead letter whose copy was not
 * routed, and browsing leaves every dead letter in place, also after many looks.
 */
import amqplib from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RABBIT_ERROR_CODES,
  RabbitError,
  RabbitUnroutableError,
  browseDeadLetters,
  consumerTopology,
  declareTopology,
  capabilitiesOf,
  redriveDeadLetters,
} from '@backtrack/rabbitmq';
import { probeService } from '../../../test/support/services.js';
import { uniqueName } from './support.js';

const rabbit = await probeService('rabbitmq');

describe.skipIf(!rabbit.available)('RabbitMQ dead-letter queue tooling', () => {
  let model: amqplib.ChannelModel;
  let channel: amqplib.Channel;
  const queues: string[] = [];
  const exchanges: string[] = [];

  beforeAll(async () => {
    model = await amqplib.connect(rabbit.url);
    channel = await model.createChannel();
  });
  afterAll(async () => {
    for (const q of queues) await channel?.deleteQueue(q).catch(() => undefined);
    for (const e of exchanges) await channel?.deleteExchange(e).catch(() => undefined);
    await model?.close();
  });

  /** A dead-letter queue with `ids` in it, each dead-lettered from `exchange`. */
  async function deadLetterQueue(
    exchange: string,
    ids: string[],
    declare: () => Promise<string> = async () => {
      const q = uniqueName('bt-dlt-dlq');
      await channel.assertQueue(q, { durable: false });
      return q;
    },
  ): Promise<string> {
    const dlq = await declare();
    queues.push(dlq);
    for (const id of ids) {
      channel.sendToQueue(dlq, Buffer.from(JSON.stringify({ id, n: 1 })), {
        messageId: id,
        type: 'stock.released',
        contentType: 'application/json',
        persistent: true,
        headers: {
          cloudEvents_specversion: '1.0',
          cloudEvents_source: '//test',
          cloudEvents_schemaversion: '1',
          'x-backtrack-dead-letter-reason': 'handler kept failing',
          'x-backtrack-dead-letter-code': 'BT_ERR_CONSUMER_RETRIES_EXHAUSTED',
          'x-backtrack-original-exchange': exchange,
          'x-backtrack-original-routing-key': 'stock.released',
        },
      });
    }
    await expect.poll(async () => (await channel.checkQueue(dlq)).messageCount).toBe(ids.length);
    return dlq;
  }

  it('keeps a dead letter whose copy is returned unroutable, with a coded error', async () => {
    // The target exchange exists but nothing is bound to it: every copy is returned.
    const exchange = uniqueName('bt-dlt-unbound');
    exchanges.push(exchange);
    await channel.assertExchange(exchange, 'topic', { durable: false });
    const dlq = await deadLetterQueue(exchange, ['u-1', 'u-2']);

    const error = await redriveDeadLetters(model, { from: dlq }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RabbitError);
    expect((error as RabbitError).code).toBe(RABBIT_ERROR_CODES.REDRIVE_FAILED);
    expect((error as RabbitError).cause).toBeInstanceOf(RabbitUnroutableError);
    expect((error as RabbitError).details).toMatchObject({ messageId: 'u-1', redriven: 0 });
    // Both dead letters are still there, bodies intact.
    await expect.poll(async () => (await channel.checkQueue(dlq)).messageCount).toBe(2);
    const left = await browseDeadLetters(model, { queue: dlq });
    expect(left.map((d) => d.message.headers.id)).toEqual(['u-1', 'u-2']);
    expect(left.map((d) => JSON.parse(Buffer.from(d.message.body).toString()))).toEqual([
      { id: 'u-1', n: 1 },
      { id: 'u-2', n: 1 },
    ]);

    // Once a queue is bound the same run succeeds and removes exactly what it re-drove.
    const target = uniqueName('bt-dlt-target');
    queues.push(target);
    await channel.assertQueue(target, { durable: false });
    await channel.bindQueue(target, exchange, '#');
    const result = await redriveDeadLetters(model, { from: dlq, limit: 1 });
    expect(result.redriven.map((d) => d.message.headers.id)).toEqual(['u-1']);
    await expect.poll(async () => (await channel.checkQueue(target)).messageCount).toBe(1);
    await expect.poll(async () => (await channel.checkQueue(dlq)).messageCount).toBe(1);
    const copy = await channel.get(target, { noAck: true });
    expect(copy && copy.properties.messageId).toBe('u-1');
    expect(copy && copy.properties.headers?.['x-backtrack-redriven-from']).toBe(dlq);
    expect(copy && copy.properties.headers?.['x-backtrack-dead-letter-code']).toBeUndefined();
  });

  it('keeps the dead letter when the target exchange does not exist', async () => {
    const dlq = await deadLetterQueue(uniqueName('bt-dlt-missing'), ['m-1']);
    const error = await redriveDeadLetters(model, { from: dlq }).catch((e: unknown) => e);
    expect((error as RabbitError).code).toBe(RABBIT_ERROR_CODES.REDRIVE_FAILED);
    await expect.poll(async () => (await channel.checkQueue(dlq)).messageCount).toBe(1);
  });

  it('names a missing queue with a coded error', async () => {
    const error = await browseDeadLetters(model, { queue: uniqueName('bt-dlt-none') }).catch(
      (e: unknown) => e,
    );
    expect((error as RabbitError).code).toBe(RABBIT_ERROR_CODES.QUEUE_NOT_FOUND);
  });

  it('lists the dead letters of a quorum dead-letter queue 25 times and they all stay, with their bodies', async () => {
    // The dead-letter queue exactly as a subscription declares it (quorum, explicit limit).
    const group = uniqueName('bt-dlt-group');
    const topology = consumerTopology({ queue: group, exchanges: [], retryDelaysMs: [200] });
    const declaration = topology.topology.queues!.find((q) => q.name === topology.deadLetterQueue)!;
    expect(declaration.type).toBe('quorum');
    const ids = ['b-1', 'b-2', 'b-3'];
    const dlq = await deadLetterQueue(uniqueName('bt-dlt-origin'), ids, async () => {
      const declareChannel = await model.createChannel();
      await declareTopology(
        declareChannel,
        { queues: [declaration] },
        capabilitiesOf(model.connection.serverProperties.version as string | undefined),
      );
      await declareChannel.close();
      return declaration.name;
    });
    for (let i = 0; i < 25; i++) {
      const listed = await browseDeadLetters(model, { queue: dlq });
      expect(listed.map((d) => d.message.headers.id)).toEqual(ids);
      expect(listed.map((d) => d.code)).toEqual(ids.map(() => 'BT_ERR_CONSUMER_RETRIES_EXHAUSTED'));
    }
    await expect.poll(async () => (await channel.checkQueue(dlq)).messageCount).toBe(3);
    const taken: amqplib.GetMessage[] = [];
    for (let i = 0; i < 3; i++) {
      const m = await channel.get(dlq, { noAck: true });
      if (m) taken.push(m);
    }
    expect(taken.map((m) => JSON.parse(m.content.toString()))).toEqual(
      ids.map((id) => ({ id, n: 1 })),
    );
    // What a look costs: at most one delivery per list (3.x and 4.0-4.2 count the channel close,
    // 4.3+ does not), far below the dead-letter queue's explicit limit.
    for (const m of taken) {
      const count = Number(m.properties.headers?.['x-delivery-count'] ?? 0);
      expect(count).toBeLessThanOrEqual(25);
      expect(count).toBeLessThan(declaration.deliveryLimit!);
    }
  });
});
