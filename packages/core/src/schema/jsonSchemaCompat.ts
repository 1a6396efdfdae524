/**
 * A conservative "does the reader accept everything the writer can produce?" check on the JSON
 * Schema (draft 2020-12) zod 4 emits. It answers false whenever it is not sure (an unknown
 * keyword, a pattern that differs), so a change it calls compatible is compatible for the
 * keywords zod emits; a change it calls incompatible may occasionally be fine.
 */

/**
 * Keyword the snapshot puts on a node JSON Schema cannot express (`z.bigint()`, `z.date()`, a
 * transform's output, `z.custom()`, ...), naming the zod type. Such a node is compatible only
 * with a node of the same kind: without it the node would be `{}`, "anything", and a reader of
 * that shape would look compatible with every writer.
 */
export const UNREPRESENTABLE_KEYWORD = 'x-backtrack-unrepresentable';
/** Keyword counting the refinements (`.refine`, `.superRefine`, `.check`) on a node. */
export const REFINEMENTS_KEYWORD = 'x-backtrack-refinements';

/** A JSON Schema node as zod emits it. */
export type JsonSchema = boolean | { [keyword: string]: unknown };

/** One reason the reader rejects some writer data. */
export interface SchemaProblem {
  /** JSON path of the field, for example `$.total.currency`. */
  path: string;
  message: string;
}

type Node = { [keyword: string]: unknown };

// Keywords with no effect on which values validate.
const ANNOTATIONS = new Set([
  '$schema',
  '$id',
  '$comment',
  'title',
  'description',
  'default',
  'examples',
  'deprecated',
  'readOnly',
  'writeOnly',
  'id',
  '$defs',
  'definitions',
  REFINEMENTS_KEYWORD,
]);

const HANDLED = new Set([
  'type',
  'const',
  'enum',
  'anyOf',
  'oneOf',
  'allOf',
  '$ref',
  'properties',
  'required',
  'additionalProperties',
  'propertyNames',
  'items',
  'prefixItems',
  'minItems',
  'maxItems',
  'minLength',
  'maxLength',
  'pattern',
  'format',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'multipleOf',
  'contentEncoding',
  'contentMediaType',
  UNREPRESENTABLE_KEYWORD,
]);

type JsonType = 'string' | 'number' | 'integer' | 'boolean' | 'null' | 'array' | 'object';

/** How messages name the two sides, for example `{ reader: 'the new version', writer: 'the old version' }`. */
export interface Roles {
  reader: string;
  writer: string;
}

interface Roots extends Roles {
  readerRoot: JsonSchema;
  writerRoot: JsonSchema;
}

/**
 * Returns every problem found when data valid under `writer` is read with `reader`; an empty
 * list means the reader accepts all of it. `roles` names the sides in the messages.
 */
export function readerAcceptsWriter(
  reader: JsonSchema,
  writer: JsonSchema,
  roles: Roles = { reader: 'the reader', writer: 'the writer' },
): SchemaProblem[] {
  return compare(
    reader,
    writer,
    '$',
    { ...roles, readerRoot: reader, writerRoot: writer },
    new Set(),
  );
}

function unrepresentable(schema: JsonSchema): string | undefined {
  if (typeof schema !== 'object') return undefined;
  const kind = schema[UNREPRESENTABLE_KEYWORD];
  return typeof kind === 'string' ? kind : undefined;
}

function describeType(schema: JsonSchema): string {
  const kind = unrepresentable(schema);
  if (kind !== undefined) return `a ${kind}`;
  if (typeof schema === 'object' && schema.type !== undefined) {
    return Array.isArray(schema.type) ? schema.type.join(' | ') : String(schema.type);
  }
  return 'a JSON value';
}

