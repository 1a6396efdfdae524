/**
 * The event catalogue of the order-saga example: every message the four services exchange,
 * each a versioned schema built with `defineEvent`. In a real system this module would be a
 * small shared package that each service depends on at some version; the rollback drill shows
 * what happens when two services run different versions of it.
 *
 * Topics (src/infra/topics.ts, under a per-run prefix): a message handled by one service goes to
 * that service's topic (`to.inventory`, `to.payments`, `to.shipping`, `to.orders`: the commands
 * of orders and the replies to them); `payment.charged`, read by orders and inventory, goes to
 * `payments`.
 */
import { defineEvent, EventRegistry } from '@backtrack/core';
import { z } from 'zod';

const OrderId = z.string().min(1);
const Sku = z.string().min(1);
const Cents = z.number().int().nonnegative();

// ---- commands published by orders -------------------------------------------------------

export const ReserveStockRequested = defineEvent('inventory.reserve-requested').version(
  1,
  z.object({ orderId: OrderId, sku: Sku, qty: z.number().int().positive() }),
);

export const ReleaseStockRequested = defineEvent('inventory.release-requested').version(
  1,
  z.object({ orderId: OrderId }),
);

export const ChargeRequested = defineEvent('payment.charge-requested').version(
  1,
  z.object({ orderId: OrderId, amountCents: Cents, card: z.string().min(4) }),
);

export const RefundRequested = defineEvent('payment.refund-requested').version(
  1,
  z.object({ orderId: OrderId }),
);

export const ShipRequested = defineEvent('shipping.ship-requested').version(
  1,
  z.object({ orderId: OrderId, sku: Sku, qty: z.number().int().positive() }),
);

// ---- replies and facts ------------------------------------------------------------------

export const StockReserved = defineEvent('inventory.reserved').version(
  1,
  z.object({ orderId: OrderId, sku: Sku, qty: z.number().int().positive() }),
);

export const StockRejected = defineEvent('inventory.reservation-rejected').version(
  1,
  z.object({ orderId: OrderId, sku: Sku, reason: z.string(), available: z.number().int() }),
);

export const StockReleased = defineEvent('inventory.released').version(
  1,
  z.object({ orderId: OrderId, sku: Sku, qty: z.number().int().nonnegative() }),
);

const PaymentChargedV1Schema = z.object({
  orderId: OrderId,
  chargeId: z.string(),
  /** Amount in currency units (euros), as payments 1.0 wrote it. */
  amount: z.number().nonnegative(),
});

/**
 * `payment.charged` v1 only: what the OLD inventory build knows. The rollback drill runs
 * inventory with this definition, so a v2 event is something it cannot read.
 */
export const PaymentChargedV1Only = defineEvent('payment.charged').version(
  1,
  PaymentChargedV1Schema,
);

/** `payment.charged` v1 and v2 (integer cents plus currency), with transforms both ways. */
export const PaymentCharged = PaymentChargedV1Only.version(
  2,
  z.object({
    orderId: OrderId,
    chargeId: z.string(),
    amountCents: Cents,
    currency: z.string().length(3),
  }),
  {
    up: (v1) => ({
      orderId: v1.orderId,
      chargeId: v1.chargeId,
      amountCents: Math.round(v1.amount * 100),
      currency: 'EUR',
    }),
    down: (v2) => ({ orderId: v2.orderId, chargeId: v2.chargeId, amount: v2.amountCents / 100 }),
  },
);

export const PaymentDeclined = defineEvent('payment.declined').version(
  1,
  z.object({ orderId: OrderId, reason: z.string() }),
);

export const PaymentRefunded = defineEvent('payment.refunded').version(
  1,
  z.object({ orderId: OrderId, chargeId: z.string(), amountCents: Cents, reason: z.string() }),
);

/**
 * The compensating event of a wrong charge: published by a rollback (never by orders), it asks
 * payments to refund whatever was charged above what the order asked for.
 */
export const PaymentAdjustmentRequested = defineEvent('payment.adjustment-requested').version(
  1,
  z.object({ orderId: OrderId, chargeId: z.string(), reason: z.string() }),
);

export const Shipped = defineEvent('shipping.shipped').version(
  1,
  z.object({ orderId: OrderId, trackingId: z.string() }),
);

/** Shipping refuses a parcel it cannot carry: the pivot fails, so the saga still compensates. */
export const ShipmentRefused = defineEvent('shipping.refused').version(
  1,
  z.object({ orderId: OrderId, reason: z.string() }),
);

/** Every event type except `payment.charged`, which each build adds at its own version. */
const COMMON = [
  ReserveStockRequested,
  ReleaseStockRequested,
  ChargeRequested,
  RefundRequested,
  ShipRequested,
  StockReserved,
  StockRejected,
  StockReleased,
  PaymentDeclined,
  PaymentRefunded,
  PaymentAdjustmentRequested,
  Shipped,
  ShipmentRefused,
] as const;

/** The registry of a service built against the current catalogue (payment.charged v1 and v2). */
export function currentRegistry(): EventRegistry {
  return new EventRegistry([...COMMON, PaymentCharged]);
}

/** The registry of a service built against the previous catalogue (payment.charged v1 only). */
export function previousRegistry(): EventRegistry {
  return new EventRegistry([...COMMON, PaymentChargedV1Only]);
}
