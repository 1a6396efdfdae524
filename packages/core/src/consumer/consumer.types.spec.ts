import { describe, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { defineEvent } from '../schema/defineEvent.js';
import type { DedupeStore } from '../dedupe/DedupeStore.js';
import { idempotent, type IdempotentResult } from './idempotent/idempotent.js';
import { handle, type HandlerContext, type HandlerRoute } from './middleware.js';

const OrderPlaced = defineEvent('order.placed')
  .version(1, z.object({ orderId: z.string(), amount: z.number() }))
  .version(2, z.object({ orderId: z.string(), cents: z.int(), note: z.string().default('') }), {
    up: (v1) => ({ orderId: v1.orderId, cents: v1.amount * 100 }),
  });

/** Type-level only: the body is type-checked, never run. */
const typeOnly = (_body: () => void): void => undefined;

describe('consumer types', () => {
  it('types handler data by the version asked for, latest by default', () => {
    typeOnly(() => {
      const latest = handle(OrderPlaced, ({ data, idempotencyKey }) => {
        expectTypeOf(data).toEqualTypeOf<{ orderId: string; cents: number; note: string }>();
        expectTypeOf(idempotencyKey).toEqualTypeOf<string>();
      });
      expectTypeOf(latest).toEqualTypeOf<HandlerRoute>();
      handle(
        OrderPlaced,
        ({ data }) => {
          expectTypeOf(data).toEqualTypeOf<{ orderId: string; amount: number }>();
        },
        { version: 1 },
      );
      // @ts-expect-error version 3 does not exist
      handle(OrderPlaced, () => undefined, { version: 3 });
    });
  });

  it('types the idempotent wrapper by its function', () => {
    typeOnly(() => {
      const store = {} as DedupeStore;
      const wrapped = idempotent(
        async (order: { id: string }, { idempotencyKey }) => `${order.id}:${idempotencyKey}`,
        {
          store,
          consumer: 'c',
          key: (order) => order.id,
        },
      );
      expectTypeOf(wrapped).parameter(0).toEqualTypeOf<{ id: string }>();
      expectTypeOf(wrapped).returns.resolves.toEqualTypeOf<IdempotentResult<string>>();
      // A wrapped handler plugs into handle().
      const inHandle = idempotent((ctx: HandlerContext<unknown>) => ctx.data, {
        store,
        consumer: 'c',
      });
      handle(OrderPlaced, inHandle);
    });
  });
});
