import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { RabbitConnection, SetupHook } from '../connection/RabbitConnection.js';
import type { RabbitPublishError } from '../errors.js';
import { RABBIT_ERROR_CODES, RabbitUnroutableError } from '../errors.js';
import { capabilitiesOf } from '../topology/topology.js';
import { RabbitPublisher } from './RabbitPublisher.js';

type Callback = (error: Error | null) => void;
interface Sent {
  exchange: string;
  routingKey: string;
  messageId: string;
  cb: Callback;
}

/** A confirm channel that behaves like amqplib's at the edges the publisher relies on. */
class FakeChannel extends EventEmitter {
  pending: unknown = [];
  readonly sent: Sent[] = [];
  publish(
    exchange: string,
    routingKey: string,
    _content: Buffer,
    options: { messageId?: string },
    cb: Callback,
  ): boolean {
    if (this.pending === null)
      throw Object.assign(new Error('Channel closed'), { name: 'IllegalOperationError' });
    this.sent.push({ exchange, routingKey, messageId: options.messageId ?? '', cb });
    return true;
  }
  ack(i: number): void {
    this.sent[i]!.cb(null);
  }
  nack(i: number): void {
    this.sent[i]!.cb(new Error('message nacked'));
  }
  returnMessage(i: number): void {
    const s = this.sent[i]!;
    this.emit('return', {
      fields: { exchange: s.exchange, routingKey: s.routingKey, replyText: 'NO_ROUTE' },
      properties: { messageId: s.messageId },
    });
  }
  /** The broker or the network closes the channel; confirms still owed fail with "channel closed". */
  die(error?: Error & { code?: number }, confirmed = new Set<number>()): void {
    if (error) this.emit('error', error);
    this.pending = null;
    this.sent.forEach((s, i) => {
      if (!confirmed.has(i)) s.cb(new Error('channel closed'));
    });
    this.emit('close');
  }
  async close(): Promise<void> {
    this.pending = null;
  }
}

class FakeModel {
  readonly channels: FakeChannel[] = [];
  async createConfirmChannel(): Promise<FakeChannel> {
    const channel = new FakeChannel();
    this.channels.push(channel);
    return channel;
  }
}

class FakeConnection {
  model: FakeModel | undefined = new FakeModel();
  readonly hooks: SetupHook[] = [];
  addSetupHook(_name: string, hook: SetupHook): () => void {
    this.hooks.push(hook);
    return () => undefined;
  }
  async waitForModel(): Promise<FakeModel> {
    return this.model!;
  }
  /** A reconnect: a new model, and the setup hooks run on it. */
  async reconnect(): Promise<FakeModel> {
    const model = new FakeModel();
    this.model = model;
    for (const hook of this.hooks) await hook(model as never, capabilitiesOf('3.10.8'));
    return model;
  }
}

