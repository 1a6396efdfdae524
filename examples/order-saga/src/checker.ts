/**
 * The consistency checker: reads every service's own state (as an auditor would, never
 * through the services) and says, per order, whether stock, payment and shipment agree with
 * the order's final state. Also checks that no stock appeared or vanished per SKU.
 *
 * Rules:
 * - confirmed: stock committed (sold) with the order's quantity; charged exactly the order's
 *   amount (charged minus refunded); shipped.
 * - cancelled: no stock held (no reservation, or released); nothing kept (no charge, declined,
 *   voided, or fully refunded); not shipped.
 * - pending: the saga has not finished, which is inconsistent once the system is quiet.
 * - needs-attention: the saga is stuck; a person must look (reported apart).
 */
import type { Order, Payment, Reservation, ServiceStates, Shipment } from './state/types.js';
import { color, euros } from './story.js';

export interface OrderVerdict {
  orderId: string;
  status: Order['status'] | 'unknown';
  consistent: boolean;
  problems: string[];
}

export interface ConsistencyReport {
  orders: number;
  consistent: number;
  inconsistent: OrderVerdict[];
  /** Orders a person must look at (their saga is stuck). */
  needsPerson: OrderVerdict[];
  byStatus: Record<string, number>;
  /** Per-SKU stock problems: initial ≠ available + held. */
  stockProblems: string[];
  /** True when every order is consistent and stock adds up. */
  ok: boolean;
  /**
   * Set when only some orders were checked (`orderIds`): `ok` then says those orders are
   * consistent, and stock was not added up (it needs every reservation).
   */
  partial?: true;
}

export interface CheckOptions {
  /**
   * Check only these orders (one pipelined read of their state: a MULTI of HMGETs on Redis),
   * for polling the orders that were still inconsistent until they converge; a full check
   * (no `orderIds`) is the verdict.
   */
  orderIds?: readonly string[];
}

export async function checkConsistency(
  states: ServiceStates,
  options: CheckOptions = {},
): Promise<ConsistencyReport> {
  const partial = options.orderIds !== undefined;
  // One read (one round trip on Redis), not one key or one hash at a time.
  const { orders, reservations, payments, shipments, available, initial } = partial
    ? await states.snapshotOf(options.orderIds!)
    : await states.snapshot();
  const reservationOf = byOrder<Reservation>(reservations);
  const paymentOf = byOrder<Payment>(payments);
  const shipmentOf = byOrder<Shipment>(shipments);
  const known = new Set(orders.map((o) => o.orderId));

  const verdicts = orders.map((order) =>
    judge(
      order,
      reservationOf.get(order.orderId),
      paymentOf.get(order.orderId),
      shipmentOf.get(order.orderId),
    ),
  );
  // Effects for orders the orders service never stored.
  for (const orderId of new Set([
    ...reservationOf.keys(),
    ...paymentOf.keys(),
    ...shipmentOf.keys(),
  ])) {
    if (known.has(orderId)) continue;
    const r = reservationOf.get(orderId);
    const p = paymentOf.get(orderId);
    const problems = [
      ...(r && r.status !== 'released' ? [`holds ${r.qty} × ${r.sku} for an unknown order`] : []),
      ...(p && p.status === 'charged' && p.chargedCents > p.refundedCents
        ? [`keeps ${euros(p.chargedCents - p.refundedCents)} for an unknown order`]
        : []),
      ...(shipmentOf.has(orderId) ? ['shipped an unknown order'] : []),
    ];
    if (problems.length > 0)
      verdicts.push({ orderId, status: 'unknown', consistent: false, problems });
  }

  const stockProblems: string[] = [];
  const held = new Map<string, number>();
  for (const r of partial ? [] : reservations) {
    if (r.status !== 'released') held.set(r.sku, (held.get(r.sku) ?? 0) + r.qty);
  }
  for (const [sku, start] of Object.entries(partial ? {} : initial)) {
    const now = (available[sku] ?? 0) + (held.get(sku) ?? 0);
    if (now !== start)
      stockProblems.push(
        `${sku}: started with ${start}, now ${available[sku] ?? 0} available + ${held.get(sku) ?? 0} held`,
      );
    if ((available[sku] ?? 0) < 0) stockProblems.push(`${sku}: negative stock ${available[sku]}`);
  }

  verdicts.sort((a, b) => byOrderId.compare(a.orderId, b.orderId));
  const byStatus: Record<string, number> = {};
  for (const o of orders) byStatus[o.status] = (byStatus[o.status] ?? 0) + 1;
  const needsPerson = verdicts.filter((v) => v.status === 'needs-attention');
  const inconsistent = verdicts.filter((v) => !v.consistent && v.status !== 'needs-attention');
  return {
    orders: orders.length,
    consistent: verdicts.filter((v) => v.consistent).length,
    inconsistent,
    needsPerson,
    byStatus,
    stockProblems,
    ok: inconsistent.length === 0 && needsPerson.length === 0 && stockProblems.length === 0,
    ...(partial ? { partial: true as const } : {}),
  };
}

