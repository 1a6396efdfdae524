import { describe, expect, it } from 'vitest';
import { KafkaConfigError } from './errors.js';
import {
  DEFAULT_KAFKA_CONSUMER_OPTIONS,
  resolveConsumerOptions,
  resolveProducerOptions,
} from './options.js';
import { topicSpecs } from './topics/topics.js';

function fieldOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(KafkaConfigError);
    expect((error as KafkaConfigError).code).toBe('BT_ERR_KAFKA_CONFIG_INVALID');
    return (error as KafkaConfigError).details.field;
  }
  throw new Error('did not throw');
}

describe('consumer options', () => {
  it('merges over the defaults, ignoring undefined, and freezes', () => {
    const o = resolveConsumerOptions({ maxAttempts: 3, fromBeginning: undefined });
    expect(o.maxAttempts).toBe(3);
    expect(o.fromBeginning).toBe(DEFAULT_KAFKA_CONSUMER_OPTIONS.fromBeginning);
    expect(Object.isFrozen(o)).toBe(true);
    expect(o.retryTopic('orders', 'g')).toBe('orders.retry');
    expect(o.deadLetterTopic('orders', 'g')).toBe('orders.dlq');
  });

  it('validates partitionsConsumedConcurrently (1..64) and the failure bounds', () => {
    expect(
      resolveConsumerOptions({ partitionsConsumedConcurrently: 8 }).partitionsConsumedConcurrently,
    ).toBe(8);
    for (const bad of [0, 1.5, 65, Number.NaN]) {
      expect(fieldOf(() => resolveConsumerOptions({ partitionsConsumedConcurrently: bad }))).toBe(
        'partitionsConsumedConcurrently',
      );
    }
    expect(fieldOf(() => resolveConsumerOptions({ publishFailureAttempts: 0 }))).toBe(
      'publishFailureAttempts',
    );
    expect(fieldOf(() => resolveConsumerOptions({ publishFailurePauseMs: -1 }))).toBe(
      'publishFailurePauseMs',
    );
    expect(resolveConsumerOptions({ commitIntervalMs: 500 }).commitIntervalMs).toBe(500);
    expect(DEFAULT_KAFKA_CONSUMER_OPTIONS.commitIntervalMs).toBe(0);
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(fieldOf(() => resolveConsumerOptions({ commitIntervalMs: bad }))).toBe(
        'commitIntervalMs',
      );
    }
    expect(fieldOf(() => resolveConsumerOptions({ failureMaxBackoffMs: Infinity }))).toBe(
      'failureMaxBackoffMs',
    );
  });

  it('names the invalid field', () => {
    expect(fieldOf(() => resolveConsumerOptions({ maxAttempts: 0 }))).toBe('maxAttempts');
    expect(fieldOf(() => resolveConsumerOptions({ maxDelayMs: -1 }))).toBe('maxDelayMs');
    expect(fieldOf(() => resolveConsumerOptions({ retryMode: 'later' as 'topic' }))).toBe(
      'retryMode',
    );
    expect(fieldOf(() => resolveConsumerOptions({ heartbeatIntervalMs: 40_000 }))).toBe(
      'heartbeatIntervalMs',
    );
    expect(fieldOf(() => resolveConsumerOptions({ retryTopic: 'x' as never }))).toBe('retryTopic');
    expect(fieldOf(() => resolveConsumerOptions({ awaitCommits: 'yes' as never }))).toBe(
      'awaitCommits',
    );
    expect(DEFAULT_KAFKA_CONSUMER_OPTIONS.awaitCommits).toBe(false);
  });
});

describe('producer options', () => {
  it('keeps the idempotent producer within its limits', () => {
    expect(resolveProducerOptions({}).maxInFlightRequests).toBe(1);
    expect(fieldOf(() => resolveProducerOptions({ maxInFlightRequests: 6 }))).toBe(
      'producer.maxInFlightRequests',
    );
    expect(fieldOf(() => resolveProducerOptions({ retries: 0 }))).toBe('producer.retries');
    expect(fieldOf(() => resolveProducerOptions({ publishTimeoutMs: 0 }))).toBe(
      'producer.publishTimeoutMs',
    );
  });

  it('validates the publish batching options', () => {
    expect(resolveProducerOptions({})).toMatchObject({ lingerMs: 0, maxBatchRecords: 500 });
    expect(resolveProducerOptions({ lingerMs: 5, maxBatchRecords: 50 })).toMatchObject({
      lingerMs: 5,
      maxBatchRecords: 50,
    });
    expect(fieldOf(() => resolveProducerOptions({ lingerMs: -1 }))).toBe('producer.lingerMs');
    expect(fieldOf(() => resolveProducerOptions({ lingerMs: 5_000 }))).toBe('producer.lingerMs');
    expect(fieldOf(() => resolveProducerOptions({ maxBatchRecords: 0 }))).toBe(
      'producer.maxBatchRecords',
    );
  });
});

describe('topicSpecs', () => {
  it('adds the retry and dead-letter topics with the same partitions and config', () => {
    expect(
      topicSpecs({
        topics: ['orders'],
        partitions: 4,
        replicationFactor: 3,
        config: { 'retention.ms': '1' },
      }),
    ).toEqual([
      { topic: 'orders', partitions: 4, replicationFactor: 3, config: { 'retention.ms': '1' } },
      {
        topic: 'orders.retry',
        partitions: 4,
        replicationFactor: 3,
        config: { 'retention.ms': '1' },
      },
      { topic: 'orders.dlq', partitions: 4, replicationFactor: 3, config: { 'retention.ms': '1' } },
    ]);
    expect(
      topicSpecs({ topics: ['a'], retry: false, deadLetter: false }).map((s) => s.topic),
    ).toEqual(['a']);
    expect(
      topicSpecs({ topics: ['a'], group: 'g', retryTopic: (t, g) => `${t}.${g}.retry` }).map(
        (s) => s.topic,
      ),
    ).toEqual(['a', 'a.g.retry', 'a.dlq']);
  });

  it('rejects invalid names and counts before calling the broker', () => {
    expect(fieldOf(() => topicSpecs({ topics: [] }))).toBe('topics');
    expect(fieldOf(() => topicSpecs({ topics: ['has space'] }))).toBe('topics');
    expect(fieldOf(() => topicSpecs({ topics: ['a'], partitions: 0 }))).toBe('partitions');
    expect(fieldOf(() => topicSpecs({ topics: ['a'], replicationFactor: 1.5 }))).toBe(
      'replicationFactor',
    );
  });
});
