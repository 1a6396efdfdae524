import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { BacktrackError } from '../errors/BacktrackError.js';
import {
  assertCompatible,
  checkCompatibility,
  loadSnapshot,
  satisfies,
  serializeSnapshot,
  snapshotRegistry,
  type CompatibilityLevel,
} from './compatibility.js';
import { defineEvent } from './defineEvent.js';
import { EventRegistry } from './EventRegistry.js';
import { SchemaIncompatibleError, SchemaSnapshotError } from './errors.js';
import { readerAcceptsWriter } from './jsonSchemaCompat.js';

const Base = z.object({ orderId: z.string(), amount: z.number() });
const v1 = () => defineEvent('order.placed').version(1, Base);
const registry = (...defs: Parameters<EventRegistry['with']>) => new EventRegistry(defs);

function verdict(
  previous: EventRegistry,
  next: EventRegistry,
  required: CompatibilityLevel = 'NONE',
) {
  const report = checkCompatibility(previous, next, { required });
  const event = report.events.find((e) => e.type === 'order.placed');
  return event!;
}

describe('checkCompatibility: verdicts per event type', () => {
  it('unchanged: FULL', () => {
    const e = verdict(registry(v1()), registry(v1()));
    expect(e).toMatchObject({ status: 'unchanged', level: 'FULL', problems: [] });
  });

  it('a new optional field without transforms: FULL', () => {
    const next = v1().version(2, Base.extend({ note: z.string().optional() }));
    expect(verdict(registry(v1()), registry(next))).toMatchObject({
      status: 'changed',
      level: 'FULL',
    });
  });

  it('a new field with a default: FULL (old data gets the default)', () => {
    const next = v1().version(2, Base.extend({ currency: z.string().default('EUR') }));
    expect(verdict(registry(v1()), registry(next)).level).toBe('FULL');
  });

  it('a new required field without up: FORWARD only, and it fails the BACKWARD default', () => {
    const next = v1().version(2, Base.extend({ currency: z.string() }));
    const e = verdict(registry(v1()), registry(next), 'BACKWARD');
    expect(e.level).toBe('FORWARD');
    expect(e.ok).toBe(false);
    expect(e.problems[0]).toMatchObject({
      direction: 'backward',
      path: '$.currency',
      from: 1,
      to: 2,
    });
    expect(e.problems[0]).toMatchObject({
      context: 'v1→v2 has no "up" transform',
      message: 'required in v2, absent from v1',
    });
  });

  it('the same change with an up transform: FULL', () => {
    const next = v1().version(2, Base.extend({ currency: z.string() }), {
      up: (d) => ({ ...d, currency: 'EUR' }),
    });
    expect(verdict(registry(v1()), registry(next), 'BACKWARD')).toMatchObject({
      level: 'FULL',
      ok: true,
    });
  });

  it('a removed required field without down: BACKWARD only (old consumers miss it)', () => {
    const next = v1().version(2, z.object({ orderId: z.string() }));
    const e = verdict(registry(v1()), registry(next), 'FULL');
    expect(e.level).toBe('BACKWARD');
    expect(e.ok).toBe(false);
    expect(e.problems).toEqual([
      expect.objectContaining({
        direction: 'forward',
        path: '$.amount',
        context: 'v2→v1 has no "down" transform',
        message: 'required in v1, absent from v2',
      }),
    ]);
  });

  it('a type change without transforms: NONE; with both transforms: FULL', () => {
    const Changed = z.object({ orderId: z.string(), amount: z.string() });
    expect(verdict(registry(v1()), registry(v1().version(2, Changed))).level).toBe('NONE');
    const withBoth = v1().version(2, Changed, {
      up: (d) => ({ ...d, amount: String(d.amount) }),
      down: (d) => ({ ...d, amount: Number(d.amount) }),
    });
    expect(verdict(registry(v1()), registry(withBoth)).level).toBe('FULL');
  });

  it('a widened enum is BACKWARD, a narrowed enum is FORWARD', () => {
    const E = (values: [string, ...string[]]) =>
      defineEvent('order.placed').version(1, z.object({ s: z.enum(values) }));
    const AB = z.object({ s: z.enum(['a', 'b']) });
    const ABC = z.object({ s: z.enum(['a', 'b', 'c']) });
    expect(verdict(registry(E(['a', 'b'])), registry(E(['a', 'b']).version(2, ABC))).level).toBe(
      'BACKWARD',
    );
    expect(
      verdict(registry(E(['a', 'b', 'c'])), registry(E(['a', 'b', 'c']).version(2, AB))).level,
    ).toBe('FORWARD');
  });

  it('a strict old reader makes an added field forward-incompatible', () => {
    const strict = defineEvent('order.placed').version(1, z.strictObject({ orderId: z.string() }));
    const next = strict.version(
      2,
      z.strictObject({ orderId: z.string(), note: z.string().optional() }),
    );
    const e = verdict(registry(strict), registry(next));
    expect(e.level).toBe('BACKWARD');
    expect(e.problems[0]?.message).toMatch(/rejects unknown fields/);
  });

  it('a published version changed in place is reported against that version', () => {
    const edited = defineEvent('order.placed').version(
      1,
      z.object({ orderId: z.string(), amount: z.int() }),
    );
    const e = verdict(registry(v1()), registry(edited));
    // New readers want integers; events already written may hold fractions.
    expect(e.level).toBe('FORWARD');
    expect(e.problems[0]).toMatchObject({ direction: 'backward', version: 1, path: '$.amount' });
    expect(e.problems[0]).toMatchObject({
      context: 'published v1 changed',
      message: 'the old v1 may write number, the new v1 accepts integer',
    });
  });

  it('a version removed (code rolled back below the snapshot): FORWARD, fails BACKWARD', () => {
    const newer = v1().version(2, Base.extend({ note: z.string().optional() }));
    const e = verdict(registry(newer), registry(v1()), 'BACKWARD');
    expect(e).toMatchObject({ level: 'FORWARD', ok: false });
    expect(e.problems[0]).toMatchObject({ direction: 'backward', version: 2 });
  });

  it('an added type is FULL, a removed type is FORWARD', () => {
    const other = defineEvent('order.shipped').version(1, z.object({ orderId: z.string() }));
    const report = checkCompatibility(registry(v1()), registry(v1(), other));
    expect(report.events.find((e) => e.type === 'order.shipped')).toMatchObject({
      status: 'added',
      level: 'FULL',
      ok: true,
    });
    const removed = checkCompatibility(registry(v1(), other), registry(v1()));
    expect(removed.ok).toBe(false);
    expect(removed.events.find((e) => e.type === 'order.shipped')).toMatchObject({
      status: 'removed',
      level: 'FORWARD',
    });
  });

  it('checks only the new steps unless transitive', () => {
    // v1 -> v2 was already incompatible without a transform; v3 adds an optional field.
    const two = v1().version(2, Base.extend({ currency: z.string() }));
    const three = two.version(
      3,
      Base.extend({ currency: z.string(), note: z.string().optional() }),
    );
    expect(checkCompatibility(registry(two), registry(three)).ok).toBe(true);
    const transitive = checkCompatibility(registry(two), registry(three), { transitive: true });
    expect(transitive.ok).toBe(false);
    expect(transitive.events[0]?.problems[0]).toMatchObject({ from: 1, to: 2 });
  });

  it('applies required levels per type', () => {
    const next = v1().version(2, z.object({ orderId: z.string() }));
    expect(
      checkCompatibility(registry(v1()), registry(next), { required: { 'order.placed': 'FULL' } })
        .ok,
    ).toBe(false);
    expect(
      checkCompatibility(registry(v1()), registry(next), { required: { other: 'FULL' } }).ok,
    ).toBe(true);
    expect(() =>
      checkCompatibility(registry(v1()), registry(next), {
        required: 'SOME' as CompatibilityLevel,
      }),
    ).toThrow(/unknown compatibility level/);
  });

  it('satisfies() orders the levels', () => {
    expect(satisfies('FULL', 'BACKWARD')).toBe(true);
    expect(satisfies('FORWARD', 'BACKWARD')).toBe(false);
    expect(satisfies('NONE', 'NONE')).toBe(true);
    expect(satisfies('BACKWARD', 'FULL')).toBe(false);
  });
});