function judge(
  order: Order,
  reservation: Reservation | undefined,
  payment: Payment | undefined,
  shipment: Shipment | undefined,
): OrderVerdict {
  const problems: string[] = [];
  const kept = payment?.status === 'charged' ? payment.chargedCents - payment.refundedCents : 0;
  switch (order.status) {
    case 'confirmed':
      if (reservation?.status !== 'committed' || reservation.qty !== order.qty) {
        problems.push(
          `stock: expected ${order.qty} × ${order.sku} sold, found ${reservation ? `${reservation.qty} ${reservation.status}` : 'no reservation'}`,
        );
      }
      if (kept !== order.amountCents) {
        problems.push(`payment: expected ${euros(order.amountCents)} kept, found ${euros(kept)}`);
      }
      if (!shipment) problems.push('shipping: confirmed but not shipped');
      break;
    case 'cancelled':
      if (reservation && reservation.status !== 'released') {
        problems.push(
          `stock: cancelled but ${reservation.qty} × ${reservation.sku} still ${reservation.status}`,
        );
      }
      if (kept !== 0) problems.push(`payment: cancelled but ${euros(kept)} kept`);
      if (shipment) problems.push('shipping: cancelled but shipped');
      break;
    case 'pending':
      problems.push('saga not finished');
      break;
    case 'needs-attention':
      problems.push(order.reason ?? 'saga stuck');
      break;
  }
  return {
    orderId: order.orderId,
    status: order.status,
    consistent: problems.length === 0,
    problems,
  };
}

/** o-2 before o-10: one collator for every comparison (`localeCompare` with options builds one per call). */
const byOrderId = new Intl.Collator('en', { numeric: true });

function byOrder<T extends { orderId: string }>(items: T[]): Map<string, T> {
  return new Map(items.map((i) => [i.orderId, i]));
}

/**
 * Checks until consistent or `timeoutMs` passed (messages may still be in flight right after
 * the last saga ended). Resolves with the last report.
 */
export async function checkUntilConsistent(
  states: ServiceStates,
  options: { timeoutMs: number; intervalMs?: number; onReport?: (r: ConsistencyReport) => void },
): Promise<ConsistencyReport> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const report = await checkConsistency(states);
    options.onReport?.(report);
    if (report.ok || Date.now() >= deadline) return report;
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 200));
  }
}

/** A short human summary: one line, then up to `limit` inconsistent orders. */
export function formatReport(report: ConsistencyReport, limit = 10): string {
  const statuses = Object.entries(report.byStatus)
    .sort()
    .map(([s, n]) => `${n} ${s}`)
    .join(', ');
  if (report.orders === 0 && report.ok) return `${color.dim('·')} no orders found`;
  const lines = [
    report.ok
      ? `${color.green('✓')} consistent: all ${report.orders} orders agree with stock, payments and shipments (${statuses})`
      : `${color.red('✗')} inconsistent: ${report.inconsistent.length} of ${report.orders} orders disagree, ${report.needsPerson.length} need a person, ${report.stockProblems.length} stock problems (${statuses})`,
  ];
  for (const v of [...report.inconsistent, ...report.needsPerson].slice(0, limit)) {
    lines.push(`    ${v.orderId} (${v.status}): ${v.problems.join('; ')}`);
  }
  const more = report.inconsistent.length + report.needsPerson.length - limit;
  if (more > 0) lines.push(`    … and ${more} more`);
  for (const p of report.stockProblems) lines.push(`    stock ${p}`);
  return lines.join('\n');
}
