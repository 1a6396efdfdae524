import { describe, expect, it } from 'vitest';
import { BacktrackError } from '../errors/BacktrackError.js';
import { BatchModeUnsupportedError, MalformedMessageError } from '../envelope/errors.js';
import {
  DEAD_LETTER_REASONS,
  brokerDeadLetterReason,
  deadLetterReasonOf,
  isDeadLetterReason,
  truncateDeadLetterText,
} from './reasons.js';

describe('dead-letter reasons', () => {
  it('maps a malformed message by the decoder reason, and without one to malformed', () => {
    const original = { headers: {}, body: new Uint8Array() };
    const error = new MalformedMessageError('too-large', 'big', original);
    expect(deadLetterReasonOf('BT_ERR_MALFORMED_MESSAGE', error)).toBe('too-large');
    expect(deadLetterReasonOf('BT_ERR_MALFORMED_MESSAGE')).toBe('malformed');
    const foreign = new BacktrackError('BT_ERR_MALFORMED_MESSAGE', 'x', {
      details: { reason: 'invalid-json' },
    });
    expect(deadLetterReasonOf('BT_ERR_MALFORMED_MESSAGE', foreign)).toBe('invalid-json');
  });

  it('maps the documented codes, unknown codes with an error to handler-failed, else other', () => {
    expect(deadLetterReasonOf('BT_ERR_SCHEMA_VALIDATION')).toBe('schema-validation');
    expect(deadLetterReasonOf('BT_ERR_SCHEMA_UNKNOWN_EVENT_TYPE')).toBe('unknown-type');
    expect(deadLetterReasonOf('BT_ERR_SCHEMA_VERSION_UNKNOWN')).toBe('unknown-version');
    expect(deadLetterReasonOf('BT_ERR_CONSUMER_RETRIES_EXHAUSTED')).toBe('retries-exhausted');
    expect(deadLetterReasonOf('BT_ERR_KAFKA_RETRIES_EXHAUSTED')).toBe('retries-exhausted');
    expect(deadLetterReasonOf('BT_ERR_KAFKA_RECORD_UNDECODABLE')).toBe('undecodable');
    expect(deadLetterReasonOf('BT_ERR_CONSUMER_UNHANDLED_EVENT')).toBe('unhandled-type');
    expect(deadLetterReasonOf('APP_ORDER_CLOSED', new Error('closed'))).toBe('handler-failed');
    expect(deadLetterReasonOf('APP_ORDER_CLOSED')).toBe('other');
  });

  it('maps the batched content mode by its own code and by the decoder error it carries', () => {
    const original = { body: Buffer.from('[]'), headers: {} };
    const error = new BatchModeUnsupportedError(original, 'application/cloudevents-batch+json');
    expect(deadLetterReasonOf('BT_ERR_CLOUDEVENTS_BATCH_UNSUPPORTED', error)).toBe(
      'batch-mode-unsupported',
    );
    expect(deadLetterReasonOf('BT_ERR_CLOUDEVENTS_BATCH_UNSUPPORTED')).toBe(
      'batch-mode-unsupported',
    );
  });

  it('maps broker dead letters and recognises its own values', () => {
    expect(brokerDeadLetterReason('delivery_limit')).toBe('delivery-limit');
    expect(brokerDeadLetterReason(undefined)).toBe('other');
    for (const v of Object.values(DEAD_LETTER_REASONS)) {
      expect(isDeadLetterReason(v)).toBe(true);
      expect(v).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/);
    }
    expect(isDeadLetterReason('data does not match schema')).toBe(false);
  });

  it('truncates texts to 1,000 characters', () => {
    expect(truncateDeadLetterText('x'.repeat(5000))).toHaveLength(1000);
    expect(truncateDeadLetterText('short')).toBe('short');
  });
});