describe('checkCompatibility: what fails at run time is flagged', () => {
  const Amount = z.object({ orderId: z.string(), amount: z.string() });
  const withTransforms = () =>
    v1().version(2, Amount, {
      up: (d) => ({ ...d, amount: String(d.amount) }),
      down: (d) => ({ ...d, amount: Number(d.amount) }),
    });

  it('removing the up/down transforms of a published step is incompatible without --transitive', () => {
    const published = registry(withTransforms());
    const withoutTransforms = v1().version(2, Amount);
    const e = verdict(published, registry(withoutTransforms), 'BACKWARD');
    expect(e).toMatchObject({ level: 'NONE', ok: false });
    expect(e.problems.map((p) => [p.direction, p.context, p.path])).toEqual([
      ['backward', 'v1→v2: the "up" transform of published v2 was removed', '$.amount'],
      ['forward', 'v2→v1: the "down" transform of published v2 was removed', '$.amount'],
    ]);
    // What the check stands for: a v2 reader now fails on v1 data.
    expect(() => withoutTransforms.read({ orderId: 'o', amount: 1 }, 1)).toThrow(
      expect.objectContaining({ code: 'BT_ERR_SCHEMA_TRANSFORM_MISSING' }),
    );
  });

  it('removing a transform the schemas do not need stays compatible', () => {
    const optional = Base.extend({ note: z.string().optional() });
    const published = registry(v1().version(2, optional, { up: (d) => d, down: (d) => d }));
    expect(verdict(published, registry(v1().version(2, optional))).level).toBe('FULL');
  });

  it('z.int() to z.bigint() is flagged both ways (JSON Schema cannot express bigint)', () => {
    const next = v1().version(2, z.object({ orderId: z.string(), amount: z.bigint() }));
    const e = verdict(registry(v1()), registry(next));
    expect(e.level).toBe('NONE');
    expect(e.problems.find((p) => p.direction === 'backward')?.message).toBe(
      'v2 has a bigint here, v1 number: JSON Schema cannot express bigint, so the check counts it compatible only with the same type',
    );
  });

  it('z.date() to z.iso.datetime() is flagged both ways', () => {
    const dated = defineEvent('order.placed').version(1, z.object({ at: z.date() }));
    const next = dated.version(2, z.object({ at: z.iso.datetime() }));
    const e = verdict(registry(dated), registry(next));
    expect(e.level).toBe('NONE');
    expect(e.problems.find((p) => p.direction === 'forward')).toMatchObject({
      path: '$.at',
      message: expect.stringMatching(
        /^v1 has a date here, v2 string: JSON Schema cannot express date/,
      ),
    });
  });

  it('an unrepresentable type is compatible with itself', () => {
    const dated = defineEvent('order.placed').version(1, z.object({ at: z.date() }));
    const next = dated.version(2, z.object({ at: z.date(), note: z.string().optional() }));
    expect(verdict(registry(dated), registry(next)).level).toBe('FULL');
  });

  it('warns when a version adds a refinement, without changing the verdict', () => {
    const next = v1().version(
      2,
      z.object({ orderId: z.string().refine((id) => id.startsWith('o-')), amount: z.number() }),
    );
    const e = verdict(registry(v1()), registry(next));
    expect(e.level).toBe('FULL');
    expect(e.warnings).toEqual([
      {
        version: 2,
        path: '$.orderId',
        message:
          'v2 adds a refinement (.refine, .superRefine or .check) here, which JSON Schema cannot show: check by hand that every event of v1 passes it',
      },
    ]);
    // The same refinement carried into v3 is not new.
    const v3 = next.version(
      3,
      z.object({
        orderId: z.string().refine((id) => id.startsWith('o-')),
        amount: z.number(),
        note: z.string().optional(),
      }),
    );
    expect(verdict(registry(next), registry(v3)).warnings).toEqual([]);
  });

  it('names every union alternative that rejects the old data, in words', () => {
    const problems = readerAcceptsWriter(
      z.toJSONSchema(z.union([z.string().min(2), z.number()]), { io: 'input' }),
      z.toJSONSchema(z.string(), { io: 'output' }),
      { reader: 'the new version', writer: 'the old version' },
    );
    expect(problems.map((p) => p.message)).toEqual([
      'alternative 1 of 2 (string) of the new version: the new version requires minLength 2, the old version has none',
      'alternative 2 of 2 (number) of the new version: the old version may write string, the new version accepts number',
    ]);
  });

  it('explains "accepts nothing" and "may write anything" in words', () => {
    const roles = { reader: 'the new version', writer: 'the old version' };
    expect(readerAcceptsWriter({ not: {} }, { type: 'string' }, roles)[0]?.message).toBe(
      'the new version accepts no value at all here (an impossible schema, such as z.never()), so whatever the old version writes is rejected',
    );
    expect(readerAcceptsWriter({ type: 'string' }, {}, roles)[0]?.message).toBe(
      'the old version puts no limit on this value (z.any(), z.unknown(), or a shape JSON Schema cannot describe), so it may write values the new version rejects',
    );
  });
});

