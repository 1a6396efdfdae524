/**
 * All four services in one process: the memory example, the load driver and the drill use
 * this. On a real broker each service still has its own connection and its own state.
 */
import { startInventory } from './services/inventory.js';
import { startOrders, type OrdersService } from './services/orders.js';
import { startPayments, type PaymentsOptions } from './services/payments.js';
import { startShipping } from './services/shipping.js';
import type { RunningService } from './infra/service.js';
import type { Runtime } from './infra/runtime.js';
import type { ServiceStates } from './state/types.js';
import type { Story } from './story.js';
import { initialStock } from './catalog.js';

export interface ShopSystem {
  orders: OrdersService;
  inventory: RunningService;
  payments: RunningService;
  shipping: RunningService;
  /** Stops the running payments deploy and starts another (a deploy, or a rollback of one). */
  redeployPayments(options: PaymentsOptions): Promise<RunningService>;
  stop(): Promise<void>;
}

export interface StartShopOptions {
  story?: Story;
  /** Stock to start with, sized for this many orders. Omit to leave the stock as it is. */
  stockFor?: number;
  payments?: PaymentsOptions;
  /** See {@link OrdersOptions.replyTimeoutMs}. */
  replyTimeoutMs?: number;
}

/** Sets the initial stock of every SKU, sized for `orders` orders. */
export async function setStock(states: ServiceStates, orders: number): Promise<void> {
  for (const [sku, qty] of Object.entries(initialStock(orders))) {
    await states.inventory.setStock(sku, qty);
  }
}

export async function startShop(
  runtime: Runtime,
  options: StartShopOptions = {},
): Promise<ShopSystem> {
  const { states } = runtime;
  if (options.stockFor !== undefined) await setStock(states, options.stockFor);
  // Participants first, so their queues exist before orders sends the first command.
  const inventory = await startInventory(
    await runtime.infraFor('inventory', options.story),
    states.inventory,
  );
  const paymentsInfra = await runtime.infraFor('payments', options.story);
  let payments = await startPayments(paymentsInfra, states.payments, options.payments);
  const shipping = await startShipping(
    await runtime.infraFor('shipping', options.story),
    states.shipping,
  );
  const orders = await startOrders(
    await runtime.infraFor('orders', options.story),
    states.orders,
    runtime.sagaStore,
    options.replyTimeoutMs === undefined ? {} : { replyTimeoutMs: options.replyTimeoutMs },
  );
  const system: ShopSystem = {
    orders,
    inventory,
    get payments() {
      return payments;
    },
    shipping,
    async redeployPayments(next) {
      await payments.stop();
      payments = await startPayments(paymentsInfra, states.payments, next);
      return payments;
    },
    async stop() {
      await orders.stop();
      await Promise.allSettled([inventory.stop(), payments.stop(), shipping.stop()]);
    },
  };
  return system;
}
