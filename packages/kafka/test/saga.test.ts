/**
 * A saga whose steps talk to other services over Kafka (commands out, replies back, each service
 * a consumer-group subscription running core's pipeline) completes, and compensates through
 * Kafka when a later step is declined. Real broker.
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
import type { KafkaTransport } from '@backtrack/kafka';
import { kafkaBroker } from './broker.js';
import { makeTransport, uniqueName } from './helpers.js';

const broker = await kafkaBroker();
afterAll(() => broker.stop());

const ReserveStock = defineEvent('inventory.reserve-stock').version(
  1,
  z.object({ orderId: z.string(), sku: z.string(), qty: z.number().int().positive() }),
);
const ReleaseStock = defineEvent('inventory.release-stock').version(
  1,
  z.object({ orderId: z.string(), reservationId: z.string() }),
);
const ChargeCard = defineEvent('payments.charge-card').version(
  1,
  z.object({ orderId: z.string(), amountCents: z.number().int() }),
);
const REPLY_SCHEMA = z.object({
  ok: z.boolean(),
  result: z.record(z.string(), z.string()).optional(),
  error: z.string().optional(),
});
type ReplyData = z.infer<typeof REPLY_SCHEMA>;
const Reply = defineEvent('saga.reply').version(1, REPLY_SCHEMA);

const SOURCE = '//backtrack/kafka-saga-test';

class Declined extends BacktrackError {
  constructor(reason: string) {
    super('TEST_DECLINED', reason, { retriable: false });
  }
}

describe.skipIf(!broker.available)('a saga over Kafka (real broker)', () => {
  const brokers = broker.brokers;
  const topics = {
    inventory: uniqueName('bt-saga-inventory'),
    payments: uniqueName('bt-saga-payments'),
    replies: uniqueName('bt-saga-replies'),
  };
  let transport: KafkaTransport;
  const stock = new Map<string, number>([['sku-1', 10]]);
  const reservations = new Map<string, { sku: string; qty: number; released: number }>();
  const charges: string[] = [];
  const pending = new Map<string, (reply: ReplyData) => void>();

  /** Replies to a command, as the command's consumer. */
  async function reply(command: Envelope<unknown>, data: ReplyData): Promise<void> {
    await transport.publish([
      {
        topic: topics.replies,
        message: encodeEnvelope(
          Reply.envelope(data, {
            source: SOURCE,
            causationid: command.id,
            ...(command.sagaid ? { sagaid: command.sagaid } : {}),
          }),
        ),
      },
    ]);
  }

  /** Sends a command and waits for its reply (the command id is the step's idempotency key). */
  async function request(topic: string, message: Envelope<unknown>): Promise<ReplyData> {
    const answered = new Promise<ReplyData>((resolve) => pending.set(message.id, resolve));
    await transport.publish([{ topic, message: encodeEnvelope(message) }]);
    return answered;
  }

  beforeAll(async () => {
    transport = makeTransport(brokers);
    await transport.ensureTopics({ topics: Object.values(topics), partitions: 2 });
    const inventory = createConsumerPipeline(
      {
        name: 'inventory',
        handlers: [
          handle(ReserveStock, async ({ data, envelope }) => {
            const left = stock.get(data.sku) ?? 0;
            if (left < data.qty) return reply(envelope, { ok: false, error: 'out of stock' });
            stock.set(data.sku, left - data.qty);
            const reservationId = `res-${data.orderId}`;
            reservations.set(reservationId, { sku: data.sku, qty: data.qty, released: 0 });
            await reply(envelope, { ok: true, result: { reservationId } });
          }),
          handle(ReleaseStock, async ({ data, envelope }) => {
            const r = reservations.get(data.reservationId);
            if (r && r.released === 0) stock.set(r.sku, (stock.get(r.sku) ?? 0) + r.qty);
            if (r) r.released++;
            await reply(envelope, { ok: true });
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
            if (data.amountCents > 10_000)
              return reply(envelope, { ok: false, error: 'card declined' });
            charges.push(data.orderId);
            await reply(envelope, { ok: true, result: { chargeId: `ch-${data.orderId}` } });
          }),
        ],
      },
      { dedupeStore: new InMemoryDedupeStore() },
    );
    const orchestrator = createConsumerPipeline({
      name: 'orchestrator',
      handlers: [
        handle(Reply, ({ data, envelope }) => {
          if (envelope.causationid) pending.get(envelope.causationid)?.(data);
        }),
      ],
    });
    await Promise.all([
      transport.subscribe({
        topics: [topics.inventory],
        group: uniqueName('inventory'),
        processor: inventory,
      }),
      transport.subscribe({
        topics: [topics.payments],
        group: uniqueName('payments'),
        processor: payments,
      }),
      transport.subscribe({
        topics: [topics.replies],
        group: uniqueName('orchestrator'),
        processor: orchestrator,
      }),
    ]);
  });
  afterAll(() => transport?.close());

  const placeOrder = defineSaga('place-order', {
    input: z.object({
      orderId: z.string(),
      sku: z.string(),
      qty: z.number().int(),
      amountCents: z.number().int(),
    }),
  })
    .step('reserve-stock', {
      run: async ({ input, sagaId, idempotencyKey }) => {
        const r = await request(
          topics.inventory,
          ReserveStock.envelope(
            { orderId: input.orderId, sku: input.sku, qty: input.qty },
            { source: SOURCE, id: idempotencyKey, sagaid: sagaId },
          ),
        );
        if (!r.ok) throw new Declined(r.error ?? 'reserve failed');
        return { reservationId: r.result!.reservationId! };
      },
      compensate: async ({ input, result, sagaId, idempotencyKey }) => {
        const r = await request(
          topics.inventory,
          ReleaseStock.envelope(
            { orderId: input.orderId, reservationId: result.reservationId },
            { source: SOURCE, id: idempotencyKey, sagaid: sagaId },
          ),
        );
        if (!r.ok) throw new Error('release failed');
      },
      timeoutMs: 20_000,
    })
    .step('charge-card', {
      run: async ({ input, sagaId, idempotencyKey }) => {
        const r = await request(
          topics.payments,
          ChargeCard.envelope(
            { orderId: input.orderId, amountCents: input.amountCents },
            { source: SOURCE, id: idempotencyKey, sagaid: sagaId },
          ),
        );
        if (!r.ok) throw new Declined(r.error ?? 'charge failed');
        return { chargeId: r.result!.chargeId! };
      },
      timeoutMs: 20_000,
    })
    .build();

  it('completes when every service says yes', async () => {
    const sagas = createSagaEngine({ store: new InMemorySagaStore() });
    const result = await sagas.start(
      placeOrder,
      { orderId: 'o-ok', sku: 'sku-1', qty: 3, amountCents: 2_500 },
      { sagaId: 'saga-ok' },
    );
    expect(result.status).toBe('completed');
    expect(stock.get('sku-1')).toBe(7);
    expect(charges).toEqual(['o-ok']);
    expect(reservations.get('res-o-ok')).toMatchObject({ released: 0 });
  });

  it('compensates over Kafka when the card is declined: the reservation is released exactly once', async () => {
    const sagas = createSagaEngine({ store: new InMemorySagaStore() });
    const before = stock.get('sku-1')!;
    const result = await sagas.start(
      placeOrder,
      { orderId: 'o-big', sku: 'sku-1', qty: 2, amountCents: 50_000 },
      { sagaId: 'saga-big' },
    );
    expect(result.status).toBe('compensated');
    expect(stock.get('sku-1')).toBe(before);
    expect(reservations.get('res-o-big')).toMatchObject({ released: 1 });
    expect(charges).not.toContain('o-big');
    const steps = result.record.steps;
    expect(JSON.stringify(steps)).toMatch(/card declined/);
  });
});
