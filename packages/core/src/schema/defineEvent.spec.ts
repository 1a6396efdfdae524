import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { BacktrackError } from '../errors/BacktrackError.js';
import { decodeEnvelope, encodeEnvelope } from '../envelope/codec.js';
import { defineEvent } from './defineEvent.js';
import { EventRegistry } from './EventRegistry.js';
import {
  MissingTransformError,
  SchemaDefinitionError,
  SchemaValidationError,
  TransformFailedError,
  UnknownEventTypeError,
  UnknownSchemaVersionError,
} from './errors.js';

const V1 = z.object({ orderId: z.string(), amount: z.number() });
const V2 = z.object({ orderId: z.string(), amountCents: z.int(), currency: z.string() });
const V3 = z.object({
  orderId: z.string(),
  total: z.object({ cents: z.int(), currency: z.string().length(3) }),
  channel: z.enum(['web', 'shop']).default('web'),
});

const OrderPlaced = defineEvent('order.placed')
  .version(1, V1)
  .version(2, V2, {
    up: (v1) => ({
      orderId: v1.orderId,
      amountCents: Math.round(v1.amount * 100),
      currency: 'EUR',
    }),
    down: (v2) => ({ orderId: v2.orderId, amount: v2.amountCents / 100 }),
  })
  .version(3, V3, {
    up: (v2) => ({ orderId: v2.orderId, total: { cents: v2.amountCents, currency: v2.currency } }),
    down: (v3) => ({
      orderId: v3.orderId,
      amountCents: v3.total.cents,
      currency: v3.total.currency,
    }),
  });

const v1 = { orderId: 'o-1', amount: 12.5 };
const v2 = { orderId: 'o-1', amountCents: 1250, currency: 'EUR' };
const v3 = { orderId: 'o-1', total: { cents: 1250, currency: 'EUR' }, channel: 'web' as const };

function thrown(fn: () => unknown): BacktrackError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(BacktrackError);
    return error as BacktrackError;
  }
  throw new Error('expected a throw');
}

describe('defineEvent: definition', () => {
  it('lists versions in order and knows the latest', () => {
    expect(OrderPlaced.type).toBe('order.placed');
    expect(OrderPlaced.versions).toEqual([1, 2, 3]);
    expect(OrderPlaced.latest).toBe(3);
    expect(OrderPlaced.transformsOf(2)).toEqual({ up: true, down: true });
    expect(OrderPlaced.transformsOf(1)).toEqual({ up: false, down: false });
  });

  it('is immutable: .version() returns a new definition and leaves the old one as it was', () => {
    const base = defineEvent('x.y').version(1, V1);
    const extended = base.version(2, V1, { up: (d) => d });
    expect(base.versions).toEqual([1]);
    expect(extended.versions).toEqual([1, 2]);
    expect(Object.isFrozen(base)).toBe(true);
    // Two branches from one prefix do not see each other.
    const other = base.version(2, V2);
    expect(other.schema(2)).toBe(V2);
    expect(extended.schema(2)).toBe(V1);
  });

  it('rejects a duplicate version', () => {
    const error = thrown(() =>
      defineEvent('a')
        .version(1, V1)
        .version(1 as 2, V1),
    );
    expect(error).toBeInstanceOf(SchemaDefinitionError);
    expect(error.code).toBe('BT_ERR_SCHEMA_DEFINITION');
    expect(error.message).toMatch(/twice/);
  });

  it('rejects a gap between versions', () => {
    const error = thrown(() => defineEvent('a').version(1, V1).version(3, V1));
    expect(error).toBeInstanceOf(SchemaDefinitionError);
    expect(error.details).toMatchObject({ type: 'a', version: 3, previous: 1 });
  });

  it('rejects a version going backwards', () => {
    expect(() => defineEvent('a').version(2, V1).version(1, V1)).toThrow(SchemaDefinitionError);
  });

  it.each([0, -1, 1.5, Number.NaN])('rejects version number %s', (n) => {
    expect(() => defineEvent('a').version(n, V1)).toThrow(SchemaDefinitionError);
  });

  it('allows the first version above 1 (older versions retired)', () => {
    expect(defineEvent('a').version(4, V1).version(5, V1).versions).toEqual([4, 5]);
  });

  it('rejects an empty type, a non-zod schema and a non-function transform', () => {
    expect(() => defineEvent('')).toThrow(SchemaDefinitionError);
    expect(() => defineEvent('a').version(1, {} as z.ZodString)).toThrow(/zod schema/);
    expect(() =>
      defineEvent('a')
        .version(1, V1)
        .version(2, V1, { up: 'nope' as never }),
    ).toThrow(/not a function/);
  });

  it('cannot be constructed without defineEvent', () => {
    const Ctor = OrderPlaced.constructor as new (type: string, token: symbol) => unknown;
    expect(() => new Ctor('x', Symbol('fake'))).toThrow(SchemaDefinitionError);
  });
});

