/**
 * The shipping service: ships the order. This is the saga's pivot: a parcel that left cannot be
 * un-sent, so nothing after it compensates, and orders only ship once stock and payment hold.
 */
import { handle } from '@backtrack/core';
import { ShipRequested, ShipmentRefused, Shipped, currentRegistry } from '../events.js';
import type { ShippingState } from '../state/types.js';
import { SILENT_STORY } from '../story.js';
import {
  consume,
  publisherFor,
  storyOf,
  type RunningService,
  type ServiceInfra,
  stopService,
} from '../infra/service.js';
import { replyTo } from './inventory.js';

/** The most items one parcel carries; bigger orders are refused (the example's pivot failure). */
export const MAX_PARCEL_ITEMS = 4;

export interface ShippingOptions {
  /** @default '1.0.0' */
  version?: string;
}

export async function startShipping(
  infra: ServiceInfra,
  state: ShippingState,
  options: ShippingOptions = {},
): Promise<RunningService> {
  const version = options.version ?? '1.0.0';
  const registry = currentRegistry();
  const publisher = publisherFor(infra, 'shipping', version, registry);
  const story = storyOf(infra);
  // Its lines are built only when someone listens (the load driver's story is silent).
  const telling = story !== SILENT_STORY;

  const subscription = await consume(infra, 'shipping', {
    registry,
    handlers: [
      handle(ShipRequested, async ({ data, envelope }) => {
        if (data.qty > MAX_PARCEL_ITEMS) {
          const reason = `parcel too big: ${data.qty} items, at most ${MAX_PARCEL_ITEMS} per parcel`;
          if (telling)
            story.tell({ orderId: data.orderId, service: 'shipping', mark: 'fail', text: reason });
          await publisher.publish(
            ShipmentRefused,
            { orderId: data.orderId, reason },
            replyTo(envelope, data.orderId),
          );
          return;
        }
        const { shipment, duplicate } = await state.ship({
          orderId: data.orderId,
          trackingId: `trk_${data.orderId}`,
          sku: data.sku,
          qty: data.qty,
        });
        if (!duplicate) {
          if (telling)
            story.tell({
              orderId: data.orderId,
              service: 'shipping',
              mark: 'ok',
              text: `shipped ${data.qty} × ${data.sku}, tracking ${shipment.trackingId}`,
            });
        }
        await publisher.publish(
          Shipped,
          { orderId: data.orderId, trackingId: shipment.trackingId },
          replyTo(envelope, data.orderId),
        );
      }),
    ],
  });

  return { name: 'shipping', version, stop: () => stopService(subscription, publisher) };
}