function compare(
  r0: JsonSchema,
  w0: JsonSchema,
  path: string,
  roots: Roots,
  seen: Set<string>,
): SchemaProblem[] {
  const r = resolve(r0, roots.readerRoot);
  const w = resolve(w0, roots.writerRoot);
  const rKind = unrepresentable(r);
  const wKind = unrepresentable(w);
  if (rKind !== undefined || wKind !== undefined) {
    if (rKind === wKind && stableEqual(strip(r), strip(w))) return [];
    if (isNever(w)) return [];
    const kind = (rKind ?? wKind)!;
    return [
      {
        path,
        message: `${roots.reader} has ${describeType(r)} here, ${roots.writer} ${describeType(w)}: JSON Schema cannot express ${kind}, so the check counts it compatible only with the same type`,
      },
    ];
  }
  if (isAny(r) || isNever(w)) return [];
  if (isNever(r)) {
    return [
      {
        path,
        message: `${roots.reader} accepts no value at all here (an impossible schema, such as z.never()), so whatever ${roots.writer} writes is rejected`,
      },
    ];
  }
  if (isAny(w)) {
    return [
      {
        path,
        message: `${roots.writer} puts no limit on this value (z.any(), z.unknown(), or a shape JSON Schema cannot describe), so it may write values ${roots.reader} rejects`,
      },
    ];
  }
  const pairKey = `${refOf(r0)}|${refOf(w0)}|${path.split('.').length > 64 ? 'deep' : ''}`;
  if (refOf(r0) !== '' && refOf(w0) !== '') {
    // Recursive schemas: assume the pair compatible while it is being compared (coinduction).
    if (seen.has(pairKey)) return [];
    seen = new Set(seen).add(pairKey);
  }
  // Equal nodes are compatible, unless they hold $refs, which point into different roots.
  const rText = stableStringify(strip(r));
  if (!rText.includes('"$ref"') && rText === stableStringify(strip(w))) return [];

  const writerBranches = branches(w, roots.writerRoot);
  if (writerBranches.length > 1) {
    return writerBranches.flatMap((branch) => compare(r, branch, path, roots, seen));
  }
  const readerBranches = branches(r, roots.readerRoot);
  if (readerBranches.length > 1) {
    // Every alternative that rejects the writer, each with its reasons.
    const rejections: SchemaProblem[] = [];
    for (const [i, branch] of readerBranches.entries()) {
      const problems = compare(branch, w, path, roots, seen);
      if (problems.length === 0) return [];
      rejections.push(
        ...problems.map((p) => ({
          path: p.path,
          message: `alternative ${i + 1} of ${readerBranches.length} (${describeType(branch)}) of ${roots.reader}: ${p.message}`,
        })),
      );
    }
    return rejections;
  }
  const rOnly = readerBranches[0] ?? r;
  const wOnly = writerBranches[0] ?? w;
  // A one-branch union: compare its branch.
  if (rOnly !== r || wOnly !== w) return compare(rOnly, wOnly, path, roots, seen);
  return compareSingle(r as Node, w as Node, path, roots, seen);
}

