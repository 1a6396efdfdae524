/** The event the fault scenarios publish and consume, and helpers to build its wire form. */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { defineEvent, encodeEnvelope, type EncodedMessage } from '@backtrack/core';

export const FaultOrderPlaced = defineEvent('fault.order.placed')
  .version(1, z.object({ orderId: z.string(), amount: z.number() }))
  .version(
    2,
    z.object({ orderId: z.string(), amountCents: z.number().int(), currency: z.string() }),
    {
      up: (v1) => ({
        orderId: v1.orderId,
        amountCents: Math.round(v1.amount * 100),
        currency: 'EUR',
      }),
      down: (v2) => ({ orderId: v2.orderId, amount: v2.amountCents / 100 }),
    },
  );

export const FAULT_SOURCE = '//backtrack/faults';

/** A valid v2 event whose id is `id` (the ledger's key). */
export function orderMessage(id: string, orderId = id): EncodedMessage {
  return encodeEnvelope(
    FaultOrderPlaced.envelope(
      { orderId, amountCents: 100, currency: 'EUR' },
      { source: FAULT_SOURCE, id, producerservice: 'faults', producerversion: '1.0.0' },
    ),
  );
}

export function newId(prefix: string): string {
  return `${prefix}-${randomUUID()}`;
}
