/**
 * Type test of `defineConfig` (checked by vitest's typecheck in the unit project and by
 * `npm run typecheck`): typed saga definitions go in without a cast.
 */
import { describe, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { defineSaga } from '@backtrack/core';
import { defineConfig, type BacktrackConfig } from './config.js';

describe('defineConfig types', () => {
  it('takes typed saga definitions of any input and results', () => {
    const placeOrder = defineSaga('place-order', { input: z.object({ orderId: z.string() }) })
      .step('reserve', { run: ({ input }) => ({ id: input.orderId }) })
      .build();
    const refund = defineSaga('refund', { input: z.object({ cents: z.number() }) })
      .step('refund', { run: async () => 1 })
      .build();
    expectTypeOf(defineConfig({ sagas: [placeOrder, refund] })).toEqualTypeOf<BacktrackConfig>();
    // @ts-expect-error a builder is not a definition: call .build()
    defineConfig({ sagas: [defineSaga('x', { input: z.object({}) })] });
  });
});