describe('assertCompatible', () => {
  it('throws SchemaIncompatibleError listing the problems, with the report', () => {
    const next = v1().version(2, Base.extend({ currency: z.string() }));
    let error: unknown;
    try {
      assertCompatible(registry(v1()), registry(next));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SchemaIncompatibleError);
    expect(error).toBeInstanceOf(BacktrackError);
    expect((error as SchemaIncompatibleError).code).toBe('BT_ERR_SCHEMA_INCOMPATIBLE');
    expect((error as SchemaIncompatibleError).message).toMatch(
      /order\.placed: FORWARD, required BACKWARD\n {2}v1→v2 has no "up" transform \(BACKWARD: new readers, old events\):\n {4}- \$\.currency: required in v2, absent from v1/,
    );
    expect((error as SchemaIncompatibleError).details.types).toEqual(['order.placed']);
  });

  it('returns the report when compatible', () => {
    expect(assertCompatible(registry(v1()), registry(v1())).ok).toBe(true);
  });
});

describe('registry snapshots', () => {
  const two = v1().version(2, Base.extend({ currency: z.string() }), {
    up: (d) => ({ ...d, currency: 'EUR' }),
  });

  it('saves JSON Schema per version with transform flags', () => {
    const snapshot = snapshotRegistry(registry(two), {
      label: 'orders@2.4.0',
      now: () => new Date('2026-01-01T00:00:00Z'),
    });
    expect(snapshot).toMatchObject({
      format: 'backtrack.registry',
      formatVersion: 1,
      label: 'orders@2.4.0',
      createdAt: '2026-01-01T00:00:00.000Z',
    });
    expect(snapshot.events['order.placed']?.versions['2']).toMatchObject({ up: true, down: false });
    expect(snapshot.events['order.placed']?.versions['1']?.input).toMatchObject({
      type: 'object',
      required: ['orderId', 'amount'],
    });
    expect(snapshot.events['order.placed']?.versions['1']?.output).toMatchObject({
      additionalProperties: false,
    });
  });

  it('round-trips through JSON and compares a loaded snapshot with the live registry', () => {
    const text = serializeSnapshot(snapshotRegistry(registry(two)));
    expect(typeof text).toBe('string');
    const loaded = loadSnapshot(text);
    expect(checkCompatibility(loaded, registry(two)).events[0]).toMatchObject({
      status: 'unchanged',
      level: 'FULL',
    });
    const three = two.version(3, z.object({ orderId: z.string() }));
    const report = checkCompatibility(loaded, registry(three), { required: 'FULL' });
    expect(report.ok).toBe(false);
    expect(report.events[0]?.level).toBe('BACKWARD');
  });

  it('serialises with sorted keys (stable diffs)', () => {
    const a = serializeSnapshot(snapshotRegistry(registry(two), { now: () => new Date(0) }));
    const b = serializeSnapshot(snapshotRegistry(registry(two), { now: () => new Date(0) }));
    expect(a).toBe(b);
    expect(a.indexOf('"createdAt"')).toBeLessThan(a.indexOf('"events"'));
  });

  it.each([
    ['not JSON', '{nope', /not valid JSON/],
    [
      'another format',
      JSON.stringify({ format: 'x', formatVersion: 1, events: {} }),
      /not a Backtrack registry snapshot/,
    ],
    [
      'a version gap',
      JSON.stringify({
        format: 'backtrack.registry',
        formatVersion: 1,
        events: {
          t: {
            versions: {
              '1': { input: {}, output: {}, up: false, down: false },
              '3': { input: {}, output: {}, up: false, down: false },
            },
          },
        },
      }),
      /gap/,
    ],
  ])('rejects a snapshot that is %s with SchemaSnapshotError', (_label, text, message) => {
    expect(() => loadSnapshot(text)).toThrow(SchemaSnapshotError);
    expect(() => loadSnapshot(text)).toThrow(message);
    try {
      loadSnapshot(text);
    } catch (error) {
      expect((error as SchemaSnapshotError).code).toBe('BT_ERR_SCHEMA_SNAPSHOT_INVALID');
    }
  });
});

