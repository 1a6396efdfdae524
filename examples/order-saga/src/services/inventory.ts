/**
 * The inventory service: reserves stock for an order, releases it when the order is cancelled,
 * and marks it sold once the payment is known (`payment.charged`).
 *
 * This build of inventory predates `payment.charged` v2: it reads v1 only (see
 * `previousRegistry`). That is what the rollback drill exploits.
 */
import { deterministicId, handle, type Envelope } from '@backtrack/core';
import {
  PaymentChargedV1Only,
  ReleaseStockRequested,
  ReserveStockRequested,
  StockRejected,
  StockReleased,
  StockReserved,
  previousRegistry,
} from '../events.js';
import type { InventoryState } from '../state/types.js';
import { SILENT_STORY } from '../story.js';
import {
  consume,
  publisherFor,
  storyOf,
  type RunningService,
  type ServiceInfra,
  stopService,
} from '../infra/service.js';

export interface InventoryOptions {
  /** The deployed version, stamped on every event. @default '1.0.0' */
  version?: string;
}

/** Reply options shared by the services: same key, and a reply id derived from the command's. */
export function replyTo(envelope: Envelope<unknown>, key: string) {
  return {
    key,
    id: deterministicId(envelope.id, 'reply'),
    causationId: envelope.id,
    // Participants pass the saga along as the correlation id, not as their own saga id: their
    // events are their own effects, which a rollback reverses one by one.
    ...(envelope.sagaid === undefined ? {} : { correlationId: envelope.sagaid }),
  };
}

export async function startInventory(
  infra: ServiceInfra,
  state: InventoryState,
  options: InventoryOptions = {},
): Promise<RunningService> {
  const version = options.version ?? '1.0.0';
  const registry = previousRegistry();
  const publisher = publisherFor(infra, 'inventory', version, registry);
  const story = storyOf(infra);
  // Its lines are built only when someone listens (the load driver's story is silent).
  const telling = story !== SILENT_STORY;

  const subscription = await consume(infra, 'inventory', {
    registry,
    handlers: [
      handle(ReserveStockRequested, async ({ data, envelope }) => {
        const outcome = await state.reserve(data.orderId, data.sku, data.qty);
        if (outcome.ok) {
          if (!outcome.duplicate) {
            if (telling)
              story.tell({
                orderId: data.orderId,
                service: 'inventory',
                mark: 'ok',
                text: `reserved ${data.qty} × ${data.sku}`,
              });
          }
          await publisher.publish(StockReserved, data, replyTo(envelope, data.orderId));
          return;
        }
        const reason =
          outcome.reason === 'out-of-stock'
            ? `out of stock: ${outcome.available} × ${data.sku} left, ${data.qty} wanted`
            : 'the order was already cancelled';
        if (telling)
          story.tell({ orderId: data.orderId, service: 'inventory', mark: 'fail', text: reason });
        await publisher.publish(
          StockRejected,
          { orderId: data.orderId, sku: data.sku, reason, available: outcome.available },
          replyTo(envelope, data.orderId),
        );
      }),
      handle(ReleaseStockRequested, async ({ data, envelope }) => {
        const { released, sku } = await state.release(data.orderId);
        if (released > 0) {
          if (telling)
            story.tell({
              orderId: data.orderId,
              service: 'inventory',
              mark: 'undo',
              text: `released ${released} × ${sku}`,
            });
        }
        await publisher.publish(
          StockReleased,
          { orderId: data.orderId, sku: sku || 'none', qty: released },
          replyTo(envelope, data.orderId),
        );
      }),
      handle(PaymentChargedV1Only, async ({ data }) => {
        await state.commit(data.orderId);
      }),
    ],
  });

  return {
    name: 'inventory',
    version,
    stop: () => stopService(subscription, publisher),
  };
}
