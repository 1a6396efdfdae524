import { describe, expect, it } from 'vitest';
import { cloneRecord, frozenRecord } from './clone.js';

describe('cloneRecord', () => {
  it('deep-copies plain data exactly as structuredClone does', () => {
    const value = {
      a: 1,
      b: 'x',
      c: null,
      d: undefined,
      e: [1, { f: true }, []],
      g: { h: { i: -0, j: Number.NaN } },
    };
    const copy = cloneRecord(value);
    expect(copy).toStrictEqual(structuredClone(value));
    expect(Object.keys(copy)).toEqual(Object.keys(value));
    copy.e.push(2);
    (copy.g.h as { i: number }).i = 5;
    expect(value.e).toHaveLength(3);
    expect(value.g.h.i).toBe(-0);
  });

  it('keeps Dates, Maps and cycles the way structuredClone keeps them', () => {
    const cyclic: Record<string, unknown> = { at: new Date(0), map: new Map([['k', 1]]) };
    cyclic.self = cyclic;
    const copy = cloneRecord(cyclic);
    expect(copy.at).toBeInstanceOf(Date);
    expect(copy.at).not.toBe(cyclic.at);
    expect(copy.map).toEqual(new Map([['k', 1]]));
    expect(copy.self).toBe(copy);
  });

  it('turns class instances into plain objects like structuredClone', () => {
    class Point {
      constructor(readonly x: number) {}
    }
    const copy = cloneRecord({ p: new Point(1) });
    expect(copy).toStrictEqual(structuredClone({ p: new Point(1) }));
  });

  it('throws on functions like structuredClone', () => {
    expect(() => cloneRecord({ f: () => 1 })).toThrow(/could not be cloned/);
  });

  it('keeps an own __proto__ key as data instead of setting the prototype', () => {
    const value = JSON.parse('{"a":{"__proto__":{"polluted":true}}}') as {
      a: Record<string, unknown>;
    };
    const copy = cloneRecord(value);
    expect(Object.getPrototypeOf(copy.a)).toBe(Object.prototype);
    expect((copy.a as { polluted?: boolean }).polluted).toBeUndefined();
    expect(Object.keys(copy.a)).toEqual(['__proto__']);
  });
});

describe('frozenRecord', () => {
  it('sets the revision, freezes every level, and falls back to structuredClone for non-plain data', () => {
    const frozen = frozenRecord({ revision: 0, a: { b: [1, { c: 2 }] } }, undefined, 3);
    expect(frozen).toEqual({ revision: 3, a: { b: [1, { c: 2 }] } });
    expect(Object.isFrozen(frozen.a.b[1])).toBe(true);
    const dated = frozenRecord({ revision: 0, at: new Date(0) }, undefined, 1);
    expect(dated.at).toBeInstanceOf(Date);
    expect(dated.revision).toBe(1);
    expect(Object.isFrozen(dated)).toBe(true);
    expect(() => frozenRecord({ revision: 0, f: () => 1 }, undefined, 1)).toThrow(
      /could not be cloned/,
    );
  });
});
