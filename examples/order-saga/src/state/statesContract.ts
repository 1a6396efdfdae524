/**
 * One behaviour suite for the services' state stores, run on the in-memory maps (unit) and on
 * Redis hashes (integration): both must give the same answers, retries and crossed messages
 * included.
 */
import { describe, expect, it } from 'vitest';
import type { ServiceStates } from './types.js';

export function serviceStatesContract(name: string, make: () => Promise<ServiceStates>): void {
  describe(`service states: ${name}`, () => {
    it('reserves stock once per order and refuses what is not there', async () => {
      const { inventory } = await make();
      await inventory.setStock('mug', 3);
      expect(await inventory.reserve('o-1', 'mug', 2)).toEqual({
        ok: true,
        duplicate: false,
        reservation: { orderId: 'o-1', sku: 'mug', qty: 2, status: 'reserved' },
      });
      expect(await inventory.reserve('o-1', 'mug', 2)).toMatchObject({ ok: true, duplicate: true });
      expect(await inventory.reserve('o-2', 'mug', 2)).toEqual({
        ok: false,
        reason: 'out-of-stock',
        available: 1,
      });
      expect(await inventory.available()).toEqual({ mug: 1 });
      expect(await inventory.initial()).toEqual({ mug: 3 });
    });

    it('releases once, from reserved or committed, and refuses a reserve that comes after', async () => {
      const { inventory } = await make();
      await inventory.setStock('mug', 5);
      await inventory.reserve('o-1', 'mug', 2);
      expect(await inventory.commit('o-1')).toBe(true);
      expect(await inventory.commit('o-1')).toBe(false);
      expect(await inventory.release('o-1')).toEqual({ released: 2, sku: 'mug' });
      expect(await inventory.release('o-1')).toEqual({ released: 0, sku: 'mug' });
      expect(await inventory.available()).toEqual({ mug: 5 });
      // The release of o-2 overtook its reserve: the reserve must not take stock afterwards.
      expect(await inventory.release('o-2')).toEqual({ released: 0, sku: '' });
      expect(await inventory.reserve('o-2', 'mug', 1)).toMatchObject({
        ok: false,
        reason: 'already-released',
      });
      expect(await inventory.commit('o-2')).toBe(false);
      expect(await inventory.available()).toEqual({ mug: 5 });
    });

    it('charges once, refunds at most what was kept, and voids a charge that comes after a refund', async () => {
      const { payments } = await make();
      const charge = {
        orderId: 'o-1',
        chargeId: 'ch_o-1',
        status: 'charged' as const,
        requestedCents: 1_200,
        chargedCents: 120_000,
        version: '1.1.0',
      };
      expect(await payments.charge(charge)).toEqual({
        payment: { ...charge, refundedCents: 0 },
        duplicate: false,
      });
      expect((await payments.charge({ ...charge, chargedCents: 1 })).duplicate).toBe(true);
      expect((await payments.refund('o-1', 118_800)).refundedNow).toBe(118_800);
      expect((await payments.refund('o-1', 5_000)).refundedNow).toBe(1_200);
      expect((await payments.refund('o-1')).refundedNow).toBe(0);
      expect((await payments.get('o-1'))?.refundedCents).toBe(120_000);

      expect((await payments.refund('o-2')).payment.status).toBe('voided');
      const late = await payments.charge({ ...charge, orderId: 'o-2', chargeId: 'ch_o-2' });
      expect(late).toMatchObject({
        duplicate: true,
        payment: { status: 'voided', chargedCents: 0 },
      });
    });

    it('ships once and keeps orders with their status', async () => {
      const { shipping, orders } = await make();
      const shipment = { orderId: 'o-1', trackingId: 'trk_o-1', sku: 'mug', qty: 1 };
      expect(await shipping.ship(shipment)).toEqual({ shipment, duplicate: false });
      expect(await shipping.ship({ ...shipment, trackingId: 'other' })).toEqual({
        shipment,
        duplicate: true,
      });
      const order = { orderId: 'o-1', sku: 'mug', qty: 1, amountCents: 1_200, card: '4242' };
      expect(await orders.create(order)).toEqual({ ...order, status: 'pending' });
      expect(await orders.create({ ...order, qty: 9 })).toEqual({ ...order, status: 'pending' });
      // setStatus resolves with the order as stored (the orders service needs no read after it).
      const cancelled = { ...order, status: 'cancelled', reason: 'card declined' };
      expect(await orders.setStatus('o-1', 'cancelled', 'card declined')).toEqual(cancelled);
      expect(await orders.get('o-1')).toEqual(cancelled);
      expect(await orders.setStatus('o-1', 'confirmed')).toEqual({ ...order, status: 'confirmed' });
      expect(await orders.all()).toEqual([{ ...order, status: 'confirmed' }]);
      expect(await orders.setStatus('o-404', 'confirmed')).toBeUndefined();
      expect(await orders.get('o-404')).toBeUndefined();
    });

    it('takes a snapshot of every store that agrees with their own reads', async () => {
      const states = await make();
      expect(await states.snapshot()).toEqual({
        orders: [],
        reservations: [],
        payments: [],
        shipments: [],
        available: {},
        initial: {},
      });
      await states.inventory.setStock('mug', 4);
      await states.inventory.reserve('o-1', 'mug', 1);
      await states.inventory.reserve('o-2', 'mug', 2);
      await states.inventory.commit('o-1');
      await states.orders.create({
        orderId: 'o-1',
        sku: 'mug',
        qty: 1,
        amountCents: 1_200,
        card: '4242',
      });
      await states.payments.charge({
        orderId: 'o-1',
        chargeId: 'ch_o-1',
        status: 'charged',
        requestedCents: 1_200,
        chargedCents: 1_200,
        version: '1.0.0',
      });
      await states.shipping.ship({ orderId: 'o-1', trackingId: 't-1', sku: 'mug', qty: 1 });
      const snapshot = await states.snapshot();
      const byId = <T extends { orderId: string }>(list: T[]) =>
        [...list].sort((a, b) => a.orderId.localeCompare(b.orderId));
      expect(byId(snapshot.reservations)).toEqual(byId(await states.inventory.reservations()));
      expect(snapshot.reservations).toHaveLength(2);
      expect(snapshot.orders).toEqual(await states.orders.all());
      expect(snapshot.payments).toEqual(await states.payments.all());
      expect(snapshot.payments).toHaveLength(1);
      expect(snapshot.shipments).toEqual([
        { orderId: 'o-1', trackingId: 't-1', sku: 'mug', qty: 1 },
      ]);
      expect(snapshot.available).toEqual({ mug: 1 });
      expect(snapshot.initial).toEqual({ mug: 4 });

      // Restricted to some orders: theirs only (unknown ids are left out), the whole stock.
      const some = await states.snapshotOf(['o-2', 'o-9']);
      expect(some).toEqual({
        orders: [],
        reservations: [{ orderId: 'o-2', sku: 'mug', qty: 2, status: 'reserved' }],
        payments: [],
        shipments: [],
        available: { mug: 1 },
        initial: { mug: 4 },
      });
      const one = await states.snapshotOf(['o-1']);
      expect(one.orders).toEqual(snapshot.orders);
      expect(one.payments).toEqual(snapshot.payments);
      expect(one.shipments).toEqual(snapshot.shipments);
      expect(one.reservations).toEqual(snapshot.reservations.filter((r) => r.orderId === 'o-1'));
      expect(await states.snapshotOf([])).toMatchObject({ orders: [], reservations: [] });
    });
  });
}
