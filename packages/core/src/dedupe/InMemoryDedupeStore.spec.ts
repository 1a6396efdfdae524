import { describe, expect, it } from 'vitest';
import { BacktrackError } from '../errors/BacktrackError.js';
import { InMemoryDedupeStore } from './InMemoryDedupeStore.js';

function fakeClock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('InMemoryDedupeStore (specific behaviour; the shared contract runs in adapter/contracts/inMemoryStores.spec.ts)', () => {
  it('expires a lease on the injected clock, without waiting', async () => {
    const clock = fakeClock();
    const store = new InMemoryDedupeStore({ now: clock.now });
    const first = await store.claim('k', { leaseMs: 100 });
    expect(first.status).toBe('claimed');
    clock.advance(99);
    expect(await store.claim('k', { leaseMs: 100 })).toEqual({ status: 'in-progress' });
    clock.advance(1);
    const second = await store.claim('k', { leaseMs: 100 });
    expect(second.status).toBe('claimed');
    if (first.status !== 'claimed') throw new Error('unreachable');
    expect(await store.complete('k', first.token, { ttlMs: 1000 })).toBe(false);
  });

  it('forgets a done mark after its ttl', async () => {
    const clock = fakeClock();
    const store = new InMemoryDedupeStore({ now: clock.now });
    const c = await store.claim('k', { leaseMs: 100 });
    if (c.status !== 'claimed') throw new Error('expected claim');
    await store.complete('k', c.token, { ttlMs: 500, result: 'r1' });
    clock.advance(499);
    expect(await store.claim('k', { leaseMs: 100 })).toEqual({ status: 'done', result: 'r1' });
    expect(store.ttlOf('k')).toBe(1);
    clock.advance(1);
    expect((await store.claim('k', { leaseMs: 100 })).status).toBe('claimed');
  });

  it('sweeps expired entries so memory stays bounded', async () => {
    const clock = fakeClock();
    const store = new InMemoryDedupeStore({ now: clock.now });
    await store.claimMany(
      Array.from({ length: 2000 }, (_, i) => `k${i}`),
      { leaseMs: 10 },
    );
    expect(store.size).toBe(2000);
    clock.advance(10);
    expect(store.size).toBe(0);
  });

  it('rejects a non-positive lease or ttl and an empty key with a coded error naming the field', async () => {
    const store = new InMemoryDedupeStore();
    await expect(store.claim('k', { leaseMs: 0 })).rejects.toMatchObject({
      code: 'BT_ERR_DEDUPE_CONFIG_INVALID',
      details: { field: 'leaseMs' },
    });
    await expect(store.claim('', { leaseMs: 10 })).rejects.toBeInstanceOf(BacktrackError);
    await expect(store.claimMany(['a', ''], { leaseMs: 10 })).rejects.toMatchObject({
      details: { field: 'keys[1]' },
    });
    await expect(store.complete('k', 't', { ttlMs: Number.NaN })).rejects.toMatchObject({
      details: { field: 'ttlMs' },
    });
    await expect(store.extend('k', 't', -1)).rejects.toMatchObject({
      details: { field: 'leaseMs' },
    });
  });
});
