/**
 * Type tests of versioned events and the consumer handler (checked by vitest's typecheck in the
 * unit project and by `npm run typecheck`): `read`, `write` and `envelope` are typed per version,
 * and `handle` gives the handler the data of the version it asked for.
 */
import { describe, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { handle, type HandlerContext } from '../consumer/index.js';
import type { Envelope } from '../envelope/index.js';
import { defineEvent } from './defineEvent.js';

const V1 = z.object({ orderId: z.string(), amount: z.number() });
const V2 = z.object({ orderId: z.string(), amountCents: z.int(), currency: z.string() });
type D1 = { orderId: string; amount: number };
type D2 = { orderId: string; amountCents: number; currency: string };

const OrderPlaced = defineEvent('order.placed')
  .version(1, V1)
  .version(2, V2, {
    up: (v1) => {
      expectTypeOf(v1).toEqualTypeOf<D1>();
      return { orderId: v1.orderId, amountCents: Math.round(v1.amount * 100), currency: 'EUR' };
    },
    down: (v2) => {
      expectTypeOf(v2).toEqualTypeOf<D2>();
      return { orderId: v2.orderId, amount: v2.amountCents / 100 };
    },
  });

describe('versioned event types', () => {
  it('reads at the latest version by default, or at the one asked for', () => {
    expectTypeOf(OrderPlaced.read({}, 1)).toEqualTypeOf<D2>();
    expectTypeOf(OrderPlaced.read({}, 2, 1)).toEqualTypeOf<D1>();
    // @ts-expect-error version 3 is not defined
    OrderPlaced.read({}, 1, 3);
  });

  it('writes from the latest version (or `from`) into the version asked for', () => {
    const d2: D2 = { orderId: 'o', amountCents: 1, currency: 'EUR' };
    expectTypeOf(OrderPlaced.write(d2, { to: 1 })).toEqualTypeOf<D1>();
    expectTypeOf(
      OrderPlaced.write({ orderId: 'o', amount: 1 }, { from: 1, to: 2 }),
    ).toEqualTypeOf<D2>();
    // @ts-expect-error the data must be of the latest version when `from` is not given
    OrderPlaced.write({ orderId: 'o', amount: 1 }, { to: 1 });
  });

  it('builds envelopes typed by the version written', () => {
    expectTypeOf(
      OrderPlaced.envelope({ orderId: 'o', amountCents: 1, currency: 'EUR' }, { source: '//s' }),
    ).toEqualTypeOf<Envelope<D2>>();
    expectTypeOf(
      OrderPlaced.envelope({ orderId: 'o', amount: 1 }, { source: '//s', version: 1 }),
    ).toEqualTypeOf<Envelope<D1>>();
    // @ts-expect-error version 2 data needs amountCents
    OrderPlaced.envelope({ orderId: 'o', amount: 1 }, { source: '//s' });
  });

  it('gives a handler the data of the version it asked for', () => {
    handle(OrderPlaced, (ctx) => {
      expectTypeOf(ctx).toEqualTypeOf<HandlerContext<D2>>();
      expectTypeOf(ctx.data).toEqualTypeOf<D2>();
    });
    handle(
      OrderPlaced,
      ({ data }) => {
        expectTypeOf(data).toEqualTypeOf<D1>();
      },
      { version: 1 },
    );
    // @ts-expect-error version 3 is not defined
    handle(OrderPlaced, () => undefined, { version: 3 });
    handle(OrderPlaced, ({ data }) => {
      // @ts-expect-error version 2 data has no `amount`
      return data.amount;
    });
  });
});
