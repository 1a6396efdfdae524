/**
 * The load driver: places N orders from the deterministic mix of {@link orderSpec}, at most
 * `concurrency` sagas at once, and counts the outcomes.
 */
import { orderSpec, type ExpectedOutcome } from './catalog.js';
import type { OrdersService } from './services/orders.js';

export interface LoadOptions {
  count: number;
  /** Index of the first order (so several phases of one run use different order ids). @default 0 */
  start?: number;
  /** @default 32 */
  concurrency?: number;
  /** Called after each order ends (for progress bars). */
  onOrder?: (done: number) => void;
}

export interface LoadResult {
  placed: number;
  byStatus: Record<string, number>;
  /** Orders whose final state differs from what the mix expected. */
  surprises: { orderId: string; expected: ExpectedOutcome; got: string }[];
  durationMs: number;
}

export async function placeOrders(
  orders: OrdersService,
  options: LoadOptions,
): Promise<LoadResult> {
  const start = options.start ?? 0;
  const concurrency = Math.max(1, options.concurrency ?? 32);
  const result: LoadResult = { placed: 0, byStatus: {}, surprises: [], durationMs: 0 };
  const began = Date.now();
  let next = start;
  const end = start + options.count;
  const worker = async () => {
    while (next < end) {
      const { order, expected } = orderSpec(next++);
      const final = await orders.place(order);
      result.placed++;
      result.byStatus[final.status] = (result.byStatus[final.status] ?? 0) + 1;
      const got = final.status === 'cancelled' ? cancelKind(final.reason) : final.status;
      if (got !== expected) result.surprises.push({ orderId: order.orderId, expected, got });
      options.onOrder?.(result.placed);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, options.count) }, worker));
  result.durationMs = Date.now() - began;
  return result;
}

function cancelKind(reason = ''): string {
  if (reason.includes('out of stock')) return 'out-of-stock';
  if (reason.includes('declined')) return 'declined';
  return `cancelled: ${reason}`;
}
