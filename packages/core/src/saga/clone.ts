/**
 * Copies of saga records for stores that keep them in memory.
 *
 * `cloneRecord` is a deep copy, the same as `structuredClone` for the plain data a record holds
 * (objects, arrays, strings, numbers, booleans, null, undefined) and several times faster in
 * Node 20. `frozenRecord` is what `InMemorySagaStore` keeps: a deep-frozen copy that shares every
 * part the caller took unchanged from the previous stored (frozen) version, so a transition copies
 * what it changed, not the whole record. Anything that is not plain data (a Date, a Map, a class
 * instance, a function, a cycle, very deep nesting) goes to `structuredClone`, so the result and
 * the errors stay exactly those of `structuredClone`.
 */
export function cloneRecord<T>(value: T): T {
  const copy = plainCopy(value, undefined, 0, false);
  return copy === NOT_PLAIN ? structuredClone(value) : (copy as T);
}

/**
 * A deep-frozen copy of `record` with `revision` set, sharing with `previous` (a record this
 * function returned earlier, so frozen all the way down) every part that is identical to the
 * part at the same place in `previous`. Nothing in the result is shared with the caller's
 * objects, except parts it took from `previous`.
 */
export function frozenRecord<T extends { revision: number }>(
  record: T,
  previous: T | undefined,
  revision: number,
): T {
  const copy = plainCopy(record, previous, 0, true, revision);
  if (copy !== NOT_PLAIN) return copy as T;
  const cloned = structuredClone(record);
  cloned.revision = revision;
  return deepFreeze(cloned);
}

/**
 * A deep-frozen copy of a value a caller gave (a step's result): what `frozenRecord` would keep
 * of it, made before the value goes into a record that is handed over (see {@link handOver}).
 */
export function frozenCopy<T>(value: T): T {
  const copy = plainCopy(value, undefined, 0, true);
  return copy === NOT_PLAIN ? deepFreeze(structuredClone(value)) : (copy as T);
}

/**
 * The last record given away (see {@link handOver}): one slot, not a WeakSet (an add and a
 * delete per transition cost more than the rest of the hand-over). The engine marks a record
 * right before it calls the store's `update`; a store wrapper that waits before passing it on
 * may let another record take the slot, and that record is then copied as any other.
 */
let handedOver: object | undefined;

/**
 * Marks `record` as given away by the engine, which built it from a record a store handed out
 * (frozen): every part of it is either a frozen part (of that record, or a {@link frozenCopy} of
 * a caller's value) or an object the engine made for this write and never uses again. A store
 * that keeps frozen records can then freeze it in place ({@link adoptRecord}) instead of copying
 * it. Unmarked records are copied as before.
 */
export function handOver(record: object): void {
  handedOver = record;
}

/**
 * True once for the record last marked by {@link handOver} (the mark is taken out). For stores:
 * call it synchronously at the start of `create`/`update` (before any `await`: the next
 * transition's mark replaces this one). True means the engine gave the record away: built from a
 * frozen record this store handed out, every part of it is either frozen (a part of that record,
 * or a frozen copy of a caller's value) or an object the engine made for this write and never
 * uses, reads or changes again. The store may then keep, change and freeze the record in place
 * and hand it back instead of a copy. False: the record is the caller's; copy what is kept.
 */
export function takeOver(record: object): boolean {
  if (record !== handedOver) return false;
  handedOver = undefined;
  return true;
}

/**
 * `record` itself, deep-frozen in place with `revision` set, for a record given away (see
 * {@link handOver}): its frozen parts are kept as they are, the others frozen where they are.
 * Anything that is not plain data makes it fall back to {@link frozenRecord}'s copy.
 */
export function adoptRecord<T extends { revision: number }>(
  record: T,
  previous: T | undefined,
  revision: number,
): T {
  if (Object.isFrozen(record) || !freezeInPlace(record, 0)) {
    return frozenRecord(record, previous, revision);
  }
  record.revision = revision;
  return Object.freeze(record);
}

