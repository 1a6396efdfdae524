import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { InMemoryDedupeStore } from '../dedupe/InMemoryDedupeStore.js';
import { encodeEnvelope } from '../envelope/codec.js';
import { defineEvent } from '../schema/defineEvent.js';
import { handle } from './middleware.js';
import { createConsumerPipeline } from './pipeline.js';
import type { IncomingMessage } from './processor.js';

// Batches over 32 messages find their lanes through maps (the first partition's keyed lanes by
// key alone since session 9): the same lanes as a small batch, whatever the partition layout.
const Ping = defineEvent('ping').version(1, z.object({ n: z.int() }));

function message(n: number, partition: number, key: string | undefined): IncomingMessage {
  const origin: IncomingMessage['origin'] = {
    transport: 'kafka',
    topic: 't',
    partition,
    offset: String(n),
    group: 'g',
  };
  if (key !== undefined) origin.key = key;
  return {
    message: encodeEnvelope(Ping.envelope({ n }, { source: '//t', id: `m-${n}` })),
    attempt: 1,
    origin,
  };
}

/** 64 messages: partitions 1, 0, 1... (the first is not partition 0), keys a-c or none. */
function batch(): IncomingMessage[] {
  const out: IncomingMessage[] = [];
  for (let n = 0; n < 64; n++) {
    const key = n % 4 === 3 ? undefined : ['a', 'b', 'c'][n % 3];
    out.push(message(n, Math.floor(n / 5) % 2 === 0 ? 1 : 0, key));
  }
  return out;
}

const laneOf = (m: IncomingMessage) => `${m.origin.partition}/${m.origin.key ?? '-'}`;

describe('lanes of a large batch', () => {
  it('runs each (partition, key) lane in input order, every message once', async () => {
    const messages = batch();
    const order: number[] = [];
    const pipeline = createConsumerPipeline(
      {
        name: 'g',
        handlers: [
          handle(Ping, async ({ data }) => {
            // Different delays per message, so lanes interleave.
            await new Promise((resolve) => setTimeout(resolve, (data.n * 7) % 3));
            order.push(data.n);
          }),
        ],
        concurrency: 4,
      },
      { dedupeStore: new InMemoryDedupeStore() },
    );
    const dispositions = await pipeline.processBatch(messages);
    expect(dispositions.every((d) => d.kind === 'ack')).toBe(true);
    expect([...order].sort((x, y) => x - y)).toEqual(messages.map((_, n) => n));
    const seen = new Map<string, number>();
    for (const n of order) {
      const lane = laneOf(messages[n]!);
      expect(n).toBeGreaterThan(seen.get(lane) ?? -1);
      seen.set(lane, n);
    }
  });

  it('a redeliver holds back its own key in its partition only, and the later unstarted records of that partition', async () => {
    const messages = batch();
    const store = new InMemoryDedupeStore();
    // Message 5 (partition 0, key c) is leased by another consumer.
    expect((await store.claim('g:%2F%2Ft:m-5', { leaseMs: 60_000 })).status).toBe('claimed');
    const ran: number[] = [];
    const pipeline = createConsumerPipeline(
      { name: 'g', handlers: [handle(Ping, ({ data }) => void ran.push(data.n))], concurrency: 1 },
      { dedupeStore: store },
    );
    const dispositions = await pipeline.processBatch(messages);
    messages.forEach((m, n) => {
      const later = n > 5 && m.origin.partition === 0;
      expect(dispositions[n]!.kind, `message ${n}`).toBe(n === 5 || later ? 'redeliver' : 'ack');
    });
    // Partition 1 is not held back by partition 0's redeliver, key c included.
    expect(ran).toContain(14);
    expect(ran).not.toContain(6);
  });
});