function compareSingle(
  r: Node,
  w: Node,
  path: string,
  roots: Roots,
  seen: Set<string>,
): SchemaProblem[] {
  const problems: SchemaProblem[] = [];
  const add = (message: string, at = path) => problems.push({ path: at, message });

  if (Array.isArray(r.allOf) || Array.isArray(w.allOf)) {
    return [
      { path, message: `allOf differs between ${roots.reader} and ${roots.writer} (not compared)` },
    ];
  }
  for (const keyword of Object.keys(r)) {
    if (
      !ANNOTATIONS.has(keyword) &&
      !HANDLED.has(keyword) &&
      !stableEqual(r[keyword], w[keyword])
    ) {
      add(`${roots.reader} uses "${keyword}", which the check does not compare`);
    }
  }

  // A finite writer (const/enum): check each value against the reader.
  const values = finiteValues(w);
  if (values !== undefined) {
    for (const value of values) {
      if (!valueMatches(r, value, roots.readerRoot))
        add(
          `${roots.reader} rejects the value ${JSON.stringify(value)}, which ${roots.writer} may write`,
        );
    }
    return problems;
  }
  const readerValues = finiteValues(r);
  if (readerValues !== undefined) {
    add(
      `${roots.reader} accepts only ${JSON.stringify(readerValues)}, ${roots.writer} is not limited to them`,
    );
    return problems;
  }

  const readerTypes = typesOf(r);
  const writerTypes = typesOf(w);
  if (writerTypes === undefined && readerTypes !== undefined) {
    add(
      `${roots.writer} does not constrain the type, ${roots.reader} wants ${[...readerTypes].join(' | ')}`,
    );
    return problems;
  }
  if (readerTypes !== undefined && writerTypes !== undefined) {
    for (const type of writerTypes) {
      if (!readerTypes.has(type) && !(type === 'integer' && readerTypes.has('number'))) {
        add(
          `${roots.writer} may write ${type}, ${roots.reader} accepts ${[...readerTypes].join(' | ')}`,
        );
      }
    }
    if (problems.length > 0) return problems;
  }
  const types = writerTypes ?? new Set<JsonType>();

  if (types.has('string')) {
    lowerBound(r.minLength, w.minLength, 'minLength', add, roots);
    upperBound(r.maxLength, w.maxLength, 'maxLength', add, roots);
    for (const keyword of ['pattern', 'format', 'contentEncoding', 'contentMediaType'] as const) {
      if (r[keyword] !== undefined && r[keyword] !== w[keyword]) {
        add(
          `${roots.reader} requires ${keyword} ${JSON.stringify(r[keyword])}, ${roots.writer} ${w[keyword] === undefined ? 'does not' : `has ${JSON.stringify(w[keyword])}`}`,
        );
      }
    }
  }
  if (types.has('number') || types.has('integer')) {
    if (readerTypes?.has('integer') && !readerTypes.has('number') && types.has('number')) {
      add(`${roots.reader} wants integers, ${roots.writer} may write fractions`);
    }
    numericBounds(r, w, add, roots);
    if (typeof r.multipleOf === 'number') {
      const wm = w.multipleOf;
      if (typeof wm !== 'number' || !Number.isInteger(wm / r.multipleOf)) {
        add(`${roots.reader} requires multipleOf ${r.multipleOf}, ${roots.writer} does not`);
      }
    }
  }
  if (types.has('array')) {
    lowerBound(r.minItems, w.minItems, 'minItems', add, roots);
    upperBound(r.maxItems, w.maxItems, 'maxItems', add, roots);
    if (Array.isArray(r.prefixItems) || Array.isArray(w.prefixItems)) {
      const rp = (r.prefixItems as JsonSchema[] | undefined) ?? [];
      const wp = (w.prefixItems as JsonSchema[] | undefined) ?? [];
      const length = Math.max(rp.length, wp.length);
      for (let i = 0; i < length; i++) {
        problems.push(
          ...compare(
            rp[i] ?? (r.items as JsonSchema) ?? true,
            wp[i] ?? (w.items as JsonSchema) ?? true,
            `${path}[${i}]`,
            roots,
            seen,
          ),
        );
      }
    }
    problems.push(
      ...compare(
        (r.items as JsonSchema) ?? true,
        (w.items as JsonSchema) ?? true,
        `${path}[]`,
        roots,
        seen,
      ),
    );
  }
  if (types.has('object')) problems.push(...compareObjects(r, w, path, roots, seen));
  return problems;
}