/**
 * Freezes the unfrozen plain objects and arrays under `value` (its top level left to the
 * caller); false when something is not plain data (nothing is copied, some parts may be frozen).
 */
function freezeInPlace(value: object, depth: number): boolean {
  if (depth > MAX_DEPTH) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  if (Array.isArray(value)) {
    if (proto !== Array.prototype) return false;
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) return false;
      if (!freezeChild(value[i], depth)) return false;
    }
    return true;
  }
  if (proto !== Object.prototype && proto !== null) return false;
  if (Object.hasOwn(value, '__proto__')) return false;
  for (const key in value) {
    if (!freezeChild((value as Record<string, unknown>)[key], depth)) return false;
  }
  return true;
}

function freezeChild(item: unknown, depth: number): boolean {
  if (item === null || typeof item !== 'object') {
    return typeof item !== 'function' && typeof item !== 'symbol';
  }
  // Frozen: a part of the stored version, or a frozenCopy, both frozen all the way down.
  if (Object.isFrozen(item)) return true;
  if (!freezeInPlace(item, depth + 1)) return false;
  Object.freeze(item);
  return true;
}

const NOT_PLAIN = Symbol('not plain');
const MAX_DEPTH = 64;

/**
 * `previous`: the part at the same place in the previous frozen version (only with `freeze`).
 * `revision`: set on the top-level copy (depth 0, only with `freeze`).
 */
function plainCopy(
  value: unknown,
  previous: unknown,
  depth: number,
  freeze: boolean,
  revision?: number,
): unknown {
  if (value === null || typeof value !== 'object') {
    // Functions and symbols make structuredClone throw: let it.
    return typeof value === 'function' || typeof value === 'symbol' ? NOT_PLAIN : value;
  }
  // A part of the previous frozen version, handed back unchanged: it is already ours and frozen.
  if (value === previous && revision === undefined) return value;
  if (depth > MAX_DEPTH) return NOT_PLAIN;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) return NOT_PLAIN;
    const prev = freeze && Array.isArray(previous) ? (previous as unknown[]) : undefined;
    const out = value.slice() as unknown[];
    for (let i = 0; i < out.length; i++) {
      if (!(i in out)) return NOT_PLAIN; // holes: leave them to structuredClone
      const item = out[i];
      if (item === null || typeof item !== 'object') {
        if (typeof item === 'function' || typeof item === 'symbol') return NOT_PLAIN;
        continue;
      }
      const copy = plainCopy(item, prev?.[i], depth + 1, freeze);
      if (copy === NOT_PLAIN) return NOT_PLAIN;
      out[i] = copy;
    }
    return freeze ? Object.freeze(out) : out;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return NOT_PLAIN;
  const prev =
    freeze && previous !== null && typeof previous === 'object' && !Array.isArray(previous)
      ? (previous as Record<string, unknown>)
      : undefined;
  // A shallow copy first, then the nested objects replaced by their copies; values that are not
  // objects are already in place. Object.assign, not a spread: in Node 20 freezing the object a
  // spread made costs over a microsecond (its map is copied every time), freezing this one ~0.1.
  // (Like structuredClone, the copy's prototype is Object.prototype; unlike it, enumerable
  // symbol-keyed properties are kept: JSON records have none.)
  // An own `__proto__` key (from JSON.parse) would set the copy's prototype through Object.assign:
  // leave it to structuredClone.
  if (Object.hasOwn(value, '__proto__')) return NOT_PLAIN;
  const out = Object.assign({}, value) as Record<string, unknown>;
  for (const key in out) {
    const item = out[key];
    if (item === null || typeof item !== 'object') {
      if (typeof item === 'function' || typeof item === 'symbol') return NOT_PLAIN;
      continue;
    }
    const copy = plainCopy(item, prev?.[key], depth + 1, freeze);
    if (copy === NOT_PLAIN) return NOT_PLAIN;
    out[key] = copy;
  }
  if (revision !== undefined) out.revision = revision;
  return freeze ? Object.freeze(out) : out;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}
