/**
 * The order saga written by hand on the raw clients: the same four services, the same business
 * state (the example's Redis state stores, `examples/order-saga/src/state/redis.ts`, which a
 * team writes either way), the same topics and outcomes, so the example's checker judges it.
 *
 * The saga's state is written ahead of every command (a Redis hash per saga and a set of the
 * running ones, so a restart can find and finish them); a step waits for its reply with a
 * timeout and asks again under a new id; a business "no" compensates in reverse order.
 */
import type { Redis } from 'ioredis';
import type { Order, ServiceStates } from '../../../examples/order-saga/src/state/types.js';
import type { PlaceOrderInput } from '../../../examples/order-saga/src/services/orders.js';
import type { Bus } from './bus.js';
import {
  READS,
  type DataOf,
  type Message,
  type MessageType,
  type ServiceName,
} from './messages.js';
import { inbox, Outbox } from './pipeline.js';

export const DECLINED_CARD = '4000 0000 0000 0002';
const MAX_PARCEL_ITEMS = 4;

export interface HandShop {
  place(order: PlaceOrderInput): Promise<Order>;
}

interface Waiter {
  expects: readonly MessageType[];
  resolve: (reply: Message) => void;
}

class StepTimedOut extends Error {}

export async function startHandShop(
  redis: Redis,
  bus: Bus,
  states: ServiceStates,
  prefix: string,
  replyTimeoutMs: number,
  cloudEventsPrefix?: string,
): Promise<HandShop> {
  const outbox = (service: ServiceName) =>
    new Outbox(redis, bus, `${prefix}:journal:${service}`, cloudEventsPrefix);
  const subscribe = (service: ServiceName, handler: (m: Message) => Promise<void> | void) =>
    bus.consume(
      service,
      READS[service],
      inbox(redis, bus, `${prefix}:dedupe:${service}:`, handler),
    );
  const reply = <T extends MessageType>(to: Message, type: T, data: DataOf<T>): Message => ({
    id: `${to.id}:reply`,
    type,
    key: to.key,
    causationId: to.id,
    ...(to.sagaId === undefined ? {} : { sagaId: to.sagaId }),
    data,
  });

  // inventory
  const inventoryOut = outbox('inventory');
  await subscribe('inventory', async (m) => {
    if (m.type === 'reserve-stock') {
      const { orderId, sku, qty } = m.data as DataOf<'reserve-stock'>;
      const outcome = await states.inventory.reserve(orderId, sku, qty);
      if (outcome.ok)
        return inventoryOut.publish(reply(m, 'stock-reserved', { orderId, sku, qty }));
      const reason =
        outcome.reason === 'out-of-stock'
          ? `out of stock: ${outcome.available} × ${sku} left, ${qty} wanted`
          : 'the order was already cancelled';
      return inventoryOut.publish(reply(m, 'stock-rejected', { orderId, reason }));
    }
    if (m.type === 'release-stock') {
      const { released } = await states.inventory.release(m.key);
      return inventoryOut.publish(reply(m, 'stock-released', { orderId: m.key, qty: released }));
    }
    if (m.type === 'payment-charged') await states.inventory.commit(m.key);
  });

  // payments
  const paymentsOut = outbox('payments');
  await subscribe('payments', async (m) => {
    if (m.type === 'charge') {
      const { orderId, amountCents, card } = m.data as DataOf<'charge'>;
      const declined = card === DECLINED_CARD;
      const { payment } = await states.payments.charge({
        orderId,
        chargeId: `ch_${orderId}`,
        status: declined ? 'declined' : 'charged',
        requestedCents: amountCents,
        chargedCents: declined ? 0 : amountCents,
        version: '1.0.0',
        ...(declined ? { reason: 'card declined by the issuer' } : {}),
      });
      if (payment.status === 'charged')
        return paymentsOut.publish(
          reply(m, 'payment-charged', {
            orderId,
            chargeId: payment.chargeId,
            amountCents: payment.chargedCents,
          }),
        );
      return paymentsOut.publish(
        reply(m, 'payment-declined', { orderId, reason: payment.reason ?? payment.status }),
      );
    }
    if (m.type === 'refund') {
      const { refundedNow } = await states.payments.refund(m.key);
      return paymentsOut.publish(
        reply(m, 'payment-refunded', { orderId: m.key, amountCents: refundedNow }),
      );
    }
  });

  // shipping
  const shippingOut = outbox('shipping');
  await subscribe('shipping', async (m) => {
    if (m.type !== 'ship') return;
    const { orderId, sku, qty } = m.data as DataOf<'ship'>;
    if (qty > MAX_PARCEL_ITEMS)
      return shippingOut.publish(
        reply(m, 'shipment-refused', { orderId, reason: `parcel too big: ${qty} items` }),
      );
    const { shipment } = await states.shipping.ship({
      orderId,
      trackingId: `trk_${orderId}`,
      sku,
      qty,
    });
    return shippingOut.publish(reply(m, 'shipped', { orderId, trackingId: shipment.trackingId }));
  });

  // orders: the saga
  const ordersOut = outbox('orders');
  const waiting = new Map<string, Waiter>();
  await subscribe('orders', (m) => {
    const waiter = waiting.get(m.key);
    if (waiter === undefined || !waiter.expects.includes(m.type)) return; // late or unasked
    waiting.delete(m.key);
    waiter.resolve(m);
  });

  const sagaKey = (sagaId: string) => `${prefix}:saga:${sagaId}`;
  const running = `${prefix}:sagas:running`;
  /** The saga's state before its next command goes out (write-ahead). */
  const logStep = async (sagaId: string, fields: Record<string, string>) => {
    await redis.hset(sagaKey(sagaId), fields);
  };

  /** Sends a step's command and waits for one of `expects`; asks again under a new id on timeout. */
  async function ask<T extends MessageType>(
    sagaId: string,
    step: string,
    type: T,
    data: DataOf<T>,
    expects: readonly MessageType[],
  ): Promise<Message> {
    const orderId = (data as { orderId: string }).orderId;
    for (let attempt = 1; ; attempt++) {
      let timer: NodeJS.Timeout | undefined;
      const answer = new Promise<Message>((resolve, reject) => {
        waiting.set(orderId, { expects, resolve });
        timer = setTimeout(() => reject(new StepTimedOut(step)), replyTimeoutMs);
      });
      try {
        await ordersOut.publish({
          id: `${sagaId}:${step}:${attempt}`,
          type,
          key: orderId,
          sagaId,
          data,
        });
        return await answer;
      } catch (error) {
        waiting.delete(orderId);
        if (!(error instanceof StepTimedOut) || attempt >= 4) throw error;
      } finally {
        clearTimeout(timer);
      }
    }
  }

  async function place(input: PlaceOrderInput): Promise<Order> {
    const { orderId } = input;
    const sagaId = `place-order:${orderId}`;
    await states.orders.create(input);
    await redis
      .multi()
      .hset(sagaKey(sagaId), {
        input: JSON.stringify(input),
        status: 'running',
        step: 'reserve-stock',
      })
      .sadd(running, sagaId)
      .exec();
    const end = async (status: 'completed' | 'compensated', reason?: string): Promise<Order> => {
      await redis
        .multi()
        .hset(sagaKey(sagaId), { status, ...(reason ? { reason } : {}) })
        .srem(running, sagaId)
        .exec();
      return (await states.orders.setStatus(
        orderId,
        status === 'completed' ? 'confirmed' : 'cancelled',
        reason,
      ))!;
    };
    const compensate = async (reason: string, undo: ('release-stock' | 'refund')[]) => {
      await logStep(sagaId, { status: 'compensating', reason });
      for (const step of undo) {
        if (step === 'refund')
          await ask(sagaId, 'refund', 'refund', { orderId }, ['payment-refunded']);
        else await ask(sagaId, 'release-stock', 'release-stock', { orderId }, ['stock-released']);
      }
      return end('compensated', reason);
    };

    const reserved = await ask(
      sagaId,
      'reserve-stock',
      'reserve-stock',
      { orderId, sku: input.sku, qty: input.qty },
      ['stock-reserved', 'stock-rejected'],
    );
    if (reserved.type === 'stock-rejected')
      return compensate((reserved.data as DataOf<'stock-rejected'>).reason, []);
    await logStep(sagaId, { step: 'charge-card', 'reserve-stock': 'done' });

    const charged = await ask(
      sagaId,
      'charge-card',
      'charge',
      { orderId, amountCents: input.amountCents, card: input.card },
      ['payment-charged', 'payment-declined'],
    );
    if (charged.type === 'payment-declined')
      return compensate((charged.data as DataOf<'payment-declined'>).reason, ['release-stock']);
    await logStep(sagaId, { step: 'ship', 'charge-card': JSON.stringify(charged.data) });

    const shipped = await ask(sagaId, 'ship', 'ship', { orderId, sku: input.sku, qty: input.qty }, [
      'shipped',
      'shipment-refused',
    ]);
    if (shipped.type === 'shipment-refused')
      return compensate((shipped.data as DataOf<'shipment-refused'>).reason, [
        'refund',
        'release-stock',
      ]);
    return end('completed');
  }

  return { place };
}
