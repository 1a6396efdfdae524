import { describe, expect, it } from 'vitest';
import {
  pickRetryQueue,
  validateConsumerOptions,
  DEFAULT_RABBIT_CONSUMER_OPTIONS,
} from '../consumer/RabbitSubscription.js';
import { RABBIT_ERROR_CODES, type RabbitConfigError } from '../errors.js';
import {
  capabilitiesOf,
  consumerTopology,
  DEFAULT_DEAD_LETTER_DELIVERY_LIMIT,
  queueArguments,
} from './topology.js';

const modern = capabilitiesOf('3.10.8');

describe('topology', () => {
  it('reads broker capabilities from the version', () => {
    expect(capabilitiesOf('3.9.29')).toMatchObject({
      atLeastOnceDeadLetter: false,
      quorumMessageTtl: false,
    });
    expect(capabilitiesOf('3.10.0')).toMatchObject({
      atLeastOnceDeadLetter: true,
      quorumMessageTtl: true,
    });
    expect(capabilitiesOf('4.1.0')).toMatchObject({ atLeastOnceDeadLetter: true });
    expect(capabilitiesOf(undefined).version).toBe('unknown');
  });

  it('gives quorum queues an explicit delivery limit and at-least-once dead-lettering with reject-publish', () => {
    expect(
      queueArguments(
        { name: 'q', deliveryLimit: 20, deadLetterExchange: 'q.dlx', deadLetterRoutingKey: 'q' },
        modern,
      ),
    ).toEqual({
      'x-queue-type': 'quorum',
      'x-delivery-limit': 20,
      'x-dead-letter-exchange': 'q.dlx',
      'x-dead-letter-routing-key': 'q',
      'x-dead-letter-strategy': 'at-least-once',
      'x-overflow': 'reject-publish',
    });
  });

  it('leaves quorum-only arguments off classic queues and off old brokers', () => {
    expect(
      queueArguments(
        { name: 'q', type: 'classic', deliveryLimit: 20, deadLetterExchange: 'd' },
        modern,
      ),
    ).toEqual({
      'x-queue-type': 'classic',
      'x-dead-letter-exchange': 'd',
    });
    expect(queueArguments({ name: 'q', deadLetterExchange: 'd' }, capabilitiesOf('3.9.0'))).toEqual(
      {
        'x-queue-type': 'quorum',
        'x-dead-letter-exchange': 'd',
      },
    );
  });

  it('builds a consumer topology: bindings per exchange and key, TTL retry queues back to the queue, DLX and DLQ', () => {
    const t = consumerTopology({
      queue: 'billing',
      exchanges: ['orders', 'payments'],
      bindingKeys: ['order.*', 'payment.#'],
      retryDelaysMs: [1_000, 30_000],
      deliveryLimit: 10,
    });
    expect(t).toMatchObject({
      deadLetterExchange: 'billing.dlx',
      deadLetterQueue: 'billing.dlq',
      deadLetterRoutingKey: 'billing',
      retryQueues: [
        { delayMs: 1_000, name: 'billing.retry.1000ms' },
        { delayMs: 30_000, name: 'billing.retry.30000ms' },
      ],
    });
    expect(t.topology.bindings).toHaveLength(1 + 4);
    const retry = t.topology.queues!.find((q) => q.name === 'billing.retry.1000ms')!;
    expect(retry).toMatchObject({
      messageTtlMs: 1_000,
      deadLetterExchange: '',
      deadLetterRoutingKey: 'billing',
    });
    const main = t.topology.queues!.find((q) => q.name === 'billing')!;
    expect(main).toMatchObject({ deliveryLimit: 10, deadLetterExchange: 'billing.dlx' });
  });

  it('gives the dead-letter and retry queues explicit delivery limits (RabbitMQ 4 would apply 20)', () => {
    const t = consumerTopology({
      queue: 'billing',
      exchanges: ['orders'],
      retryDelaysMs: [1_000, 30_000],
      deliveryLimit: 10,
    });
    const caps = capabilitiesOf('3.13.0');
    const args = (name: string) =>
      queueArguments(
        t.topology.queues!.find((q) => q.name === name)!,
        caps,
      );
    expect(args('billing.dlq')['x-delivery-limit']).toBe(DEFAULT_DEAD_LETTER_DELIVERY_LIMIT);
    expect(DEFAULT_DEAD_LETTER_DELIVERY_LIMIT).toBeGreaterThanOrEqual(100_000);
    expect(args('billing.retry.1000ms')['x-delivery-limit']).toBe(10);
    expect(args('billing.retry.30000ms')['x-delivery-limit']).toBe(10);
    const own = consumerTopology({
      queue: 'b',
      exchanges: [],
      retryDelaysMs: [1_000],
      deadLetter: { deliveryLimit: 500 },
    });
    expect(own.topology.queues!.find((q) => q.name === 'b.dlq')!.deliveryLimit).toBe(500);
  });

  it('picks the smallest retry queue at least as long as the delay, else the longest', () => {
    const queues = [{ delayMs: 1_000 }, { delayMs: 5_000 }, { delayMs: 30_000 }];
    expect(pickRetryQueue(queues, 10).delayMs).toBe(1_000);
    expect(pickRetryQueue(queues, 1_000).delayMs).toBe(1_000);
    expect(pickRetryQueue(queues, 1_001).delayMs).toBe(5_000);
    expect(pickRetryQueue(queues, 99_999).delayMs).toBe(30_000);
  });

  it('validates consumer options at construction, naming the field', () => {
    const bad = (patch: object) => {
      try {
        validateConsumerOptions({ ...DEFAULT_RABBIT_CONSUMER_OPTIONS, ...patch });
        return undefined;
      } catch (e) {
        return e as RabbitConfigError;
      }
    };
    expect(bad({})).toBeUndefined();
    expect(bad({ prefetch: 0 })?.details['field']).toBe('prefetch');
    expect(bad({ retryDelaysMs: [5, 1] })?.details['field']).toBe('retryDelaysMs');
    expect(bad({ retryDelaysMs: [] })?.code).toBe(RABBIT_ERROR_CODES.CONFIG_INVALID);
    expect(bad({ deliveryLimit: 0 })?.details['field']).toBe('deliveryLimit');
    expect(bad({ deliveryLimit: null })).toBeUndefined();
    expect(bad({ queueType: 'stream' })?.details['field']).toBe('queueType');
    expect(bad({ bindingKeys: [] })?.details['field']).toBe('bindingKeys');
  });
});
