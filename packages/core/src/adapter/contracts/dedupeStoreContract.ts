/**
 * The shared DedupeStore contract suite: one set of behaviours every implementation must pass
 * (in-memory, Redis, and any store a user writes).
 * Published in `@backtrack/core/adapter`; it takes the test runner as an argument
 * ({@link ContractTestApi}) so importing it needs no vitest.
 */
import type { ContractTestApi } from './testApi.js';
import type { ClaimResult, DedupeStore } from '../../dedupe/DedupeStore.js';

/** What a contract run needs from one implementation: a fresh, isolated store per test. */
export interface DedupeStoreContractHarness {
  store: DedupeStore;
  /**
   * A second store instance over the SAME backing data (for Redis: a second connection), used to
   * show claims are atomic across clients. Defaults to `store`.
   */
  peer?: DedupeStore;
  /**
   * The remaining time to live of `key` in ms as the backend sees it: `undefined` when the key
   * is absent, `null` when it exists WITHOUT an expiry (a contract violation).
   */
  ttlOf(key: string): Promise<number | null | undefined>;
  /**
   * Lets `ms` pass for the store: advance a fake clock, or sleep for real (the default).
   * Stores on real time get short leases; keep the margins the suite uses.
   */
  advance?(ms: number): Promise<void>;
  /** Drops what the test created (keys under the test's prefix, connections). */
  cleanup?(): Promise<unknown>;
}

/**
 * Registers the DedupeStore contract with `test` (`{ describe, it, expect }` from vitest or jest)
 * for one implementation. `factory` is called once per test and must return an isolated store.
 *
 * @example
 * dedupeStoreContract('InMemoryDedupeStore', async () => {
 *   const store = new InMemoryDedupeStore();
 *   return { store, ttlOf: async (k) => store.ttlOf(k) };
 * }, { describe, it, expect });
 */
