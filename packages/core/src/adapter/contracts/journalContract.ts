/**
 * The shared Journal contract suite: one set of behaviours every Journal implementation must pass
 * (in-memory, Redis, and any store a user writes). Published in `@backtrack/core/adapter`; the
 * test runner comes in as an argument (see testApi.ts).
 */
import type { ContractTestApi } from './testApi.js';
import { BacktrackError } from '../../errors/BacktrackError.js';
import type { Journal, JournalAppend, JournalQuery, JournalRecord } from '../../journal/Journal.js';
import { SEQ_PER_MS } from '../../journal/Journal.js';

/** What a contract run needs from one implementation. */
export interface JournalContractHarness {
  journal: Journal;
  /** Drops what the test created (keys under the test's prefix, connections). */
  cleanup?(): Promise<void>;
}

/** Options the suite asks the factory to honour. */
export interface JournalContractOptions {
  retentionMs: number;
}

/**
 * Registers the Journal contract for one implementation. `factory` is called once per test and
 * must return an empty, isolated journal configured with the given retention.
 *
 * @example
 * journalContract('InMemoryJournal', async (o) => ({ journal: new InMemoryJournal(o) }), {
 *   describe, it, expect,
 * });
 */
export function journalContract(
  name: string,
  factory: (options: JournalContractOptions) => Promise<JournalContractHarness>,
  test: ContractTestApi,
): void {
  const { describe, it, expect } = test;
  const DAY = 24 * 60 * 60 * 1000;

  async function withJournal(
    fn: (journal: Journal) => Promise<void>,
    options: JournalContractOptions = { retentionMs: 7 * DAY },
  ) {
    const h = await factory(options);
    try {
      await fn(h.journal);
    } finally {
      await h.cleanup?.();
    }
  }

  let counter = 0;
  function rec(overrides: Partial<JournalAppend> = {}): JournalAppend {
    counter++;
    return {
      id: `evt-${counter}-${Math.random().toString(36).slice(2, 8)}`,
      type: 'order.placed',
      schemaVersion: 2,
      key: `order-${counter}`,
      topic: 'orders',
      service: 'orders',
      version: '2.4.0',
      time: new Date().toISOString(),
      message: {
        headers: { id: `h-${counter}`, type: 'order.placed', 'content-type': 'application/json' },
        body: new TextEncoder().encode(JSON.stringify({ n: counter })),
      },
      ...overrides,
    };
  }

  async function all(journal: Journal, query: JournalQuery): Promise<JournalRecord[]> {
    const out: JournalRecord[] = [];
    let cursor: string | undefined;
    for (let pages = 0; pages < 10_000; pages++) {
      const page = await journal.query({ ...query, cursor });
      out.push(...page.items);
      if (!page.nextCursor) return out;
      cursor = page.nextCursor;
    }
    throw new Error('query never ended');
  }

  const at = (ms: number) => new Date(ms).toISOString();

  describe(`Journal contract: ${name}`, () => {
    it('appends a pending record with a seq and returns it by id with the exact bytes', async () => {
      await withJournal(async (journal) => {
        const body = new Uint8Array([0, 255, 1, 128, 10, 13]);
        const input = rec({
          sagaId: 'saga-1',
          causationId: 'cause-1',
          message: { headers: { a: 'b' }, body },
        });
        const stored = await journal.append(input);
        expect(stored.state).toBe('pending');
        expect(Number.isSafeInteger(stored.seq)).toBe(true);
        const got = await journal.get(input.id);
        expect(got).toBeDefined();
        expect(got!.seq).toBe(stored.seq);
        expect({ ...got!, message: undefined }).toEqual({
          ...input,
          message: undefined,
          seq: stored.seq,
          state: 'pending',
        });
        expect(Array.from(got!.message.body)).toEqual(Array.from(body));
        expect(got!.message.headers).toEqual({ a: 'b' });
        expect(await journal.get('no-such-id')).toBeUndefined();
      });
    });

    it('is idempotent on id: a second append changes nothing and returns the first record', async () => {
      await withJournal(async (journal) => {
        const first = await journal.append(rec({ id: 'same-id', type: 'a' }));
        await journal.markPublished(['same-id']);
        const second = await journal.append(rec({ id: 'same-id', type: 'b' }));
        expect(second.seq).toBe(first.seq);
        expect(second.type).toBe('a');
        expect(second.state).toBe('published');
        expect((await journal.query({})).items).toHaveLength(1);
      });
    });

    it('assigns strictly increasing seqs that encode the time, even when producer clocks go back', async () => {
      await withJournal(async (journal) => {
        const t = Date.now() - 60_000;
        const a = await journal.append(rec({ time: at(t) }));
        const b = await journal.append(rec({ time: at(t) }));
        const c = await journal.append(rec({ time: at(t - 5_000) }));
        const d = await journal.append(rec({ time: at(t + 1_000) }));
        expect(a.seq).toBe(t * SEQ_PER_MS);
        expect(b.seq).toBe(a.seq + 1);
        expect(c.seq).toBe(b.seq + 1);
        expect(d.seq).toBe((t + 1_000) * SEQ_PER_MS);
      });
    });

    it('never gives two concurrent appends the same seq', async () => {
      await withJournal(async (journal) => {
        const time = at(Date.now() - 1000);
        const stored = await Promise.all(
          Array.from({ length: 60 }, () => journal.append(rec({ time }))),
        );
        expect(new Set(stored.map((r) => r.seq)).size).toBe(60);
        const listed = await all(journal, {});
        expect(listed.map((r) => r.seq)).toEqual(
          [...stored.map((r) => r.seq)].sort((x, y) => x - y),
        );
      });
    });

    it('returns records in publish order forward and newest first backward', async () => {
      await withJournal(async (journal) => {
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) ids.push((await journal.append(rec())).id);
        expect((await journal.query({})).items.map((r) => r.id)).toEqual(ids);
        expect((await journal.query({ direction: 'backward' })).items.map((r) => r.id)).toEqual(
          [...ids].reverse(),
        );
      });
    });

    it('filters by service and version, type and saga id (all filters AND)', async () => {
      await withJournal(async (journal) => {
        const bad1 = await journal.append(
          rec({ service: 'orders', version: '2.4.0', type: 'order.placed' }),
        );
        await journal.append(rec({ service: 'orders', version: '2.3.9', type: 'order.placed' }));
        await journal.append(
          rec({ service: 'payments', version: '2.4.0', type: 'payment.charged' }),
        );
        const bad2 = await journal.append(
          rec({ service: 'orders', version: '2.4.0', type: 'order.cancelled', sagaId: 'saga-9' }),
        );
        await journal.append(
          rec({ service: 'shipping', version: '1.0.0', type: 'order.cancelled', sagaId: 'saga-9' }),
        );

        const ids = async (q: JournalQuery) => (await all(journal, q)).map((r) => r.id);
        expect(await ids({ service: 'orders', version: '2.4.0' })).toEqual([bad1.id, bad2.id]);
        expect(await ids({ service: 'orders' })).toHaveLength(3);
        expect(await ids({ type: 'order.cancelled' })).toHaveLength(2);
        expect(await ids({ sagaId: 'saga-9' })).toHaveLength(2);
        expect(await ids({ service: 'orders', version: '2.4.0', type: 'order.cancelled' })).toEqual(
          [bad2.id],
        );
        expect(await ids({ service: 'orders', sagaId: 'saga-9' })).toEqual([bad2.id]);
        expect(await ids({ service: 'nobody' })).toEqual([]);
      });
    });

    it('selects an inclusive time window', async () => {
      await withJournal(async (journal) => {
        const t0 = Date.now() - 10 * 60_000;
        const r: JournalRecord[] = [];
        for (let i = 0; i < 6; i++)
          r.push(await journal.append(rec({ time: at(t0 + i * 60_000) })));
        const ids = async (q: JournalQuery) => (await all(journal, q)).map((x) => x.id);
        expect(await ids({ since: at(t0 + 60_000), until: t0 + 3 * 60_000 })).toEqual([
          r[1]!.id,
          r[2]!.id,
          r[3]!.id,
        ]);
        expect(await ids({ since: new Date(t0 + 4 * 60_000) })).toEqual([r[4]!.id, r[5]!.id]);
        expect(await ids({ until: new Date(t0), direction: 'backward' })).toEqual([r[0]!.id]);
      });
    });

    it('pages through many records with an opaque cursor, without gaps or repeats', async () => {
      await withJournal(async (journal) => {
        const time = Date.now() - 60_000;
        const ids: string[] = [];
        for (let i = 0; i < 250; i++) {
          const r = await journal.append(
            rec({ time: at(time + i), service: i % 2 === 0 ? 'orders' : 'payments' }),
          );
          ids.push(r.id);
        }
        const first = await journal.query({ limit: 100 });
        expect(first.items.length).toBeLessThanOrEqual(100);
        expect(first.nextCursor).toBeTypeOf('string');
        expect((await all(journal, { limit: 100 })).map((r) => r.id)).toEqual(ids);
        expect((await all(journal, { limit: 7, direction: 'backward' })).map((r) => r.id)).toEqual(
          [...ids].reverse(),
        );
        expect((await all(journal, { limit: 10, service: 'orders' })).map((r) => r.id)).toEqual(
          ids.filter((_, i) => i % 2 === 0),
        );
        const last = await journal.query({ limit: 1000 });
        expect(last.items).toHaveLength(250);
        expect(last.nextCursor).toBeUndefined();
      });
    });

    it('rejects a cursor it did not issue, a bad time and a bad limit with BT_ERR_JOURNAL_QUERY_INVALID', async () => {
      await withJournal(async (journal) => {
        for (let i = 0; i < 3; i++) await journal.append(rec());
        const page = await journal.query({ limit: 1 });
        const bad: JournalQuery[] = [
          { cursor: 'not-a-cursor' },
          { cursor: page.nextCursor!, direction: 'backward' },
          { since: 'yesterday-ish' },
          { limit: 0 },
          { limit: 1_000_000 },
        ];
        for (const q of bad) {
          const error = await journal.query(q).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(error, JSON.stringify(q)).toBeInstanceOf(BacktrackError);
          expect((error as BacktrackError).code).toBe('BT_ERR_JOURNAL_QUERY_INVALID');
        }
      });
    });

    it('rejects a malformed record with BT_ERR_JOURNAL_RECORD_INVALID', async () => {
      await withJournal(async (journal) => {
        for (const bad of [
          rec({ id: '' }),
          rec({ service: '' }),
          rec({ time: 'later' }),
          rec({ schemaVersion: 0 }),
        ]) {
          await expect(journal.append(bad)).rejects.toMatchObject({
            code: 'BT_ERR_JOURNAL_RECORD_INVALID',
          });
        }
      });
    });

    it('appendMany stores a batch in order, like append on each record', async () => {
      await withJournal(async (journal) => {
        const t = Date.now() - 30_000;
        const before = await journal.append(rec({ id: 'pre-existing', time: at(t) }));
        const batch = [
          rec({
            time: at(t),
            sagaId: 'saga-m',
            message: { headers: { x: '1' }, body: new Uint8Array([0, 1, 255]) },
          }),
          rec({ id: 'pre-existing', type: 'ignored', time: at(t) }),
          rec({ time: at(t - 5_000) }),
          rec({ id: 'twice', time: at(t) }),
          rec({ id: 'twice', type: 'second', time: at(t) }),
          rec({ time: at(t + 1_000) }),
        ];
        const stored = await journal.appendMany(batch);
        expect(stored.map((r) => r.id)).toEqual(batch.map((r) => r.id));
        expect(stored[1]).toMatchObject({ seq: before.seq, type: 'order.placed' });
        expect(stored[3]!.seq).toBe(stored[4]!.seq);
        expect(stored[4]!.type).toBe('order.placed');
        expect(stored[0]!.seq).toBe(before.seq + 1);
        expect(stored[2]!.seq).toBe(before.seq + 2);
        expect(stored[3]!.seq).toBe(before.seq + 3);
        expect(stored[5]!.seq).toBe((t + 1_000) * SEQ_PER_MS);
        expect(stored.every((r) => r.state === 'pending')).toBe(true);
        const got = await journal.get(batch[0]!.id);
        expect(got).toMatchObject({ sagaId: 'saga-m', seq: stored[0]!.seq, state: 'pending' });
        expect(Array.from(got!.message.body)).toEqual([0, 1, 255]);
        expect(got!.message.headers).toEqual({ x: '1' });
        expect((await all(journal, {})).map((r) => r.id)).toEqual([
          'pre-existing',
          batch[0]!.id,
          batch[2]!.id,
          'twice',
          batch[5]!.id,
        ]);
        expect((await all(journal, { sagaId: 'saga-m' })).map((r) => r.id)).toEqual([batch[0]!.id]);
        expect(await journal.appendMany([])).toEqual([]);
        expect(await journal.markPublished(stored.map((r) => r.id))).toBe(5);
        expect((await journal.unpublished({ olderThanMs: 0 })).length).toBe(0);
      });
    });

    it('appendMany with one malformed record rejects with BT_ERR_JOURNAL_RECORD_INVALID and writes nothing', async () => {
      await withJournal(async (journal) => {
        await expect(
          journal.appendMany([rec(), rec({ service: '' }), rec()]),
        ).rejects.toMatchObject({
          code: 'BT_ERR_JOURNAL_RECORD_INVALID',
        });
        expect((await journal.query({})).items).toEqual([]);
      });
    });

    it('never gives two concurrent appendMany calls the same seq', async () => {
      await withJournal(async (journal) => {
        const time = at(Date.now() - 1000);
        const batches = await Promise.all(
          Array.from({ length: 8 }, () =>
            journal.appendMany(Array.from({ length: 10 }, () => rec({ time }))),
          ),
        );
        const seqs = batches.flat().map((r) => r.seq);
        expect(new Set(seqs).size).toBe(80);
        for (const batch of batches) {
          for (let i = 1; i < batch.length; i++)
            expect(batch[i]!.seq).toBeGreaterThan(batch[i - 1]!.seq);
        }
      });
    });

    it('marks published idempotently, ignoring unknown ids', async () => {
      await withJournal(async (journal) => {
        const a = await journal.append(rec());
        const b = await journal.append(rec());
        expect(await journal.markPublished([a.id, 'unknown'])).toBe(1);
        expect(await journal.markPublished([a.id])).toBe(0);
        expect(await journal.markPublished([])).toBe(0);
        expect((await journal.get(a.id))!.state).toBe('published');
        expect((await journal.get(b.id))!.state).toBe('pending');
      });
    });

    it('appendAndMarkPublished (when implemented) appends like appendMany and then marks, in one call', async () => {
      await withJournal(async (journal) => {
        if (!journal.appendAndMarkPublished) return;
        const earlier = await journal.appendMany([rec(), rec()]);
        const body = new Uint8Array([0, 255, 7]);
        const batch = [rec({ message: { headers: { h: 'v' }, body } }), rec({ sagaId: 's-1' })];
        // The earlier batch's ids, an id of this batch (appended first, then marked), an unknown id.
        const marked = await journal.appendAndMarkPublished(batch, [
          earlier[0]!.id,
          earlier[1]!.id,
          batch[1]!.id,
          'unknown',
        ]);
        expect(marked).toBe(3);
        expect((await journal.get(earlier[0]!.id))!.state).toBe('published');
        const first = (await journal.get(batch[0]!.id))!;
        expect(first.state).toBe('pending');
        expect(Array.from(first.message.body)).toEqual([0, 255, 7]);
        expect(first.message.headers).toEqual({ h: 'v' });
        expect((await journal.get(batch[1]!.id))!.state).toBe('published');
        expect(first.seq).toBeGreaterThan(earlier[1]!.seq);
        // Idempotent on id like appendMany; marks only what is pending; no marks, no records.
        expect(await journal.appendAndMarkPublished([batch[0]!], [batch[1]!.id])).toBe(0);
        expect(await journal.appendAndMarkPublished([], [batch[0]!.id])).toBe(1);
        expect(await journal.appendAndMarkPublished([], [])).toBe(0);
        expect((await journal.query({})).items.map((r) => r.id)).toEqual([
          ...earlier.map((r) => r.id),
          ...batch.map((r) => r.id),
        ]);
        await expect(
          journal.appendAndMarkPublished([rec(), rec({ service: '' })], [earlier[0]!.id]),
        ).rejects.toMatchObject({ code: 'BT_ERR_JOURNAL_RECORD_INVALID' });
        expect((await journal.query({})).items).toHaveLength(4);
      });
    });

    it('lists unpublished records older than the threshold, oldest first, up to the limit', async () => {
      await withJournal(async (journal) => {
        const now = Date.now();
        const old1 = await journal.append(rec({ time: at(now - 60_000) }));
        const old2 = await journal.append(rec({ time: at(now - 50_000) }));
        const old3 = await journal.append(rec({ time: at(now - 40_000) }));
        await journal.append(rec({ time: at(now - 1_000) }));
        await journal.markPublished([old2.id]);
        const due = await journal.unpublished({ olderThanMs: 30_000, now });
        expect(due.map((r) => r.id)).toEqual([old1.id, old3.id]);
        expect(
          (await journal.unpublished({ olderThanMs: 30_000, now, limit: 1 })).map((r) => r.id),
        ).toEqual([old1.id]);
        expect(due[0]!.message.body).toBeInstanceOf(Uint8Array);
      });
    });

    it('hides records older than the retention window and prunes them', async () => {
      await withJournal(
        async (journal) => {
          const now = Date.now();
          const expired = await journal.append(rec({ time: at(now - 2 * DAY) }));
          const kept = await journal.append(rec({ time: at(now - 1_000) }));
          expect((await all(journal, {})).map((r) => r.id)).toEqual([kept.id]);
          expect(await journal.get(expired.id)).toBeUndefined();
          expect(await journal.unpublished({ olderThanMs: 0, now })).toHaveLength(1);
          // A store MAY have deleted it already on its own (amortised pruning on append).
          expect(await journal.prune(now)).toBeLessThanOrEqual(1);
          expect(await journal.prune(now)).toBe(0);
          expect(await journal.get(kept.id)).toBeDefined();
          // Pruning at a later "now" removes what has aged out by then.
          expect(await journal.prune(now + 2 * DAY)).toBe(1);
          expect(await journal.get(kept.id)).toBeUndefined();
        },
        { retentionMs: DAY },
      );
    });
  });
}
