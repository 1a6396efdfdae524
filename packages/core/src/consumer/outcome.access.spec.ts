import { describe, expect, it } from 'vitest';
import { BacktrackError } from '../errors/BacktrackError.js';
import { ConnectionAccessError } from '../errors/ConnectionAccessError.js';
import type { ConsumerContext } from './context.js';
import { classifyError, type ClassifyPolicy } from './outcome.js';

const policy: ClassifyPolicy = {
  retry: { attempts: 3, initialDelayMs: 10, maxDelayMs: 100, factor: 2, jitter: 'none' },
  random: () => 0.5,
  inProgressDelayMs: 50,
  unavailableDelayMs: 500,
};
const context = { attempt: 1 } as unknown as ConsumerContext;

describe('classifyError: access failures of a store', () => {
  it('redelivers with a pause (the message is fine: never dead-lettered), however it is wrapped', () => {
    const denied = new ConnectionAccessError(
      'BT_ERR_REDIS_AUTHENTICATION_FAILED',
      'redis',
      'authentication',
      'redis: authentication failed',
    );
    for (const error of [denied, new Error('claim failed', { cause: denied })]) {
      expect(classifyError(error, context, policy)).toMatchObject({
        kind: 'redeliver',
        pause: true,
        delayMs: 500,
      });
    }
  });

  it('still dead-letters other non-retriable errors', () => {
    const error = new BacktrackError('BT_ERR_SOMETHING', 'bad', { retriable: false });
    expect(classifyError(error, context, policy).kind).toBe('dead-letter');
  });
});
