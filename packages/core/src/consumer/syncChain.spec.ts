import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { InMemoryDedupeStore } from '../dedupe/InMemoryDedupeStore.js';
import { encodeEnvelope } from '../envelope/codec.js';
import { defineEvent } from '../schema/defineEvent.js';
import { handle } from './middleware.js';
import { createConsumerPipeline } from './pipeline.js';
import type { IncomingMessage } from './processor.js';

// handle() runs a handler that returns no promise without an await, and the idempotent step and
// the batch go on at once (session 9): the outcomes must be those of an awaited handler.
const Ping = defineEvent('ping').version(1, z.object({ n: z.int() }));

function ping(n: number, id = `p-${n}`): IncomingMessage {
  return {
    message: encodeEnvelope(Ping.envelope({ n }, { source: '//t', id })),
    attempt: 1,
    origin: { transport: 'test', topic: 't', partition: 0, offset: String(n), group: 'g' },
  };
}

describe('a chain that finishes synchronously', () => {
  it('acknowledges a synchronous handler, marks it done, and stores its string result', async () => {
    const store = new InMemoryDedupeStore();
    const pipeline = createConsumerPipeline(
      { name: 'g', handlers: [handle(Ping, ({ data }) => `r${data.n}`)] },
      { dedupeStore: store },
    );
    const first = await pipeline.processBatch([ping(1), ping(2)]);
    expect(first).toEqual([
      { kind: 'ack', outcome: 'handled' },
      { kind: 'ack', outcome: 'handled' },
    ]);
    // The marks are durable: the same messages again are duplicates.
    expect(await pipeline.processBatch([ping(1)])).toEqual([{ kind: 'ack', outcome: 'duplicate' }]);
    const again = await store.claim('g:%2F%2Ft:p-2', { leaseMs: 1_000 });
    expect(again).toEqual({ status: 'done', result: 'r2' });
  });

  it('retries a synchronous throw, and frees the key for the retry', async () => {
    const store = new InMemoryDedupeStore();
    let calls = 0;
    const pipeline = createConsumerPipeline(
      {
        name: 'g',
        handlers: [
          handle(Ping, () => {
            calls++;
            throw new Error('boom');
          }),
        ],
        retry: { attempts: 3 },
      },
      { dedupeStore: store, random: () => 0.5 },
    );
    const [d] = await pipeline.processBatch([ping(1)]);
    expect(d?.kind).toBe('retry');
    expect(calls).toBe(1);
    expect((await store.claim('g:%2F%2Ft:p-1', { leaseMs: 1_000 })).status).toBe('claimed');
  });

  it('awaits a handler that returns a thenable that is not a native promise', async () => {
    const store = new InMemoryDedupeStore();
    const order: string[] = [];
    const pipeline = createConsumerPipeline(
      {
        name: 'g',
        handlers: [
          handle(Ping, () => ({
            then(resolve: (value: string) => void) {
              setTimeout(() => {
                order.push('settled');
                resolve('later');
              }, 1);
            },
          })),
        ],
      },
      { dedupeStore: store },
    );
    const [d] = await pipeline.processBatch([ping(1)]);
    order.push('returned');
    expect(d).toEqual({ kind: 'ack', outcome: 'handled' });
    expect(order).toEqual(['settled', 'returned']);
    expect(await store.claim('g:%2F%2Ft:p-1', { leaseMs: 1_000 })).toEqual({
      status: 'done',
      result: 'later',
    });
  });

  it('a route that is called directly gives a rejected promise for a synchronous throw', async () => {
    const route = handle(Ping, () => {
      throw new Error('sync');
    });
    const context = { envelope: undefined } as never;
    // No envelope: the route's own check throws; it comes back as a rejection, as before.
    await expect(Promise.resolve(route(context, () => Promise.resolve()))).rejects.toThrow();
  });
});
