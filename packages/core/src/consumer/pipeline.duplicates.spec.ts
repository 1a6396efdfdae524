/**
 * The same message (same idempotency key) more than once in one `processBatch`: the batch claims
 * the key once, the first copy to reach the idempotent step runs the handler, and the others take
 * its outcome in the same batch (absorbed as duplicates once its done mark is durable; its error,
 * or its decision, otherwise). No redelivery, no second handler run.
 */
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { InMemoryDedupeStore } from '../dedupe/InMemoryDedupeStore.js';
import { encodeEnvelope } from '../envelope/codec.js';
import { BacktrackError } from '../errors/BacktrackError.js';
import { StoreUnavailableError } from '../errors/StoreUnavailableError.js';
import { defineEvent } from '../schema/defineEvent.js';
import { ConsumerSpy } from '../testing/ConsumerSpy.js';
import type { DedupeInfo, Middleware } from './context.js';
import { CONSUMER_DEAD_LETTER_CODES } from './errors.js';
import { idempotent } from './idempotent/idempotent.js';
import { handle, type HandlerFn } from './middleware.js';
import { createConsumerPipeline } from './pipeline.js';
import type { Disposition, IncomingMessage } from './processor.js';

const Paid = defineEvent('payment.made').version(1, z.object({ n: z.int() }));

/** A message with envelope id `id`; `key` is its `partitionkey` (its order lane). */
function message(
  id: string,
  options: { key?: string; partition?: number; offset?: number; attempt?: number; n?: number } = {},
): IncomingMessage {
  return {
    message: encodeEnvelope(
      Paid.envelope(
        { n: options.n ?? 1 },
        {
          source: '//pay',
          id,
          ...(options.key === undefined ? {} : { partitionkey: options.key }),
        },
      ),
    ),
    attempt: options.attempt ?? 1,
    origin: {
      transport: 'test',
      topic: 'payments',
      group: 'ledger',
      ...(options.partition === undefined
        ? {}
        : { partition: options.partition, offset: String(options.offset ?? 0) }),
    },
  };
}

const keyOf = (id: string) => `ledger:%2F%2Fpay:${id}`;
const handled: Disposition = { kind: 'ack', outcome: 'handled' };
const duplicate: Disposition = { kind: 'ack', outcome: 'duplicate' };

/** A pipeline whose handler counts its runs per id and runs `behave` for each. */
function setup(
  options: {
    behave?: HandlerFn<{ n: number }>;
    concurrency?: number;
    middleware?: Middleware[];
    handlerTimeoutMs?: number;
    store?: InMemoryDedupeStore;
  } = {},
) {
  const store = options.store ?? new InMemoryDedupeStore();
  const spy = new ConsumerSpy();
  const runs = new Map<string, number>();
  const order: string[] = [];
  const seen: { id: string; dedupe: DedupeInfo | undefined }[] = [];
  const pipeline = createConsumerPipeline(
    {
      name: 'ledger',
      retry: { attempts: 3, initialDelayMs: 100, maxDelayMs: 1_000, jitter: 'none' },
      concurrency: options.concurrency ?? 1,
      ...(options.handlerTimeoutMs === undefined
        ? {}
        : { handlerTimeoutMs: options.handlerTimeoutMs }),
      middleware: [
        // What the idempotent step decided, as a middleware before it sees it.
        async (context, next) => {
          await next();
          seen.push({ id: context.envelope!.id, dedupe: context.dedupe });
        },
        ...(options.middleware ?? []),
      ],
      handlers: [
        handle(Paid, async (context) => {
          runs.set(context.envelope.id, (runs.get(context.envelope.id) ?? 0) + 1);
          order.push(context.envelope.id);
          return options.behave?.(context);
        }),
      ],
    },
    { dedupeStore: store, spy },
  );
  return { pipeline, store, spy, runs, order, seen };
}

