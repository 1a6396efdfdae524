import { afterEach, describe, expect, it, vi } from 'vitest';
import { InMemoryDedupeStore } from '../../dedupe/InMemoryDedupeStore.js';
import { LeaseKeeper } from './leaseKeeper.js';

/** Nothing is held: the keeper's timer is gone after its next tick (100 ms) and extends no more. */
async function expectTimerStopped(extend: { mock: { calls: unknown[] } }): Promise<void> {
  const calls = extend.mock.calls.length;
  await vi.advanceTimersByTimeAsync(100);
  expect(vi.getTimerCount()).toBe(0);
  await vi.advanceTimersByTimeAsync(1_000);
  expect(extend.mock.calls.length).toBe(calls);
}

describe('LeaseKeeper', () => {
  afterEach(() => vi.useRealTimers());

  it('keeps every held lease alive with one timer, and stops when nothing is held', async () => {
    vi.useFakeTimers();
    const store = new InMemoryDedupeStore({ now: () => Date.now() });
    const extend = vi.spyOn(store, 'extend');
    const keeper = new LeaseKeeper(store, 300);
    const a = await store.claim('a', { leaseMs: 300 });
    const b = await store.claim('b', { leaseMs: 300 });
    if (a.status !== 'claimed' || b.status !== 'claimed') throw new Error('not claimed');
    keeper.hold('a', a.token);
    keeper.hold('b', b.token);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(1_000);
    // Both leases outlived several leaseMs and are still owned.
    expect(await store.claim('a', { leaseMs: 300 })).toEqual({ status: 'in-progress' });
    expect(await store.claim('b', { leaseMs: 300 })).toEqual({ status: 'in-progress' });
    expect(extend.mock.calls.filter(([key]) => key === 'a').length).toBeGreaterThanOrEqual(5);
    keeper.drop('a', 'not-the-token');
    expect(keeper.size).toBe(2);
    keeper.drop('a', a.token);
    keeper.drop('b', b.token);
    expect(keeper.size).toBe(0);
    // The timer stops at its next tick (100 ms), not at each drop.
    await expectTimerStopped(extend);
  });

  it('keeps one timer across holds and drops that empty it between ticks', async () => {
    vi.useFakeTimers();
    const store = new InMemoryDedupeStore({ now: () => Date.now() });
    const keeper = new LeaseKeeper(store, 300);
    const setInterval = vi.spyOn(globalThis, 'setInterval');
    for (let i = 0; i < 5; i++) {
      keeper.hold(`k${i}`, 't');
      keeper.drop(`k${i}`, 't');
    }
    expect(setInterval).toHaveBeenCalledTimes(1);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(100);
    expect(vi.getTimerCount()).toBe(0);
    keeper.hold('again', 't');
    expect(vi.getTimerCount()).toBe(1);
    keeper.drop('again', 't');
  });

  it('does not extend a lease taken less than a sixth of leaseMs ago', async () => {
    vi.useFakeTimers();
    const store = new InMemoryDedupeStore({ now: () => Date.now() });
    const extend = vi.spyOn(store, 'extend');
    const keeper = new LeaseKeeper(store, 600);
    keeper.hold('old', 't1');
    await vi.advanceTimersByTimeAsync(190);
    keeper.hold('young', 't2');
    await vi.advanceTimersByTimeAsync(10); // the tick at 200 ms
    expect(extend.mock.calls.map(([key]) => key)).toEqual(['old']);
    keeper.drop('old', 't1');
    keeper.drop('young', 't2');
  });

  it('keeps a group of leases alive as one entry; a lease dropped from it is no longer extended', async () => {
    vi.useFakeTimers();
    const store = new InMemoryDedupeStore({ now: () => Date.now() });
    const extend = vi.spyOn(store, 'extend');
    const keeper = new LeaseKeeper(store, 300);
    const claims = await store.claimMany(['a', 'b', 'c'], { leaseMs: 300 });
    const pairs: string[] = [];
    for (const [i, key] of ['a', 'b', 'c'].entries()) {
      const claim = claims[i]!;
      if (claim.status !== 'claimed') throw new Error('not claimed');
      pairs.push(key, claim.token);
    }
    const warn = vi.fn();
    const logger = { warn } as never;
    const group = keeper.holdGroup(pairs, [() => logger, () => logger, () => logger]);
    expect(keeper.size).toBe(3);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(1_000);
    for (const key of ['a', 'b', 'c'])
      expect(await store.claim(key, { leaseMs: 300 })).toEqual({ status: 'in-progress' });
    // b's handler timed out: its lease is let go, the others are still kept.
    keeper.drop('b', 'not-the-token');
    expect(keeper.size).toBe(3);
    keeper.drop('b', pairs[3]!);
    expect(keeper.size).toBe(2);
    extend.mockClear();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(new Set(extend.mock.calls.map(([key]) => key))).toEqual(new Set(['a', 'c']));
    expect(await store.claim('b', { leaseMs: 300 })).toMatchObject({ status: 'claimed' });
    expect(warn).not.toHaveBeenCalled();
    keeper.dropGroup(group);
    expect(keeper.size).toBe(0);
    await expectTimerStopped(extend);
  });

  it('warns through the source of a grouped lease that was lost', async () => {
    vi.useFakeTimers();
    const store = new InMemoryDedupeStore({ now: () => Date.now() });
    vi.spyOn(store, 'extend').mockResolvedValue(false);
    const keeper = new LeaseKeeper(store, 300);
    const warnings: string[] = [];
    const source = (name: string) => () =>
      ({ warn: (fields: { key: string }) => warnings.push(`${name}:${fields.key}`) }) as never;
    const group = keeper.holdGroup(['x', 't1', 'y', 't2'], [source('X'), source('Y')]);
    await vi.advanceTimersByTimeAsync(100);
    expect(warnings.sort()).toEqual(['X:x', 'Y:y']);
    keeper.dropGroup(group);
  });
});
