import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Publisher } from '../publisher/Publisher.js';
import { defineSaga, type StepContext } from '../saga/definition.js';
import { defineEvent } from '../schema/defineEvent.js';
import { mockStepContext } from './mockStepContext.js';

const PaymentCharged = defineEvent('payment.charged').version(
  1,
  z.object({ orderId: z.string(), amountCents: z.number() }),
);
const PaymentRefunded = defineEvent('payment.refunded').version(
  1,
  z.object({ orderId: z.string() }),
);
const Input = z.object({ orderId: z.string(), amountCents: z.number() });
type In = z.infer<typeof Input>;

/** A saga whose steps publish through a publisher they are given (as application code does). */
function paymentSaga(publisher: Publisher) {
  return defineSaga('payment', { input: Input })
    .step('charge', {
      run: async (ctx: StepContext<In, Record<string, unknown>>) => {
        ctx.logger.info({ attempt: ctx.attempt }, 'charging');
        if (ctx.signal.aborted) throw new Error('cancelled before charging');
        await publisher.publish(
          PaymentCharged,
          { orderId: ctx.input.orderId, amountCents: ctx.input.amountCents },
          { key: ctx.input.orderId, sagaId: ctx.sagaId, id: ctx.idempotencyKey },
        );
        return { chargeId: `c-${ctx.input.orderId}` };
      },
      compensate: async (ctx) => {
        if (ctx.attempt > 1) ctx.logger.warn('refund retried');
        await publisher.publish(
          PaymentRefunded,
          { orderId: ctx.input.orderId },
          { id: ctx.idempotencyKey, causationId: ctx.result.chargeId },
        );
      },
    })
    .build();
}

describe('mockStepContext', () => {
  it("runs one step's run with a mock context: result, publishes, logs", async () => {
    const ctx = mockStepContext<In>({
      input: { orderId: 'o-1', amountCents: 500 },
      sagaId: 's-1',
      step: 'charge',
      attempt: 2,
    });
    const step = paymentSaga(ctx.publisher).steps.find((s) => s.name === 'charge')!;
    await expect(step.run(ctx)).resolves.toEqual({ chargeId: 'c-o-1' });
    const published = ctx.publisher.find({ type: PaymentCharged });
    expect(published?.data).toEqual({ orderId: 'o-1', amountCents: 500 });
    expect(published?.envelope).toMatchObject({ id: 's-1:charge:run', sagaid: 's-1' });
    expect(ctx.logs).toEqual([
      expect.objectContaining({ level: 'info', msg: 'charging', attempt: 2, sagaId: 's-1' }),
    ]);
  });

  it('abort() fires the signal, as a cancel or a timeout would', async () => {
    const ctx = mockStepContext<In>({ input: { orderId: 'o-2', amountCents: 1 } });
    const step = paymentSaga(ctx.publisher).steps[0]!;
    ctx.abort(new Error('cancelled'));
    expect(ctx.signal.aborted).toBe(true);
    await expect(step.run(ctx)).rejects.toThrow('cancelled before charging');
    expect(ctx.publisher.count()).toBe(0);
  });

  it("runs one step's compensate with its result and the compensation idempotency key", async () => {
    const ctx = mockStepContext<In, Record<string, unknown>, { chargeId: string }>({
      kind: 'compensate',
      input: { orderId: 'o-3', amountCents: 1 },
      result: { chargeId: 'c-o-3' },
      sagaId: 's-3',
      step: 'charge',
      attempt: 2,
    });
    const step = paymentSaga(ctx.publisher).steps[0]!;
    await step.compensate!(ctx);
    expect(ctx.idempotencyKey).toBe('s-3:charge:compensate');
    expect(ctx.publisher.find({ type: 'payment.refunded' })?.envelope).toMatchObject({
      id: 's-3:charge:compensate',
      causationid: 'c-o-3',
    });
    expect(ctx.logs.map((l) => `${l.level} ${l.msg}`)).toEqual(['warn refund retried']);
  });

  it('has defaults for everything', () => {
    const ctx = mockStepContext();
    expect(ctx).toMatchObject({
      sagaId: 'saga-test-1',
      sagaName: 'test-saga',
      step: 'test-step',
      attempt: 1,
      results: {},
      idempotencyKey: 'saga-test-1:test-step:run',
    });
    expect(ctx.signal.aborted).toBe(false);
  });
});
