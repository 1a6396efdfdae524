/**
 * The hand-written order saga's messages: plain JSON with an id, a type, the order id as key,
 * the saga id and the cause, validated with zod on the way in, as a team would write them
 * without Backtrack (no CloudEvents headers, no versions or upcasters: one schema per type).
 */
import { z } from 'zod';

const orderId = z.string().min(1);
const SCHEMAS = {
  // orders -> inventory, payments, shipping (commands)
  'reserve-stock': z.object({ orderId, sku: z.string(), qty: z.number().int().positive() }),
  'release-stock': z.object({ orderId }),
  charge: z.object({ orderId, amountCents: z.number().int().nonnegative(), card: z.string() }),
  refund: z.object({ orderId }),
  ship: z.object({ orderId, sku: z.string(), qty: z.number().int().positive() }),
  // replies to orders (payment.charged also to inventory)
  'stock-reserved': z.object({ orderId, sku: z.string(), qty: z.number().int() }),
  'stock-rejected': z.object({ orderId, reason: z.string() }),
  'stock-released': z.object({ orderId, qty: z.number().int() }),
  'payment-charged': z.object({ orderId, chargeId: z.string(), amountCents: z.number().int() }),
  'payment-declined': z.object({ orderId, reason: z.string() }),
  'payment-refunded': z.object({ orderId, amountCents: z.number().int() }),
  shipped: z.object({ orderId, trackingId: z.string() }),
  'shipment-refused': z.object({ orderId, reason: z.string() }),
} as const;

export type MessageType = keyof typeof SCHEMAS;
export type DataOf<T extends MessageType> = z.infer<(typeof SCHEMAS)[T]>;

export interface Message<T extends MessageType = MessageType> {
  id: string;
  type: T;
  /** The order id: the partition key on Kafka, the lane in a batch. */
  key: string;
  sagaId?: string;
  causationId?: string;
  data: DataOf<T>;
}

/** Which topic each type travels on (the same layout as the example's `topics.ts`). */
export const TOPIC_OF: Record<
  MessageType,
  'to.inventory' | 'to.payments' | 'to.shipping' | 'to.orders' | 'payments'
> = {
  'reserve-stock': 'to.inventory',
  'release-stock': 'to.inventory',
  charge: 'to.payments',
  refund: 'to.payments',
  ship: 'to.shipping',
  'stock-reserved': 'to.orders',
  'stock-rejected': 'to.orders',
  'stock-released': 'to.orders',
  'payment-charged': 'payments',
  'payment-declined': 'to.orders',
  'payment-refunded': 'to.orders',
  shipped: 'to.orders',
  'shipment-refused': 'to.orders',
};

export const READS = {
  orders: ['to.orders', 'payments'],
  inventory: ['to.inventory', 'payments'],
  payments: ['to.payments'],
  shipping: ['to.shipping'],
} as const;
export type ServiceName = keyof typeof READS;

export function encode(message: Message): Buffer {
  return Buffer.from(JSON.stringify(message));
}

/** Why a message could not be read: it goes to the dead-letter topic with its bytes. */
export class UnreadableMessage extends Error {}

const Envelope = z.object({
  id: z.string().min(1),
  type: z.string(),
  key: z.string().min(1),
  sagaId: z.string().optional(),
  causationId: z.string().optional(),
  data: z.unknown(),
});

export function decode(bytes: Buffer): Message {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new UnreadableMessage(`not JSON: ${(error as Error).message}`);
  }
  const head = Envelope.safeParse(raw);
  if (!head.success) throw new UnreadableMessage(`bad envelope: ${head.error.message}`);
  const schema = SCHEMAS[head.data.type as MessageType] as z.ZodTypeAny | undefined;
  if (schema === undefined) throw new UnreadableMessage(`unknown type ${head.data.type}`);
  const data = schema.safeParse(head.data.data);
  if (!data.success) throw new UnreadableMessage(`bad ${head.data.type}: ${data.error.message}`);
  return { ...head.data, type: head.data.type as MessageType, data: data.data } as Message;
}
