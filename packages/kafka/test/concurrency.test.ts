/**
 * `partitionsConsumedConcurrently` on the real broker (issue 14, item 2): partitions are processed
 * at the same time, each one strictly in offset order, and every offset is committed.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { IncomingMessage } from '@backtrack/core';
import { kafkaBroker } from './broker.js';
import {
  ACK,
  bodyOf,
  committedOffsets,
  makeTransport,
  message,
  uniqueName,
  waitFor,
} from './helpers.js';

const broker = await kafkaBroker();
afterAll(() => broker.stop());

describe.skipIf(!broker.available)('partitionsConsumedConcurrently (real broker)', () => {
  const brokers = broker.brokers;

  async function measure(concurrency: number) {
    const transport = makeTransport(brokers);
    const topic = uniqueName('bt-conc');
    const group = uniqueName('g');
    const partitions = 4;
    const perPartition = 6;
    const inFlight = new Map<number, number>();
    let now = 0;
    let peak = 0;
    let overlapInPartition = false;
    /** seqs per key, in processing order */
    const seen = new Map<number, number[]>();
    const processor = {
      async process(m: IncomingMessage) {
        const p = m.origin.partition!;
        inFlight.set(p, (inFlight.get(p) ?? 0) + 1);
        if (inFlight.get(p)! > 1) overlapInPartition = true;
        peak = Math.max(peak, ++now);
        await new Promise((r) => setTimeout(r, 40));
        now--;
        inFlight.set(p, inFlight.get(p)! - 1);
        const { key, seq } = bodyOf(m) as { key: number; seq: number };
        seen.set(key, [...(seen.get(key) ?? []), seq]);
        return ACK;
      },
    };
    try {
      await transport.ensureTopics({ topics: [topic], partitions });
      const sends = [];
      for (let p = 0; p < partitions; p++)
        for (let seq = 0; seq < perPartition; seq++)
          sends.push({ topic, key: `key-${p}`, message: message({ key: p, seq }) });
      await transport.publish(sends);
      const started = Date.now();
      const sub = await transport.subscribe({
        topics: [topic],
        group,
        processor,
        partitionsConsumedConcurrently: concurrency,
      });
      const total = partitions * perPartition;
      await waitFor(
        () => [...seen.values()].reduce((n, s) => n + s.length, 0) === total,
        `${total} messages`,
      );
      const elapsedMs = Date.now() - started;
      await waitFor(async () => {
        const c = await committedOffsets(brokers, group, topic);
        const sum = Object.values(c).reduce((n, o) => n + Math.max(0, Number(o)), 0);
        return sum === total;
      }, 'every offset committed');
      await sub.close();
      return { peak, overlapInPartition, seen, elapsedMs };
    } finally {
      await transport.close();
    }
  }

  it('processes partitions at once, each in order, and commits every offset', async () => {
    const r = await measure(4);
    expect(r.overlapInPartition).toBe(false);
    expect(r.peak).toBeGreaterThan(1);
    expect(r.seen.size).toBe(4);
    for (const seqs of r.seen.values()) expect(seqs).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('with the default of 1, one message at a time', async () => {
    const r = await measure(1);
    expect(r.peak).toBe(1);
  });
});
