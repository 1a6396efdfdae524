/**
 * One way to construct: `createKafkaTransport` and `new KafkaTransport` check the options the
 * same way (the constructor validates, the factory calls it), so a bad option fails both with
 * the same `KafkaConfigError` code and field, before any client is made.
 */
import { describe, expect, it } from 'vitest';
import { KAFKA_ERROR_CODES, KafkaConfigError } from './errors.js';
import {
  createKafkaTransport,
  KafkaTransport,
  type KafkaTransportOptions,
} from './KafkaTransport.js';

const base: KafkaTransportOptions = { brokers: ['127.0.0.1:1'] };

const BAD: Array<[field: string, options: KafkaTransportOptions]> = [
  ['brokers', { brokers: [] }],
  ['brokers', { brokers: ['no-port'] }],
  ['producer.maxInFlightRequests', { ...base, producer: { maxInFlightRequests: 6 } }],
  ['producer.lingerMs', { ...base, producer: { lingerMs: -1 } }],
  ['maxAttempts', { ...base, consumer: { maxAttempts: 0 } }],
  ['retryMode', { ...base, consumer: { retryMode: 'later' as never } }],
];

function failureOf(fn: () => unknown): { code: string; field: unknown } {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(KafkaConfigError);
    const e = error as KafkaConfigError;
    return { code: e.code, field: e.details.field };
  }
  throw new Error('did not throw');
}

describe('KafkaTransport options: one check for the factory and the constructor', () => {
  it.each(BAD)('%s: both reject it with BT_ERR_KAFKA_CONFIG_INVALID naming it', (field, o) => {
    const expected = { code: KAFKA_ERROR_CODES.CONFIG_INVALID, field };
    expect(failureOf(() => createKafkaTransport(o))).toEqual(expected);
    expect(failureOf(() => new KafkaTransport(o))).toEqual(expected);
  });
});
