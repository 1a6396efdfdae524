import { describe, it } from 'vitest';
import { probeService } from '../../support/services.js';
import { rollbackDrill } from './drill.js';

const redis = await probeService('redis');
const rabbit = await probeService('rabbitmq');

describe.skipIf(!redis.available || !rabbit.available)('rollback drill on RabbitMQ + Redis', () => {
  it('a rollback SIGKILLed half-way and resumed reverses every effect of the bad version exactly once', async () => {
    await rollbackDrill({
      kind: 'rabbitmq',
      brokerUrl: rabbit.url,
      redisUrl: redis.url,
      count: 30,
    });
  }, 180_000);
});
