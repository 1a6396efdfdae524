import { describe, expect, it } from 'vitest';
import { checkConsistency, formatReport } from './checker.js';
import { createInMemoryStates } from './state/memory.js';
import type { ServiceStates } from './state/types.js';

async function confirmedOrder(states: ServiceStates, orderId: string, amountCents = 1200) {
  await states.orders.create({ orderId, sku: 'blue-mug', qty: 1, amountCents, card: '4242' });
  await states.orders.setStatus(orderId, 'confirmed');
  await states.inventory.reserve(orderId, 'blue-mug', 1);
  await states.inventory.commit(orderId);
  await states.payments.charge({
    orderId,
    chargeId: `ch_${orderId}`,
    status: 'charged',
    requestedCents: amountCents,
    chargedCents: amountCents,
    version: '1.0.0',
  });
  await states.shipping.ship({ orderId, trackingId: `trk_${orderId}`, sku: 'blue-mug', qty: 1 });
}

describe('consistency checker', () => {
  it('passes a confirmed order whose stock, payment and shipment agree', async () => {
    const states = createInMemoryStates();
    await states.inventory.setStock('blue-mug', 5);
    await confirmedOrder(states, 'o-1');
    const report = await checkConsistency(states);
    expect(report.ok).toBe(true);
    expect(report.consistent).toBe(1);
  });

  it('reports a wrong charge, stock not sold, a missing shipment and stock that vanished', async () => {
    const states = createInMemoryStates();
    await states.inventory.setStock('blue-mug', 5);
    await confirmedOrder(states, 'o-1');
    // Planted: o-2 charged 100x, its stock still only reserved, and never shipped.
    await states.orders.create({
      orderId: 'o-2',
      sku: 'blue-mug',
      qty: 1,
      amountCents: 1200,
      card: '4242',
    });
    await states.orders.setStatus('o-2', 'confirmed');
    await states.inventory.reserve('o-2', 'blue-mug', 1);
    await states.payments.charge({
      orderId: 'o-2',
      chargeId: 'ch_o-2',
      status: 'charged',
      requestedCents: 1200,
      chargedCents: 120_000,
      version: '1.1.0',
    });
    // Planted: stock changed behind the inventory's back.
    await states.inventory.setStock('blue-mug', 2);

    const report = await checkConsistency(states);
    expect(report.ok).toBe(false);
    expect(report.inconsistent.map((v) => v.orderId)).toEqual(['o-2']);
    expect(report.inconsistent[0]!.problems).toEqual([
      'stock: expected 1 × blue-mug sold, found 1 reserved',
      'payment: expected €12.00 kept, found €1200.00',
      'shipping: confirmed but not shipped',
    ]);
    expect(formatReport(report)).toMatch(/inconsistent: 1 of 2 orders disagree/);
  });

  it('reports a cancelled order that still holds stock or money, and effects of unknown orders', async () => {
    const states = createInMemoryStates();
    await states.inventory.setStock('blue-mug', 5);
    await states.orders.create({
      orderId: 'o-3',
      sku: 'blue-mug',
      qty: 2,
      amountCents: 2400,
      card: '4242',
    });
    await states.orders.setStatus('o-3', 'cancelled', 'card declined');
    await states.inventory.reserve('o-3', 'blue-mug', 2);
    await states.shipping.ship({ orderId: 'o-9', trackingId: 't', sku: 'blue-mug', qty: 1 });

    const report = await checkConsistency(states);
    expect(report.inconsistent).toEqual([
      {
        orderId: 'o-3',
        status: 'cancelled',
        consistent: false,
        problems: ['stock: cancelled but 2 × blue-mug still reserved'],
      },
      {
        orderId: 'o-9',
        status: 'unknown',
        consistent: false,
        problems: ['shipped an unknown order'],
      },
    ]);
  });

  it('counts a pending order as inconsistent and a stuck one as needing a person', async () => {
    const states = createInMemoryStates();
    await states.orders.create({
      orderId: 'o-4',
      sku: 'blue-mug',
      qty: 1,
      amountCents: 1200,
      card: '4242',
    });
    await states.orders.create({
      orderId: 'o-5',
      sku: 'blue-mug',
      qty: 1,
      amountCents: 1200,
      card: '4242',
    });
    await states.orders.setStatus('o-5', 'needs-attention', 'refund failed 8 times');
    const report = await checkConsistency(states);
    expect(report.inconsistent.map((v) => [v.orderId, v.problems])).toEqual([
      ['o-4', ['saga not finished']],
    ]);
    expect(report.needsPerson.map((v) => [v.orderId, v.problems])).toEqual([
      ['o-5', ['refund failed 8 times']],
    ]);
    expect(report.ok).toBe(false);
  });

  it('checks only the orders asked for, and leaves stock to the full check', async () => {
    const states = createInMemoryStates();
    await states.inventory.setStock('blue-mug', 5);
    await confirmedOrder(states, 'o-1');
    await confirmedOrder(states, 'o-2', 1200);
    await states.payments.refund('o-2', 600);
    await states.shipping.ship({ orderId: 'o-9', trackingId: 't', sku: 'blue-mug', qty: 1 });
    // Planted: stock changed behind the inventory's back (only the full check adds it up).
    await states.inventory.setStock('blue-mug', 2);

    const some = await checkConsistency(states, { orderIds: ['o-1', 'o-2', 'o-9'] });
    expect(some.partial).toBe(true);
    expect(some.orders).toBe(2);
    expect(some.consistent).toBe(1);
    expect(some.inconsistent.map((v) => [v.orderId, v.problems])).toEqual([
      ['o-2', ['payment: expected €12.00 kept, found €6.00']],
      ['o-9', ['shipped an unknown order']],
    ]);
    expect(some.stockProblems).toEqual([]);

    const one = await checkConsistency(states, { orderIds: ['o-1'] });
    expect(one).toMatchObject({ ok: true, orders: 1, consistent: 1, partial: true });
    const full = await checkConsistency(states);
    expect(full.partial).toBeUndefined();
    expect(full.ok).toBe(false);
    expect(full.stockProblems).toHaveLength(1);
  });
});
