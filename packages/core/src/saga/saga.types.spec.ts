/**
 * Type tests of the saga API (checked by vitest's typecheck in the unit project and by
 * `npm run typecheck`): a real definition registers and starts without a cast, results and input
 * are typed through the builder, and wrong uses are refused (each `@ts-expect-error` fails the
 * check if the line compiles).
 */
import { describe, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import {
  createSagaEngine,
  defineSaga,
  InMemorySagaStore,
  type AnySagaDefinition,
  type SagaDefinition,
  type SagaResult,
} from '../index.js';

const PlaceOrder = z.object({ orderId: z.string(), amountCents: z.number().int() });

const placeOrder = defineSaga('place-order', { input: PlaceOrder })
  .step('reserve', { run: ({ input }) => ({ reservationId: `r-${input.orderId}` }) })
  .step('charge', {
    run: async ({ results, input }) => {
      expectTypeOf(results.reserve).toEqualTypeOf<{ reservationId: string }>();
      expectTypeOf(input).toEqualTypeOf<{ orderId: string; amountCents: number }>();
      return { chargeId: `c-${input.amountCents}` };
    },
    compensate: ({ result, results }) => {
      expectTypeOf(result).toEqualTypeOf<{ chargeId: string }>();
      // Compensation sees the earlier results as possibly absent.
      expectTypeOf(results.reserve).toEqualTypeOf<{ reservationId: string } | undefined>();
    },
  })
  .parallel('notify', {
    email: { run: () => 'sent' as const },
    crm: { run: async () => 42 },
  })
  .build();

const engine = createSagaEngine({ store: new InMemorySagaStore() });

describe('saga API types', () => {
  it('types the built definition by its input and every step result', () => {
    expectTypeOf(placeOrder).toEqualTypeOf<
      SagaDefinition<
        { orderId: string; amountCents: number },
        Record<never, never> & { reserve: { reservationId: string } } & {
          charge: { chargeId: string };
        } & { email: 'sent'; crm: number }
      >
    >();
    expectTypeOf(placeOrder).toExtend<AnySagaDefinition>();
  });

  it('registers real definitions without a cast, several at once', () => {
    const refund = defineSaga('refund', { input: z.object({ chargeId: z.string() }), version: 2 })
      .step('refund', { run: () => undefined })
      .build();
    expectTypeOf(engine.register(placeOrder, refund)).toEqualTypeOf(engine);
    const all: AnySagaDefinition[] = [placeOrder, refund];
    engine.register(...all);
    // @ts-expect-error a builder is not a definition: call .build()
    engine.register(defineSaga('x', { input: z.object({}) }).step('a', { run: () => 1 }));
    // @ts-expect-error not a saga definition
    engine.register({ name: 'x' });
  });

  it('starts with the definition input type and returns a SagaResult', () => {
    expectTypeOf(engine.start(placeOrder, { orderId: 'o-1', amountCents: 1 })).toEqualTypeOf<
      Promise<SagaResult>
    >();
    // @ts-expect-error amountCents must be a number
    void engine.start(placeOrder, { orderId: 'o-1', amountCents: '1' });
    // @ts-expect-error orderId is required
    void engine.start(placeOrder, { amountCents: 1 });
  });

  it('refuses a duplicate step name and reading a later step result', () => {
    defineSaga('dup', { input: z.object({}) })
      .step('a', { run: () => 1 })
      // @ts-expect-error step a exists already
      .step('a', { run: () => 2 });
    defineSaga('order', { input: z.object({}) })
      .step('a', {
        run: ({ results }) => {
          // @ts-expect-error step b comes later: no result yet
          return results.b;
        },
      })
      .step('b', { run: () => 2 });
  });

  it('types cancel/compensate options and results', () => {
    expectTypeOf(engine.compensate('s', 'why', { wait: false, timeoutMs: 10 })).toEqualTypeOf<
      Promise<SagaResult>
    >();
    expectTypeOf<SagaResult['requested']>().toEqualTypeOf<true | undefined>();
    // @ts-expect-error wait is a boolean
    void engine.cancel('s', 'why', { wait: 'no' });
  });
});
