import { describe, expect, expectTypeOf, it, vi } from 'vitest';
import { z } from 'zod';
import { decodeEnvelope } from '../envelope/codec.js';
import { InMemoryJournal } from '../journal/InMemoryJournal.js';
import { defineEvent } from '../schema/defineEvent.js';
import { EventRegistry } from '../schema/EventRegistry.js';
import type { OutgoingMessage, Transport } from '../transport/Transport.js';
import { deterministicId } from './deterministicId.js';
import { OutboxRelay } from './OutboxRelay.js';
import { createPublisher } from './Publisher.js';

const OrderPlaced = defineEvent('order.placed')
  .version(1, z.object({ orderId: z.string(), amount: z.number() }))
  .version(2, z.object({ orderId: z.string(), amountCents: z.int(), currency: z.string() }), {
    up: (v1) => ({
      orderId: v1.orderId,
      amountCents: Math.round(v1.amount * 100),
      currency: 'EUR',
    }),
    down: (v2) => ({ orderId: v2.orderId, amount: v2.amountCents / 100 }),
  });
const registry = new EventRegistry([OrderPlaced]);

/** A transport that records what it was given, and fails while `down` is set. */
class RecordingTransport implements Transport {
  readonly name = 'recording';
  readonly sent: OutgoingMessage[] = [];
  down = false;
  async publish(messages: OutgoingMessage[]) {
    if (this.down) throw new Error('broker down');
    this.sent.push(...messages);
  }
  async subscribe(): Promise<never> {
    throw new Error('not used');
  }
  async close() {}
}

function setup() {
  const transport = new RecordingTransport();
  const journal = new InMemoryJournal();
  const publisher = createPublisher(
    { service: 'orders', version: '2.4.0' },
    { transport, journal, registry },
  );
  return { transport, journal, publisher };
}

