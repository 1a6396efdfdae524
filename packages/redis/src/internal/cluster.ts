// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- the untyped dependency's declaration must come with this file into every compilation that includes it (the README snippet check too)
/// <reference path="./cluster-key-slot.d.ts" />
import calculateSlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';

/** What every store accepts: a single-node ioredis client or an ioredis `Cluster`. */
export type RedisClient = Redis | Cluster;

/** True for an ioredis `Cluster` (commands are routed by hash slot). */
export function isCluster(redis: RedisClient): redis is Cluster {
  return (redis as { isCluster?: boolean }).isCluster === true;
}

/** The Redis Cluster hash slot (0..16383) of `key`, honouring a `{hash tag}`. */
export function slotOf(key: string): number {
  return calculateSlot(key);
}

/**
 * The positions of `keys` grouped by hash slot, in first-seen order (positions ascending inside a
 * group). A batch operation sends one script call per group: a Lua script may only touch keys of
 * one slot on Redis Cluster. A key repeated in the batch lands in one group, in input order, so
 * the script still sees the repeats in the order the caller gave them.
 */
export function groupBySlot(keys: readonly string[]): number[][] {
  const groups = new Map<number, number[]>();
  keys.forEach((key, i) => {
    const slot = calculateSlot(key);
    const group = groups.get(slot);
    if (group === undefined) groups.set(slot, [i]);
    else group.push(i);
  });
  return [...groups.values()];
}

/**
 * Every key matching `pattern` (SCAN MATCH, never KEYS), on every master of a cluster or on the
 * single node. For tests, teardown and diagnostics: not a hot path.
 */
export async function scanKeys(redis: RedisClient, pattern: string): Promise<string[]> {
  const nodes: Redis[] = isCluster(redis) ? redis.nodes('master') : [redis];
  const found: string[] = [];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      cursor = next;
      found.push(...keys);
    } while (cursor !== '0');
  }
  return found;
}

/** Deletes `keys` (UNLINK), one call per hash slot on a cluster. Resolves with how many went. */
export async function unlinkKeys(redis: RedisClient, keys: readonly string[]): Promise<number> {
  if (keys.length === 0) return 0;
  if (!isCluster(redis)) return redis.unlink(...keys);
  const counts = await Promise.all(
    groupBySlot(keys).map((positions) => redis.unlink(...positions.map((i) => keys[i]!))),
  );
  return counts.reduce((a, b) => a + b, 0);
}

/** Escapes SCAN MATCH metacharacters so `prefix` matches literally. */
export function globEscape(prefix: string): string {
  return prefix.replace(/[*?[\]\\]/g, '\\$&');
}
