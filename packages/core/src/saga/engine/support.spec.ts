import { describe, expect, it, vi } from 'vitest';
import { StepTimeoutError } from '../errors.js';
import {
  callWithTimeout,
  ChildCancellation,
  isoTimeCache,
  LazyAbortController,
  NEVER_ABORTED,
} from './support.js';

describe('ChildCancellation (a step timeout or deadline following the run)', () => {
  it('aborts with the parent, with the parent reason, signal made before or after', () => {
    const parent = new LazyAbortController();
    const early = new ChildCancellation(parent);
    const earlySignal = early.signal;
    const late = new ChildCancellation(parent);
    const reason = new Error('cancelled');
    parent.abort(reason);
    expect(early.aborted).toBe(true);
    expect(earlySignal.aborted).toBe(true);
    expect(earlySignal.reason).toBe(reason);
    expect(late.aborted).toBe(true);
    expect(late.reason).toBe(reason);
    expect(late.signal.aborted).toBe(true);
    expect(late.signal.reason).toBe(reason);
  });

  it('aborts on its own without aborting the parent; the first reason wins', () => {
    const parent = new LazyAbortController();
    const child = new ChildCancellation(parent);
    const listener = vi.fn();
    child.onAbort(listener);
    const first = new Error('timeout');
    child.abort(first);
    child.abort(new Error('second'));
    parent.abort(new Error('parent later'));
    expect(parent.aborted).toBe(true);
    expect(child.reason).toBe(first);
    expect(child.signal.reason).toBe(first);
    expect(listener).toHaveBeenCalledTimes(1);
    expect(listener).toHaveBeenCalledWith(first);
  });

  it('keeps the parent reason when the parent aborted first, unnoticed', () => {
    const parent = new LazyAbortController();
    const child = new ChildCancellation(parent);
    const reason = new Error('parent first');
    parent.abort(reason);
    child.abort(new Error('timeout after'));
    expect(child.reason).toBe(reason);
  });

  it('follows nested parents (deadline, then step timeout)', () => {
    const run = new LazyAbortController();
    const deadline = new ChildCancellation(run);
    const step = new ChildCancellation(deadline);
    const signal = step.signal;
    const reason = new Error('deadline');
    deadline.abort(reason);
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe(reason);
    expect(run.aborted).toBe(false);
  });

  it('after dispose, a later parent abort does not reach it (the parent keeps nothing)', () => {
    const parent = new LazyAbortController();
    const child = new ChildCancellation(parent);
    const listener = vi.fn();
    child.onAbort(listener);
    child.dispose();
    parent.abort(new Error('late'));
    expect(listener).not.toHaveBeenCalled();
  });

  it('calls a listener at once when already aborted', () => {
    const parent = new LazyAbortController();
    parent.abort('why');
    const listener = vi.fn();
    new ChildCancellation(parent).onAbort(listener);
    expect(listener).toHaveBeenCalledWith('why');
    const own = vi.fn();
    parent.onAbort(own);
    expect(own).toHaveBeenCalledWith('why');
  });

  it('NEVER_ABORTED never calls a listener', () => {
    const listener = vi.fn();
    NEVER_ABORTED.onAbort(listener)();
    expect(NEVER_ABORTED.aborted).toBe(false);
    expect(listener).not.toHaveBeenCalled();
  });
});

describe('callWithTimeout', () => {
  it('resolves with the result (sync or async) and rejects with what fn throws', async () => {
    await expect(callWithTimeout('s', 1000, undefined, () => 1)).resolves.toBe(1);
    await expect(callWithTimeout('s', 1000, undefined, async () => 2)).resolves.toBe(2);
    const boom = new Error('boom');
    await expect(
      callWithTimeout('s', 1000, undefined, () => {
        throw boom;
      }),
    ).rejects.toBe(boom);
  });

  it('rejects with StepTimeoutError at the timeout and aborts the signal with it', async () => {
    vi.useFakeTimers();
    try {
      let signal: AbortSignal | undefined;
      const call = callWithTimeout('slow', 50, new LazyAbortController(), (cancel) => {
        signal = cancel.signal;
        return new Promise<never>(() => undefined);
      });
      const outcome = call.catch((error: unknown) => error);
      await vi.advanceTimersByTimeAsync(50);
      const error = await outcome;
      expect(error).toBeInstanceOf(StepTimeoutError);
      expect(signal?.aborted).toBe(true);
      expect(signal?.reason).toBe(error);
    } finally {
      vi.useRealTimers();
    }
  });

  it('aborts the signal when the parent aborts, and leaves no listener on the parent after', async () => {
    const parent = new LazyAbortController();
    let seen: AbortSignal | undefined;
    await callWithTimeout('s', 1000, parent, (cancel) => {
      seen = cancel.signal;
      return 1;
    });
    // Done: a later abort of the run no longer reaches the finished attempt's signal.
    parent.abort(new Error('later'));
    expect(seen?.aborted).toBe(false);

    const reason = new Error('cancel');
    const other = new LazyAbortController();
    const withOther = callWithTimeout(
      's',
      1000,
      other,
      (cancel) =>
        new Promise((_, reject) =>
          cancel.signal.addEventListener('abort', () => reject(cancel.signal.reason)),
        ),
    );
    other.abort(reason);
    await expect(withOther).rejects.toBe(reason);
  });
});

describe('isoTimeCache', () => {
  it('gives what toISOString gives, for any millisecond, and its RangeError', () => {
    const iso = isoTimeCache();
    const times = [
      0, 1, 999, 1000, 1001, -1, -999, -1000, -1001, 1_764_300_000_123, 1_764_300_000_999,
      1_764_300_001_000, 253_402_300_800_000, -62_198_755_200_001, 8.64e15, -8.64e15, 1.5, -1.5,
    ];
    // Twice each, in turns with a later time, as a transition asks (now, now + lease).
    for (const ms of [...times, ...times.reverse()]) {
      expect(iso(ms)).toBe(new Date(ms).toISOString());
      if (ms + 30_000 <= 8.64e15) {
        expect(iso(ms + 30_000)).toBe(new Date(ms + 30_000).toISOString());
      }
    }
    for (let ms = 1_764_300_000_000; ms < 1_764_300_003_000; ms += 7) {
      expect(iso(ms)).toBe(new Date(ms).toISOString());
    }
    // Twice: a time that threw is not remembered as the last one asked.
    expect(() => iso(8.64e15 + 1)).toThrow(RangeError);
    expect(() => iso(8.64e15 + 1)).toThrow(RangeError);
    expect(() => iso(Number.NaN)).toThrow(RangeError);
  });
});
