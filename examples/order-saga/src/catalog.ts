/**
 * What the shop sells, and the deterministic mix of orders the load driver places: order `i`
 * always has the same SKU, quantity, card and expected outcome, so runs can be compared.
 */
import { DECLINED_CARD } from './services/payments.js';
import type { PlaceOrderInput } from './services/orders.js';

export interface Product {
  sku: string;
  priceCents: number;
}

export const PRODUCTS: readonly Product[] = [
  { sku: 'blue-mug', priceCents: 1_200 },
  { sku: 'green-teapot', priceCents: 2_490 },
  { sku: 'red-kettle', priceCents: 3_950 },
  /** Never in stock: orders for it are refused by inventory. */
  { sku: 'vintage-lamp', priceCents: 8_900 },
];

export const SOLD_OUT_SKU = 'vintage-lamp';
export const GOOD_CARD = '4242 4242 4242 4242';
export { DECLINED_CARD };

export type ExpectedOutcome = 'confirmed' | 'out-of-stock' | 'declined';

/** Stock for `orders` orders: plenty of everything except the sold-out lamp. */
export function initialStock(orders: number): Record<string, number> {
  const plenty = Math.max(10, orders * 3);
  return Object.fromEntries(PRODUCTS.map((p) => [p.sku, p.sku === SOLD_OUT_SKU ? 0 : plenty]));
}

/**
 * Order number `i` of a run: 70 % go through, 15 % ask for the sold-out lamp, 15 % pay with the
 * card that is always declined.
 */
export function orderSpec(
  i: number,
  prefix = 'o',
): { order: PlaceOrderInput; expected: ExpectedOutcome } {
  const slot = i % 20;
  const expected: ExpectedOutcome =
    slot >= 17 ? 'declined' : slot >= 14 ? 'out-of-stock' : 'confirmed';
  const stocked = PRODUCTS.filter((p) => p.sku !== SOLD_OUT_SKU);
  const product =
    expected === 'out-of-stock'
      ? PRODUCTS.find((p) => p.sku === SOLD_OUT_SKU)!
      : stocked[i % stocked.length]!;
  const qty = 1 + (i % 3);
  return {
    expected,
    order: {
      orderId: `${prefix}-${String(1001 + i)}`,
      sku: product.sku,
      qty,
      amountCents: product.priceCents * qty,
      card: expected === 'declined' ? DECLINED_CARD : GOOD_CARD,
    },
  };
}
