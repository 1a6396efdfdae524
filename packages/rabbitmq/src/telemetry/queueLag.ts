import { ATTR, startGaugePoller } from '@backtrack/core/adapter';
import { createDefaultLogger, type GaugeSample, type Logger } from '@backtrack/core';
import type { RabbitConnection } from '../connection/RabbitConnection.js';

/** Options of {@link monitorRabbitQueueLag}. */
export interface RabbitQueueLagOptions {
  /** The queues to watch: a subscription's queue is its `group`; add its dead-letter queue too. */
  queues: string[];
  /** How often to ask the broker, in ms. @default 15_000 */
  intervalMs?: number;
  logger?: Logger;
}

/** A running queue-depth monitor. */
export interface RabbitQueueLagMonitor {
  /** Polls now and resolves with the samples the gauge reports. */
  pollOnce(): Promise<GaugeSample[]>;
  /** Stops polling and removes its samples from the gauge. */
  stop(): void;
}

/**
 * Reports `backtrack.consumer.lag` (docs/observability.md) for RabbitMQ queues: the messages ready
 * in each queue (`checkQueue`'s message count; unacknowledged deliveries are not counted), on a
 * short-lived channel of the transport's connection, every `intervalMs` while an OpenTelemetry SDK
 * is registered. A queue that does not exist is left out of that poll.
 *
 * @example
 * const lag = monitorRabbitQueueLag(transport, { queues: ['billing', 'billing.dead-letter'] });
 */
export function monitorRabbitQueueLag(
  transport: { connection: RabbitConnection },
  options: RabbitQueueLagOptions,
): RabbitQueueLagMonitor {
  const logger = (options.logger ?? createDefaultLogger()).child({ component: 'rabbitmq-lag' });
  const poller = startGaugePoller({
    intervalMs: options.intervalMs,
    logger,
    async poll() {
      const consumerLag: GaugeSample[] = [];
      for (const queue of options.queues) {
        // A failed checkQueue closes its channel: one channel per queue.
        const count = await transport.connection
          .withChannel(async (channel) => (await channel.checkQueue(queue)).messageCount)
          .catch((err: unknown) => {
            logger.debug({ err, queue }, 'queue depth not available');
            return undefined;
          });
        if (count === undefined) continue;
        consumerLag.push({
          value: count,
          attributes: {
            [ATTR.MESSAGING_SYSTEM]: 'rabbitmq',
            [ATTR.MESSAGING_DESTINATION]: queue,
            [ATTR.MESSAGING_CONSUMER_GROUP]: queue,
          },
        });
      }
      return { consumerLag };
    },
  });
  return {
    async pollOnce() {
      return (await poller.pollOnce()).consumerLag ?? [];
    },
    stop: () => poller.stop(),
  };
}
