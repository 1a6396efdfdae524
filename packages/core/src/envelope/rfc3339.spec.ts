import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { isRfc3339 } from './envelope.js';

// The definition isRfc3339 had before its fast path: the pattern, then whether the date exists.
const PATTERN = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;
const reference = (value: string): boolean =>
  PATTERN.test(value) && !Number.isNaN(Date.parse(value));

const digits = (min: number, max: number, width: number) =>
  fc.integer({ min, max }).map((n) => String(n).padStart(width, '0'));

// Timestamps of the plain UTC form with every field in and out of range, other separators,
// offsets and fractions of 0-40 digits.
const timestamp = fc
  .tuple(
    digits(0, 9999, 4),
    digits(0, 19, 2),
    digits(0, 39, 2),
    fc.constantFrom('T', 't', ' ', 'x'),
    digits(0, 29, 2),
    digits(0, 69, 2),
    digits(0, 69, 2),
    fc.oneof(fc.constant(''), fc.stringMatching(/^\.[0-9]{0,40}$/)),
    fc.constantFrom('Z', 'z', '+00:00', '-05:30', '+24:00', '', 'ZZ'),
  )
  .map((parts) => parts.join('').replace(/^(\d{4})(\d\d)(\d\d)/, '$1-$2-$3'))
  .map((s) => `${s.slice(0, 13)}:${s.slice(13, 15)}:${s.slice(15)}`);

describe('isRfc3339', () => {
  it('answers as the pattern plus Date.parse did, on timestamps of every shape', () => {
    fc.assert(
      fc.property(timestamp, (value) => {
        expect(isRfc3339(value)).toBe(reference(value));
      }),
      { numRuns: 5_000 },
    );
  });

  it('answers as before on toISOString output and its one-character mutations', () => {
    fc.assert(
      fc.property(
        fc.date({ min: new Date(0), max: new Date(253402300799999), noInvalidDate: true }),
        fc.nat(30),
        fc.constantFrom('0', '9', '-', ':', 'T', 'Z', '.', '+', 'a', ''),
        (date, at, replacement) => {
          const iso = date.toISOString();
          const mutated = iso.slice(0, at) + replacement + iso.slice(at + 1);
          expect(isRfc3339(iso)).toBe(true);
          expect(isRfc3339(mutated)).toBe(reference(mutated));
        },
      ),
      { numRuns: 5_000 },
    );
  });

  it('keeps the checks the fast path leaves to the full test', () => {
    expect(isRfc3339('2024-02-29T10:00:00Z')).toBe(true); // leap day
    expect(isRfc3339('2023-02-30T10:00:00Z')).toBe(reference('2023-02-30T10:00:00Z'));
    expect(isRfc3339('2024-01-31T23:59:59.123456789Z')).toBe(true);
    expect(isRfc3339('2024-01-01T00:00:00+01:00')).toBe(true);
    expect(isRfc3339('2024-13-01T00:00:00Z')).toBe(false);
    expect(isRfc3339('2024-01-01T24:00:01Z')).toBe(false);
    expect(isRfc3339('2024-01-01T00:00:00.Z')).toBe(false);
    expect(isRfc3339('2024-01-01T00:00:00')).toBe(false);
  });

  it('decides the 29th to 31st of a month without a date parse, as the days 1 to 28', () => {
    const parse = vi.spyOn(Date, 'parse');
    try {
      for (const value of [
        '2026-01-31T23:59:59.999Z',
        '2026-04-30T00:00:00Z',
        '2024-02-29T12:00:00.5Z',
        '2000-02-29T12:00:00Z',
        '2026-12-31T08:15:00.000Z',
      ]) {
        expect(isRfc3339(value)).toBe(true);
      }
      expect(parse).not.toHaveBeenCalled();
      // Days a month does not have still take the full test (and answer as it does).
      for (const value of [
        '2026-02-29T12:00:00Z',
        '1900-02-29T12:00:00Z',
        '2026-04-31T00:00:00Z',
      ]) {
        const expected = reference(value);
        parse.mockClear();
        expect(isRfc3339(value)).toBe(expected);
        expect(parse).toHaveBeenCalled();
      }
    } finally {
      parse.mockRestore();
    }
  });
});
