import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineSaga } from './definition.js';
import { InMemorySagaStore } from './InMemorySagaStore.js';
import { createSagaEngine } from './SagaEngine.js';

describe('BT_ERR_SAGA_INPUT_INVALID', () => {
  const saga = defineSaga('place-order', {
    input: z.object({ orderId: z.string(), amountCents: z.int().positive() }),
  })
    .step('a', { run: () => 1 })
    .build();

  it('names each invalid field and its zod issue', async () => {
    const engine = createSagaEngine({ store: new InMemorySagaStore() });
    const error = await engine
      .start(saga, { orderId: 'o-1', amountCents: 'twelve' } as unknown as z.input<
        typeof saga.input
      >)
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'BT_ERR_SAGA_INPUT_INVALID' });
    expect((error as Error).message).toBe(
      'saga place-order: input does not match its schema: amountCents: Invalid input: expected number, received string',
    );
    const negative = await engine
      .start(saga, { orderId: 'o-1', amountCents: -5 })
      .catch((e: unknown) => e);
    expect((negative as Error).message).toMatch(
      /: amountCents: Too small: expected number to be >0$/,
    );
  });

  it('says when the input itself is wrong', async () => {
    const engine = createSagaEngine({ store: new InMemorySagaStore() });
    const error = await engine
      .start(saga, 'o-1' as unknown as z.input<typeof saga.input>)
      .catch((e: unknown) => e);
    expect((error as Error).message).toMatch(
      /: \(the input\): Invalid input: expected object, received string$/,
    );
  });
});
