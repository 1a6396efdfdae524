import { describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { z } from 'zod';
import { createConsumerPipeline } from '../consumer/pipeline.js';
import { handle } from '../consumer/middleware.js';
import type { Disposition, IncomingMessage, MessageProcessor } from '../consumer/processor.js';
import { InMemoryDedupeStore } from '../dedupe/InMemoryDedupeStore.js';
import { decodeEnvelope, encodeEnvelope } from '../envelope/codec.js';
import type { EncodedMessage } from '../envelope/types.js';
import { defineEvent } from '../schema/defineEvent.js';
import { InMemoryJournal } from '../journal/InMemoryJournal.js';
import { createPublisher } from '../publisher/Publisher.js';
import { EventRegistry } from '../schema/EventRegistry.js';
import {
  InMemoryTransport,
  InMemoryTransportConfigError,
  InMemoryTransportError,
} from './InMemoryTransport.js';

const text = (s: string): EncodedMessage => ({
  headers: { id: s },
  body: new TextEncoder().encode(s),
});
const idOf = (m: IncomingMessage) => m.message.headers.id!;

/** A processor answering from a script keyed by message id and attempt. */
function scripted(answer: (m: IncomingMessage) => Disposition) {
  const seen: { id: string; attempt: number; partition?: number }[] = [];
  const processor: MessageProcessor = {
    async process(m) {
      seen.push({ id: idOf(m), attempt: m.attempt, partition: m.origin.partition });
      return answer(m);
    },
  };
  return { processor, seen };
}
const ack: Disposition = { kind: 'ack', outcome: 'handled' };
const silent = pino({ level: 'silent' });

describe('InMemoryTransport', () => {
  it('delivers every message to every group, and reads from the beginning', async () => {
    const transport = new InMemoryTransport();
    await transport.publish([{ topic: 't', message: text('early') }]);
    const a = scripted(() => ack);
    const b = scripted(() => ack);
    await transport.subscribe({ topics: ['t'], group: 'a', processor: a.processor });
    await transport.subscribe({ topics: ['t'], group: 'b', processor: b.processor });
    await transport.publish([
      { topic: 't', message: text('late') },
      { topic: 'other', message: text('x') },
    ]);
    await transport.idle();
    expect(a.seen.map((s) => s.id).sort()).toEqual(['early', 'late']);
    expect(b.seen.map((s) => s.id).sort()).toEqual(['early', 'late']);
    expect(transport.published('t')).toHaveLength(2);
    await transport.close();
  });

  it('with bindingKeys, queues only the matching types for the group (AMQP topic patterns)', async () => {
    const transport = new InMemoryTransport();
    const typed = (id: string, type?: string): EncodedMessage => ({
      headers: type === undefined ? { id } : { id, type },
      body: new TextEncoder().encode(id),
    });
    const exact = scripted(() => ack);
    const star = scripted(() => ack);
    const hash = scripted(() => ack);
    const all = scripted(() => ack);
    await transport.subscribe({
      topics: ['t'],
      group: 'exact',
      processor: exact.processor,
      bindingKeys: ['order.placed'],
    });
    await transport.subscribe({
      topics: ['t'],
      group: 'star',
      processor: star.processor,
      bindingKeys: ['*.shipped'],
    });
    await transport.subscribe({
      topics: ['t'],
      group: 'hash',
      processor: hash.processor,
      bindingKeys: ['order.#'],
    });
    await transport.subscribe({ topics: ['t'], group: 'all', processor: all.processor });
    await transport.publish([
      { topic: 't', message: typed('1', 'order.placed') },
      { topic: 't', message: typed('2', 'order.shipped') },
      { topic: 't', message: typed('3', 'order.item.added') },
      { topic: 't', message: typed('4', 'stock.shipped') },
      { topic: 't', message: typed('5', 'order') },
      // No type header (a structured-mode body): no routing key, delivered to every group.
      { topic: 't', message: typed('6') },
    ]);
    await transport.idle();
    const ids = (s: { seen: { id: string }[] }) => s.seen.map((x) => x.id).sort();
    expect(ids(exact)).toEqual(['1', '6']);
    expect(ids(star)).toEqual(['2', '4', '6']);
    expect(ids(hash)).toEqual(['1', '2', '3', '5', '6']);
    expect(ids(all)).toEqual(['1', '2', '3', '4', '5', '6']);
    await transport.close();
  });

  it("binds the union of the keys of a group's members; a member without keys binds all", async () => {
    const transport = new InMemoryTransport({ partitions: 1 });
    const typed = (id: string, type: string): EncodedMessage => ({
      headers: { id, type },
      body: new TextEncoder().encode(id),
    });
    const one = scripted(() => ack);
    const two = scripted(() => ack);
    await transport.subscribe({
      topics: ['t'],
      group: 'g',
      processor: one.processor,
      bindingKeys: ['a'],
    });
    const second = await transport.subscribe({
      topics: ['t'],
      group: 'g',
      processor: two.processor,
      bindingKeys: ['b'],
    });
    await transport.publish([
      { topic: 't', message: typed('1', 'a') },
      { topic: 't', message: typed('2', 'b') },
      { topic: 't', message: typed('3', 'c') },
    ]);
    await transport.idle();
    expect([...one.seen, ...two.seen].map((x) => x.id).sort()).toEqual(['1', '2']);
    await second.close();
    const three = scripted(() => ack);
    await transport.subscribe({ topics: ['t'], group: 'g', processor: three.processor });
    await transport.publish([{ topic: 't', message: typed('4', 'c') }]);
    await transport.idle();
    expect([...one.seen, ...three.seen].map((x) => x.id)).toContain('4');
    await expect(
      transport.subscribe({ topics: ['t'], group: 'h', processor: one.processor, bindingKeys: [] }),
    ).rejects.toBeInstanceOf(InMemoryTransportError);
    await transport.close();
  });

  it('keeps per-key order while partitions run concurrently', async () => {
    const transport = new InMemoryTransport({ partitions: 3 });
    const order = new Map<string, number[]>();
    const processor: MessageProcessor = {
      async process(m) {
        const [key, n] = idOf(m).split(':') as [string, string];
        await new Promise((r) => setTimeout(r, Math.random() * 3));
        order.set(key, [...(order.get(key) ?? []), Number(n)]);
        return ack;
      },
    };
    await transport.subscribe({ topics: ['t'], group: 'g', processor });
    const messages = [];
    for (let n = 0; n < 20; n++)
      for (const key of ['a', 'b', 'c', 'd'])
        messages.push({ topic: 't', key, message: text(`${key}:${n}`) });
    await transport.publish(messages);
    await transport.idle();
    for (const key of ['a', 'b', 'c', 'd']) expect(order.get(key)).toEqual([...Array(20).keys()]);
  });

  it('shares partitions among the members of one group: each message once', async () => {
    const transport = new InMemoryTransport({ partitions: 4 });
    const one = scripted(() => ack);
    const two = scripted(() => ack);
    await transport.subscribe({ topics: ['t'], group: 'g', processor: one.processor });
    await transport.subscribe({ topics: ['t'], group: 'g', processor: two.processor });
    await transport.publish(
      [...Array(40).keys()].map((i) => ({ topic: 't', key: `k${i}`, message: text(String(i)) })),
    );
    await transport.idle();
    expect(one.seen.length + two.seen.length).toBe(40);
    expect(one.seen.length).toBeGreaterThan(0);
    expect(two.seen.length).toBeGreaterThan(0);
  });

  it('retries after the delay with attempt + 1', async () => {
    const transport = new InMemoryTransport();
    const { processor, seen } = scripted((m) =>
      m.attempt < 3 ? { kind: 'retry', delayMs: 5, reason: 'x' } : ack,
    );
    await transport.subscribe({ topics: ['t'], group: 'g', processor });
    const start = Date.now();
    await transport.publish([{ topic: 't', message: text('m') }]);
    await transport.idle();
    expect(seen.map((s) => s.attempt)).toEqual([1, 2, 3]);
    expect(Date.now() - start).toBeGreaterThanOrEqual(9);
  });

  it('dead-letters with the reason, the code and the original headers and bytes', async () => {
    const transport = new InMemoryTransport();
    const error = new Error('bad');
    const { processor } = scripted(() => ({
      kind: 'dead-letter',
      reason: 'broken',
      code: 'BT_ERR_X',
      error,
    }));
    await transport.subscribe({ topics: ['t'], group: 'g', processor });
    const original = { headers: { id: 'd', extra: 'h' }, body: new Uint8Array([0xff, 0x00, 0x7b]) };
    await transport.publish([{ topic: 't', key: 'k', message: original }]);
    await transport.idle();
    expect(transport.deadLetters).toHaveLength(1);
    const [letter] = transport.deadLetters;
    expect(letter).toMatchObject({
      topic: 't',
      group: 'g',
      key: 'k',
      reason: 'broken',
      code: 'BT_ERR_X',
      error,
      attempt: 1,
    });
    expect(letter?.message.headers).toEqual(original.headers);
    expect([...letter!.message.body]).toEqual([0xff, 0x00, 0x7b]);
    expect(transport.takeDeadLetters()).toHaveLength(1);
    expect(transport.deadLetters).toHaveLength(0);
  });

  it('redelivers without acking: same attempt, partition blocked meanwhile (order kept)', async () => {
    const transport = new InMemoryTransport({ partitions: 1 });
    let first = true;
    const { processor, seen } = scripted((m) => {
      if (idOf(m) === 'a' && first) {
        first = false;
        return { kind: 'redeliver', reason: 'lease held', delayMs: 5, pause: false };
      }
      return ack;
    });
    await transport.subscribe({ topics: ['t'], group: 'g', processor });
    await transport.publish([
      { topic: 't', key: 'k', message: text('a') },
      { topic: 't', key: 'k', message: text('b') },
    ]);
    await transport.idle();
    expect(seen.map((s) => `${s.id}@${s.attempt}`)).toEqual(['a@1', 'a@1', 'b@1']);
  });

  it('pauses the whole group on a redeliver with pause', async () => {
    const transport = new InMemoryTransport({ partitions: 2 });
    let paused = false;
    const times: number[] = [];
    const { processor } = scripted((m) => {
      times.push(Date.now());
      if (idOf(m) === 'p' && !paused) {
        paused = true;
        return { kind: 'redeliver', reason: 'store down', delayMs: 30, pause: true };
      }
      return ack;
    });
    await transport.subscribe({ topics: ['t'], group: 'g', processor });
    const start = Date.now();
    await transport.publish([{ topic: 't', key: 'x', message: text('p') }]);
    await new Promise((r) => setTimeout(r, 5));
    await transport.publish(
      [...Array(6).keys()].map((i) => ({ topic: 't', key: `k${i}`, message: text(`q${i}`) })),
    );
    await transport.idle();
    // Nothing ran while the group was paused.
    expect(times.slice(1).every((t) => t - start >= 29)).toBe(true);
  });

  it('hands batches to processBatch and applies each disposition', async () => {
    const transport = new InMemoryTransport({ partitions: 1, batchSize: 3 });
    const batches: string[][] = [];
    const processor: MessageProcessor = {
      process: () => Promise.reject(new Error('not used')),
      async processBatch(messages) {
        batches.push(messages.map(idOf));
        return messages.map((m): Disposition =>
          idOf(m) === '1' && m.attempt === 1 ? { kind: 'retry', delayMs: 1, reason: 'x' } : ack,
        );
      },
    };
    await transport.subscribe({ topics: ['t'], group: 'g', processor });
    await transport.publish(['0', '1', '2', '3'].map((id) => ({ topic: 't', message: text(id) })));
    await transport.idle();
    expect(batches[0]).toEqual(['0', '1', '2']);
    expect(batches.flat().sort()).toEqual(['0', '1', '1', '2', '3']);
  });

  it('hands messages published one by one in the same synchronous code to one processBatch call', async () => {
    const transport = new InMemoryTransport({ partitions: 1 });
    const batches: string[][] = [];
    const processor: MessageProcessor = {
      process: () => Promise.reject(new Error('not used when processBatch exists')),
      async processBatch(messages) {
        batches.push(messages.map(idOf));
        return messages.map(() => ack);
      },
    };
    await transport.subscribe({ topics: ['t'], group: 'g', processor });
    // As a publisher's batch sends its messages: one call each, not awaited in between.
    const sent = ['a', 'b', 'c'].map((id) =>
      transport.publish([{ topic: 't', message: text(id) }]),
    );
    await Promise.all(sent);
    await transport.idle();
    expect(batches).toEqual([['a', 'b', 'c']]);
    // Published while a batch runs: the next batch, in order.
    await transport.publish([{ topic: 't', message: text('d') }]);
    await transport.idle();
    expect(batches).toEqual([['a', 'b', 'c'], ['d']]);
    await transport.close();
  });

  it('by default hands what is queued in a partition to processBatch in one call', async () => {
    const transport = new InMemoryTransport({ partitions: 2 });
    const batches: { partition: number; ids: string[] }[] = [];
    const processor: MessageProcessor = {
      process: () => Promise.reject(new Error('not used when processBatch exists')),
      async processBatch(messages) {
        batches.push({ partition: messages[0]!.origin.partition!, ids: messages.map(idOf) });
        // Every message of one call comes from one partition.
        expect(new Set(messages.map((m) => m.origin.partition)).size).toBe(1);
        return messages.map(() => ack);
      },
    };
    await transport.publish(
      [...Array(40).keys()].map((i) => ({ topic: 't', key: `k${i % 5}`, message: text(`${i}`) })),
    );
    await transport.subscribe({ topics: ['t'], group: 'g', processor });
    await transport.idle();
    // 40 queued messages, two partitions: at most one call per partition, in offset order.
    expect(batches.length).toBeLessThanOrEqual(2);
    expect(batches.flatMap((b) => b.ids).sort()).toEqual([...Array(40).keys()].map(String).sort());
    for (const batch of batches) {
      const offsets = batch.ids.map(Number);
      expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    }
    await transport.close();
  });

  it('keeps the redelivered messages of a batch at the head, in order, before the rest', async () => {
    const transport = new InMemoryTransport({ partitions: 1, batchSize: 4 });
    const calls: string[][] = [];
    const processor: MessageProcessor = {
      process: () => Promise.reject(new Error('not used')),
      async processBatch(messages) {
        calls.push(messages.map((m) => `${idOf(m)}@${m.attempt}`));
        return messages.map((m): Disposition =>
          calls.length === 1 && (idOf(m) === '1' || idOf(m) === '3')
            ? { kind: 'redeliver', reason: 'lease held', delayMs: 2, pause: false }
            : ack,
        );
      },
    };
    await transport.publish(
      ['0', '1', '2', '3', '4', '5'].map((id) => ({ topic: 't', message: text(id) })),
    );
    await transport.subscribe({ topics: ['t'], group: 'g', processor });
    await transport.idle();
    expect(calls).toEqual([
      ['0@1', '1@1', '2@1', '3@1'],
      ['1@1', '3@1', '4@1', '5@1'],
    ]);
  });

  it('keeps order over long queues (the consumed prefix is dropped in bulk)', async () => {
    const transport = new InMemoryTransport({ partitions: 1, batchSize: 7 });
    const seen: number[] = [];
    const processor: MessageProcessor = {
      process: () => Promise.reject(new Error('not used')),
      async processBatch(messages) {
        await Promise.resolve();
        for (const m of messages) seen.push(Number(idOf(m)));
        return messages.map(() => ack);
      },
    };
    await transport.subscribe({ topics: ['t'], group: 'g', processor });
    for (let chunk = 0; chunk < 5; chunk++) {
      await transport.publish(
        [...Array(1000).keys()].map((i) => ({ topic: 't', message: text(`${chunk * 1000 + i}`) })),
      );
    }
    await transport.idle();
    expect(seen).toEqual([...Array(5000).keys()]);
  });

  it('survives a processor that throws: redelivers, never drops', async () => {
    const transport = new InMemoryTransport();
    let calls = 0;
    const processor: MessageProcessor = {
      async process() {
        calls += 1;
        if (calls === 1) throw new Error('bug');
        return ack;
      },
    };
    await transport.subscribe({ topics: ['t'], group: 'g', processor });
    await transport.publish([{ topic: 't', message: text('m') }]);
    await transport.idle();
    expect(calls).toBe(2);
  });

  it('copies published messages: later changes by the caller do not reach consumers', async () => {
    const transport = new InMemoryTransport();
    const message = text('orig');
    await transport.publish([{ topic: 't', message }]);
    message.headers.id = 'changed';
    message.body[0] = 0;
    const { processor, seen } = scripted(() => ack);
    await transport.subscribe({ topics: ['t'], group: 'g', processor });
    await transport.idle();
    expect(seen[0]?.id).toBe('orig');
    expect(transport.published('t')[0]?.message.body[0]).toBe('o'.charCodeAt(0));
  });

  it("hands each delivery its own headers and bytes: a consumer's changes reach no other consumer, redelivery or the journal", async () => {
    const transport = new InMemoryTransport();
    const journal = new InMemoryJournal();
    const Note = defineEvent('note').version(1, z.object({ n: z.number() }));
    const publisher = createPublisher(
      { service: 's', version: '1', topicFor: () => 't' },
      { transport, journal, registry: new EventRegistry([Note]), logger: silent },
    );
    const envelope = await publisher.publish(Note, { n: 1 });
    await publisher.close();
    const seen: { group: string; id?: string; first: number; attempt: number }[] = [];
    const mutating = (group: string): MessageProcessor => ({
      async process(m) {
        seen.push({
          group,
          id: m.message.headers.id,
          first: m.message.body[0]!,
          attempt: m.attempt,
        });
        m.message.headers.id = 'changed';
        m.message.body[0] = 0;
        return m.attempt === 1 ? { kind: 'retry', delayMs: 1, reason: 'again' } : ack;
      },
    });
    await transport.subscribe({ topics: ['t'], group: 'a', processor: mutating('a') });
    await transport.subscribe({ topics: ['t'], group: 'b', processor: mutating('b') });
    await transport.idle();
    const first = '{'.charCodeAt(0);
    expect(seen).toHaveLength(4);
    for (const s of seen) expect(s).toMatchObject({ id: envelope.id, first });
    const record = await journal.get(envelope.id);
    expect(record?.message.headers.id).toBe(envelope.id);
    expect(decodeEnvelope(record!.message)).toMatchObject({ id: envelope.id, data: { n: 1 } });
    expect(transport.published('t')[0]?.message.body[0]).toBe(first);
  });

  it('close() waits for in-flight handlers and stops deliveries', async () => {
    const transport = new InMemoryTransport();
    let finished = false;
    const processor: MessageProcessor = {
      async process() {
        await new Promise((r) => setTimeout(r, 20));
        finished = true;
        return ack;
      },
    };
    const subscription = await transport.subscribe({ topics: ['t'], group: 'g', processor });
    await transport.publish([{ topic: 't', message: text('m') }]);
    await new Promise((r) => setTimeout(r, 1));
    await subscription.close();
    expect(finished).toBe(true);
    await transport.close();
    await expect(transport.publish([{ topic: 't', message: text('n') }])).rejects.toThrow(
      InMemoryTransportError,
    );
  });

  it('idle() rejects after its timeout while work is pending', async () => {
    const transport = new InMemoryTransport();
    const processor: MessageProcessor = { process: () => new Promise(() => undefined) };
    await transport.subscribe({ topics: ['t'], group: 'g', processor });
    await transport.publish([{ topic: 't', message: text('m') }]);
    await expect(transport.idle(20)).rejects.toThrow(/not idle/);
  });

  it('validates its options and subscriptions', async () => {
    expect(() => new InMemoryTransport({ partitions: 0 })).toThrow(InMemoryTransportConfigError);
    expect(() => new InMemoryTransport({ batchSize: 1.5 })).toThrow(/batchSize/);
    const transport = new InMemoryTransport();
    await expect(
      transport.subscribe({ topics: [], group: 'g', processor: { process: vi.fn() } }),
    ).rejects.toThrow(/topics/);
    await expect(
      transport.subscribe({ topics: ['t'], group: '', processor: { process: vi.fn() } }),
    ).rejects.toThrow(/group/);
  });
});

describe('InMemoryTransport with the consumer pipeline', () => {
  const Paid = defineEvent('payment.captured').version(
    1,
    z.object({ orderId: z.string(), cents: z.int() }),
  );

  it('processes end to end: handled once despite a duplicate publish, poison message dead-lettered with its bytes', async () => {
    const transport = new InMemoryTransport();
    const store = new InMemoryDedupeStore();
    const handled: string[] = [];
    let failOnce = true;
    const pipeline = createConsumerPipeline(
      {
        name: 'ledger',
        retry: { attempts: 3, initialDelayMs: 1, maxDelayMs: 5 },
        handlers: [
          handle(Paid, ({ data }) => {
            if (data.orderId === 'flaky' && failOnce) {
              failOnce = false;
              throw new Error('transient');
            }
            handled.push(data.orderId);
          }),
        ],
      },
      { dedupeStore: store },
    );
    await transport.subscribe({ topics: ['payments'], group: 'ledger', processor: pipeline });
    const good = encodeEnvelope(Paid.envelope({ orderId: 'o-1', cents: 100 }, { source: '//pay' }));
    const flaky = encodeEnvelope(
      Paid.envelope({ orderId: 'flaky', cents: 1 }, { source: '//pay' }),
    );
    const poison = {
      headers: { ...good.headers, id: 'poison' },
      body: new TextEncoder().encode('{"orderId":'),
    };
    await transport.publish([
      { topic: 'payments', key: 'o-1', message: good },
      { topic: 'payments', key: 'o-1', message: good },
      { topic: 'payments', key: 'flaky', message: flaky },
      { topic: 'payments', key: 'p', message: poison },
    ]);
    await transport.idle();
    expect(handled.sort()).toEqual(['flaky', 'o-1']);
    expect(transport.deadLetters).toHaveLength(1);
    expect(transport.deadLetters[0]).toMatchObject({ code: 'BT_ERR_MALFORMED_MESSAGE' });
    expect(new TextDecoder().decode(transport.deadLetters[0]!.message.body)).toBe('{"orderId":');
    expect(() => decodeEnvelope(transport.deadLetters[0]!.message)).toThrow();
  });
});