describe('readerAcceptsWriter (JSON Schema comparison)', () => {
  const js = (schema: z.ZodType, io: 'input' | 'output') =>
    z.toJSONSchema(schema, { io, unrepresentable: 'any' });
  const accepts = (reader: z.ZodType, writer: z.ZodType) =>
    readerAcceptsWriter(js(reader, 'input'), js(writer, 'output'));

  it.each([
    ['nullable reader, plain writer', z.string().nullable(), z.string(), true],
    ['plain reader, nullable writer', z.string(), z.string().nullable(), false],
    ['number reader, int writer', z.number(), z.int(), true],
    ['int reader, number writer', z.int(), z.number(), false],
    ['looser min length', z.string().min(1), z.string().min(3), true],
    ['stricter min length', z.string().min(3), z.string().min(1), false],
    ['wider max', z.number().max(10), z.number().max(5), true],
    ['narrower exclusive bound', z.number().positive(), z.number().nonnegative(), false],
    ['union reader', z.union([z.string(), z.number()]), z.number(), true],
    ['union writer', z.string(), z.union([z.string(), z.number()]), false],
    ['literal into enum', z.enum(['a', 'b']), z.literal('a'), true],
    ['record of numbers', z.record(z.string(), z.number()), z.record(z.string(), z.int()), true],
    [
      'record widened value',
      z.record(z.string(), z.int()),
      z.record(z.string(), z.number()),
      false,
    ],
    ['array items', z.array(z.number()), z.array(z.int()), true],
    ['format added', z.email(), z.string(), false],
    ['anything reader', z.unknown(), z.object({ a: z.string() }), true],
    ['date (unrepresentable) writer into string reader', z.string(), z.date(), false],
    [
      'discriminated union, added variant',
      z.discriminatedUnion('k', [z.object({ k: z.literal('a') })]),
      z.discriminatedUnion('k', [z.object({ k: z.literal('a') }), z.object({ k: z.literal('b') })]),
      false,
    ],
  ])('%s', (_label, reader, writer, ok) => {
    expect(accepts(reader, writer).length === 0).toBe(ok);
  });

  it('compares recursive schemas without looping', () => {
    interface Node {
      name: string;
      children: Node[];
    }
    const NodeSchema: z.ZodType<Node> = z.lazy(() =>
      z.object({ name: z.string(), children: z.array(NodeSchema) }),
    );
    expect(accepts(NodeSchema, NodeSchema)).toEqual([]);
  });

  it('names the path of each problem', () => {
    const problems = accepts(
      z.object({ a: z.object({ b: z.int() }) }),
      z.object({ a: z.object({ b: z.number() }) }),
    );
    expect(problems[0]?.path).toBe('$.a.b');
  });
});