describe('defineEvent: reading (upcast and downcast through the chain)', () => {
  it.each([
    [1, v1, 1, v1],
    [1, v1, 2, v2],
    [1, v1, 3, v3],
    [2, v2, 3, v3],
    [3, v3, 2, v2],
    [3, v3, 1, v1],
    [2, v2, 1, v1],
    [3, v3, 3, v3],
  ])('reads v%i data as v%i', (from, data, to, expected) => {
    expect(OrderPlaced.read(data, from, to as 1 | 2 | 3)).toEqual(expected);
  });

  it('reads as the latest version by default', () => {
    expect(OrderPlaced.read(v1, 1)).toEqual(v3);
  });

  it('applies target defaults (zod output) on the way', () => {
    expect(OrderPlaced.read(v2, 2, 3).channel).toBe('web');
  });

  it('strips unknown keys like zod does', () => {
    expect(OrderPlaced.read({ ...v1, extra: true }, 1, 1)).toEqual(v1);
  });

  it('throws UnknownSchemaVersionError for an unknown source or target version', () => {
    const error = thrown(() => OrderPlaced.read(v1, 7));
    expect(error).toBeInstanceOf(UnknownSchemaVersionError);
    expect(error.code).toBe('BT_ERR_SCHEMA_VERSION_UNKNOWN');
    expect(error.details).toMatchObject({
      eventType: 'order.placed',
      version: 7,
      knownVersions: [1, 2, 3],
    });
    expect(() => OrderPlaced.read(v1, 1, 9 as 1)).toThrow(UnknownSchemaVersionError);
  });

  it('throws SchemaValidationError with the zod issues unchanged', () => {
    const bad = { orderId: 42, amount: 'x' };
    const expected = V1.safeParse(bad).error?.issues;
    const error = thrown(() => OrderPlaced.read(bad, 1)) as SchemaValidationError;
    expect(error).toBeInstanceOf(SchemaValidationError);
    expect(error.code).toBe('BT_ERR_SCHEMA_VALIDATION');
    expect(error.issues).toEqual(expected);
    expect(error.details.issues).toEqual(expected);
    expect(error.issues[0]).toMatchObject({ path: ['orderId'], code: 'invalid_type' });
    expect(error.message).toMatch(/at orderId/);
    expect(error.retriable).toBe(false);
  });

  it('validates each intermediate version, so a buggy transform is caught where it happens', () => {
    const Buggy = defineEvent('buggy')
      .version(1, V1)
      .version(2, V2, {
        up: (d) => ({ orderId: d.orderId, amountCents: d.amount, currency: 'EUR' }),
      })
      .version(3, V3, {
        up: (d) => ({ orderId: d.orderId, total: { cents: d.amountCents, currency: d.currency } }),
      });
    const error = thrown(() =>
      Buggy.read({ orderId: 'o', amount: 1.5 }, 1),
    ) as SchemaValidationError;
    expect(error).toBeInstanceOf(SchemaValidationError);
    expect(error.version).toBe(2);
  });

  it('parses each version once: the payload at its own version, then each upcast output', () => {
    const s1 = z.object({ orderId: z.string(), amount: z.number() });
    const s2 = z.object({ orderId: z.string(), amountCents: z.int(), currency: z.string() });
    const Counted = defineEvent('counted')
      .version(1, s1)
      .version(2, s2, {
        up: (d) => ({ orderId: d.orderId, amountCents: d.amount * 100, currency: 'EUR' }),
      });
    const p1 = vi.spyOn(s1, 'safeParse');
    const p2 = vi.spyOn(s2, 'safeParse');
    expect(Counted.read(v2, 2, 2)).toEqual(v2);
    expect([p1.mock.calls.length, p2.mock.calls.length]).toEqual([0, 1]);
    expect(Counted.read(v1, 1, 1)).toEqual(v1);
    expect([p1.mock.calls.length, p2.mock.calls.length]).toEqual([1, 1]);
    expect(Counted.read(v1, 1, 2)).toEqual(v2);
    expect([p1.mock.calls.length, p2.mock.calls.length]).toEqual([2, 2]);
  });

  it('checks the last upcast output too, where the target schema is its only check', () => {
    const Buggy = defineEvent('buggy.last')
      .version(1, V1)
      .version(2, V2, {
        up: (d) => ({ orderId: d.orderId, amountCents: d.amount, currency: 'EUR' }),
      });
    const error = thrown(() => Buggy.read({ orderId: 'o', amount: 1.5 }, 1, 2));
    expect(error).toBeInstanceOf(SchemaValidationError);
    expect((error as SchemaValidationError).version).toBe(2);
    expect((error as SchemaValidationError).issues[0]).toMatchObject({ path: ['amountCents'] });
  });

  it('throws MissingTransformError when the chain lacks a transform in the needed direction', () => {
    const UpOnly = defineEvent('up.only')
      .version(1, V1)
      .version(2, V2, {
        up: (d) => ({ orderId: d.orderId, amountCents: d.amount * 100, currency: 'EUR' }),
      });
    expect(UpOnly.read(v1, 1)).toEqual(v2);
    const error = thrown(() => UpOnly.read(v2, 2, 1));
    expect(error).toBeInstanceOf(MissingTransformError);
    expect(error.code).toBe('BT_ERR_SCHEMA_TRANSFORM_MISSING');
    expect(error.details).toMatchObject({
      eventType: 'up.only',
      from: 2,
      to: 1,
      direction: 'down',
    });
    expect((error as MissingTransformError).issues[0]).toMatchObject({ path: ['amount'] });
    expect(UpOnly.canConvert(1, 2)).toBe(true);
    expect(UpOnly.canConvert(2, 1)).toBe(false);

    const NoUp = defineEvent('no.up').version(1, V1).version(2, V2);
    expect(thrown(() => NoUp.read(v1, 1)).details).toMatchObject({
      direction: 'up',
      from: 1,
      to: 2,
    });
  });

  it('passes data unchanged through a step without a transform when the neighbour schema accepts it', () => {
    const Optional = defineEvent('optional.field')
      .version(1, V1)
      .version(2, V1.extend({ coupon: z.string().optional() }));
    expect(Optional.read(v1, 1)).toEqual(v1);
    expect(Optional.read({ ...v1, coupon: 'C' }, 2, 1)).toEqual(v1);
    expect(Optional.canConvert(1, 2)).toBe(false);
  });

  it('wraps a throwing transform in TransformFailedError with the cause', () => {
    const boom = new Error('boom');
    const Throws = defineEvent('throws')
      .version(1, V1)
      .version(2, V1, {
        up: () => {
          throw boom;
        },
      });
    const error = thrown(() => Throws.read(v1, 1));
    expect(error).toBeInstanceOf(TransformFailedError);
    expect(error.code).toBe('BT_ERR_SCHEMA_TRANSFORM_FAILED');
    expect(error.cause).toBe(boom);
  });
});

