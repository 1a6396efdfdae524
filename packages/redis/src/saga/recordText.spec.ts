import { describe, expect, it } from 'vitest';
import { adoptRecord, parsedCopy } from './recordText.js';

const last = parsedCopy<Record<string, unknown>>(
  JSON.stringify({
    sagaId: 's-1',
    input: { n: 1, tags: ['a'] },
    steps: { a: { status: 'completed', result: { x: 1 } }, b: { status: 'pending' } },
    completionOrder: ['a'],
    revision: 2,
  }),
);

/** The next record as the engine builds it: new top level, steps and step, the rest shared. */
function nextOf(result: unknown): Record<string, unknown> {
  const steps = last.steps as Record<string, unknown>;
  return {
    ...last,
    steps: { ...steps, b: { status: 'completed', result } },
    completionOrder: ['a', 'b'],
    revision: 3,
  };
}

describe('adoptRecord', () => {
  it('freezes the record in place, keeps the shared parts, and writes the same text', () => {
    const next = nextOf(Object.freeze({ y: 2 }));
    const text = JSON.stringify(next);
    expect(adoptRecord(next, last)).toBe(true);
    expect(JSON.stringify(next)).toBe(text);
    expect(next).toEqual(JSON.parse(text));
    expect(next.input).toBe(last.input);
    expect((next.steps as Record<string, unknown>).a).toBe(
      (last.steps as Record<string, unknown>).a,
    );
    expect(Object.isFrozen(next)).toBe(true);
    const b = (next.steps as Record<string, { result: unknown }>).b!;
    expect(Object.isFrozen(b) && Object.isFrozen(b.result)).toBe(true);
  });

  it('replaces a frozen value it did not hand out by its JSON copy (what Redis gives back)', () => {
    const at = new Date('2026-11-28T10:00:00.000Z');
    const next = nextOf(Object.freeze({ at: Object.freeze(at) }));
    expect(adoptRecord(next, last)).toBe(true);
    expect((next.steps as Record<string, { result: unknown }>).b!.result).toEqual({
      at: '2026-11-28T10:00:00.000Z',
    });
  });

  it('gives up on a value JSON would not give back (the store then hands out a parsed copy)', () => {
    const next = { ...nextOf(Object.freeze({})), stuck: undefined };
    expect(adoptRecord(next, last)).toBe(false);
    expect(adoptRecord({ ...nextOf(Object.freeze({})), n: Number.NaN }, last)).toBe(false);
    expect(adoptRecord(Object.freeze({ ...last }), last)).toBe(false);
  });

  it('hands out deep-frozen parsed copies', () => {
    const copy = parsedCopy<{ a: { b: number[] } }>('{"a":{"b":[1]}}');
    expect(Object.isFrozen(copy.a.b)).toBe(true);
  });
});