function compareObjects(
  r: Node,
  w: Node,
  path: string,
  roots: Roots,
  seen: Set<string>,
): SchemaProblem[] {
  const problems: SchemaProblem[] = [];
  const rProps = (r.properties ?? {}) as Record<string, JsonSchema>;
  const wProps = (w.properties ?? {}) as Record<string, JsonSchema>;
  const rRequired = new Set((r.required ?? []) as string[]);
  const wRequired = new Set((w.required ?? []) as string[]);
  const wExtra = (w.additionalProperties ?? true) as JsonSchema;
  const rExtra = (r.additionalProperties ?? true) as JsonSchema;
  const at = (key: string) => `${path}.${key}`;

  for (const key of rRequired) {
    if (!wRequired.has(key)) {
      problems.push({
        path: at(key),
        message:
          key in wProps
            ? `required in ${roots.reader}, optional in ${roots.writer}`
            : `required in ${roots.reader}, absent from ${roots.writer}`,
      });
    }
  }
  for (const [key, readerField] of Object.entries(rProps)) {
    const writerField = Object.hasOwn(wProps, key) ? wProps[key] : wExtra;
    if (writerField === undefined || isNever(writerField)) continue;
    problems.push(...compare(readerField, writerField, at(key), roots, seen));
  }
  for (const [key, writerField] of Object.entries(wProps)) {
    if (Object.hasOwn(rProps, key)) continue;
    if (isNever(rExtra)) {
      problems.push({
        path: at(key),
        message: `${roots.writer} may write this field, ${roots.reader} rejects unknown fields`,
      });
    } else {
      problems.push(...compare(rExtra, writerField, at(key), roots, seen));
    }
  }
  if (!isNever(wExtra)) {
    if (isNever(rExtra)) {
      problems.push({
        path,
        message: `${roots.writer} may add fields, ${roots.reader} rejects unknown fields`,
      });
    } else if (!isAny(rExtra)) {
      problems.push(...compare(rExtra, wExtra, `${path}.*`, roots, seen));
    }
  }
  if (r.propertyNames !== undefined) {
    problems.push(
      ...compare(
        r.propertyNames as JsonSchema,
        (w.propertyNames as JsonSchema) ?? { type: 'string' },
        `${path}{keys}`,
        roots,
        seen,
      ),
    );
  }
  return problems;
}

function lowerBound(
  reader: unknown,
  writer: unknown,
  keyword: string,
  add: (m: string) => void,
  roles: Roles,
): void {
  if (typeof reader !== 'number') return;
  if (typeof writer !== 'number' || writer < reader)
    add(
      `${roles.reader} requires ${keyword} ${reader}, ${roles.writer} ${typeof writer === 'number' ? `has ${writer}` : 'has none'}`,
    );
}

function upperBound(
  reader: unknown,
  writer: unknown,
  keyword: string,
  add: (m: string) => void,
  roles: Roles,
): void {
  if (typeof reader !== 'number') return;
  if (typeof writer !== 'number' || writer > reader)
    add(
      `${roles.reader} requires ${keyword} ${reader}, ${roles.writer} ${typeof writer === 'number' ? `has ${writer}` : 'has none'}`,
    );
}

interface Bound {
  value: number;
  exclusive: boolean;
}

function numericBounds(r: Node, w: Node, add: (m: string) => void, roles: Roles): void {
  const lower = (n: Node): Bound | undefined =>
    tighter(
      typeof n.minimum === 'number' ? { value: n.minimum, exclusive: false } : undefined,
      typeof n.exclusiveMinimum === 'number'
        ? { value: n.exclusiveMinimum, exclusive: true }
        : undefined,
      1,
    );
  const upper = (n: Node): Bound | undefined =>
    tighter(
      typeof n.maximum === 'number' ? { value: n.maximum, exclusive: false } : undefined,
      typeof n.exclusiveMaximum === 'number'
        ? { value: n.exclusiveMaximum, exclusive: true }
        : undefined,
      -1,
    );
  const rl = lower(r);
  const wl = lower(w);
  if (
    rl &&
    (!wl || wl.value < rl.value || (wl.value === rl.value && rl.exclusive && !wl.exclusive))
  ) {
    add(
      `${roles.reader} requires a value ${rl.exclusive ? '>' : '>='} ${rl.value}, ${roles.writer} allows lower`,
    );
  }
  const ru = upper(r);
  const wu = upper(w);
  if (
    ru &&
    (!wu || wu.value > ru.value || (wu.value === ru.value && ru.exclusive && !wu.exclusive))
  ) {
    add(
      `${roles.reader} requires a value ${ru.exclusive ? '<' : '<='} ${ru.value}, ${roles.writer} allows higher`,
    );
  }
}

