import { describe, expect, it } from 'vitest';
import { currentRegistry } from './events.js';
import { RECEIVERS, shopTopics, UnroutedEventError } from './infra/topics.js';
import type { ServiceName } from './infra/service.js';

const SERVICES: ServiceName[] = ['orders', 'inventory', 'payments', 'shipping'];

describe('the topics of a run (infra/topics.ts)', () => {
  const topics = shopTopics('p');

  it('routes every event type of the catalogue', () => {
    for (const type of currentRegistry().types) expect(RECEIVERS[type], type).toBeDefined();
  });

  it('sends a type with one receiver to that receiver, and a shared fact to its sender', () => {
    expect(topics.publishTo('orders', 'inventory.reserve-requested')).toBe('p.to.inventory');
    expect(topics.publishTo('orders', 'payment.charge-requested')).toBe('p.to.payments');
    expect(topics.publishTo('orders', 'shipping.ship-requested')).toBe('p.to.shipping');
    expect(topics.publishTo('inventory', 'inventory.reserved')).toBe('p.to.orders');
    expect(topics.publishTo('payments', 'payment.declined')).toBe('p.to.orders');
    expect(topics.publishTo('payments', 'payment.charged')).toBe('p.payments');
    expect(topics.publishTo('payments', 'payment.adjustment-requested')).toBe('p.to.payments');
    expect(topics.all).toEqual(
      expect.arrayContaining(['p.to.inventory', 'p.to.payments', 'p.to.shipping', 'p.to.orders']),
    );
    expect(topics.all).toHaveLength(5);
  });

  it('lets each service read only the topics of the types it receives', () => {
    for (const service of SERVICES) {
      const read = new Set(topics.readBy(service));
      const carried = Object.entries(RECEIVERS)
        .filter(([type, route]) => read.has(topics.publishTo(route.from, type)))
        .filter(([, route]) => !route.to.includes(service));
      expect(carried, `${service} would read types it does not receive`).toEqual([]);
    }
    expect(topics.readBy('inventory').sort()).toEqual(['p.payments', 'p.to.inventory']);
    expect(topics.readBy('payments')).toEqual(['p.to.payments']);
    expect(topics.readBy('shipping')).toEqual(['p.to.shipping']);
    expect(topics.readBy('orders').sort()).toEqual(['p.payments', 'p.to.orders']);
  });

  it('refuses a type nobody reads, with a code', () => {
    expect(() => topics.publishTo('orders', 'order.unknown')).toThrow(UnroutedEventError);
    try {
      topics.publishTo('orders', 'order.unknown');
    } catch (error) {
      expect((error as UnroutedEventError).code).toBe('SHOP_UNROUTED_EVENT');
    }
  });
});
