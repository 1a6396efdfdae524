import type { Redis } from 'ioredis';

/** Deletes every key under `prefix` (SCAN, never KEYS): tests clean up after themselves. */
export async function deleteByPrefix(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) deleted += await redis.del(...keys);
  } while (cursor !== '0');
  return deleted;
}

/** Lists every key under `prefix`, sorted. */
export async function keysUnder(redis: Redis, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found.sort();
}

/**
 * Counts the commands a client sends (each one is a network round trip unless pipelined):
 * wraps the client's `sendCommand`. Returns the running count and the command names.
 */
export function countCommands(redis: Redis): {
  readonly count: number;
  names: string[];
  reset(): void;
} {
  const names: string[] = [];
  const original = redis.sendCommand.bind(redis);
  redis.sendCommand = ((command: { name: string }, ...rest: unknown[]) => {
    names.push(command.name);
    return (original as (...a: unknown[]) => unknown)(command, ...rest);
  }) as typeof redis.sendCommand;
  return {
    get count() {
      return names.length;
    },
    names,
    reset() {
      names.length = 0;
    },
  };
}

/**
 * Counts the socket writes (write syscalls) of a connected single-node client: wraps its
 * socket's `_write` / `_writev`. `writes` has one entry per write: how many chunks (commands,
 * as ioredis writes one chunk per command) it carried.
 */
export function countSocketWrites(redis: Redis): { writes: number[]; reset(): void } {
  const writes: number[] = [];
  const stream = redis.stream as unknown as {
    _write: (...a: unknown[]) => unknown;
    _writev: (chunks: unknown[], ...a: unknown[]) => unknown;
  };
  const write = stream._write.bind(stream);
  const writev = stream._writev.bind(stream);
  stream._write = (...a: unknown[]) => {
    writes.push(1);
    return write(...a);
  };
  stream._writev = (chunks: unknown[], ...a: unknown[]) => {
    writes.push(chunks.length);
    return writev(chunks, ...a);
  };
  return {
    writes,
    reset() {
      writes.length = 0;
    },
  };
}