describe('defineEvent: writing an older version', () => {
  it('writes latest data as v1 and v2', () => {
    expect(OrderPlaced.write(v3, { to: 1 })).toEqual(v1);
    expect(OrderPlaced.write(v3, { to: 2 })).toEqual(v2);
  });

  it('writes from an explicit version', () => {
    expect(OrderPlaced.write(v2, { from: 2, to: 1 })).toEqual(v1);
    expect(OrderPlaced.write(v1, { from: 1, to: 3 })).toEqual(v3);
  });

  it('validates what it writes', () => {
    expect(() =>
      OrderPlaced.write({ orderId: 'o', total: { cents: 1, currency: 'EURO' } }, { to: 1 }),
    ).toThrow(SchemaValidationError);
  });

  it('round-trips v1 -> v3 -> v1 unchanged', () => {
    expect(OrderPlaced.write(OrderPlaced.read(v1, 1), { to: 1 })).toEqual(v1);
  });
});

describe('defineEvent: zod codecs', () => {
  it('decodes and encodes through the chain, both directions', () => {
    const codec = OrderPlaced.codec(1, 3);
    expect(codec.decode(v1)).toEqual(v3);
    expect(codec.encode(v3)).toEqual(v1);
    expect(OrderPlaced.codec(3, 2).decode(v3)).toEqual(v2);
    expect(OrderPlaced.codec(3, 2).encode(v2)).toEqual(v3);
  });

  it('throws the same typed errors', () => {
    expect(() => OrderPlaced.codec(1, 2).decode({ orderId: 1 } as never)).toThrow();
    const UpOnly = defineEvent('up.only')
      .version(1, V1)
      .version(2, V2, {
        up: (d) => ({ orderId: d.orderId, amountCents: d.amount * 100, currency: 'EUR' }),
      });
    expect(() => UpOnly.codec(1, 2).encode(v2)).toThrow(MissingTransformError);
    expect(() => OrderPlaced.codec(1, 9 as 3)).toThrow(UnknownSchemaVersionError);
  });
});

