import { describe, expect, it, vi } from 'vitest';
import { BacktrackError } from '../errors/BacktrackError.js';
import { DEFAULT_RETRY_POLICY, backoffDelayMs, resolveRetryPolicy, sleep } from './backoff.js';

describe('backoff', () => {
  const policy = resolveRetryPolicy({
    initialDelayMs: 100,
    factor: 2,
    maxDelayMs: 1000,
    jitter: 'none',
  });

  it('grows exponentially from the first retry and caps at maxDelayMs', () => {
    expect([2, 3, 4, 5, 6].map((a) => backoffDelayMs(a, policy))).toEqual([
      100, 200, 400, 800, 1000,
    ]);
  });

  it('full jitter stays within [0, computed]', () => {
    const full = { ...policy, jitter: 'full' as const };
    expect(backoffDelayMs(4, full, () => 0)).toBe(0);
    expect(backoffDelayMs(4, full, () => 0.5)).toBe(200);
    expect(backoffDelayMs(4, full, () => 0.999)).toBeLessThan(400);
  });

  it('equal jitter keeps at least half the delay', () => {
    const equal = { ...policy, jitter: 'equal' as const };
    expect(backoffDelayMs(4, equal, () => 0)).toBe(200);
    expect(backoffDelayMs(4, equal, () => 0.999)).toBeLessThan(400);
  });

  it('rejects invalid policies with a coded error naming the field', () => {
    for (const [bad, field] of [
      [{ attempts: 0 }, 'attempts'],
      [{ attempts: 1.5 }, 'attempts'],
      [{ initialDelayMs: -1 }, 'initialDelayMs'],
      [{ maxDelayMs: 1, initialDelayMs: 10 }, 'maxDelayMs'],
      [{ factor: 0.5 }, 'factor'],
      [{ jitter: 'some' as never }, 'jitter'],
    ] as const) {
      const attempt = () => resolveRetryPolicy(bad);
      expect(attempt).toThrow(BacktrackError);
      try {
        attempt();
      } catch (e) {
        expect((e as BacktrackError).code).toBe('BT_ERR_RETRY_CONFIG_INVALID');
        expect((e as BacktrackError).details.field).toBe(field);
      }
    }
  });

  it('defaults are frozen and valid', () => {
    expect(Object.isFrozen(DEFAULT_RETRY_POLICY)).toBe(true);
    expect(resolveRetryPolicy(undefined)).toEqual(DEFAULT_RETRY_POLICY);
  });

  it('sleep resolves after the delay and rejects on abort', async () => {
    vi.useFakeTimers();
    try {
      let done = false;
      const p = sleep(1000).then(() => (done = true));
      await vi.advanceTimersByTimeAsync(999);
      expect(done).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      await p;
      expect(done).toBe(true);
      const ac = new AbortController();
      const aborted = sleep(1000, ac.signal);
      ac.abort(new Error('stop'));
      await expect(aborted).rejects.toThrow('stop');
    } finally {
      vi.useRealTimers();
    }
  });
});
