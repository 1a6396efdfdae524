import { describe, expect, it, vi } from 'vitest';
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

  it('spaces full sweeps by the map size, so live done marks do not make every write slower', async () => {
    const store = new InMemoryDedupeStore();
    const iterate = vi.spyOn(Map.prototype, Symbol.iterator);
    try {
      // 20,000 claims completed with a long ttl: nothing expires, every mark stays live.
      for (let i = 0; i < 20_000; i += 500) {
        const keys = Array.from({ length: 500 }, (_, j) => `k${i + j}`);
        const claims = await store.claimMany(keys, { leaseMs: 60_000 });
        await store.completeMany(
          claims.map((claim, j) => ({ key: keys[j]!, token: (claim as { token: string }).token })),
          { ttlMs: 86_400_000 },
        );
      }
      // A sweep every 1,024 writes would be 39 full scans of a growing map; spaced by its size
      // they are about log2(40,000 / 1,024) + 1.
      expect(iterate.mock.calls.length).toBeGreaterThan(0);
      expect(iterate.mock.calls.length).toBeLessThanOrEqual(7);
    } finally {
      iterate.mockRestore();
    }
    expect(store.size).toBe(20_000);
  });

  it('still drops expired entries nobody reads again, once enough writes follow', async () => {
    const clock = fakeClock();
    const store = new InMemoryDedupeStore({ now: clock.now });
    const iterate = vi.spyOn(Map.prototype, Symbol.iterator);
    try {
      await store.claimMany(
        Array.from({ length: 1000 }, (_, i) => `old${i}`),
        { leaseMs: 10 },
      );
      const sweepsBefore = iterate.mock.calls.length;
      clock.advance(10);
      await store.claimMany(
        Array.from({ length: 1024 }, (_, i) => `new${i}`),
        { leaseMs: 10 },
      );
      // The sweep comes at the 1,024th write (the map's size then), dropping the 1,000 old ones.
      expect(iterate.mock.calls.length).toBe(sweepsBefore + 1);
    } finally {
      iterate.mockRestore();
    }
    expect(store.ttlOf('old0')).toBeUndefined();
    expect(store.size).toBe(1024);
  });

  it('gives every claim a distinct token, distinct across stores too', async () => {
    const a = new InMemoryDedupeStore();
    const b = new InMemoryDedupeStore();
    const tokens = new Set<string>();
    for (const store of [a, b]) {
      const claims = await store.claimMany(
        Array.from({ length: 100 }, (_, i) => `k${i}`),
        { leaseMs: 1000 },
      );
      for (const claim of claims) tokens.add((claim as { token: string }).token);
    }
    expect(tokens.size).toBe(200);
    // The same key, claimed in both stores: one store's token does not act on the other.
    const tokenA = (await a.claim('shared', { leaseMs: 1000 })) as { token: string };
    const tokenB = (await b.claim('shared', { leaseMs: 1000 })) as { token: string };
    expect(tokenA.token).not.toBe(tokenB.token);
    expect(await b.complete('shared', tokenA.token, { ttlMs: 1000 })).toBe(false);
    expect(await a.complete('shared', tokenA.token, { ttlMs: 1000, result: 'r' })).toBe(true);
    expect(await a.claim('shared', { leaseMs: 1000 })).toEqual({ status: 'done', result: 'r' });
  });

  it('a done mark is no longer owned: its old token cannot complete, extend or release it', async () => {
    const clock = fakeClock();
    const store = new InMemoryDedupeStore({ now: clock.now });
    const claim = (await store.claim('k', { leaseMs: 100 })) as { token: string };
    expect(await store.extend('k', claim.token, 500)).toBe(true);
    expect(store.ttlOf('k')).toBe(500);
    expect(await store.complete('k', claim.token, { ttlMs: 1000 })).toBe(true);
    expect(store.ttlOf('k')).toBe(1000);
    expect(await store.complete('k', claim.token, { ttlMs: 5000 })).toBe(false);
    expect(await store.extend('k', claim.token, 5000)).toBe(false);
    expect(await store.release('k', claim.token)).toBe(false);
    expect(await store.claim('k', { leaseMs: 100 })).toEqual({ status: 'done' });
    clock.advance(1000);
    expect((await store.claim('k', { leaseMs: 100 })).status).toBe('claimed');
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
