import { describe, expect, it } from 'vitest';
import { KAFKA_ACCESS_ERROR_CODES, classifyKafkaError } from './connectionErrors.js';

// Shapes of what kafkajs 2.2 throws, as seen against a SASL_SSL broker with ACLs.
const named = (name: string, message: string, extra: Record<string, unknown> = {}) =>
  Object.assign(new Error(message), { name, ...extra });

describe('classifyKafkaError', () => {
  it('maps a SASL failure to AUTHENTICATION_FAILED, without echoing the server message', () => {
    const e = classifyKafkaError(
      named(
        'KafkaJSSASLAuthenticationError',
        'SASL SCRAM SHA512 authentication failed: invalid credentials',
      ),
    );
    expect(e).toMatchObject({
      code: KAFKA_ACCESS_ERROR_CODES.AUTHENTICATION_FAILED,
      retriable: false,
      service: 'kafka',
    });
  });

  it('maps topic and group authorization failures to NOT_AUTHORIZED, naming the resource', () => {
    const topic = named(
      'KafkaJSNonRetriableError',
      'Not authorized to access topics: [Topic authorization failed]',
      {
        cause: named('KafkaJSProtocolError', 'Topic authorization failed', {
          type: 'TOPIC_AUTHORIZATION_FAILED',
          code: 29,
        }),
      },
    );
    expect(classifyKafkaError(topic)).toMatchObject({
      code: KAFKA_ACCESS_ERROR_CODES.NOT_AUTHORIZED,
      details: { resource: 'topic' },
    });
    const group = named('KafkaJSGroupCoordinatorNotFound', 'Failed to find group coordinator', {
      retriable: false,
    });
    expect(classifyKafkaError(group)).toMatchObject({ details: { resource: 'consumer group' } });
  });

  it('maps certificate failures inside retries-exceeded errors to TLS_FAILED', () => {
    const e = named(
      'KafkaJSNumberOfRetriesExceeded',
      'Connection error: unable to verify the first certificate',
      {
        cause: Object.assign(new Error('unable to verify'), {
          code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
        }),
      },
    );
    expect(classifyKafkaError(e)).toMatchObject({
      code: KAFKA_ACCESS_ERROR_CODES.TLS_FAILED,
      reason: 'tls-untrusted',
    });
  });

  it('leaves outages and retriable coordinator errors alone', () => {
    expect(
      classifyKafkaError(
        named('KafkaJSConnectionError', 'Connection error: connect ECONNREFUSED', {
          code: 'ECONNREFUSED',
        }),
      ),
    ).toBeUndefined();
    expect(
      classifyKafkaError(
        named('KafkaJSGroupCoordinatorNotFound', 'Failed to find group coordinator', {
          retriable: true,
        }),
      ),
    ).toBeUndefined();
  });
});