describe('defineEvent: envelope', () => {
  it('builds an envelope of the latest version with validated data', () => {
    const envelope = OrderPlaced.envelope(
      { orderId: 'o-1', total: { cents: 5, currency: 'EUR' } },
      { source: '//shop/orders', sagaid: 's-1' },
    );
    expect(envelope).toMatchObject({ type: 'order.placed', schemaversion: 3, sagaid: 's-1' });
    expect(envelope.data.channel).toBe('web');
    const decoded = decodeEnvelope(encodeEnvelope(envelope));
    expect(new EventRegistry([OrderPlaced]).read(decoded, { as: 1 })).toEqual({
      orderId: 'o-1',
      amount: 0.05,
    });
  });

  it('builds an envelope of an older version', () => {
    const envelope = OrderPlaced.envelope(v1, { source: '//s', version: 1 });
    expect(envelope.schemaversion).toBe(1);
    expect(() => OrderPlaced.envelope(v2 as never, { source: '//s', version: 1 })).toThrow(
      SchemaValidationError,
    );
  });
});

describe('EventRegistry', () => {
  const PaymentCaptured = defineEvent('payment.captured').version(
    1,
    z.object({ paymentId: z.string() }),
  );
  const registry = new EventRegistry([OrderPlaced, PaymentCaptured]);

  it('lists and finds definitions', () => {
    expect(registry.types).toEqual(['order.placed', 'payment.captured']);
    expect(registry.get('order.placed')).toBe(OrderPlaced);
    expect(registry.has('nope')).toBe(false);
  });

  it('throws UnknownEventTypeError for an unknown type', () => {
    const error = thrown(() => registry.get('nope'));
    expect(error).toBeInstanceOf(UnknownEventTypeError);
    expect(error.code).toBe('BT_ERR_SCHEMA_UNKNOWN_EVENT_TYPE');
    expect(error.details.eventType).toBe('nope');
    expect(() => registry.read({ type: 'nope', schemaversion: 1, data: {} })).toThrow(
      UnknownEventTypeError,
    );
  });

  it('reads an envelope as the latest or a requested version', () => {
    expect(registry.read({ type: 'order.placed', schemaversion: 1, data: v1 })).toEqual(v3);
    expect(registry.read({ type: 'order.placed', schemaversion: 3, data: v3 }, { as: 2 })).toEqual(
      v2,
    );
  });

  it('rejects a type registered twice', () => {
    const again = defineEvent('order.placed').version(1, V1);
    const error = thrown(() => new EventRegistry([OrderPlaced, again]));
    expect(error).toBeInstanceOf(SchemaDefinitionError);
    expect(() => registry.with(again)).toThrow(/registered twice/);
  });

  it('rejects a definition with no version and a non-definition', () => {
    expect(() => new EventRegistry([defineEvent('empty') as never])).toThrow(/no version/);
    expect(() => new EventRegistry([{ type: 'fake' } as never])).toThrow(SchemaDefinitionError);
  });

  it('with() returns a new registry and leaves the old one unchanged', () => {
    const more = registry.with(defineEvent('x').version(1, V1));
    expect(more.types).toHaveLength(3);
    expect(registry.types).toHaveLength(2);
  });
});
