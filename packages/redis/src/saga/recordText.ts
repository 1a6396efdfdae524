/**
 * Records {@link RedisSagaStore} hands back from `create`/`update` without parsing the text it
 * just wrote.
 *
 * The store hands out deep-frozen records made of JSON data alone (equal to what `JSON.parse`
 * of the stored text gives). The engine builds each transition from such a record: a new top
 * level, step map, step and lease, every other part shared, and gives the new record away (see
 * `takeOverSagaRecord`). {@link adoptRecord} makes that record itself the stored one: the parts
 * the engine made are frozen where they are, the parts it shared with the last record are kept,
 * and a frozen part that is not the last record's (a step result's or the input's frozen copy,
 * which may hold what JSON does not keep, a Date say) is replaced by its `JSON.parse`d copy. The
 * text written is still `JSON.stringify(record)`: the stored bytes do not change.
 *
 * (Splicing the text of unchanged parts into the new text was tried and dropped: `JSON.stringify`
 * of the parts a transition changes, one call each, costs as much as one call on the whole 1 KB
 * record, see bench/README.md "Saga store per transition (session 7)".)
 */

/** Nesting of new parts the walk follows before it gives the record up. */
const MAX_DEPTH = 64;

/** Thrown inside the walk: a value JSON would not give back as it is. */
const GIVE_UP = Symbol('give up');

/**
 * For a record the engine gave away: deep-freezes it in place, equal to what `JSON.parse` of
 * `JSON.stringify(record)` gives, and returns true. Parts that are (`===`) the parts of `last`
 * at the same place (the record this store last handed out for the saga, deep-frozen JSON data)
 * are kept as they are; objects not frozen (made by the engine for this write) are frozen where
 * they are; any other frozen object is replaced by its parsed, frozen copy. False, with nothing
 * of the record's content changed (what was frozen or replaced until then is equal JSON data),
 * when a part the engine made holds a value JSON would not give back as it is (`undefined`, a
 * function, a symbol, a non-finite number, -0, a class instance, `toJSON`) or nests beyond 64
 * levels: the caller then hands out a parsed copy of the text, as before.
 */
export function adoptRecord(record: object, last: object | undefined): boolean {
  if (Object.isFrozen(record)) return false;
  try {
    adoptOwn(record, last, 0);
    Object.freeze(record);
    return true;
  } catch (error) {
    if (error === GIVE_UP) return false;
    throw error;
  }
}

/**
 * `JSON.parse(text)`, deep-frozen: what the store hands out when it did not adopt the record it
 * wrote, or read an existing one.
 */
export function parsedCopy<T extends object>(text: string): T {
  return deepFreeze(JSON.parse(text) as T);
}

/** Adopts the children of an object the engine made (not frozen yet; the caller freezes it). */
function adoptOwn(value: object, last: unknown, depth: number): void {
  if (depth > MAX_DEPTH) throw GIVE_UP;
  const lastParts =
    last !== null && typeof last === 'object'
      ? (last as Record<string | number, unknown>)
      : undefined;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) throw GIVE_UP;
    for (let i = 0; i < value.length; i++) adoptChild(value, i, lastParts?.[i], depth);
    return;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) throw GIVE_UP;
  const fields = value as Record<string, unknown>;
  if (typeof fields.toJSON === 'function') throw GIVE_UP;
  for (const key in fields) {
    if (!Object.hasOwn(fields, key)) throw GIVE_UP; // an enumerable inherited key: not plain data
    adoptChild(fields, key, lastParts?.[key], depth);
  }
}

function adoptChild(
  container: Record<string, unknown> | unknown[],
  key: string | number,
  lastValue: unknown,
  depth: number,
): void {
  const holder = container as Record<string | number, unknown>;
  const value = holder[key];
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      // Finite numbers only (JSON writes the others as null), and not -0 (written as 0).
      if (!Number.isFinite(value) || (value === 0 && 1 / value < 0)) throw GIVE_UP;
      return;
    case 'object': {
      if (value === null || value === lastValue) return; // the last record's own part: frozen JSON
      if (Object.isFrozen(value)) {
        // Frozen, not ours (a caller's value, frozen-copied by the engine): its JSON copy.
        const text = JSON.stringify(value) as string | undefined;
        if (text === undefined) throw GIVE_UP;
        holder[key] = deepFreeze(JSON.parse(text) as object);
        return;
      }
      adoptOwn(value, lastValue, depth + 1);
      Object.freeze(value);
      return;
    }
    default:
      // undefined, functions, symbols (JSON leaves the key out), bigint (JSON throws).
      throw GIVE_UP;
  }
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}
