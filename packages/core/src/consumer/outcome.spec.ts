import { describe, expect, it } from 'vitest';
import { BacktrackError } from '../errors/BacktrackError.js';
import { DEFAULT_RETRY_POLICY } from '../retry/backoff.js';
import type { ConsumerContext } from './context.js';
import { classifyError } from './outcome.js';

const policy = {
  retry: { ...DEFAULT_RETRY_POLICY, attempts: 2 },
  random: () => 0.5,
  inProgressDelayMs: 100,
  unavailableDelayMs: 100,
};

describe('classifyError', () => {
  it('keeps the secrets of a handler error out of the retry and dead-letter reasons', () => {
    const error = new Error('cannot reach amqps://app:pw-secret@mq/orders (password=pw-secret)');
    for (const attempt of [1, 2]) {
      const disposition = classifyError(error, { attempt } as ConsumerContext, policy);
      expect(disposition.kind).toBe(attempt === 1 ? 'retry' : 'dead-letter');
      const reason = (disposition as { reason: string }).reason;
      expect(reason).toContain('amqps://app:***@mq/orders');
      expect(reason).not.toContain('pw-secret');
    }
    const rejected = classifyError(
      new BacktrackError('BT_ERR_TEST', 'postgres://u:pw-secret@db refused'),
      { attempt: 1 } as ConsumerContext,
      policy,
    );
    expect((rejected as { reason: string }).reason).not.toContain('pw-secret');
  });
});
