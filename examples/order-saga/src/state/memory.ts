import type {
  InventoryState,
  Order,
  OrdersState,
  OrderStatus,
  Payment,
  PaymentsState,
  Reservation,
  ReserveOutcome,
  ServiceStates,
  Shipment,
  ShippingState,
} from './types.js';

/** Orders kept in a Map (the single-process example). */
export class InMemoryOrdersState implements OrdersState {
  readonly #orders = new Map<string, Order>();

  async create(order: Omit<Order, 'status'>): Promise<Order> {
    const existing = this.#orders.get(order.orderId);
    if (existing) return { ...existing };
    const created: Order = { ...order, status: 'pending' };
    this.#orders.set(order.orderId, created);
    return { ...created };
  }

  async setStatus(
    orderId: string,
    status: OrderStatus,
    reason?: string,
  ): Promise<Order | undefined> {
    const order = this.#orders.get(orderId);
    if (!order) return undefined;
    order.status = status;
    if (reason === undefined) delete order.reason;
    else order.reason = reason;
    return { ...order };
  }

  async get(orderId: string): Promise<Order | undefined> {
    const order = this.#orders.get(orderId);
    return order && { ...order };
  }

  async all(): Promise<Order[]> {
    return [...this.#orders.values()].map((o) => ({ ...o }));
  }
}

/** Stock and reservations kept in Maps. */
export class InMemoryInventoryState implements InventoryState {
  readonly #available = new Map<string, number>();
  readonly #initial = new Map<string, number>();
  readonly #reservations = new Map<string, Reservation>();

  async setStock(sku: string, qty: number): Promise<void> {
    this.#available.set(sku, qty);
    this.#initial.set(sku, qty);
  }

  async reserve(orderId: string, sku: string, qty: number): Promise<ReserveOutcome> {
    const existing = this.#reservations.get(orderId);
    if (existing) {
      if (existing.status === 'released') {
        return { ok: false, reason: 'already-released', available: this.#available.get(sku) ?? 0 };
      }
      return { ok: true, reservation: { ...existing }, duplicate: true };
    }
    const available = this.#available.get(sku) ?? 0;
    if (available < qty) return { ok: false, reason: 'out-of-stock', available };
    this.#available.set(sku, available - qty);
    const reservation: Reservation = { orderId, sku, qty, status: 'reserved' };
    this.#reservations.set(orderId, reservation);
    return { ok: true, reservation: { ...reservation }, duplicate: false };
  }

  async release(orderId: string): Promise<{ released: number; sku: string }> {
    const r = this.#reservations.get(orderId);
    if (!r) {
      this.#reservations.set(orderId, { orderId, sku: '', qty: 0, status: 'released' });
      return { released: 0, sku: '' };
    }
    if (r.status === 'released') return { released: 0, sku: r.sku };
    this.#available.set(r.sku, (this.#available.get(r.sku) ?? 0) + r.qty);
    r.status = 'released';
    return { released: r.qty, sku: r.sku };
  }

  async commit(orderId: string): Promise<boolean> {
    const r = this.#reservations.get(orderId);
    if (r?.status !== 'reserved') return false;
    r.status = 'committed';
    return true;
  }

  async available(): Promise<Record<string, number>> {
    return Object.fromEntries(this.#available);
  }

  async initial(): Promise<Record<string, number>> {
    return Object.fromEntries(this.#initial);
  }

  async reservations(): Promise<Reservation[]> {
    return [...this.#reservations.values()].map((r) => ({ ...r }));
  }
}

/** Charges kept in a Map. */
export class InMemoryPaymentsState implements PaymentsState {
  readonly #payments = new Map<string, Payment>();

  async charge(
    payment: Omit<Payment, 'refundedCents'>,
  ): Promise<{ payment: Payment; duplicate: boolean }> {
    const existing = this.#payments.get(payment.orderId);
    if (existing) return { payment: { ...existing }, duplicate: true };
    const created: Payment = { ...payment, refundedCents: 0 };
    this.#payments.set(payment.orderId, created);
    return { payment: { ...created }, duplicate: false };
  }

  async refund(
    orderId: string,
    amountCents?: number,
  ): Promise<{ payment: Payment; refundedNow: number }> {
    let p = this.#payments.get(orderId);
    if (!p) {
      p = {
        orderId,
        chargeId: '',
        status: 'voided',
        requestedCents: 0,
        chargedCents: 0,
        refundedCents: 0,
        version: '',
        reason: 'refund before charge',
      };
      this.#payments.set(orderId, p);
      return { payment: { ...p }, refundedNow: 0 };
    }
    const remaining = p.status === 'charged' ? p.chargedCents - p.refundedCents : 0;
    const now = Math.max(0, Math.min(remaining, amountCents ?? remaining));
    p.refundedCents += now;
    return { payment: { ...p }, refundedNow: now };
  }

  async get(orderId: string): Promise<Payment | undefined> {
    const p = this.#payments.get(orderId);
    return p && { ...p };
  }

  async all(): Promise<Payment[]> {
    return [...this.#payments.values()].map((p) => ({ ...p }));
  }
}

/** Shipments kept in a Map. */
export class InMemoryShippingState implements ShippingState {
  readonly #shipments = new Map<string, Shipment>();

  async ship(shipment: Shipment): Promise<{ shipment: Shipment; duplicate: boolean }> {
    const existing = this.#shipments.get(shipment.orderId);
    if (existing) return { shipment: { ...existing }, duplicate: true };
    this.#shipments.set(shipment.orderId, { ...shipment });
    return { shipment: { ...shipment }, duplicate: false };
  }

  async all(): Promise<Shipment[]> {
    return [...this.#shipments.values()].map((s) => ({ ...s }));
  }
}

export function createInMemoryStates(): ServiceStates {
  const orders = new InMemoryOrdersState();
  const inventory = new InMemoryInventoryState();
  const payments = new InMemoryPaymentsState();
  const shipping = new InMemoryShippingState();
  // The reads below do not yield between them: one consistent cut, like Redis's MULTI.
  const snapshot = async () => {
    const [o, r, p, s, a, i] = await Promise.all([
      orders.all(),
      inventory.reservations(),
      payments.all(),
      shipping.all(),
      inventory.available(),
      inventory.initial(),
    ]);
    return { orders: o, reservations: r, payments: p, shipments: s, available: a, initial: i };
  };
  return {
    orders,
    inventory,
    payments,
    shipping,
    snapshot,
    snapshotOf: async (orderIds) => {
      const ids = new Set(orderIds);
      const mine = <T extends { orderId: string }>(list: T[]) =>
        list.filter((x) => ids.has(x.orderId));
      const all = await snapshot();
      return {
        orders: mine(all.orders),
        reservations: mine(all.reservations),
        payments: mine(all.payments),
        shipments: mine(all.shipments),
        available: all.available,
        initial: all.initial,
      };
    },
  };
}