/** The tighter of two bounds; `sign` 1 for lower bounds (higher is tighter), -1 for upper. */
function tighter(a: Bound | undefined, b: Bound | undefined, sign: 1 | -1): Bound | undefined {
  if (!a) return b;
  if (!b) return a;
  if (a.value === b.value) return a.exclusive ? a : b;
  return (a.value - b.value) * sign > 0 ? a : b;
}

function finiteValues(n: Node): unknown[] | undefined {
  if ('const' in n) return [n.const];
  if (Array.isArray(n.enum)) return n.enum;
  return undefined;
}

function typesOf(n: Node): Set<JsonType> | undefined {
  if (typeof n.type === 'string') return new Set([n.type as JsonType]);
  if (Array.isArray(n.type)) return new Set(n.type as JsonType[]);
  if (
    n.properties !== undefined ||
    n.required !== undefined ||
    n.additionalProperties !== undefined
  )
    return new Set(['object']);
  if (n.items !== undefined || n.prefixItems !== undefined) return new Set(['array']);
  return undefined;
}

/** Splits a schema into alternatives (anyOf/oneOf, or a type array). */
function branches(schema: JsonSchema, root: JsonSchema): JsonSchema[] {
  if (typeof schema === 'boolean') return [schema];
  const union = (schema.anyOf ?? schema.oneOf) as JsonSchema[] | undefined;
  if (Array.isArray(union)) {
    const { anyOf: _a, oneOf: _o, ...rest } = schema;
    const base = Object.keys(rest).filter((k) => !ANNOTATIONS.has(k));
    return union.flatMap((branch) => {
      const resolved = resolve(branch, root);
      const merged =
        base.length === 0 || typeof resolved === 'boolean' ? resolved : { ...rest, ...resolved };
      return branches(merged, root);
    });
  }
  if (Array.isArray(schema.type) && schema.type.length > 1) {
    return (schema.type as JsonType[]).map((type) => ({ ...schema, type }));
  }
  return [schema];
}

function resolve(schema: JsonSchema, root: JsonSchema): JsonSchema {
  let current = schema;
  for (
    let hops = 0;
    hops < 32 && typeof current === 'object' && typeof current.$ref === 'string';
    hops++
  ) {
    const ref = current.$ref as string;
    const target = lookup(ref, root);
    if (target === undefined) return current;
    const { $ref: _ref, ...rest } = current;
    current =
      Object.keys(rest).length === 0 || typeof target === 'boolean'
        ? target
        : { ...target, ...rest };
  }
  return current;
}

