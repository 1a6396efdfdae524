/**
 * Where each message of the example travels: the topics (Kafka) or exchanges (RabbitMQ, memory)
 * of one run, and which of them each service reads.
 *
 * Every event type has the services that handle it ({@link RECEIVERS}). A type with ONE receiver
 * goes to that receiver's topic, `<prefix>.to.<receiver>`: the commands orders sends to
 * inventory, payments and shipping, the replies they send back to orders, and the adjustments a
 * rollback sends to payments. A type read by several services (`payment.charged`: orders waits
 * for it, inventory marks the stock sold) goes once to its sender's topic, `<prefix>.<sender>`,
 * which all of them read. So each service reads only what it handles, on every transport: Kafka,
 * which delivers every message of a topic to each group that reads it, no longer makes three
 * services fetch, decode and drop each other's commands. RabbitMQ binds each queue to its
 * handled types as well, so it delivers the same messages as before; the in-memory runtime
 * passes no bindings (see runtime.ts), so in memory, too, each service now receives only what it
 * handles instead of every message of the topics it read.
 *
 * | topic                   | carries                                                   | read by           |
 * |-------------------------|-----------------------------------------------------------|-------------------|
 * | `<prefix>.to.inventory` | reserve-requested, release-requested                      | inventory         |
 * | `<prefix>.to.payments`  | charge-requested, refund-requested, adjustment-requested  | payments          |
 * | `<prefix>.to.shipping`  | ship-requested                                            | shipping          |
 * | `<prefix>.to.orders`    | reserved, rejected, released, declined, refunded, shipped, refused | orders   |
 * | `<prefix>.payments`     | payment.charged                                           | orders, inventory |
 *
 * Every message is keyed by its order id (the publishers' `key`), so one order's messages keep
 * their order within each topic.
 */
import { BacktrackError } from '@backtrack/core';
import {
  ChargeRequested,
  PaymentAdjustmentRequested,
  PaymentCharged,
  PaymentDeclined,
  PaymentRefunded,
  RefundRequested,
  ReleaseStockRequested,
  ReserveStockRequested,
  ShipRequested,
  ShipmentRefused,
  Shipped,
  StockRejected,
  StockReleased,
  StockReserved,
} from '../events.js';
import type { ServiceName } from './service.js';

/** Who publishes each event type, and the services that handle it. */
export const RECEIVERS: Readonly<
  Record<string, { readonly from: ServiceName; readonly to: readonly ServiceName[] }>
> = {
  [ReserveStockRequested.type]: { from: 'orders', to: ['inventory'] },
  [ReleaseStockRequested.type]: { from: 'orders', to: ['inventory'] },
  [ChargeRequested.type]: { from: 'orders', to: ['payments'] },
  [RefundRequested.type]: { from: 'orders', to: ['payments'] },
  [ShipRequested.type]: { from: 'orders', to: ['shipping'] },
  [StockReserved.type]: { from: 'inventory', to: ['orders'] },
  [StockRejected.type]: { from: 'inventory', to: ['orders'] },
  [StockReleased.type]: { from: 'inventory', to: ['orders'] },
  [PaymentCharged.type]: { from: 'payments', to: ['orders', 'inventory'] },
  [PaymentDeclined.type]: { from: 'payments', to: ['orders'] },
  [PaymentRefunded.type]: { from: 'payments', to: ['orders'] },
  // Published by a rollback on payments' behalf (see paymentsCompensationsFor).
  [PaymentAdjustmentRequested.type]: { from: 'payments', to: ['payments'] },
  [Shipped.type]: { from: 'shipping', to: ['orders'] },
  [ShipmentRefused.type]: { from: 'shipping', to: ['orders'] },
};

/** An event type with no entry in {@link RECEIVERS}: nobody would read it. */
export class UnroutedEventError extends BacktrackError {
  constructor(type: string, sender: string) {
    super('SHOP_UNROUTED_EVENT', `no service reads "${type}" (published by ${sender})`, {
      details: { type, sender },
      retriable: false,
    });
  }
}

/** The topics of one run (one prefix). */
export interface ShopTopics {
  /** The topic of the messages only `receiver` handles. */
  to(receiver: ServiceName): string;
  /** The topic `sender` publishes `type` to. Throws {@link UnroutedEventError} for an unknown type. */
  publishTo(sender: ServiceName, type: string): string;
  /** The topics `service` reads. */
  readBy(service: ServiceName): string[];
  /** Every topic of the run (Kafka creates them up front). */
  readonly all: readonly string[];
}

export function shopTopics(prefix: string): ShopTopics {
  const to = (receiver: ServiceName) => `${prefix}.to.${receiver}`;
  const shared = (sender: ServiceName) => `${prefix}.${sender}`;
  const topicOf = (route: { from: ServiceName; to: readonly ServiceName[] }) =>
    route.to.length === 1 ? to(route.to[0]!) : shared(route.from);
  const routes = Object.values(RECEIVERS);
  const readBy = (service: ServiceName) => [
    ...new Set(routes.filter((r) => r.to.includes(service)).map(topicOf)),
  ];
  const all = [...new Set(routes.map(topicOf))];
  return {
    to,
    publishTo(sender, type) {
      const route = RECEIVERS[type];
      if (route === undefined) throw new UnroutedEventError(type, sender);
      return topicOf(route);
    },
    readBy,
    all,
  };
}
