/**
 * The hand-written baseline must keep the guarantees it is compared for, or its rate means
 * nothing: unreadable input dead-lettered with its reason and bytes, a redelivered message
 * handled once, order kept per key, and the journal written before anything is sent.
 * Real Redis; the bus only records what would go to the broker.
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { probeService } from '../../../test/support/services.js';
import type { Bus, Outgoing } from './bus.js';
import { encode, type Message } from './messages.js';
import { inbox, Outbox } from './pipeline.js';

const redisService = await probeService('redis');

class RecordingBus implements Bus {
  readonly sent: Outgoing[][] = [];
  constructor(private readonly onSend: () => Promise<void> = async () => undefined) {}
  async send(batch: readonly Outgoing[]) {
    await this.onSend();
    this.sent.push([...batch]);
  }
  async consume() {}
  async close() {}
  async destroy() {}
}

const reserve = (id: string, orderId: string, qty = 1): Message<'reserve-stock'> => ({
  id,
  type: 'reserve-stock',
  key: orderId,
  data: { orderId, sku: 'blue-mug', qty },
});

describe.skipIf(!redisService.available)('hand-written baseline pipeline (real Redis)', () => {
  const redis = new Redis(redisService.url);
  const prefix = `hw-test-${process.pid}-${Date.now().toString(36)}`;
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('dead-letters unreadable input with the reason and the original bytes, and handles the rest', async () => {
    const bus = new RecordingBus();
    const handled: string[] = [];
    const onBatch = inbox(redis, bus, `${prefix}:dd1:`, (m) => void handled.push(m.id));
    const garbage = Buffer.from('{"id":"x"');
    const wrongShape = encode({ ...reserve('m2', 'o-1'), data: { orderId: 'o-1' } } as Message);
    await onBatch([
      { key: 'o-1', value: garbage },
      { key: 'o-1', value: encode(reserve('m1', 'o-1')) },
      { key: 'o-1', value: wrongShape },
    ]);
    expect(handled).toEqual(['m1']);
    const dead = bus.sent.flat();
    expect(dead.map((d) => d.topic)).toEqual(['dlq', 'dlq']);
    expect(dead[0]!.value.equals(garbage)).toBe(true);
    expect(dead[0]!.headers?.reason).toMatch(/not JSON/);
    expect(dead[1]!.value.equals(wrongShape)).toBe(true);
    expect(dead[1]!.headers?.reason).toMatch(/bad reserve-stock/);
  });

  it('handles a redelivered message once, and again after a failed attempt released its claim', async () => {
    const bus = new RecordingBus();
    const handled: string[] = [];
    let failOnce = true;
    const onBatch = inbox(redis, bus, `${prefix}:dd2:`, (m) => {
      if (m.id === 'b' && failOnce) {
        failOnce = false;
        throw new Error('handler failed');
      }
      handled.push(m.id);
    });
    const batch = ['a', 'b'].map((id) => ({
      key: `o-${id}`,
      value: encode(reserve(id, `o-${id}`)),
    }));
    await expect(onBatch(batch)).rejects.toThrow('handler failed');
    await onBatch(batch); // the broker hands the batch again
    await onBatch(batch); // and once more, after it was done
    await onBatch([...batch, batch[0]!]); // with a message twice in one batch
    expect(handled.sort()).toEqual(['a', 'b']);
  });

  it('keeps order within a key while keys run side by side', async () => {
    const events: string[] = [];
    const onBatch = inbox(redis, new RecordingBus(), `${prefix}:dd3:`, async (m) => {
      events.push(`start ${m.id}`);
      await new Promise((r) => setTimeout(r, m.key === 'o-slow' ? 20 : 1));
      events.push(`end ${m.id}`);
    });
    await onBatch([
      { key: 'o-slow', value: encode(reserve('s1', 'o-slow')) },
      { key: 'o-fast', value: encode(reserve('f1', 'o-fast')) },
      { key: 'o-slow', value: encode(reserve('s2', 'o-slow')) },
    ]);
    expect(events.indexOf('end s1')).toBeLessThan(events.indexOf('start s2'));
    expect(events.indexOf('end f1')).toBeLessThan(events.indexOf('end s1'));
  });

  it('journals every message before it is sent, and batches what is published during a send', async () => {
    const journalKey = `${prefix}:journal`;
    const journalLengths: number[] = [];
    const bus = new RecordingBus(
      async () => void journalLengths.push(await redis.xlen(journalKey)),
    );
    const outbox = new Outbox(redis, bus, journalKey);
    const first = outbox.publish(reserve('p1', 'o-1'));
    await new Promise((r) => setImmediate(r)); // the first send is under way
    await Promise.all([
      first,
      outbox.publish(reserve('p2', 'o-2')),
      outbox.publish(reserve('p3', 'o-3')),
    ]);
    expect(bus.sent.map((b) => b.map((m) => m.key))).toEqual([['o-1'], ['o-2', 'o-3']]);
    expect(journalLengths).toEqual([1, 3]);
    const entries = await redis.xrange(journalKey, '-', '+');
    expect(entries.map(([, fields]) => fields[1])).toEqual(['p1', 'p2', 'p3']);
  });
});
