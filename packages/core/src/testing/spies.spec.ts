import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { createConsumerPipeline } from '../consumer/pipeline.js';
import { handle } from '../consumer/middleware.js';
import { encodeEnvelope } from '../envelope/codec.js';
import { BacktrackError } from '../errors/BacktrackError.js';
import { defineEvent } from '../schema/defineEvent.js';
import { ConsumerSpy, type SpyRecord } from './ConsumerSpy.js';
import { SpyTimeoutError } from './errors.js';
import { matchesPartial } from './match.js';
import { PublisherSpy } from './PublisherSpy.js';

const OrderPlaced = defineEvent('order.placed').version(
  1,
  z.object({
    orderId: z.string(),
    amountCents: z.number().int(),
    lines: z.array(z.object({ sku: z.string(), qty: z.number() })).default([]),
  }),
);
const OrderShipped = defineEvent('order.shipped').version(1, z.object({ orderId: z.string() }));

function record(n: number, overrides: Partial<SpyRecord> = {}): SpyRecord {
  return {
    messageId: `m-${n}`,
    type: 'order.placed',
    data: { orderId: `o-${n}`, customer: { tier: n % 2 === 0 ? 'gold' : 'basic' } },
    attempt: 1,
    disposition: { kind: 'ack', outcome: 'handled' },
    at: n,
    ...overrides,
  };
}

afterEach(() => vi.useRealTimers());

describe('matchesPartial', () => {
  it('matches nested keys the pattern names and ignores the others', () => {
    const value = { a: 1, b: { c: 'x', d: [1, { e: true }] }, f: null };
    expect(matchesPartial(value, { b: { c: 'x' } })).toBe(true);
    expect(matchesPartial(value, { b: { d: [1, { e: true }] } })).toBe(true);
    expect(matchesPartial(value, { b: { c: 'y' } })).toBe(false);
    expect(matchesPartial(value, { b: { d: [1] } })).toBe(false); // arrays: same length
    expect(matchesPartial(value, { g: undefined })).toBe(false); // a key it names must exist
    expect(matchesPartial(value, { f: null, a: (n: unknown) => n === 1 })).toBe(true);
    expect(matchesPartial(null, { a: 1 })).toBe(false);
    expect(matchesPartial(new Date(5), new Date(5))).toBe(true);
  });
});

describe('ConsumerSpy', () => {
  it('filters and counts by type, disposition kind and partial payload', () => {
    const spy = new ConsumerSpy();
    for (let n = 1; n <= 4; n++) spy.record(record(n));
    spy.record(
      record(5, {
        type: 'order.shipped',
        disposition: { kind: 'dead-letter', reason: 'bad' } as SpyRecord['disposition'],
      }),
    );
    expect(spy.count()).toBe(5);
    expect(spy.count({ type: 'order.placed' })).toBe(4);
    expect(spy.count({ data: { customer: { tier: 'gold' } } })).toBe(2);
    expect(spy.filter({ data: { customer: { tier: 'gold' } } }).map((r) => r.messageId)).toEqual([
      'm-2',
      'm-4',
    ]);
    expect(spy.find({ kind: 'dead-letter' })?.messageId).toBe('m-5');
    expect(spy.count({ kind: 'dead-letter', type: 'order.placed' })).toBe(0);
    expect(spy.recordsFor('m-3')).toHaveLength(1);
  });

  it('keeps at most maxRecords, dropping the oldest, and says how many it dropped', () => {
    const spy = new ConsumerSpy({ maxRecords: 3 });
    for (let n = 1; n <= 10; n++) spy.record(record(n));
    expect(spy.records.map((r) => r.messageId)).toEqual(['m-8', 'm-9', 'm-10']);
    expect(spy.dropped).toBe(7);
    expect(spy.count()).toBe(3);
    expect(() => new ConsumerSpy({ maxRecords: 0 })).toThrow(RangeError);
  });

  it('waitFor resolves with a record already there, or when it arrives', async () => {
    const spy = new ConsumerSpy();
    spy.record(record(1));
    await expect(spy.waitFor({ messageId: 'm-1' })).resolves.toMatchObject({ at: 1 });
    const later = spy.waitFor({ data: { orderId: 'o-7' }, kind: 'ack' });
    spy.record(record(6));
    spy.record(record(7));
    await expect(later).resolves.toMatchObject({ messageId: 'm-7' });
    await expect(spy.waitForMessage('m-6', { kind: 'ack' })).resolves.toMatchObject({ at: 6 });
  });

  it('waitForCount counts matches as they arrive, even those the full buffer let go', async () => {
    const spy = new ConsumerSpy({ maxRecords: 2 });
    const five = spy.waitForCount(5, { type: 'order.placed' });
    for (let n = 1; n <= 6; n++) spy.record(record(n));
    const got = await five;
    expect(got.map((r) => r.messageId)).toEqual(['m-1', 'm-2', 'm-3', 'm-4', 'm-5']);
  });

  it('times out with a coded SpyTimeoutError that lists what it saw', async () => {
    vi.useFakeTimers();
    const spy = new ConsumerSpy({ timeoutMs: 50 });
    spy.record(record(1));
    const waiting = spy.waitFor({ type: 'order.shipped' });
    const assertion = expect(waiting).rejects.toSatisfy((error: unknown) => {
      expect(error).toBeInstanceOf(SpyTimeoutError);
      expect(error).toBeInstanceOf(BacktrackError);
      const e = error as SpyTimeoutError;
      expect(e.code).toBe('BT_ERR_SPY_TIMEOUT');
      expect(e.message).toContain('order.shipped');
      expect(e.details).toMatchObject({ spy: 'ConsumerSpy', timeoutMs: 50, recorded: 1 });
      expect(e.details['last']).toEqual(['order.placed m-1 ack']);
      return true;
    });
    await vi.advanceTimersByTimeAsync(51);
    await assertion;
    // A waiter that timed out is gone: a later record does not resolve it.
    spy.record(record(2, { type: 'order.shipped' }));
  });

  it('records the payload the pipeline handled, so a test matches on it', async () => {
    const spy = new ConsumerSpy();
    const pipeline = createConsumerPipeline(
      { name: 'billing', handlers: [handle(OrderPlaced, () => undefined)] },
      { spy },
    );
    const envelope = OrderPlaced.envelope(
      { orderId: 'o-9', amountCents: 500, lines: [{ sku: 'a', qty: 2 }] },
      { source: '//test' },
    );
    await pipeline.process({
      message: encodeEnvelope(envelope),
      attempt: 1,
      origin: { transport: 'test', topic: 'orders', group: 'billing' },
    });
    const seen = await spy.waitFor({ data: { lines: [{ sku: 'a' }] }, kind: 'ack' });
    expect(seen).toMatchObject({ messageId: envelope.id, data: { orderId: 'o-9' } });
  });
});

