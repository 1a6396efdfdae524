import { StoreUnavailableError } from '@backtrack/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RedisCommandError } from '../errors.js';
import { callRedis } from './call.js';

/** A promise that never settles (a command Redis never answers). */
const never = () => new Promise<never>(() => {});

/** Lets the current tick end (the deadlines of its calls close). */
const endTick = () => new Promise<void>((resolve) => process.nextTick(resolve));

function replyError(message: string): Error {
  const error = new Error(message);
  error.name = 'ReplyError';
  return error;
}

describe('callRedis deadlines', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('fails an unanswered call with the retriable StoreUnavailableError after timeoutMs', async () => {
    const call = callRedis('redis-dedupe', 'claim', 300, never);
    const outcome = call.then(
      () => 'answered',
      (error: unknown) => error,
    );
    await vi.advanceTimersByTimeAsync(299);
    expect(await Promise.race([outcome, Promise.resolve('pending')])).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    const error = await outcome;
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as StoreUnavailableError).message).toBe(
      'redis-dedupe store did not answer claim within 300 ms',
    );
    expect((error as StoreUnavailableError).details).toMatchObject({ timeoutMs: 300 });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('calls of one tick with one timeout share one timer, cleared once all are answered', async () => {
    const answers: ((value: number) => void)[] = [];
    const calls = Array.from({ length: 50 }, (_, i) =>
      callRedis('redis', `op${i}`, 2_000, () => new Promise<number>((r) => answers.push(r))),
    );
    const other = callRedis('redis', 'other', 5_000, () => Promise.resolve('x'));
    expect(vi.getTimerCount()).toBe(2); // one per timeout, not one per call
    answers.forEach((answer, i) => answer(i));
    expect(await Promise.all(calls)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(await other).toBe('x');
    expect(vi.getTimerCount()).toBe(0); // an idle process keeps no timer
  });

  it('times out only the calls of a tick still unanswered; their late answers are dropped', async () => {
    let answerFirst!: (value: string) => void;
    let answerLate!: (value: string) => void;
    const first = callRedis('redis', 'a', 100, () => new Promise<string>((r) => (answerFirst = r)));
    const late = callRedis('redis', 'b', 100, () => new Promise<string>((r) => (answerLate = r)));
    const lateOutcome = late.catch((error: unknown) => error);
    answerFirst('ok');
    expect(await first).toBe('ok');
    expect(vi.getTimerCount()).toBe(1); // 'b' still waits
    await vi.advanceTimersByTimeAsync(100);
    const error = await lateOutcome;
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toBe('redis store did not answer b within 100 ms');
    answerLate('too late'); // ignored: the caller already has its answer
    await endTick();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a call of a later tick gets its own full deadline', async () => {
    const first = callRedis('redis', 'first', 100, never).catch((error: unknown) => error);
    await vi.advanceTimersByTimeAsync(60); // later ticks
    let second: unknown = 'pending';
    void callRedis('redis', 'second', 100, never).catch((error: unknown) => (second = error));
    expect(vi.getTimerCount()).toBe(2);
    await vi.advanceTimersByTimeAsync(40);
    expect(await first).toBeInstanceOf(StoreUnavailableError);
    expect(second).toBe('pending'); // 40 of its 100 ms
    await vi.advanceTimersByTimeAsync(60);
    expect(second).toBeInstanceOf(StoreUnavailableError);
    expect((second as Error).message).toBe('redis store did not answer second within 100 ms');
  });

  it('a tick whose calls were all answered at once starts a new deadline for its later calls', async () => {
    expect(await callRedis('redis', 'a', 100, () => Promise.resolve(1))).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
    const later = callRedis('redis', 'b', 100, never).catch((error: unknown) => error);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(100);
    expect(await later).toBeInstanceOf(StoreUnavailableError);
  });
});

describe('callRedis errors', () => {
  it('maps a permanent error reply to RedisCommandError and a transient one to StoreUnavailableError', async () => {
    const wrongType = callRedis('redis', 'get', 1_000, () =>
      Promise.reject(replyError('WRONGTYPE Operation against a key holding the wrong kind')),
    );
    await expect(wrongType).rejects.toBeInstanceOf(RedisCommandError);
    const loading = callRedis('redis', 'get', 1_000, () =>
      Promise.reject(replyError('LOADING Redis is loading the dataset in memory')),
    );
    await expect(loading).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(loading).rejects.toThrow(
      'redis store unavailable (get): LOADING Redis is loading the dataset in memory',
    );
  });

  it('turns a synchronous throw of the operation into a rejection, classified', async () => {
    const call = callRedis('redis', 'get', 1_000, () => {
      throw new Error('Connection is closed.');
    });
    await expect(call).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it('fails at once, without a timer, on a client known to be disconnected', async () => {
    vi.useFakeTimers();
    try {
      let ran = false;
      const call = callRedis(
        'redis-saga',
        'update',
        1_000,
        () => {
          ran = true;
          return Promise.resolve(1);
        },
        { status: 'reconnecting' },
      );
      expect(vi.getTimerCount()).toBe(0);
      await expect(call).rejects.toThrow(
        'redis-saga store unavailable (update): Redis connection is reconnecting',
      );
      expect(ran).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });
});