describe('the README example', () => {
  const v1v2 = defineEvent('order.placed')
    .version(1, z.object({ orderId: z.string(), amount: z.number() }))
    .version(2, z.object({ orderId: z.string(), amountCents: z.int(), currency: z.string() }), {
      up: (v1) => ({
        orderId: v1.orderId,
        amountCents: Math.round(v1.amount * 100),
        currency: 'EUR',
      }),
      down: (v2) => ({ orderId: v2.orderId, amount: v2.amountCents / 100 }),
    });
  const OrderPlaced = v1v2.version(
    3,
    z.object({
      orderId: z.string(),
      amountCents: z.int(),
      currency: z.string(),
      coupon: z.string().optional(),
    }),
  );

  it('reads and writes as documented', () => {
    expect(OrderPlaced.read({ orderId: 'o-1', amount: 12.5 }, 1)).toEqual({
      orderId: 'o-1',
      amountCents: 1250,
      currency: 'EUR',
    });
    expect(
      OrderPlaced.write({ orderId: 'o-1', amountCents: 1250, currency: 'EUR' }, { to: 1 }),
    ).toEqual({ orderId: 'o-1', amount: 12.5 });
    expect(
      OrderPlaced.read({ orderId: 'o', amountCents: 1, currency: 'EUR', coupon: 'X' }, 3, 1),
    ).toEqual({ orderId: 'o', amount: 0.01 });
  });

  it('v3 (an optional field, no transform) is FULL against a v1..v2 snapshot', () => {
    const snapshot = loadSnapshot(serializeSnapshot(snapshotRegistry(new EventRegistry([v1v2]))));
    expect(
      assertCompatible(snapshot, new EventRegistry([OrderPlaced]), { required: 'FULL' }).events[0]
        ?.level,
    ).toBe('FULL');
  });
});
