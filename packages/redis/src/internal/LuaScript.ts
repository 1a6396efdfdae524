import { createHash } from 'node:crypto';
import type { RedisClient } from './cluster.js';
import { coalesceWrites } from './coalesce.js';

/**
 * A Lua script run with EVALSHA, falling back to EVAL once when the server does not know it
 * (first use, or after SCRIPT FLUSH / a restart). Unlike ioredis `defineCommand`, this leaves the
 * caller's client untouched (no methods added to an object the user owns).
 *
 * Works on a single node and on an ioredis `Cluster`: the cluster client routes the call by the
 * slot of its keys, so every script MUST receive every key it touches in KEYS (all of one slot)
 * and never build a key name inside Lua.
 *
 * Calls made in the same tick leave in one socket write (see `coalesceWrites`).
 */
export class LuaScript {
  readonly sha: string;

  constructor(
    readonly name: string,
    readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(
    redis: RedisClient,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown> {
    coalesceWrites(redis);
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!isNoScript(error)) throw error;
      return redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}