export function dedupeStoreContract(
  name: string,
  factory: () => Promise<DedupeStoreContractHarness>,
  test: ContractTestApi,
): void {
  const { describe, it, expect } = test;
  const LONG_LEASE = 30_000;
  const SHORT_LEASE = 300;
  const PAST_SHORT_LEASE = 450;
  const TTL = 60_000;

  async function withStore(fn: (h: Required<DedupeStoreContractHarness>) => Promise<void>) {
    const h = await factory();
    const full: Required<DedupeStoreContractHarness> = {
      peer: h.store,
      advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      cleanup: async () => undefined,
      ...h,
    };
    try {
      await fn(full);
    } finally {
      await full.cleanup();
    }
  }

  function tokenOf(result: ClaimResult): string {
    if (result.status !== 'claimed') {
      throw new Error(`expected a claim, got ${JSON.stringify(result)}`);
    }
    expect(typeof result.token).toBe('string');
    expect(result.token.length).toBeGreaterThan(0);
    return result.token;
  }

  describe(`DedupeStore contract: ${name}`, () => {
    it('claims a fresh key with a token', () =>
      withStore(async ({ store }) => {
        tokenOf(await store.claim('fresh', { leaseMs: LONG_LEASE }));
      }));

    it('gives exactly one claimed among many parallel claims of one key, across clients', () =>
      withStore(async ({ store, peer }) => {
        const results = await Promise.all(
          Array.from({ length: 40 }, (_, i) =>
            (i % 2 === 0 ? store : peer).claim('contended', { leaseMs: LONG_LEASE }),
          ),
        );
        expect(results.filter((r) => r.status === 'claimed')).toHaveLength(1);
        expect(results.filter((r) => r.status === 'in-progress')).toHaveLength(39);
      }));

    it('gives exactly one claimed per key among parallel claimMany batches', () =>
      withStore(async ({ store, peer }) => {
        const keys = ['b1', 'b2', 'b3', 'b4'];
        const batches = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            (i % 2 === 0 ? store : peer).claimMany(i % 3 === 0 ? [...keys].reverse() : keys, {
              leaseMs: LONG_LEASE,
            }),
          ),
        );
        const claimedCount = batches.flat().filter((r) => r.status === 'claimed').length;
        expect(claimedCount).toBe(keys.length);
      }));

    it('returns in-progress while another holder has a live lease', () =>
      withStore(async ({ store, peer }) => {
        tokenOf(await store.claim('busy', { leaseMs: LONG_LEASE }));
        expect(await peer.claim('busy', { leaseMs: LONG_LEASE })).toEqual({
          status: 'in-progress',
        });
      }));

    it('returns done (with the stored result) after complete, and never claims again', () =>
      withStore(async ({ store, peer }) => {
        const token = tokenOf(await store.claim('k', { leaseMs: LONG_LEASE }));
        expect(await store.complete('k', token, { ttlMs: TTL, result: 'receipt-42' })).toBe(true);
        expect(await peer.claim('k', { leaseMs: LONG_LEASE })).toEqual({
          status: 'done',
          result: 'receipt-42',
        });
        expect(await store.claim('k', { leaseMs: LONG_LEASE })).toEqual({
          status: 'done',
          result: 'receipt-42',
        });
      }));

    it('returns done without a result when complete stored none', () =>
      withStore(async ({ store }) => {
        const token = tokenOf(await store.claim('k', { leaseMs: LONG_LEASE }));
        expect(await store.complete('k', token, { ttlMs: TTL })).toBe(true);
        const again = await store.claim('k', { leaseMs: LONG_LEASE });
        expect(again.status).toBe('done');
        expect((again as { result?: string }).result).toBeUndefined();
      }));

    it('keeps an empty-string result distinct from no result', () =>
      withStore(async ({ store }) => {
        const token = tokenOf(await store.claim('k', { leaseMs: LONG_LEASE }));
        await store.complete('k', token, { ttlMs: TTL, result: '' });
        expect(await store.claim('k', { leaseMs: LONG_LEASE })).toEqual({
          status: 'done',
          result: '',
        });
      }));

    it('lets another consumer reclaim after release', () =>
      withStore(async ({ store, peer }) => {
        const token = tokenOf(await store.claim('k', { leaseMs: LONG_LEASE }));
        expect(await store.release('k', token)).toBe(true);
        const second = tokenOf(await peer.claim('k', { leaseMs: LONG_LEASE }));
        expect(second).not.toBe(token);
      }));

    it('lets another consumer reclaim after the lease expires', () =>
      withStore(async ({ store, peer, advance }) => {
        tokenOf(await store.claim('k', { leaseMs: SHORT_LEASE }));
        await advance(PAST_SHORT_LEASE);
        tokenOf(await peer.claim('k', { leaseMs: LONG_LEASE }));
      }));

    it('refuses complete, release and extend with a stale token after expiry and reclaim', () =>
      withStore(async ({ store, peer, advance }) => {
        const stale = tokenOf(await store.claim('k', { leaseMs: SHORT_LEASE }));
        await advance(PAST_SHORT_LEASE);
        const fresh = tokenOf(await peer.claim('k', { leaseMs: LONG_LEASE }));
        expect(await store.complete('k', stale, { ttlMs: TTL })).toBe(false);
        expect(await store.release('k', stale)).toBe(false);
        expect(await store.extend('k', stale, LONG_LEASE)).toBe(false);
        // The new owner is untouched by the stale calls.
        expect(await store.claim('k', { leaseMs: LONG_LEASE })).toEqual({ status: 'in-progress' });
        expect(await peer.complete('k', fresh, { ttlMs: TTL })).toBe(true);
        expect((await store.claim('k', { leaseMs: LONG_LEASE })).status).toBe('done');
      }));

    it('refuses complete, release and extend with a stale token after expiry alone', () =>
      withStore(async ({ store, advance }) => {
        const stale = tokenOf(await store.claim('k', { leaseMs: SHORT_LEASE }));
        await advance(PAST_SHORT_LEASE);
        expect(await store.extend('k', stale, LONG_LEASE)).toBe(false);
        expect(await store.complete('k', stale, { ttlMs: TTL })).toBe(false);
        expect(await store.release('k', stale)).toBe(false);
        tokenOf(await store.claim('k', { leaseMs: LONG_LEASE }));
      }));

    it('refuses a wrong token and a token of another key', () =>
      withStore(async ({ store }) => {
        const a = tokenOf(await store.claim('a', { leaseMs: LONG_LEASE }));
        tokenOf(await store.claim('b', { leaseMs: LONG_LEASE }));
        expect(await store.complete('b', a, { ttlMs: TTL })).toBe(false);
        expect(await store.release('b', 'not-a-token')).toBe(false);
        expect(await store.extend('b', a, LONG_LEASE)).toBe(false);
        expect(await store.claim('b', { leaseMs: LONG_LEASE })).toEqual({ status: 'in-progress' });
      }));

    it('refuses to complete, release or extend a done key', () =>
      withStore(async ({ store }) => {
        const token = tokenOf(await store.claim('k', { leaseMs: LONG_LEASE }));
        expect(await store.complete('k', token, { ttlMs: TTL })).toBe(true);
        expect(await store.complete('k', token, { ttlMs: TTL })).toBe(false);
        expect(await store.release('k', token)).toBe(false);
        expect(await store.extend('k', token, LONG_LEASE)).toBe(false);
        expect((await store.claim('k', { leaseMs: LONG_LEASE })).status).toBe('done');
      }));

    it('refuses to complete, release or extend a key never claimed', () =>
      withStore(async ({ store, ttlOf }) => {
        expect(await store.complete('nope', 'x', { ttlMs: TTL })).toBe(false);
        expect(await store.release('nope', 'x')).toBe(false);
        expect(await store.extend('nope', 'x', LONG_LEASE)).toBe(false);
        expect(await ttlOf('nope')).toBeUndefined();
      }));

    it('extends a live lease so it outlives its first expiry', () =>
      withStore(async ({ store, peer, advance }) => {
        const token = tokenOf(await store.claim('k', { leaseMs: SHORT_LEASE }));
        expect(await store.extend('k', token, LONG_LEASE)).toBe(true);
        await advance(PAST_SHORT_LEASE);
        expect(await peer.claim('k', { leaseMs: LONG_LEASE })).toEqual({ status: 'in-progress' });
        expect(await store.complete('k', token, { ttlMs: TTL })).toBe(true);
      }));

    it('claimMany answers in input order with mixed states', () =>
      withStore(async ({ store, peer }) => {
        const doneToken = tokenOf(await store.claim('m-done', { leaseMs: LONG_LEASE }));
        await store.complete('m-done', doneToken, { ttlMs: TTL, result: 'r' });
        tokenOf(await store.claim('m-busy', { leaseMs: LONG_LEASE }));
        const results = await peer.claimMany(['m-new1', 'm-done', 'm-busy', 'm-new2'], {
          leaseMs: LONG_LEASE,
        });
        expect(results.map((r) => r.status)).toEqual(['claimed', 'done', 'in-progress', 'claimed']);
        expect(results[1]).toEqual({ status: 'done', result: 'r' });
        const t1 = tokenOf(results[0]!);
        const t2 = tokenOf(results[3]!);
        expect(t1).not.toBe(t2);
        expect(await peer.complete('m-new1', t1, { ttlMs: TTL })).toBe(true);
        expect(await peer.release('m-new2', t2)).toBe(true);
      }));

    it('claimMany claims a key repeated in one batch once', () =>
      withStore(async ({ store }) => {
        const results = await store.claimMany(['dup', 'dup'], { leaseMs: LONG_LEASE });
        expect(results.map((r) => r.status)).toEqual(['claimed', 'in-progress']);
      }));

    it('claimMany of no keys answers no results', () =>
      withStore(async ({ store }) => {
        expect(await store.claimMany([], { leaseMs: LONG_LEASE })).toEqual([]);
      }));

    it('completeMany marks a batch done, answers in input order, keeps each result', () =>
      withStore(async ({ store, peer }) => {
        const claims = await store.claimMany(['cm-1', 'cm-2', 'cm-3'], { leaseMs: LONG_LEASE });
        const [t1, t2, t3] = claims.map(tokenOf);
        const answers = await store.completeMany(
          [
            { key: 'cm-3', token: t3!, result: 'three' },
            { key: 'cm-1', token: t1! },
            { key: 'cm-2', token: t2!, result: '' },
          ],
          { ttlMs: TTL },
        );
        expect(answers).toEqual([true, true, true]);
        expect(await peer.claimMany(['cm-1', 'cm-2', 'cm-3'], { leaseMs: LONG_LEASE })).toEqual([
          { status: 'done' },
          { status: 'done', result: '' },
          { status: 'done', result: 'three' },
        ]);
      }));

    it('completeMany is fenced per entry: stale, wrong and unknown tokens answer false in place', () =>
      withStore(async ({ store, peer, advance }) => {
        const stale = tokenOf(await store.claim('cf-stolen', { leaseMs: SHORT_LEASE }));
        const expired = tokenOf(await store.claim('cf-expired', { leaseMs: SHORT_LEASE }));
        const live = tokenOf(await store.claim('cf-live', { leaseMs: LONG_LEASE }));
        const other = tokenOf(await store.claim('cf-other', { leaseMs: LONG_LEASE }));
        await advance(PAST_SHORT_LEASE);
        const thief = tokenOf(await peer.claim('cf-stolen', { leaseMs: LONG_LEASE }));
        const answers = await store.completeMany(
          [
            { key: 'cf-stolen', token: stale, result: 'stale' },
            { key: 'cf-live', token: live, result: 'ok' },
            { key: 'cf-expired', token: expired },
            { key: 'cf-other', token: live },
            { key: 'cf-never', token: 'x' },
          ],
          { ttlMs: TTL },
        );
        expect(answers).toEqual([false, true, false, false, false]);
        // The thief still owns its key, untouched by the stale entry, and can complete it.
        expect(await store.claim('cf-stolen', { leaseMs: LONG_LEASE })).toEqual({
          status: 'in-progress',
        });
        expect(
          await peer.completeMany([{ key: 'cf-stolen', token: thief, result: 'thief' }], {
            ttlMs: TTL,
          }),
        ).toEqual([true]);
        expect(await store.claim('cf-stolen', { leaseMs: LONG_LEASE })).toEqual({
          status: 'done',
          result: 'thief',
        });
        // The expired lease was not turned into a done mark; the wrong token left cf-other alone.
        tokenOf(await store.claim('cf-expired', { leaseMs: LONG_LEASE }));
        expect(await store.claim('cf-other', { leaseMs: LONG_LEASE })).toEqual({
          status: 'in-progress',
        });
        expect(await store.complete('cf-other', other, { ttlMs: TTL })).toBe(true);
        expect(await store.claim('cf-live', { leaseMs: LONG_LEASE })).toEqual({
          status: 'done',
          result: 'ok',
        });
      }));

    it('completeMany of no entries answers no results', () =>
      withStore(async ({ store }) => {
        expect(await store.completeMany([], { ttlMs: TTL })).toEqual([]);
      }));

    it('completeMany completes a key repeated in one batch once: the first entry wins', () =>
      withStore(async ({ store }) => {
        const token = tokenOf(await store.claim('cd', { leaseMs: LONG_LEASE }));
        expect(
          await store.completeMany(
            [
              { key: 'cd', token, result: 'first' },
              { key: 'cd', token, result: 'second' },
            ],
            { ttlMs: TTL },
          ),
        ).toEqual([true, false]);
        expect(await store.claim('cd', { leaseMs: LONG_LEASE })).toEqual({
          status: 'done',
          result: 'first',
        });
      }));

    it('completeMany sets the retention on every done mark it writes', () =>
      withStore(async ({ store, ttlOf }) => {
        const claims = await store.claimMany(['cr-1', 'cr-2'], { leaseMs: LONG_LEASE });
        await store.completeMany(
          claims.map((c, i) => ({ key: `cr-${i + 1}`, token: tokenOf(c) })),
          { ttlMs: 5 * LONG_LEASE },
        );
        for (const key of ['cr-1', 'cr-2']) {
          const ttl = await ttlOf(key);
          expect(ttl).toBeGreaterThan(LONG_LEASE);
          expect(ttl).toBeLessThanOrEqual(5 * LONG_LEASE);
        }
      }));

    it('completeMany rejects a non-positive retention or an empty key with a coded error', () =>
      withStore(async ({ store }) => {
        const token = tokenOf(await store.claim('cv', { leaseMs: LONG_LEASE }));
        await expect(
          store.completeMany([{ key: 'cv', token }], { ttlMs: 0 }),
        ).rejects.toMatchObject({ code: 'BT_ERR_DEDUPE_CONFIG_INVALID', retriable: false });
        await expect(
          store.completeMany([{ key: '', token }], { ttlMs: TTL }),
        ).rejects.toMatchObject({ code: 'BT_ERR_DEDUPE_CONFIG_INVALID' });
        // Nothing of a rejected batch was written.
        expect(await store.claim('cv', { leaseMs: LONG_LEASE })).toEqual({ status: 'in-progress' });
      }));

    it('sets an expiry on every key: leases, extended leases and done marks', () =>
      withStore(async ({ store, ttlOf }) => {
        const token = tokenOf(await store.claim('t-lease', { leaseMs: LONG_LEASE }));
        const leaseTtl = await ttlOf('t-lease');
        expect(leaseTtl).not.toBeNull();
        expect(leaseTtl).toBeGreaterThan(0);
        expect(leaseTtl).toBeLessThanOrEqual(LONG_LEASE);

        await store.extend('t-lease', token, 2 * LONG_LEASE);
        const extendedTtl = await ttlOf('t-lease');
        expect(extendedTtl).toBeGreaterThan(LONG_LEASE);
        expect(extendedTtl).toBeLessThanOrEqual(2 * LONG_LEASE);

        await store.complete('t-lease', token, { ttlMs: 5 * LONG_LEASE });
        const doneTtl = await ttlOf('t-lease');
        expect(doneTtl).toBeGreaterThan(2 * LONG_LEASE);
        expect(doneTtl).toBeLessThanOrEqual(5 * LONG_LEASE);

        const batch = await store.claimMany(['t-b1', 't-b2'], { leaseMs: LONG_LEASE });
        expect(batch.every((r) => r.status === 'claimed')).toBe(true);
        for (const key of ['t-b1', 't-b2']) {
          const ttl = await ttlOf(key);
          expect(ttl).not.toBeNull();
          expect(ttl).toBeGreaterThan(0);
        }
      }));

    it('forgets a done mark after its retention, so the key can be claimed again', () =>
      withStore(async ({ store, advance }) => {
        const token = tokenOf(await store.claim('k', { leaseMs: LONG_LEASE }));
        await store.complete('k', token, { ttlMs: SHORT_LEASE });
        await advance(PAST_SHORT_LEASE);
        tokenOf(await store.claim('k', { leaseMs: LONG_LEASE }));
      }));

    it('rejects a non-positive lease with a coded, non-retriable error', () =>
      withStore(async ({ store }) => {
        await expect(store.claim('k', { leaseMs: 0 })).rejects.toMatchObject({
          code: 'BT_ERR_DEDUPE_CONFIG_INVALID',
          retriable: false,
        });
        await expect(store.claimMany(['k'], { leaseMs: -5 })).rejects.toMatchObject({
          code: 'BT_ERR_DEDUPE_CONFIG_INVALID',
        });
      }));
  });
}
