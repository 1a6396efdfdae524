import { ATTR, startGaugePoller } from '@backtrack/core/adapter';
import { createDefaultLogger, type GaugeSample, type Logger } from '@backtrack/core';
import type { KafkaAdminClient } from '../client/KafkaClient.js';

/** Options of {@link monitorKafkaConsumerLag}. */
export interface KafkaConsumerLagOptions {
  /** The consumer group whose lag is reported. */
  group: string;
  /** The topics it consumes (add its retry topics to watch them too). */
  topics: string[];
  /** How often to ask the brokers, in ms. @default 15_000 */
  intervalMs?: number;
  logger?: Logger;
}

/** A running lag monitor. */
export interface KafkaConsumerLagMonitor {
  /** Polls now and resolves with the lag samples the gauge reports. */
  pollOnce(): Promise<GaugeSample[]>;
  /** Stops polling, removes its samples from the gauge and disconnects its admin client. */
  stop(): Promise<void>;
}

/**
 * Reports `backtrack.consumer.lag` (docs/observability.md) for one consumer group: per partition,
 * the high watermark minus the group's committed offset (minus the low watermark while the group
 * has committed nothing). One admin client, connected on the first poll; it polls every
 * `intervalMs` only while an OpenTelemetry SDK is registered. Start it once the topics exist: a
 * broker with `auto.create.topics.enable` creates a topic the admin client asks about.
 *
 * @example
 * const lag = monitorKafkaConsumerLag(transport, { group: 'billing', topics: ['orders'] });
 * // on shutdown
 * await lag.stop();
 */
export function monitorKafkaConsumerLag(
  cluster: { admin(): KafkaAdminClient },
  options: KafkaConsumerLagOptions,
): KafkaConsumerLagMonitor {
  const { group, topics } = options;
  let admin: Promise<KafkaAdminClient> | undefined;
  const connected = (): Promise<KafkaAdminClient> => {
    admin ??= (async () => {
      const client = cluster.admin();
      await client.connect();
      return client;
    })().catch((err: unknown) => {
      admin = undefined; // try again at the next poll
      throw err;
    });
    return admin;
  };
  const poller = startGaugePoller({
    intervalMs: options.intervalMs,
    logger: (options.logger ?? createDefaultLogger()).child({ component: 'kafka-lag', group }),
    async poll() {
      const client = await connected();
      const consumerLag: GaugeSample[] = [];
      for (const topic of topics) {
        const [ends, committed] = await Promise.all([
          client.topicOffsets(topic),
          client.groupOffsets(group, topic),
        ]);
        const committedOf = new Map(committed.map((c) => [c.partition, c.offset]));
        for (const { partition, low, high } of ends) {
          const offset = committedOf.get(partition);
          const from = offset === undefined || BigInt(offset) < 0n ? BigInt(low) : BigInt(offset);
          const lag = BigInt(high) - from;
          consumerLag.push({
            value: Number(lag > 0n ? lag : 0n),
            attributes: {
              [ATTR.MESSAGING_SYSTEM]: 'kafka',
              [ATTR.MESSAGING_DESTINATION]: topic,
              [ATTR.MESSAGING_CONSUMER_GROUP]: group,
              [ATTR.MESSAGING_PARTITION]: String(partition),
            },
          });
        }
      }
      return { consumerLag };
    },
  });
  return {
    async pollOnce() {
      return (await poller.pollOnce()).consumerLag ?? [];
    },
    async stop() {
      poller.stop();
      const client = await admin?.catch(() => undefined);
      admin = undefined;
      await client?.disconnect().catch(() => undefined);
    },
  };
}