describe('createPublisher', () => {
  it('validates, encodes, journals, publishes and marks published', async () => {
    const { transport, journal, publisher } = setup();
    const envelope = await publisher.publish(
      OrderPlaced,
      { orderId: 'o-1', amountCents: 1250, currency: 'EUR' },
      { key: 'o-1', sagaId: 's-1', causationId: 'c-1', correlationId: 'r-1' },
    );
    expect(transport.sent).toHaveLength(1);
    const sent = transport.sent[0]!;
    expect(sent).toMatchObject({ topic: 'orders', key: 'o-1' });
    const decoded = decodeEnvelope(sent.message);
    expect(decoded).toMatchObject({
      id: envelope.id,
      type: 'order.placed',
      schemaversion: 2,
      sagaid: 's-1',
      causationid: 'c-1',
      correlationid: 'r-1',
      producerservice: 'orders',
      producerversion: '2.4.0',
      partitionkey: 'o-1',
      source: '//backtrack/orders',
    });
    await publisher.flush();
    const record = await journal.get(envelope.id);
    expect(record).toMatchObject({
      state: 'published',
      service: 'orders',
      version: '2.4.0',
      type: 'order.placed',
      schemaVersion: 2,
      sagaId: 's-1',
      key: 'o-1',
      topic: 'orders',
    });
    expect(Buffer.from(record!.message.body).equals(Buffer.from(sent.message.body))).toBe(true);
  });

  it('writes an older schema version when asked, validating against it', async () => {
    const { transport, publisher } = setup();
    await publisher.publish(OrderPlaced, { orderId: 'o-1', amount: 12.5 }, { schemaVersion: 1 });
    expect(decodeEnvelope(transport.sent[0]!.message)).toMatchObject({
      schemaversion: 1,
      data: { amount: 12.5 },
    });
  });

  it('rejects invalid data before journaling anything', async () => {
    const { transport, journal, publisher } = setup();
    await expect(
      publisher.publish(OrderPlaced, { orderId: 'o-1', amountCents: 1.5, currency: 'EUR' }),
    ).rejects.toMatchObject({ code: 'BT_ERR_SCHEMA_VALIDATION' });
    expect(journal.size).toBe(0);
    expect(transport.sent).toHaveLength(0);
  });

  it('rejects an event type the registry does not know', async () => {
    const { publisher } = setup();
    const Other = defineEvent('other').version(1, z.object({}));
    await expect(publisher.publish(Other, {})).rejects.toMatchObject({
      code: 'BT_ERR_SCHEMA_UNKNOWN_EVENT_TYPE',
    });
  });

  it('keeps a record pending when the broker fails, and the relay delivers it later under the same id', async () => {
    const { transport, journal, publisher } = setup();
    transport.down = true;
    const error = await publisher
      .publish(OrderPlaced, { orderId: 'o-9', amountCents: 1, currency: 'EUR' }, { id: 'fixed-id' })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'BT_ERR_PUBLISH_FAILED',
      details: { id: 'fixed-id', journaled: true },
    });
    expect((await journal.get('fixed-id'))!.state).toBe('pending');

    let now = Date.now();
    const relay = new OutboxRelay({ olderThanMs: 1_000 }, { journal, transport, now: () => now });
    expect(await relay.runOnce()).toEqual({ republished: 0, failed: 0 }); // too recent
    now += 2_000;
    expect(await relay.runOnce()).toEqual({ republished: 0, failed: 1 }); // still down
    transport.down = false;
    expect(await relay.runOnce()).toEqual({ republished: 1, failed: 0 });
    expect(decodeEnvelope(transport.sent[0]!.message).id).toBe('fixed-id');
    expect((await journal.get('fixed-id'))!.state).toBe('published');
    expect(await relay.runOnce()).toEqual({ republished: 0, failed: 0 });
  });

  it('does not publish when the journal append fails (nothing unjournaled leaves)', async () => {
    const transport = new RecordingTransport();
    const journal = new InMemoryJournal();
    // The journal is down: every write fails (appendMany no longer goes through append).
    journal.append = async () => {
      throw new Error('journal down');
    };
    journal.appendMany = async () => {
      throw new Error('journal down');
    };
    const publisher = createPublisher(
      { service: 's', version: '1' },
      { transport, journal, registry },
    );
    await expect(
      publisher.publish(OrderPlaced, { orderId: 'o', amountCents: 1, currency: 'EUR' }),
    ).rejects.toThrow('journal down');
    expect(transport.sent).toHaveLength(0);
  });

  it('resolves when only the published mark fails (the relay may resend under the same id)', async () => {
    const { transport, journal, publisher } = setup();
    journal.markPublished = async () => {
      throw new Error('mark failed');
    };
    await publisher.publish(OrderPlaced, { orderId: 'o', amountCents: 1, currency: 'EUR' });
    expect(transport.sent).toHaveLength(1);
  });

  it('fails loudly at construction on bad options', () => {
    const deps = { transport: new RecordingTransport(), journal: new InMemoryJournal(), registry };
    expect(() => createPublisher({ service: '', version: '1' }, deps)).toThrowError(
      expect.objectContaining({ code: 'BT_ERR_PUBLISHER_CONFIG_INVALID' }),
    );
    expect(() =>
      createPublisher({ service: 's', version: '1' }, { ...deps, journal: undefined as never }),
    ).toThrowError(expect.objectContaining({ code: 'BT_ERR_PUBLISHER_CONFIG_INVALID' }));
  });

  it('types data against the chosen schema version', () => {
    const { publisher } = setup();
    expectTypeOf(publisher.publish<typeof OrderPlaced>)
      .parameter(1)
      .toEqualTypeOf<{
        orderId: string;
        amountCents: number;
        currency: string;
      }>();
    expectTypeOf(publisher.publish<typeof OrderPlaced, 1>)
      .parameter(1)
      .toEqualTypeOf<{
        orderId: string;
        amount: number;
      }>();
  });
});

