import { describe, it } from 'vitest';
import type { KafkaTransport } from '@backtrack/kafka';
import { probeService } from '../../support/services.js';
import { rollbackDrill } from './drill.js';

const redis = await probeService('redis');
const kafka = await probeService('kafka');

describe.skipIf(!redis.available || !kafka.available)('rollback drill on Kafka + Redis', () => {
  it('a rollback SIGKILLed half-way and resumed reverses every effect of the bad version exactly once', async () => {
    await rollbackDrill({
      kind: 'kafka',
      brokerUrl: kafka.url,
      redisUrl: redis.url,
      count: 30,
      prepare: async (transport, topic) => {
        await (transport as KafkaTransport).ensureTopics({ topics: [topic], partitions: 3 });
      },
    });
  }, 180_000);
});