function lookup(ref: string, root: JsonSchema): JsonSchema | undefined {
  if (ref === '#') return root;
  if (!ref.startsWith('#/')) return undefined;
  let node: unknown = root;
  for (const part of ref.slice(2).split('/')) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
    if (typeof node !== 'object' || node === null || !Object.hasOwn(node, key)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node as JsonSchema;
}

function refOf(schema: JsonSchema): string {
  return typeof schema === 'object' && typeof schema.$ref === 'string' ? schema.$ref : '';
}

function isAny(schema: JsonSchema): boolean {
  if (schema === true) return true;
  return typeof schema === 'object' && Object.keys(schema).every((k) => ANNOTATIONS.has(k));
}

function isNever(schema: JsonSchema): boolean {
  return (
    schema === false ||
    (typeof schema === 'object' &&
      typeof schema.not === 'object' &&
      isAny(schema.not as JsonSchema))
  );
}

function strip(schema: JsonSchema): JsonSchema {
  if (typeof schema === 'boolean') return schema;
  return Object.fromEntries(
    Object.entries(schema).filter(([k]) => !ANNOTATIONS.has(k) || k === '$defs'),
  );
}

/** Deep equality of JSON values, key-order independent. */
export function stableEqual(a: unknown, b: unknown): boolean {
  return stableStringify(a) === stableStringify(b);
}

/** JSON.stringify with object keys sorted, so equal schemas give equal strings. */
export function stableStringify(value: unknown): string {
  return (
    JSON.stringify(value, (_key, v: unknown) =>
      v !== null && typeof v === 'object' && !Array.isArray(v)
        ? Object.fromEntries(
            Object.entries(v as Record<string, unknown>).sort(([x], [y]) =>
              x < y ? -1 : x > y ? 1 : 0,
            ),
          )
        : v,
    ) ?? 'undefined'
  );
}

/** Minimal validator for finite (const/enum) writer values against a reader schema. */
function valueMatches(schema: JsonSchema, value: unknown, root: JsonSchema): boolean {
  const s = resolve(schema, root);
  if (typeof s === 'boolean') return s;
  const alternatives = branches(s, root);
  if (alternatives.length > 1)
    return alternatives.some((branch) => valueMatches(branch, value, root));
  const n = s as Node;
  if ('const' in n && !stableEqual(n.const, value)) return false;
  if (Array.isArray(n.enum) && !n.enum.some((e) => stableEqual(e, value))) return false;
  const types = typesOf(n);
  if (
    types !== undefined &&
    !types.has(jsonTypeOf(value)) &&
    !(jsonTypeOf(value) === 'integer' && types.has('number'))
  ) {
    return false;
  }
  if (typeof value === 'string') {
    if (typeof n.minLength === 'number' && value.length < n.minLength) return false;
    if (typeof n.maxLength === 'number' && value.length > n.maxLength) return false;
    if (typeof n.pattern === 'string' && !new RegExp(n.pattern, 'u').test(value)) return false;
  }
  if (typeof value === 'number') {
    if (typeof n.minimum === 'number' && value < n.minimum) return false;
    if (typeof n.maximum === 'number' && value > n.maximum) return false;
    if (typeof n.exclusiveMinimum === 'number' && value <= n.exclusiveMinimum) return false;
    if (typeof n.exclusiveMaximum === 'number' && value >= n.exclusiveMaximum) return false;
    if (typeof n.multipleOf === 'number' && !Number.isInteger(value / n.multipleOf)) return false;
  }
  if (Array.isArray(value) && n.items !== undefined) {
    return value.every((item) => valueMatches(n.items as JsonSchema, item, root));
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const props = (n.properties ?? {}) as Record<string, JsonSchema>;
    for (const key of (n.required ?? []) as string[]) if (!Object.hasOwn(value, key)) return false;
    for (const [key, v] of Object.entries(value)) {
      const field = Object.hasOwn(props, key)
        ? props[key]
        : ((n.additionalProperties ?? true) as JsonSchema);
      if (field !== undefined && !valueMatches(field, v, root)) return false;
    }
  }
  return true;
}

function jsonTypeOf(value: unknown): JsonType {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value as JsonType;
}

/**
 * Where a schema carries refinements ({@link REFINEMENTS_KEYWORD}): JSON path to count. The
 * refinements themselves are code, invisible to JSON Schema.
 */
export function refinementPaths(schema: JsonSchema): Map<string, number> {
  const found = new Map<string, number>();
  const walk = (node: unknown, path: string, depth: number): void => {
    if (depth > 64 || typeof node !== 'object' || node === null) return;
    if (Array.isArray(node)) {
      for (const item of node) walk(item, path, depth + 1);
      return;
    }
    const n = node as Node;
    const count = n[REFINEMENTS_KEYWORD];
    if (typeof count === 'number') found.set(path, (found.get(path) ?? 0) + count);
    for (const [key, value] of Object.entries(n)) {
      if (key === 'properties' && typeof value === 'object' && value !== null) {
        for (const [name, field] of Object.entries(value))
          walk(field, `${path}.${name}`, depth + 1);
      } else if (key === 'items' || key === 'prefixItems') {
        walk(value, `${path}[]`, depth + 1);
      } else if (key === 'additionalProperties') {
        walk(value, `${path}.*`, depth + 1);
      } else if (key === 'anyOf' || key === 'oneOf' || key === 'allOf') {
        walk(value, path, depth + 1);
      }
    }
  };
  walk(schema, '$', 0);
  return found;
}
