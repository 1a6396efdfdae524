/**
 * Partial deep matching, as `expect.objectContaining` nests it: every key of `pattern` must be in
 * `actual` with a matching value; keys `pattern` leaves out are ignored. Arrays match element by
 * element and must have the same length; a function in the pattern is a predicate on the value;
 * everything else compares with `Object.is` (dates by time).
 */
export function matchesPartial(actual: unknown, pattern: unknown): boolean {
  if (typeof pattern === 'function') return Boolean((pattern as (v: unknown) => unknown)(actual));
  if (Object.is(actual, pattern)) return true;
  if (pattern instanceof Date)
    return actual instanceof Date && actual.getTime() === pattern.getTime();
  if (typeof pattern !== 'object' || pattern === null) return false;
  if (typeof actual !== 'object' || actual === null) return false;
  if (Array.isArray(pattern)) {
    return (
      Array.isArray(actual) &&
      actual.length === pattern.length &&
      pattern.every((p, i) => matchesPartial(actual[i], p))
    );
  }
  return Object.keys(pattern).every(
    (key) =>
      Object.prototype.hasOwnProperty.call(actual, key) &&
      matchesPartial(
        (actual as Record<string, unknown>)[key],
        (pattern as Record<string, unknown>)[key],
      ),
  );
}

/** A partial pattern: nested objects may leave keys out, any value may be a predicate. */
export type PartialMatch<T> =
  | ((value: T) => boolean)
  | (T extends readonly unknown[]
      ? { [K in keyof T]: PartialMatch<T[K]> }
      : T extends Date
        ? T
        : T extends object
          ? { [K in keyof T]?: PartialMatch<T[K]> }
          : T);
