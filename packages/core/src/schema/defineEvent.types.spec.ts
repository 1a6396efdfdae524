import { describe, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { defineEvent } from './defineEvent.js';
import type { EventData, EventInput, EventVersion, LatestVersion } from './defineEvent.js';

/** Type-level only: the body is type-checked, never run (the data is fake). */
const typeOnly = (_body: () => void): void => undefined;

const OrderPlaced = defineEvent('order.placed')
  .version(1, z.object({ orderId: z.string(), amount: z.number() }))
  .version(2, z.object({ orderId: z.string(), cents: z.int(), note: z.string().default('') }), {
    up: (v1) => {
      expectTypeOf(v1).toEqualTypeOf<{ orderId: string; amount: number }>();
      return { orderId: v1.orderId, cents: v1.amount * 100 };
    },
    down: (v2) => {
      expectTypeOf(v2).toEqualTypeOf<{ orderId: string; cents: number; note: string }>();
      return { orderId: v2.orderId, amount: v2.cents / 100 };
    },
  });

type Def = typeof OrderPlaced;

describe('schema types', () => {
  it('infers the literal type, the versions and the latest', () => {
    expectTypeOf(OrderPlaced.type).toEqualTypeOf<'order.placed'>();
    expectTypeOf<EventVersion<Def>>().toEqualTypeOf<1 | 2>();
    expectTypeOf<LatestVersion<Def>>().toEqualTypeOf<2>();
    expectTypeOf(OrderPlaced.latest).toEqualTypeOf<2>();
  });

  it('infers output data (defaults applied) and input data (defaults optional) per version', () => {
    expectTypeOf<EventData<Def>>().toEqualTypeOf<{
      orderId: string;
      cents: number;
      note: string;
    }>();
    expectTypeOf<EventData<Def, 1>>().toEqualTypeOf<{ orderId: string; amount: number }>();
    expectTypeOf<EventInput<Def>>().toEqualTypeOf<{
      orderId: string;
      cents: number;
      note?: string | undefined;
    }>();
  });

  it('types read() by the requested version, latest by default', () => {
    typeOnly(() => {
      expectTypeOf(OrderPlaced.read({}, 1)).toEqualTypeOf<EventData<Def, 2>>();
      expectTypeOf(OrderPlaced.read({}, 2, 1)).toEqualTypeOf<EventData<Def, 1>>();
      // @ts-expect-error version 3 does not exist
      OrderPlaced.read({}, 1, 3);
    });
  });

  it('types write() input by the source version and output by the target', () => {
    typeOnly(() => {
      expectTypeOf(OrderPlaced.write({ orderId: 'o', cents: 1 }, { to: 1 })).toEqualTypeOf<
        EventData<Def, 1>
      >();
      // @ts-expect-error latest input needs cents
      OrderPlaced.write({ orderId: 'o', amount: 1 }, { to: 1 });
      OrderPlaced.write({ orderId: 'o', amount: 1 }, { from: 1, to: 2 });
    });
  });

  it('checks transform return types against the next version', () => {
    typeOnly(() => {
      defineEvent('t')
        .version(1, z.object({ a: z.string() }))
        // @ts-expect-error up must return the v2 input shape
        .version(2, z.object({ b: z.number() }), { up: (v1) => ({ a: v1.a }) });
    });
  });

  it('accepts no transforms on the first version', () => {
    typeOnly(() => {
      // @ts-expect-error the first version has no predecessor
      defineEvent('t').version(1, z.object({}), { up: (d: unknown) => d });
    });
  });

  it('types envelope data by version', () => {
    typeOnly(() => {
      const envelope = OrderPlaced.envelope({ orderId: 'o', cents: 1 }, { source: '//s' });
      expectTypeOf(envelope.data).toEqualTypeOf<EventData<Def, 2>>();
      const old = OrderPlaced.envelope({ orderId: 'o', amount: 1 }, { source: '//s', version: 1 });
      expectTypeOf(old.data).toEqualTypeOf<EventData<Def, 1>>();
    });
  });
  it('types codecs by their two versions', () => {
    typeOnly(() => {
      const codec = OrderPlaced.codec(1, 2);
      expectTypeOf(codec.decode({ orderId: 'o', amount: 1 })).toEqualTypeOf<EventData<Def, 2>>();
      expectTypeOf(codec.encode({ orderId: 'o', cents: 1, note: '' })).toEqualTypeOf<
        EventInput<Def, 1>
      >();
    });
  });
});
