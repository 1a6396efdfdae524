/**
 * Raw amqplib helpers shared by the RabbitMQ benchmarks.
 */
import { toAmqpMessage } from '@backtrack/rabbitmq/adapter';
import amqplib, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import type { EncodedMessage } from '@backtrack/core';
import { SERVICES } from './common.js';

/**
 * A raw amqplib connection. Its 'error' events are swallowed: the shared broker may be restarted
 * by another engineer's fault test, and an unhandled 'error' would kill the whole bench process;
 * the benchmark then fails on its next call instead, and the runner retries it.
 */
export async function rawConnect(): Promise<ChannelModel> {
  const model = await amqplib.connect(SERVICES.amqp);
  model.on('error', () => undefined);
  return model;
}

/** Publishes with a confirm channel, `inFlight` unconfirmed at most (set-up and baseline). */
export async function confirmPublish(
  channel: ConfirmChannel,
  exchange: string,
  count: number,
  inFlight: number,
  message: (i: number) => { routingKey: string; content: Buffer; options: amqplib.Options.Publish },
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const m = message(next++);
      await new Promise<void>((resolve, reject) => {
        channel.publish(exchange, m.routingKey, m.content, m.options, (error) =>
          error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(),
        );
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, worker));
}

/** The AMQP form of an encoded message, as the Backtrack transport sends it. */
export function amqpOf(message: EncodedMessage): {
  routingKey: string;
  content: Buffer;
  options: amqplib.Options.Publish;
} {
  const { content, options } = toAmqpMessage(message);
  return { routingKey: message.headers.type ?? '#', content, options };
}