async function setup(publishTimeoutMs = 5_000) {
  const connection = new FakeConnection();
  const publisher = new RabbitPublisher(
    connection as unknown as RabbitConnection,
    { publishTimeoutMs, maxChannelFailures: 3 },
    pino({ level: 'silent' }),
  );
  await publisher.start();
  return { connection, publisher, first: connection.model!.channels[0]! };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

function publish(publisher: RabbitPublisher, id: string, exchange = 'orders') {
  const outcome: { settled?: 'resolved' | Error } = {};
  const promise = publisher
    .publish(exchange, 'order.placed', Buffer.from(id), { messageId: id })
    .then(
      () => void (outcome.settled = 'resolved'),
      (error: Error) => void (outcome.settled = error),
    );
  return { outcome, promise };
}

describe('RabbitPublisher', () => {
  it('resolves only when the broker confirms', async () => {
    const { publisher, first } = await setup();
    const p = publish(publisher, 'a');
    await tick();
    expect(first.sent.map((s) => s.messageId)).toEqual(['a']);
    expect(p.outcome.settled).toBeUndefined();
    first.ack(0);
    await p.promise;
    expect(p.outcome.settled).toBe('resolved');
    expect(publisher.stats).toMatchObject({ published: 1, confirmed: 1, failed: 0 });
  });

  it('rejects a returned message with RabbitUnroutableError even though the broker acks it', async () => {
    const { publisher, first } = await setup();
    const p = publish(publisher, 'a');
    await tick();
    first.returnMessage(0);
    first.ack(0);
    await p.promise;
    expect(p.outcome.settled).toBeInstanceOf(RabbitUnroutableError);
  });

  it('rejects a nacked message as retriable', async () => {
    const { publisher, first } = await setup();
    const p = publish(publisher, 'a');
    await tick();
    first.nack(0);
    await p.promise;
    expect((p.outcome.settled as RabbitPublishError).code).toBe(RABBIT_ERROR_CODES.PUBLISH_NACKED);
    expect((p.outcome.settled as RabbitPublishError).retriable).toBe(true);
  });

  it('re-sends every unconfirmed message, in order, on the channel of the next connection', async () => {
    const { connection, publisher, first } = await setup();
    const ps = ['a', 'b', 'c', 'd'].map((id) => publish(publisher, id));
    await tick();
    first.ack(1); // b confirmed before the drop
    connection.model = undefined;
    first.die(undefined, new Set([1]));
    await tick();
    expect(ps[1]!.outcome.settled).toBe('resolved');
    expect(ps.filter((p) => p.outcome.settled === undefined)).toHaveLength(3);
    const later = publish(publisher, 'e'); // published while disconnected: waits
    const model = await connection.reconnect();
    await tick();
    const second = model.channels[0]!;
    expect(second.sent.map((s) => s.messageId)).toEqual(['a', 'c', 'd', 'e']);
    second.sent.forEach((_, i) => second.ack(i));
    await Promise.all([...ps, later].map((p) => p.promise));
    expect([...ps, later].map((p) => p.outcome.settled)).toEqual(Array(5).fill('resolved'));
    expect(publisher.stats).toMatchObject({ published: 5, confirmed: 5, resent: 3, failed: 0 });
  });

  it('fails only the messages for a missing exchange when the broker closes the channel with 404', async () => {
    const { connection, publisher, first } = await setup();
    const good = publish(publisher, 'a', 'orders');
    const bad = publish(publisher, 'b', 'nope');
    await tick();
    first.die(
      Object.assign(
        new Error(
          "Channel closed by server: 404 (NOT-FOUND) with message \"NOT_FOUND - no exchange 'nope' in vhost '/'\"",
        ),
        { code: 404 },
      ),
    );
    await bad.promise;
    expect((bad.outcome.settled as RabbitPublishError).code).toBe(
      RABBIT_ERROR_CODES.EXCHANGE_NOT_FOUND,
    );
    // The connection is still up: the publisher opens a new channel on its own and re-sends `a`.
    await new Promise((resolve) => setTimeout(resolve, 150));
    const second = connection.model!.channels[1]!;
    expect(second.sent.map((s) => s.messageId)).toEqual(['a']);
    second.ack(0);
    await good.promise;
    expect(good.outcome.settled).toBe('resolved');
  });

  it('times out a message nobody confirms, says whether it was sent, and does not re-send it later', async () => {
    const { connection, publisher, first } = await setup(100);
    const p = publish(publisher, 'a');
    await tick();
    connection.model = undefined;
    first.die();
    await p.promise;
    expect((p.outcome.settled as RabbitPublishError).code).toBe(RABBIT_ERROR_CODES.PUBLISH_TIMEOUT);
    expect((p.outcome.settled as RabbitPublishError).details).toMatchObject({
      maybeDelivered: true,
      messageId: 'a',
    });
    const model = await connection.reconnect();
    await tick();
    expect(model.channels[0]!.sent).toEqual([]);
  });

  it('close() fails what is still unconfirmed with BT_ERR_AMQP_CLOSED and refuses new messages', async () => {
    const { publisher } = await setup();
    const p = publish(publisher, 'a');
    await tick();
    await publisher.close(50);
    await p.promise;
    expect((p.outcome.settled as RabbitPublishError).code).toBe(RABBIT_ERROR_CODES.CLOSED);
    await expect(publisher.publish('x', 'y', Buffer.from(''), {})).rejects.toMatchObject({
      code: RABBIT_ERROR_CODES.CLOSED,
    });
  });
});