describe('PublisherSpy', () => {
  it('stand-alone: validates, builds the envelope, records it, and matches by type and payload', async () => {
    const publisher = new PublisherSpy({ service: 'orders', version: '1.2.3' });
    const envelope = await publisher.publish(
      OrderPlaced,
      { orderId: 'o-1', amountCents: 100 },
      { key: 'o-1', sagaId: 's-1' },
    );
    expect(envelope).toMatchObject({
      type: 'order.placed',
      producerservice: 'orders',
      producerversion: '1.2.3',
      sagaid: 's-1',
      data: { orderId: 'o-1', amountCents: 100, lines: [] }, // the schema's default applied
    });
    await publisher.publish(OrderPlaced, { orderId: 'o-2', amountCents: 200 });
    await publisher.publish(OrderShipped, { orderId: 'o-1' });
    expect(publisher.count()).toBe(3);
    expect(publisher.count({ type: OrderPlaced })).toBe(2);
    expect(publisher.count({ data: { orderId: 'o-1' } })).toBe(2);
    expect(publisher.count({ type: 'order.placed', key: 'o-1' })).toBe(1);
    expect(publisher.find({ sagaId: 's-1' })?.envelope.id).toBe(envelope.id);
    // Invalid data is refused as the real publisher refuses it, and not recorded.
    await expect(
      publisher.publish(OrderPlaced, { orderId: 'o-3' } as unknown as {
        orderId: string;
        amountCents: number;
      }),
    ).rejects.toThrow();
    expect(publisher.count()).toBe(3);
  });

  it('waitFor resolves when the event is published; waitForCount when enough are', async () => {
    const publisher = new PublisherSpy();
    const shipped = publisher.waitFor({ type: OrderShipped, data: { orderId: 'o-5' } });
    const two = publisher.waitForCount(2, { type: 'order.placed' });
    setTimeout(() => {
      void publisher.publish(OrderPlaced, { orderId: 'o-4', amountCents: 1 });
      void publisher.publish(OrderShipped, { orderId: 'o-5' });
      void publisher.publish(OrderPlaced, { orderId: 'o-6', amountCents: 1 });
    }, 5);
    await expect(shipped).resolves.toMatchObject({ data: { orderId: 'o-5' } });
    expect((await two).map((r) => (r.data as { orderId: string }).orderId)).toEqual(['o-4', 'o-6']);
    await expect(
      publisher.waitFor({ type: 'order.cancelled' }, { timeoutMs: 20 }),
    ).rejects.toMatchObject({ code: 'BT_ERR_SPY_TIMEOUT', details: { spy: 'PublisherSpy' } });
  });

  it('with a delegate: passes each call on and records what it resolved with, not what it refused', async () => {
    const inner = new PublisherSpy({ service: 'payments', version: '9' });
    const failing = new PublisherSpy({ failWith: () => new Error('broker down') });
    const spy = new PublisherSpy({ delegate: inner });
    expect(spy.service).toBe('payments');
    await spy.publish(OrderShipped, { orderId: 'o-1' });
    expect(inner.count()).toBe(1);
    expect(spy.records[0]?.envelope).toBe(inner.records[0]?.envelope);
    const refusing = new PublisherSpy({ delegate: failing });
    await expect(refusing.publish(OrderShipped, { orderId: 'o-2' })).rejects.toThrow('broker down');
    expect(refusing.count()).toBe(0);
  });

  it('is bounded like the consumer spy', async () => {
    const publisher = new PublisherSpy({ maxRecords: 2 });
    for (let n = 0; n < 5; n++) await publisher.publish(OrderShipped, { orderId: `o-${n}` });
    expect(publisher.records.map((r) => (r.data as { orderId: string }).orderId)).toEqual([
      'o-3',
      'o-4',
    ]);
    expect(publisher.dropped).toBe(3);
  });
});
