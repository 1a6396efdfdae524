import { describe, expect, it } from 'vitest';
import { makeSagaRecord } from '../adapter/contracts/sagaStoreContract.js';
import { frozenCopy, handOver } from './clone.js';
import { SagaConcurrencyError } from './errors.js';
import { InMemorySagaStore } from './InMemorySagaStore.js';
import type { SagaRecord } from './SagaStore.js';

// The contract suite (adapter/contracts) covers what every store must do; this covers how the
// in-memory store does it: frozen records, shared between versions where unchanged.
describe('InMemorySagaStore: frozen, structurally shared records', () => {
  it('hands out the stored record itself, frozen all the way down', async () => {
    const store = new InMemorySagaStore();
    const { record } = await store.create(makeSagaRecord('s1'));
    expect(await store.get('s1')).toBe(record);
    expect(Object.isFrozen(record)).toBe(true);
    expect(Object.isFrozen(record.steps)).toBe(true);
    expect(Object.isFrozen(record.steps['reserve-stock'])).toBe(true);
    expect(Object.isFrozen(record.completionOrder)).toBe(true);
    expect(Object.isFrozen((record.input as { tags: string[] }).tags)).toBe(true);
    expect(() => {
      (record as { status: string }).status = 'completed';
    }).toThrow(TypeError);
  });

  it('keeps the parts an update took unchanged from the stored record, and copies the rest', async () => {
    const store = new InMemorySagaStore();
    const { record: v0 } = await store.create(makeSagaRecord('s1'));
    const result = { reservationId: 'r-1' };
    const step = { ...v0.steps['reserve-stock']!, status: 'completed' as const, result };
    const next: SagaRecord = { ...v0, steps: { ...v0.steps, 'reserve-stock': step } };
    const v1 = await store.update(next, v0.revision);
    expect(v1.revision).toBe(1);
    // Shared: what the caller took from v0 as it was.
    expect(v1.input).toBe(v0.input);
    expect(v1.steps['charge-card']).toBe(v0.steps['charge-card']);
    expect(v1.completionOrder).toBe(v0.completionOrder);
    // Copied: what the caller made (it may change it later), then frozen.
    expect(v1.steps).not.toBe(next.steps);
    expect(v1.steps['reserve-stock']).not.toBe(step);
    expect(v1.steps['reserve-stock']!.result).not.toBe(result);
    expect(Object.isFrozen(v1.steps['reserve-stock']!.result)).toBe(true);
    result.reservationId = 'changed';
    expect((await store.get('s1'))!.steps['reserve-stock']!.result).toEqual({
      reservationId: 'r-1',
    });
    // The version handed out before is unchanged.
    expect(v0.steps['reserve-stock']!.status).toBe('pending');
  });

  it('copies a part that looks like the stored one but is not it', async () => {
    const store = new InMemorySagaStore();
    const { record: v0 } = await store.create(makeSagaRecord('s1'));
    const input = structuredClone(v0.input) as { tags: string[] };
    const v1 = await store.update({ ...v0, input }, v0.revision);
    expect(v1.input).not.toBe(input);
    input.tags.push('later');
    expect((await store.get('s1'))!.input).toEqual(v0.input);
  });
});

describe('InMemorySagaStore: records the engine hands over', () => {
  it('freezes a handed-over record in place (no copy) and keeps its frozen parts', async () => {
    const store = new InMemorySagaStore();
    const { record: v0 } = await store.create(makeSagaRecord('s1'));
    const result = frozenCopy({ reservationId: 'r-1', lines: [{ sku: 'x', qty: 1 }] });
    const step = { ...v0.steps['reserve-stock']!, status: 'completed' as const, result };
    const next: SagaRecord = { ...v0, steps: { ...v0.steps, 'reserve-stock': step } };
    handOver(next);
    const v1 = await store.update(next, v0.revision);
    expect(v1).toBe(next);
    expect(v1.revision).toBe(1);
    expect(Object.isFrozen(v1)).toBe(true);
    expect(Object.isFrozen(v1.steps)).toBe(true);
    expect(v1.steps['reserve-stock']).toBe(step);
    expect(Object.isFrozen(step)).toBe(true);
    expect(v1.steps['reserve-stock']!.result).toBe(result);
    expect(v1.input).toBe(v0.input);
    expect(await store.get('s1')).toBe(v1);
    // The mark is used once: the same object given again (frozen now) is copied.
    const v2 = await store.update(v1, v1.revision);
    expect(v2).not.toBe(v1);
    expect(v2.revision).toBe(2);
  });

  it('copies a handed-over record that holds something not plain, as any other', async () => {
    const store = new InMemorySagaStore();
    const { record: v0 } = await store.create(makeSagaRecord('s1'));
    const at = new Date(0);
    const next = { ...v0, input: { at } } as SagaRecord;
    handOver(next);
    const v1 = await store.update(next, v0.revision);
    expect(v1).not.toBe(next);
    expect((v1.input as { at: Date }).at).toEqual(at);
    expect((v1.input as { at: Date }).at).not.toBe(at);
    expect(Object.isFrozen(v1)).toBe(true);
  });

  it('refuses a stale handed-over record without freezing it', async () => {
    const store = new InMemorySagaStore();
    const { record: v0 } = await store.create(makeSagaRecord('s1'));
    const next: SagaRecord = { ...v0, status: 'compensating' };
    handOver(next);
    await expect(store.update(next, v0.revision + 1)).rejects.toThrow(SagaConcurrencyError);
    expect(Object.isFrozen(next)).toBe(false);
  });
});
