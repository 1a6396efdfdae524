/**
 * Each service's own state, behind a small interface per service. The services never read
 * each other's state; only the consistency checker reads all four (as an auditor would).
 *
 * Two implementations of each: in-memory maps (the single-process example) and Redis hashes
 * (the services on Kafka or RabbitMQ, one process each). Every write is idempotent on the
 * order id, because a message may be handled twice (the dedupe store is not atomic with
 * these writes; see the idempotent consumer docs).
 */

export type OrderStatus = 'pending' | 'confirmed' | 'cancelled' | 'needs-attention';

export interface Order {
  orderId: string;
  sku: string;
  qty: number;
  amountCents: number;
  card: string;
  status: OrderStatus;
  /** Why an order was cancelled or needs attention. */
  reason?: string;
}

export interface OrdersState {
  /** Stores a new order as `pending`; a second call for one id keeps the first. */
  create(order: Omit<Order, 'status'>): Promise<Order>;
  /**
   * Sets an order's status (and reason, removed when omitted); resolves with the order as
   * stored now, or `undefined` when there is no such order (one round trip on Redis).
   */
  setStatus(orderId: string, status: OrderStatus, reason?: string): Promise<Order | undefined>;
  get(orderId: string): Promise<Order | undefined>;
  all(): Promise<Order[]>;
}

export type ReservationStatus = 'reserved' | 'committed' | 'released';

export interface Reservation {
  orderId: string;
  sku: string;
  qty: number;
  /** `committed` once the payment is known: the goods are sold. */
  status: ReservationStatus;
}

export type ReserveOutcome =
  | { ok: true; reservation: Reservation; duplicate: boolean }
  | { ok: false; reason: 'out-of-stock' | 'already-released'; available: number };

export interface InventoryState {
  /** Sets the stock of a SKU (and remembers it as the initial stock the checker counts from). */
  setStock(sku: string, qty: number): Promise<void>;
  /** Reserves `qty` of `sku` for the order, once: a repeat returns the first reservation. */
  reserve(orderId: string, sku: string, qty: number): Promise<ReserveOutcome>;
  /**
   * Puts a reserved or committed order's stock back. When the order has no reservation yet,
   * leaves a `released` tombstone so a late reserve for it is refused (messages can cross).
   */
  release(orderId: string): Promise<{ released: number; sku: string }>;
  /** Marks a reservation committed (sold). No effect unless it is `reserved`. */
  commit(orderId: string): Promise<boolean>;
  available(): Promise<Record<string, number>>;
  initial(): Promise<Record<string, number>>;
  reservations(): Promise<Reservation[]>;
}

export type PaymentStatus = 'charged' | 'declined' | 'voided';

export interface Payment {
  orderId: string;
  chargeId: string;
  status: PaymentStatus;
  /** What the order asked to be charged. */
  requestedCents: number;
  /** What was actually charged. */
  chargedCents: number;
  /** Sum of every refund of this charge. */
  refundedCents: number;
  /** The payments version that made the charge (so a bad deploy's charges can be told apart). */
  version: string;
  reason?: string;
}

export interface PaymentsState {
  /**
   * Records a charge or a decline for the order, once: a repeat returns the first record. When
   * the order was voided (a refund arrived first), returns the voided record and charges nothing.
   */
  charge(
    payment: Omit<Payment, 'refundedCents'>,
  ): Promise<{ payment: Payment; duplicate: boolean }>;
  /**
   * Refunds up to `amountCents` (default: everything not yet refunded) of the order's charge.
   * With no charge yet, leaves a `voided` record so a late charge is refused.
   */
  refund(orderId: string, amountCents?: number): Promise<{ payment: Payment; refundedNow: number }>;
  get(orderId: string): Promise<Payment | undefined>;
  all(): Promise<Payment[]>;
}

export interface Shipment {
  orderId: string;
  trackingId: string;
  sku: string;
  qty: number;
}

export interface ShippingState {
  /** Creates the shipment once; a repeat returns the first. */
  ship(shipment: Shipment): Promise<{ shipment: Shipment; duplicate: boolean }>;
  all(): Promise<Shipment[]>;
}

/** Everything the checker reads, taken at one moment. */
export interface StateSnapshot {
  orders: Order[];
  reservations: Reservation[];
  payments: Payment[];
  shipments: Shipment[];
  available: Record<string, number>;
  initial: Record<string, number>;
}

/** The four stores, as the services and the checker see them. */
export interface ServiceStates {
  orders: OrdersState;
  inventory: InventoryState;
  payments: PaymentsState;
  shipping: ShippingState;
  /**
   * Reads everything the checker needs at once: on Redis one MULTI of six HGETALLs (one round
   * trip, a consistent cut across the services), in memory a copy of the maps.
   */
  snapshot(): Promise<StateSnapshot>;
  /**
   * The same read restricted to some orders: their order, reservation, payment and shipment
   * (those that exist), with the whole `available` and `initial` stock. On Redis one MULTI of
   * four HMGETs and two HGETALLs (one round trip for any number of ids, never key by key); what
   * a checker polls while a few orders are still converging.
   */
  snapshotOf(orderIds: readonly string[]): Promise<StateSnapshot>;
}
