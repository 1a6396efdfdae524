import { slotOf } from '../internal/cluster.js';

/**
 * How {@link RedisSagaStore} lays its keys out.
 * - `'sharded'` (default): 16 index shards, each under its own `{hash tag}`; a saga's record and
 *   index entries live in the shard its id hashes to. Works on Redis Cluster with no hash tag in
 *   the prefix, and spreads the sagas over every master.
 * - `'legacy'`: the layout of versions before Redis Cluster support (`<prefix>rec:<id>`,
 *   `<prefix>idx:all`, ...), one key space. Use it to keep reading sagas an older version wrote
 *   on a single node; on Redis Cluster it only works with a `{tag}` in the prefix (one master).
 */
export type SagaKeyLayout = 'sharded' | 'legacy';

/** Number of index shards of the 'sharded' layout. Part of the key layout: never change it. */
export const SAGA_INDEX_SHARDS = 16;

const SLOTS = 16_384;

/**
 * The hash tags of the shards: shard i's tag is the first `s<i>.<j>` (j = 0, 1, ...) whose slot
 * falls in the i-th sixteenth of the slot space, so on a cluster whose masters own contiguous
 * equal ranges (what `redis-cli --cluster create` makes) the shards spread evenly.
 */
export const SAGA_SHARD_TAGS: readonly string[] = Object.freeze(
  Array.from({ length: SAGA_INDEX_SHARDS }, (_, i) => {
    for (let j = 0; ; j++) {
      const tag = `s${i}.${j}`;
      if (Math.floor((slotOf(tag) * SAGA_INDEX_SHARDS) / SLOTS) === i) return tag;
    }
  }),
);

/** Key segments (inserted after the prefix) of every shard of a layout. */
export function shardSegments(layout: SagaKeyLayout): readonly string[] {
  return layout === 'legacy' ? [''] : SAGA_SHARD_TAGS.map((tag) => `{${tag}}:`);
}

/** The shard a saga id belongs to (its own slot, folded onto the shards). */
export function shardOf(sagaId: string, shardCount: number): number {
  return shardCount === 1 ? 0 : slotOf(sagaId) % shardCount;
}