describe('deterministicId', () => {
  it('is a stable RFC 9562 version 5 UUID that depends on every part and their boundaries', () => {
    const a = deterministicId('evt-1', 'compensate', '0');
    expect(a).toBe(deterministicId('evt-1', 'compensate', '0'));
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(deterministicId('evt-1', 'compensate', '1')).not.toBe(a);
    expect(deterministicId('a:b', 'c')).not.toBe(deterministicId('a', 'b:c'));
  });

  it('never changes: ids published and journaled before stay the same (multi-byte and long names too)', () => {
    // Computed once with createHash('sha1').update(namespace).update(parts.join('\0')).
    expect(deterministicId('evt-1', 'compensate', '0')).toBe(
      'b37f8df1-6c0b-5d9c-82fe-1642be89d755',
    );
    expect(deterministicId('place-order:o-1:reserve-stock:run', '1')).toBe(
      'b82e3e56-fafc-5da8-b4bc-664fe8d18230',
    );
    expect(deterministicId('é€😀', 'ü')).toBe('1c74d11a-38ff-51ca-8e8a-5eca8daaacf8');
    expect(deterministicId('x'.repeat(300))).toBe('ef903fca-cf39-5dac-9e5c-eeb8adc0e840');
    expect(deterministicId('')).toBe('01a74bdf-e4d2-52b5-bd3e-7e9ac28c4fdd');
    // The long name grew the scratch buffer; a short one after it still hashes only itself.
    expect(deterministicId('evt-1', 'compensate', '0')).toBe(
      'b37f8df1-6c0b-5d9c-82fe-1642be89d755',
    );
  });
});

