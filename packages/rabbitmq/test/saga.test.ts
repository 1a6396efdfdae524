/**
 * A saga whose steps talk over RabbitMQ: the orchestrator publishes commands, an inventory and a
 * payment service consume them through core's pipeline and publish replies, which the
 * orchestrator's own consumer hands back to the waiting step. One saga completes; one is declined
 * at the payment and compensates the stock reservation, over the broker too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  BacktrackError,
  InMemoryDedupeStore,
  InMemorySagaStore,
  createConsumerPipeline,
  createSagaEngine,
  defineEvent,
  defineSaga,
  encodeEnvelope,
  handle,
  type Envelope,
} from '@backtrack/core';
import type { RabbitTransport } from '@backtrack/rabbitmq';
import { probeService } from '../../../test/support/services.js';
import { BrokerProbe, declaredNames, openTransport, uniqueName } from './support.js';

const rabbit = await probeService('rabbitmq');
const source = '//backtrack/rabbit-tests/saga';

// Commands (orchestrator -> services) carry the step's idempotency key; replies carry the
// command's id as causationid.
const ReserveStock = defineEvent('inventory.reserve').version(
  1,
  z.object({ key: z.string(), sku: z.string(), qty: z.int() }),
);
const ReleaseStock = defineEvent('inventory.release').version(
  1,
  z.object({ key: z.string(), reservationId: z.string() }),
);
const StockReserved = defineEvent('inventory.reserved').version(
  1,
  z.object({ reservationId: z.string() }),
);
const StockReleased = defineEvent('inventory.released').version(
  1,
  z.object({ reservationId: z.string() }),
);
const ChargeCard = defineEvent('payment.charge').version(
  1,
  z.object({ key: z.string(), amountCents: z.int() }),
);
const CardCharged = defineEvent('payment.charged').version(1, z.object({ chargeId: z.string() }));
const CardDeclined = defineEvent('payment.declined').version(1, z.object({ reason: z.string() }));

describe.skipIf(!rabbit.available)('a saga whose steps talk over RabbitMQ', () => {
  let transport: RabbitTransport;
  const commands = uniqueName('bt-saga-commands');
  const replies = uniqueName('bt-saga-replies');
  const stock = new Map<string, number>([['sku-1', 10]]);
  const reservations = new Map<
    string,
    { reservationId: string; sku: string; qty: number; released: boolean }
  >();
  const charges = new Map<string, string>();
  const pending = new Map<string, { resolve: (e: Envelope<unknown>) => void }>();

  /** Publishes a command and waits for the reply caused by it. */
  async function request<D>(
    command: {
      envelope: (
        data: D,
        options: { source: string; id: string; sagaid: string },
      ) => Envelope<unknown>;
    },
    data: D,
    ctx: { sagaId: string; idempotencyKey: string; attempt: number },
  ): Promise<Envelope<unknown>> {
    const id = `${ctx.idempotencyKey}#${ctx.attempt}`;
    const reply = new Promise<Envelope<unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${id}`)), 15_000);
      pending.set(id, { resolve: (e) => (clearTimeout(timer), resolve(e)) });
    });
    const envelope = command.envelope(data, { source, id, sagaid: ctx.sagaId });
    await transport.publish([{ topic: commands, message: encodeEnvelope(envelope) }]);
    return reply;
  }

  async function reply(envelope: Envelope<unknown>): Promise<void> {
    await transport.publish([{ topic: replies, message: encodeEnvelope(envelope) }]);
  }
  const replyOptions = (cause: Envelope<unknown>) => ({
    source,
    causationid: cause.id,
    ...(cause.sagaid ? { sagaid: cause.sagaid } : {}),
  });

  beforeAll(async () => {
    transport = await openTransport(rabbit.url);
    // Inventory service: business-level idempotency on the step key, transport-level on the id.
    const inventory = createConsumerPipeline(
      {
        name: 'inventory',
        handlers: [
          handle(ReserveStock, async ({ data, envelope }) => {
            let r = reservations.get(data.key);
            if (!r) {
              stock.set(data.sku, (stock.get(data.sku) ?? 0) - data.qty);
              r = {
                reservationId: `res-${reservations.size + 1}`,
                sku: data.sku,
                qty: data.qty,
                released: false,
              };
              reservations.set(data.key, r);
            }
            await reply(
              StockReserved.envelope({ reservationId: r.reservationId }, replyOptions(envelope)),
            );
          }),
          handle(ReleaseStock, async ({ data, envelope }) => {
            const r = [...reservations.values()].find(
              (x) => x.reservationId === data.reservationId,
            );
            if (r && !r.released) {
              r.released = true;
              stock.set(r.sku, (stock.get(r.sku) ?? 0) + r.qty);
            }
            await reply(
              StockReleased.envelope({ reservationId: data.reservationId }, replyOptions(envelope)),
            );
          }),
        ],
      },
      { dedupeStore: new InMemoryDedupeStore() },
    );
    const payments = createConsumerPipeline(
      {
        name: 'payments',
        handlers: [
          handle(ChargeCard, async ({ data, envelope }) => {
            if (data.amountCents > 10_000) {
              await reply(
                CardDeclined.envelope({ reason: 'limit exceeded' }, replyOptions(envelope)),
              );
              return;
            }
            const chargeId = charges.get(data.key) ?? `ch-${charges.size + 1}`;
            charges.set(data.key, chargeId);
            await reply(CardCharged.envelope({ chargeId }, replyOptions(envelope)));
          }),
        ],
      },
      { dedupeStore: new InMemoryDedupeStore() },
    );
    const resolveReply = ({ envelope }: { envelope: Envelope<unknown> }) => {
      pending.get(envelope.causationid ?? '')?.resolve(envelope);
    };
    const orchestrator = createConsumerPipeline({
      name: 'orchestrator',
      handlers: [StockReserved, StockReleased, CardCharged, CardDeclined].map((d) =>
        handle(d as typeof StockReserved, resolveReply),
      ),
    });
    await transport.subscribe({
      topics: [commands],
      group: uniqueName('bt-saga-inventory'),
      processor: inventory,
      bindingKeys: ['inventory.*'],
    });
    await transport.subscribe({
      topics: [commands],
      group: uniqueName('bt-saga-payments'),
      processor: payments,
      bindingKeys: ['payment.*'],
    });
    await transport.subscribe({
      topics: [replies],
      group: uniqueName('bt-saga-orchestrator'),
      processor: orchestrator,
    });
  });

  afterAll(async () => {
    const names = declaredNames(transport);
    await transport?.close();
    const probe = await BrokerProbe.open(rabbit.url);
    await probe.remove(names.queues, names.exchanges);
    await probe.close();
  });

  const placeOrder = defineSaga('place-order', {
    input: z.object({ sku: z.string(), qty: z.int(), amountCents: z.int() }),
  })
    .step('reserve-stock', {
      run: async (ctx) => {
        const reply = await request(
          ReserveStock,
          { key: ctx.idempotencyKey, sku: ctx.input.sku, qty: ctx.input.qty },
          ctx,
        );
        return reply.data as { reservationId: string };
      },
      compensate: async (ctx) => {
        const reply = await request(
          ReleaseStock,
          { key: ctx.idempotencyKey, reservationId: ctx.result.reservationId },
          ctx,
        );
        expect(reply.type).toBe('inventory.released');
      },
    })
    .step('charge-card', {
      run: async (ctx) => {
        const reply = await request(
          ChargeCard,
          { key: ctx.idempotencyKey, amountCents: ctx.input.amountCents },
          ctx,
        );
        if (reply.type === 'payment.declined') {
          throw new BacktrackError(
            'BT_ERR_TEST_CARD_DECLINED',
            (reply.data as { reason: string }).reason,
            { retriable: false },
          );
        }
        return reply.data as { chargeId: string };
      },
    })
    .build();

  it('completes when every service says yes', async () => {
    const sagas = createSagaEngine({ store: new InMemorySagaStore() });
    const result = await sagas.start(
      placeOrder,
      { sku: 'sku-1', qty: 3, amountCents: 2_500 },
      { sagaId: uniqueName('order') },
    );
    expect(result.status).toBe('completed');
    expect(result.record.steps['reserve-stock']).toMatchObject({
      status: 'completed',
      result: { reservationId: expect.any(String) },
    });
    expect(result.record.steps['charge-card']).toMatchObject({
      status: 'completed',
      result: { chargeId: expect.any(String) },
    });
    expect(stock.get('sku-1')).toBe(7);
  });

  it('compensates the reservation over RabbitMQ when the payment is declined', async () => {
    const before = stock.get('sku-1')!;
    const chargesBefore = charges.size;
    const sagas = createSagaEngine({ store: new InMemorySagaStore() });
    const result = await sagas.start(
      placeOrder,
      { sku: 'sku-1', qty: 4, amountCents: 50_000 },
      { sagaId: uniqueName('order') },
    );
    expect(result.status).toBe('compensated');
    expect(result.record.steps['reserve-stock']).toMatchObject({
      status: 'compensated',
      compensationAttempts: 1,
    });
    expect(result.record.steps['charge-card']).toMatchObject({ status: 'failed' });
    expect(stock.get('sku-1')).toBe(before);
    expect(charges.size).toBe(chargesBefore);
    expect([...reservations.values()].filter((r) => r.released)).toHaveLength(1);
  });
});
