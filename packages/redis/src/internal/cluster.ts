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