describe('processBatch: the same message twice or more in one batch', () => {
  it('runs the handler once, acknowledges the copy as a duplicate in the same batch, and claims and marks the key once', async () => {
    const store = new InMemoryDedupeStore();
    const claimMany = vi.spyOn(store, 'claimMany');
    const completeMany = vi.spyOn(store, 'completeMany');
    const { pipeline, runs, spy, seen } = setup({ store, behave: () => 'receipt-7' });
    const dispositions = await pipeline.processBatch([
      message('p1', { key: 'k', partition: 0, offset: 1 }),
      message('p1', { key: 'k', partition: 0, offset: 2 }),
      message('p2', { key: 'k', partition: 0, offset: 3 }),
    ]);
    expect(dispositions).toEqual([handled, duplicate, handled]);
    expect(runs).toEqual(
      new Map([
        ['p1', 1],
        ['p2', 1],
      ]),
    );
    expect(claimMany).toHaveBeenCalledTimes(1);
    expect(claimMany.mock.calls[0]![0]).toEqual([keyOf('p1'), keyOf('p2')]);
    expect(completeMany).toHaveBeenCalledTimes(1);
    expect(completeMany.mock.calls[0]![0].map((e) => e.key)).toEqual([keyOf('p1'), keyOf('p2')]);
    // The copy sees the first's stored result, as any later duplicate would.
    expect(seen[1]).toEqual({
      id: 'p1',
      dedupe: { key: keyOf('p1'), status: 'done', result: 'receipt-7' },
    });
    // Every disposition the spy saw is final: nothing redelivered.
    expect(spy.records.map((r) => r.disposition)).toEqual([handled, duplicate, handled]);
    // The key is done: the next delivery of p1 is absorbed too.
    expect(await pipeline.processBatch([message('p1')])).toEqual([duplicate]);
    expect(runs.get('p1')).toBe(1);
  });

  it('three copies: one run, two duplicates; the keys of other messages between them unaffected', async () => {
    const { pipeline, runs } = setup();
    const dispositions = await pipeline.processBatch([
      message('t', { partition: 0, offset: 1 }),
      message('u', { partition: 0, offset: 2 }),
      message('t', { partition: 0, offset: 3 }),
      message('t', { partition: 0, offset: 4 }),
      message('v', { partition: 0, offset: 5 }),
    ]);
    expect(dispositions).toEqual([handled, handled, duplicate, duplicate, handled]);
    expect(runs).toEqual(
      new Map([
        ['t', 1],
        ['u', 1],
        ['v', 1],
      ]),
    );
  });

  it('a copy in another lane runs after its first, and each key keeps its order', async () => {
    // Without partitions (RabbitMQ): lanes are partition keys, keyless messages share one lane.
    const started: string[] = [];
    let running = 0;
    let peak = 0;
    const { pipeline, runs, order, seen } = setup({
      concurrency: 4,
      behave: async ({ envelope }) => {
        started.push(envelope.id);
        running++;
        peak = Math.max(peak, running);
        await new Promise((resolve) => setTimeout(resolve, 5));
        running--;
      },
    });
    const dispositions = await pipeline.processBatch([
      message('x1', { key: 'a' }),
      message('y1', { key: 'b' }),
      message('x1', { key: 'c' }), // the copy under another key
      message('x2', { key: 'a' }),
      message('y1'), // a keyless copy
      message('z1', { key: 'd' }),
      message('z2', { key: 'c' }),
    ]);
    expect(dispositions).toEqual([
      handled,
      handled,
      duplicate,
      handled,
      duplicate,
      handled,
      handled,
    ]);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    expect(runs.size).toBe(5);
    // Key order kept: x1 before x2 (key a), the copy of x1 settled before z2 ran (key c).
    expect(order.indexOf('x1')).toBeLessThan(order.indexOf('x2'));
    const copyDone = seen.findIndex((s) => s.id === 'x1' && s.dedupe?.status === 'done');
    expect(copyDone).toBeGreaterThan(seen.findIndex((s) => s.id === 'x1'));
    expect(copyDone).toBeLessThan(seen.findIndex((s) => s.id === 'z2'));
    // Different keys still ran at once.
    expect(peak).toBeGreaterThan(1);
  });

  it('copies across lanes, with concurrency: a copy never takes a second run, whatever the key layout (property)', async () => {
    const entry = fc.record({
      id: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'),
      key: fc.option(fc.constantFrom('k1', 'k2', 'k3'), { nil: undefined }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(entry, { minLength: 1, maxLength: 24 }),
        fc.integer({ min: 1, max: 5 }),
        fc.boolean(),
        fc.constantFrom('ok', 'retriable', 'fatal'),
        async (entries, concurrency, partitioned, failing) => {
          const { pipeline, runs, order } = setup({
            concurrency,
            behave: async ({ envelope }) => {
              await new Promise((resolve) => setImmediate(resolve));
              if (envelope.id === 'c' && failing === 'retriable') throw new Error('later');
              if (envelope.id === 'c' && failing === 'fatal')
                throw new BacktrackError('BT_ERR_TEST_FATAL', 'never', { retriable: false });
            },
          });
          const batch = entries.map((e, i) =>
            message(e.id, {
              ...(e.key === undefined ? {} : { key: e.key }),
              ...(partitioned ? { partition: 0, offset: i } : {}),
            }),
          );
          const dispositions = await pipeline.processBatch(batch);
          const ids = entries.map((e) => e.id);
          // One handler run per distinct id, never a second.
          expect(new Map([...runs].sort())).toEqual(
            new Map([...new Set(ids)].sort().map((id) => [id, 1])),
          );
          // Nothing redelivered: no stall, no rewind.
          expect(dispositions.some((d) => d.kind === 'redeliver')).toBe(false);
          ids.forEach((id, i) => {
            const d = dispositions[i]!;
            const first = ids.indexOf(id) === i;
            if (id === 'c' && failing === 'retriable') expect(d.kind).toBe('retry');
            else if (id === 'c' && failing === 'fatal') expect(d.kind).toBe('dead-letter');
            else expect(d).toEqual(first ? handled : duplicate);
          });
          // Per key, the handler runs in input order (first appearances).
          for (const key of ['k1', 'k2', 'k3']) {
            const expected: string[] = [
              ...new Set(
                entries.filter((e, i) => e.key === key && ids.indexOf(e.id) === i).map((e) => e.id),
              ),
            ];
            expect(order.filter((id) => expected.includes(id))).toEqual(expected);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('copies across lanes, with messages held back: a handler runs only after every earlier message of its key is applied (property)', async () => {
    // `c` fails in a way that holds back the rest of its key: a store outage in its handler,
    // another consumer holding its lease, or a retriable error with `holdAfterRetry`.
    const entry = fc.record({
      id: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'),
      key: fc.option(fc.constantFrom('k1', 'k2', 'k3'), { nil: undefined }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(entry, { minLength: 1, maxLength: 24 }),
        fc.integer({ min: 1, max: 5 }),
        fc.boolean(),
        fc.constantFrom('outage', 'leased', 'retriable'),
        async (entries, concurrency, partitioned, failing) => {
          const store = new InMemoryDedupeStore();
          if (failing === 'leased') await store.claim(keyOf('c'), { leaseMs: 60_000 });
          const applied = new Set<string>();
          /** Each handler run: the delivery (input index) that ran and what was applied before. */
          const started: { index: number; id: string; before: Set<string> }[] = [];
          const { pipeline } = setup({
            store,
            concurrency,
            behave: async ({ envelope, data }) => {
              started.push({ index: data.n, id: envelope.id, before: new Set(applied) });
              await new Promise((resolve) => setImmediate(resolve));
              if (envelope.id === 'c' && failing === 'outage')
                throw new StoreUnavailableError('ledger', 'write');
              if (envelope.id === 'c' && failing === 'retriable') throw new Error('later');
              applied.add(envelope.id);
            },
          });
          const batch = entries.map((e, i) =>
            message(e.id, {
              n: i,
              ...(e.key === undefined ? {} : { key: e.key }),
              ...(partitioned ? { partition: 0, offset: i } : {}),
            }),
          );
          const dispositions = await pipeline.processBatch(batch, { holdAfterRetry: true });
          const ids: string[] = entries.map((e) => e.id);
          // The order lane of each delivery; keyless deliveries without a partition have none.
          const lanes = entries.map((e) => e.key ?? (partitioned ? '(partition 0)' : undefined));
          // A handler runs at most once per id, and only for the first delivery of its id.
          expect(new Set(started.map((s) => s.id)).size).toBe(started.length);
          for (const run of started) expect(ids.indexOf(run.id)).toBe(run.index);
          // Per key: when a delivery runs, every earlier delivery of its key is applied.
          for (const run of started) {
            const lane = lanes[run.index];
            if (lane === undefined) continue;
            for (let e = 0; e < run.index; e++) {
              if (lanes[e] === lane)
                expect(run.before.has(ids[e]!), `${ids[e]} before ${run.id}`).toBe(true);
            }
          }
          // What was not applied is not acknowledged; a copy of what was is a duplicate or held.
          ids.forEach((id, i) => {
            const d = dispositions[i]!;
            if (!applied.has(id)) expect(d.kind).not.toBe('ack');
            else if (ids.indexOf(id) === i) expect(d).toEqual(handled);
            else if (d.kind !== 'redeliver') expect(d).toEqual(duplicate);
          });
        },
      ),
      { numRuns: 200 },
    );
  });

  describe('when the first fails', () => {
    it('a retriable error: the copy is retried with its own attempt and backoff, the handler runs once, and the key stays free', async () => {
      const { pipeline, runs, store } = setup({
        behave: () => {
          throw new Error('ledger busy');
        },
      });
      const dispositions = await pipeline.processBatch([
        message('r', { partition: 0, offset: 1 }),
        message('r', { partition: 0, offset: 2, attempt: 2 }),
      ]);
      expect(runs.get('r')).toBe(1);
      expect(dispositions).toEqual([
        expect.objectContaining({
          kind: 'retry',
          delayMs: 100,
          reason: expect.stringMatching(/attempt 1: ledger busy/),
        }),
        expect.objectContaining({
          kind: 'retry',
          delayMs: 200,
          reason: expect.stringMatching(/attempt 2: ledger busy/),
        }),
      ]);
      // Released: whichever retry comes first runs the handler.
      expect((await store.claim(keyOf('r'), { leaseMs: 1_000 })).status).toBe('claimed');
    });

    it('the retries come back in one batch and succeed: one more run, the copy absorbed', async () => {
      let fail = true;
      const { pipeline, runs } = setup({
        behave: () => {
          if (fail) throw new Error('once');
        },
      });
      const first = await pipeline.processBatch([message('q'), message('q')]);
      expect(first.map((d) => d.kind)).toEqual(['retry', 'retry']);
      fail = false;
      const second = await pipeline.processBatch([
        message('q', { attempt: 2 }),
        message('q', { attempt: 2 }),
      ]);
      expect(second).toEqual([handled, duplicate]);
      expect(runs.get('q')).toBe(2);
    });

    it('the copy has used up its attempts: it is dead-lettered while its first is retried', async () => {
      const { pipeline, runs } = setup({
        behave: () => {
          throw new Error('down');
        },
      });
      const dispositions = await pipeline.processBatch([
        message('e', { attempt: 1 }),
        message('e', { attempt: 3 }),
      ]);
      expect(runs.get('e')).toBe(1);
      expect(dispositions[0]).toMatchObject({ kind: 'retry' });
      expect(dispositions[1]).toMatchObject({
        kind: 'dead-letter',
        code: CONSUMER_DEAD_LETTER_CODES.RETRIES_EXHAUSTED,
      });
    });

    it('a non-retriable error: both are dead-lettered with its code, after one run', async () => {
      const { pipeline, runs } = setup({
        behave: () => {
          throw new BacktrackError('BT_ERR_TEST_REFUSED', 'card refused', { retriable: false });
        },
      });
      const dispositions = await pipeline.processBatch([message('f'), message('f')]);
      expect(runs.get('f')).toBe(1);
      expect(dispositions).toEqual([
        expect.objectContaining({ kind: 'dead-letter', code: 'BT_ERR_TEST_REFUSED' }),
        expect.objectContaining({ kind: 'dead-letter', code: 'BT_ERR_TEST_REFUSED' }),
      ]);
    });

    it('a store outage in the handler: both are redelivered with a pause, after one run', async () => {
      const { pipeline, runs } = setup({
        behave: () => {
          throw new StoreUnavailableError('ledger', 'write');
        },
      });
      const dispositions = await pipeline.processBatch([message('s'), message('s')]);
      expect(runs.get('s')).toBe(1);
      expect(dispositions).toEqual([
        expect.objectContaining({ kind: 'redeliver', pause: true }),
        expect.objectContaining({ kind: 'redeliver', pause: true }),
      ]);
    });

    it('the first decided another outcome (an inner idempotent wrapper found it done): the copy gets the same', async () => {
      const inner = idempotent(async () => 'charged', {
        store: new InMemoryDedupeStore(),
        consumer: 'charges',
        key: (input: { id: string }) => input.id,
      });
      await inner({ id: 'already' });
      const { pipeline, runs } = setup({ behave: () => inner({ id: 'already' }) });
      const dispositions = await pipeline.processBatch([message('w'), message('w')]);
      expect(runs.get('w')).toBe(1);
      expect(dispositions).toEqual([duplicate, duplicate]);
    });
  });

  describe('the first done mark is not durable', () => {
    it('lost lease: the copy is not acknowledged either (redelivered, no pause)', async () => {
      const store = new InMemoryDedupeStore();
      vi.spyOn(store, 'completeMany').mockResolvedValueOnce([false]);
      const { pipeline, runs } = setup({ store });
      const dispositions = await pipeline.processBatch([message('l'), message('l')]);
      expect(runs.get('l')).toBe(1);
      expect(dispositions).toEqual([
        expect.objectContaining({ kind: 'redeliver', pause: false }),
        expect.objectContaining({ kind: 'redeliver', pause: false }),
      ]);
    });

    it('the write fails: both are redelivered with a pause', async () => {
      const store = new InMemoryDedupeStore();
      vi.spyOn(store, 'completeMany').mockRejectedValueOnce(
        new StoreUnavailableError('redis', 'completeMany'),
      );
      const { pipeline, runs } = setup({ store });
      const dispositions = await pipeline.processBatch([message('m'), message('m')]);
      expect(runs.get('m')).toBe(1);
      expect(dispositions).toEqual([
        expect.objectContaining({ kind: 'redeliver', pause: true }),
        expect.objectContaining({ kind: 'redeliver', pause: true }),
      ]);
    });
  });

  describe('when the first never reaches the handler', () => {
    it('a middleware stops the first: the copy runs the handler with the batch claim, which is neither released nor claimed twice', async () => {
      const store = new InMemoryDedupeStore();
      const release = vi.spyOn(store, 'release');
      const { pipeline, runs } = setup({
        store,
        middleware: [
          // Stops first deliveries only (a throttle, a feature flag...).
          (context, next) => (context.attempt === 1 ? context.ack('ignored') : next()),
        ],
      });
      const dispositions = await pipeline.processBatch([
        message('g', { attempt: 1 }),
        message('g', { attempt: 2 }),
      ]);
      expect(dispositions).toEqual([{ kind: 'ack', outcome: 'ignored' }, handled]);
      expect(runs.get('g')).toBe(1);
      expect(release).not.toHaveBeenCalled();
      expect((await store.claim(keyOf('g'), { leaseMs: 1_000 })).status).toBe('done');
    });

    it('nobody runs it: the shared claim is released once', async () => {
      const store = new InMemoryDedupeStore();
      const release = vi.spyOn(store, 'release');
      const { pipeline, runs } = setup({
        store,
        middleware: [(context) => context.ack('ignored')],
      });
      await pipeline.processBatch([message('h'), message('h'), message('h')]);
      expect(runs.size).toBe(0);
      expect(release).toHaveBeenCalledTimes(1);
      expect((await store.claim(keyOf('h'), { leaseMs: 1_000 })).status).toBe('claimed');
    });

    it.each([1, 2])(
      'the first is held back behind a redelivered message of its key: the copy under another key is held back too, and so is the rest of its key (concurrency %i)',
      async (concurrency) => {
        const store = new InMemoryDedupeStore();
        // Another consumer holds b0: it is redelivered, and the rest of key "b" is held back.
        await store.claim(keyOf('b0'), { leaseMs: 60_000 });
        const { pipeline, runs, order } = setup({ store, concurrency });
        const dispositions = await pipeline.processBatch([
          message('b0', { key: 'b' }),
          message('n', { key: 'b' }),
          message('o', { key: 'other' }),
          message('n', { key: 'other' }), // the copy: n must not run before b0
          message('p', { key: 'other' }), // after the copy in its key: must not run before n
          message('q', { key: 'third' }),
        ]);
        expect(dispositions.map((d) => d.kind)).toEqual([
          'redeliver',
          'redeliver',
          'ack',
          'redeliver',
          'redeliver',
          'ack',
        ]);
        expect(dispositions[3]).toMatchObject({
          reason: expect.stringMatching(/^held back with the first delivery of this message/),
          pause: false,
        });
        expect(dispositions[4]).toMatchObject({
          reason: expect.stringMatching(/^held back: an earlier message of key "other"/),
        });
        expect(order.sort()).toEqual(['o', 'q']);
        expect(runs.has('n')).toBe(false);
        // Nobody used n's claim: it is free for the redeliveries.
        expect((await store.claim(keyOf('n'), { leaseMs: 1_000 })).status).toBe('claimed');
      },
    );
  });

  it('a first abandoned by handlerTimeoutMs: the copy is redelivered, as for a key leased elsewhere', async () => {
    const { pipeline, runs } = setup({
      handlerTimeoutMs: 20,
      behave: () => new Promise((resolve) => setTimeout(resolve, 200)),
    });
    const dispositions = await pipeline.processBatch([message('slow'), message('slow')]);
    expect(runs.get('slow')).toBe(1);
    expect(dispositions[0]).toMatchObject({ kind: 'retry' });
    expect(dispositions[1]).toMatchObject({ kind: 'redeliver', pause: false });
  });

  it('a key done before the batch: every copy is a duplicate, no run', async () => {
    const { pipeline, runs } = setup();
    await pipeline.processBatch([message('d')]);
    expect(await pipeline.processBatch([message('d'), message('d')])).toEqual([
      duplicate,
      duplicate,
    ]);
    expect(runs.get('d')).toBe(1);
  });
});
