import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { RedisClient } from './cluster.js';
import { coalesceWrites } from './coalesce.js';

/** A socket stand-in that records each write it would make (one entry per syscall). */
function socket() {
  const writes: string[][] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      writes.push([chunk.toString()]);
      done();
    },
    writev(chunks, done) {
      writes.push(chunks.map((c) => (c.chunk as Buffer).toString()));
      done();
    },
  });
  return { stream, writes };
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('coalesceWrites', () => {
  it('sends what a single-node client writes in one tick as one write, at the end of the tick', async () => {
    const { stream, writes } = socket();
    const client = { stream } as unknown as RedisClient;
    coalesceWrites(client);
    stream.write('a');
    coalesceWrites(client); // again in the same tick: no second hold
    stream.write('b');
    await Promise.resolve(); // microtasks of this tick: still held
    stream.write('c');
    expect(writes).toEqual([]);
    await tick();
    expect(writes).toEqual([['a', 'b', 'c']]);
    expect(stream.writableCorked).toBe(0);
    // A later tick is held on its own; a write outside any hold goes at once.
    coalesceWrites(client);
    stream.write('d');
    stream.write('e');
    await tick();
    stream.write('f');
    expect(writes).toEqual([['a', 'b', 'c'], ['d', 'e'], ['f']]);
  });

  it('holds every node of a Cluster client, and skips nodes without a socket', async () => {
    const one = socket();
    const two = socket();
    const cluster = {
      isCluster: true,
      nodes: () => [{ stream: one.stream }, { stream: undefined }, { stream: two.stream }],
    } as unknown as RedisClient;
    coalesceWrites(cluster);
    one.stream.write('1a');
    two.stream.write('2a');
    one.stream.write('1b');
    two.stream.write('2b');
    expect([one.writes, two.writes]).toEqual([[], []]);
    await tick();
    expect([one.writes, two.writes]).toEqual([[['1a', '1b']], [['2a', '2b']]]);
  });

  it('leaves a client without a socket (a stub, not connected yet) alone', () => {
    expect(() => coalesceWrites({ status: 'wait' } as unknown as RedisClient)).not.toThrow();
    expect(() =>
      coalesceWrites({ isCluster: true, nodes: () => [] } as unknown as RedisClient),
    ).not.toThrow();
  });
});
