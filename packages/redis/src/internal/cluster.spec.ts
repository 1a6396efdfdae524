import { describe, expect, it } from 'vitest';
import { groupBySlot, slotOf } from './cluster.js';

describe('Redis Cluster key helpers', () => {
  it('computes the slots Redis documents, honouring hash tags', () => {
    // Values from the Redis Cluster specification's CRC16 examples / `CLUSTER KEYSLOT`.
    expect(slotOf('123456789')).toBe(12739);
    expect(slotOf('foo')).toBe(12182);
    expect(slotOf('{user1000}.following')).toBe(slotOf('user1000'));
    expect(slotOf('foo{}{bar}')).toBe(slotOf('foo{}{bar}')); // empty tag: the whole key
    expect(slotOf('foo{}{bar}')).not.toBe(slotOf('bar'));
  });

  it('groups positions by slot, first-seen order, repeats kept in input order', () => {
    const keys = ['{a}1', '{b}1', '{a}2', '{a}1', '{c}1', '{b}2'];
    expect(groupBySlot(keys)).toEqual([[0, 2, 3], [1, 5], [4]]);
    expect(groupBySlot([])).toEqual([]);
  });
});