describe('createPublisher batching', () => {
  /**
   * Counts journal calls; `failAppend` makes the appends throw. `fold: false` hides
   * `appendAndMarkPublished` (a journal without it).
   */
  function countingJournal({ fold = true }: { fold?: boolean } = {}) {
    const journal = new InMemoryJournal();
    const calls = {
      append: 0,
      appendMany: [] as number[],
      markPublished: [] as number[],
      appendAndMarkPublished: [] as [number, string[]][],
    };
    const wrapped = Object.assign(Object.create(journal) as InMemoryJournal, {
      failAppend: false,
      append: async (r: Parameters<InMemoryJournal['append']>[0]) => {
        calls.append++;
        return journal.append(r);
      },
      appendMany: async (rs: Parameters<InMemoryJournal['appendMany']>[0]) => {
        calls.appendMany.push(rs.length);
        if (wrapped.failAppend) throw new Error('journal down');
        return journal.appendMany(rs);
      },
      markPublished: async (ids: readonly string[]) => {
        calls.markPublished.push(ids.length);
        return journal.markPublished(ids);
      },
      appendAndMarkPublished: fold
        ? async (rs: Parameters<InMemoryJournal['appendMany']>[0], ids: readonly string[]) => {
            calls.appendAndMarkPublished.push([rs.length, [...ids]]);
            if (wrapped.failAppend) throw new Error('journal down');
            return journal.appendAndMarkPublished(rs, ids);
          }
        : undefined,
    });
    return { journal, wrapped, calls };
  }
  const data = (i: number) => ({ orderId: `o-${i}`, amountCents: i, currency: 'EUR' });

  it('journals concurrent publishes in one appendMany and one markPublished, each resolving with its own envelope', async () => {
    const transport = new RecordingTransport();
    const { journal, wrapped, calls } = countingJournal({ fold: false });
    const publisher = createPublisher(
      { service: 'orders', version: '2.4.0' },
      { transport, journal: wrapped, registry },
    );
    const envelopes = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        publisher.publish(OrderPlaced, data(i), { key: `o-${i}` }),
      ),
    );
    // Without appendAndMarkPublished the marks are written before publish resolves.
    expect(calls).toEqual({
      append: 0,
      appendMany: [20],
      markPublished: [20],
      appendAndMarkPublished: [],
    });
    expect(envelopes.map((e) => (e.data as { orderId: string }).orderId)).toEqual(
      Array.from({ length: 20 }, (_, i) => `o-${i}`),
    );
    expect(transport.sent.map((m) => m.key)).toEqual(envelopes.map((_, i) => `o-${i}`));
    const page = await journal.query({});
    expect(page.items.map((r) => r.id)).toEqual(envelopes.map((e) => e.id));
    expect(page.items.every((r) => r.state === 'published')).toBe(true);
  });

  it("marks a batch published with the next batch's append, in one journal call", async () => {
    const transport = new RecordingTransport();
    const { journal, wrapped, calls } = countingJournal();
    const publisher = createPublisher(
      { service: 'orders', version: '2.4.0', batching: { markDelayMs: 1000 } },
      { transport, journal: wrapped, registry },
    );
    const first = await Promise.all(
      Array.from({ length: 3 }, (_, i) => publisher.publish(OrderPlaced, data(i))),
    );
    // Resolved on the broker's acknowledgement; the marks wait for the next append.
    expect(calls.markPublished).toEqual([]);
    for (const e of first) expect((await journal.get(e.id))!.state).toBe('pending');
    const second = await publisher.publish(OrderPlaced, data(3));
    expect(calls.appendMany).toEqual([3]);
    expect(calls.appendAndMarkPublished).toEqual([[1, first.map((e) => e.id)]]);
    for (const e of first) expect((await journal.get(e.id))!.state).toBe('published');
    expect((await journal.get(second.id))!.state).toBe('pending');
    await publisher.close();
    expect(calls.markPublished).toEqual([1]);
    expect((await journal.get(second.id))!.state).toBe('published');
  });

  it('writes the held marks on their own after markDelayMs when no further publish comes', async () => {
    const transport = new RecordingTransport();
    const { journal, wrapped, calls } = countingJournal();
    const publisher = createPublisher(
      { service: 'orders', version: '2.4.0', batching: { markDelayMs: 20 } },
      { transport, journal: wrapped, registry },
    );
    const envelope = await publisher.publish(OrderPlaced, data(1));
    expect((await journal.get(envelope.id))!.state).toBe('pending');
    await vi.waitFor(async () => expect((await journal.get(envelope.id))!.state).toBe('published'));
    expect(calls.markPublished).toEqual([1]);
    expect(calls.appendAndMarkPublished).toEqual([]);
  });

  it('with markDelayMs 0 writes the held marks at the end of the event-loop turn', async () => {
    const transport = new RecordingTransport();
    const { journal, wrapped } = countingJournal();
    const publisher = createPublisher(
      { service: 'orders', version: '2.4.0', batching: { markDelayMs: 0 } },
      { transport, journal: wrapped, registry },
    );
    const envelope = await publisher.publish(OrderPlaced, data(1));
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect((await journal.get(envelope.id))!.state).toBe('published');
  });

  it('close() waits for publishes in flight and writes every held mark', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const transport = new RecordingTransport();
    const slow: Transport = {
      name: 'slow',
      publish: async (messages) => {
        await gate;
        await transport.publish(messages);
      },
      subscribe: () => transport.subscribe(),
      close: async () => {},
    };
    const { journal, wrapped } = countingJournal();
    const publisher = createPublisher(
      { service: 'orders', version: '2.4.0', batching: { markDelayMs: 1000 } },
      { transport: slow, journal: wrapped, registry },
    );
    const published = publisher.publish(OrderPlaced, data(1));
    let closed = false;
    const closing = publisher.close().then(() => (closed = true));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(closed).toBe(false);
    release();
    await closing;
    const envelope = await published;
    expect((await journal.get(envelope.id))!.state).toBe('published');
  });

  it('never marks a message the transport refused, not even with the next append', async () => {
    const transport = new RecordingTransport();
    const { journal, wrapped, calls } = countingJournal();
    const publisher = createPublisher(
      { service: 'orders', version: '2.4.0', batching: { markDelayMs: 1000 } },
      { transport, journal: wrapped, registry },
    );
    const ok = await publisher.publish(OrderPlaced, data(1));
    transport.down = true;
    const refused = await publisher
      .publish(OrderPlaced, data(2), { id: 'refused' })
      .catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'BT_ERR_PUBLISH_FAILED' });
    transport.down = false;
    const last = await publisher.publish(OrderPlaced, data(3));
    await publisher.close();
    expect(calls.appendAndMarkPublished).toEqual([[1, [ok.id]]]);
    expect(calls.markPublished).toEqual([1]);
    expect((await journal.get('refused'))!.state).toBe('pending');
    expect((await journal.get(ok.id))!.state).toBe('published');
    expect((await journal.get(last.id))!.state).toBe('published');
  });

  it('a failed append that carried marks rejects its batch and writes the marks on their own', async () => {
    const transport = new RecordingTransport();
    const { journal, wrapped, calls } = countingJournal();
    const publisher = createPublisher(
      { service: 'orders', version: '2.4.0', batching: { markDelayMs: 1000 } },
      { transport, journal: wrapped, registry },
    );
    const ok = await publisher.publish(OrderPlaced, data(1));
    wrapped.failAppend = true;
    await expect(publisher.publish(OrderPlaced, data(2))).rejects.toThrow('journal down');
    expect(calls.appendAndMarkPublished).toEqual([[1, [ok.id]]]);
    await publisher.flush();
    expect(calls.markPublished).toEqual([1]);
    expect((await journal.get(ok.id))!.state).toBe('published');
    expect(transport.sent).toHaveLength(1);
  });

  it('splits at maxBatchSize and waits lingerMs for later publishes', async () => {
    const transport = new RecordingTransport();
    const { wrapped, calls } = countingJournal();
    const publisher = createPublisher(
      { service: 'orders', version: '2.4.0', batching: { maxBatchSize: 8, lingerMs: 30 } },
      { transport, journal: wrapped, registry },
    );
    const first = Array.from({ length: 10 }, (_, i) => publisher.publish(OrderPlaced, data(i)));
    await new Promise((resolve) => setTimeout(resolve, 5));
    const late = publisher.publish(OrderPlaced, data(10));
    await Promise.all([...first, late]);
    expect(calls.appendMany).toEqual([8, 3]);
  });

  it('a transport failure rejects exactly the affected publishes; the others resolve and are marked', async () => {
    const journal = new InMemoryJournal();
    const transport = new RecordingTransport();
    const failing = new Set(['o-3', 'o-7']);
    const picky: Transport = {
      name: 'picky',
      publish: async (messages) => {
        if (messages.some((m) => failing.has(m.key!))) throw new Error('refused by the broker');
        await transport.publish(messages);
      },
      subscribe: () => transport.subscribe(),
      close: async () => {},
    };
    const publisher = createPublisher(
      { service: 'orders', version: '2.4.0' },
      { transport: picky, journal, registry },
    );
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        publisher.publish(OrderPlaced, data(i), { key: `o-${i}` }),
      ),
    );
    const rejected = results.flatMap((r, i) => (r.status === 'rejected' ? [i] : []));
    expect(rejected).toEqual([3, 7]);
    for (const i of rejected) {
      expect((results[i] as PromiseRejectedResult).reason).toMatchObject({
        code: 'BT_ERR_PUBLISH_FAILED',
      });
    }
    await publisher.flush();
    const records = (await journal.query({})).items;
    expect(records).toHaveLength(10);
    expect(records.filter((r) => r.state === 'pending').map((r) => r.key)).toEqual(['o-3', 'o-7']);
    expect(transport.sent).toHaveLength(8);
  });

  it('a journal failure rejects every publish of the batch and publishes nothing', async () => {
    const transport = new RecordingTransport();
    const { wrapped } = countingJournal();
    wrapped.failAppend = true;
    const publisher = createPublisher(
      { service: 'orders', version: '2.4.0' },
      { transport, journal: wrapped, registry },
    );
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) => publisher.publish(OrderPlaced, data(i))),
    );
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect(transport.sent).toHaveLength(0);
  });

  it('rejects bad batching options with BT_ERR_PUBLISHER_CONFIG_INVALID', () => {
    const transport = new RecordingTransport();
    const journal = new InMemoryJournal();
    for (const batching of [
      { lingerMs: -1 },
      { maxBatchSize: 0 },
      { maxBatchSize: 1.5 },
      { markDelayMs: -1 },
      { markDelayMs: Number.NaN },
      { markDelayMs: 1001 },
    ]) {
      expect(() =>
        createPublisher(
          { service: 'orders', version: '2.4.0', batching },
          { transport, journal, registry },
        ),
      ).toThrowError(expect.objectContaining({ code: 'BT_ERR_PUBLISHER_CONFIG_INVALID' }));
    }
  });
});
