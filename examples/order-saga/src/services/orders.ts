/**
 * The orders service: takes an order and runs the place-order saga.
 *
 *   reserve-stock  (inventory)  compensation: release-stock
 *   charge-card    (payments)   compensation: refund
 *   ship           (shipping)   pivot: once shipped, the order only goes forward
 *
 * Each step sends a command to the other service's topic (`to.inventory`, ...) and waits for
 * the reply event the other service publishes to orders' (`to.orders`; `payment.charged` on
 * `payments`), request/reply over the transport. A business "no" (out of stock, card
 * declined) is a non-retriable error, so the saga compensates at once; a missing reply times
 * out and the step is retried with a new command id, which the other service answers again
 * (its state is idempotent on the order id).
 */
import {
  BacktrackError,
  createSagaEngine,
  instrumentSagaEngine,
  defineSaga,
  deterministicId,
  handle,
  SagaStatus,
  type EventData,
  type Logger,
  type SagaEngine,
  type SagaResult,
  type SagaStore,
} from '@backtrack/core';
import { z } from 'zod';
import {
  ChargeRequested,
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
  currentRegistry,
} from '../events.js';
import type { Order, OrdersState } from '../state/types.js';
import { euros, SILENT_STORY } from '../story.js';
import { trace } from '../trace.js';
import {
  consume,
  publisherFor,
  storyOf,
  type RunningService,
  type ServiceInfra,
  stopService,
} from '../infra/service.js';

/** A business refusal (out of stock, card declined): compensate now, do not retry. */
export class OrderRejectedError extends BacktrackError {
  constructor(reason: string, details: Record<string, unknown> = {}) {
    super('SHOP_ORDER_REJECTED', reason, { details, retriable: false });
  }
}

export const PlaceOrderInput = z.object({
  orderId: z.string().min(1),
  sku: z.string().min(1),
  qty: z.number().int().positive(),
  amountCents: z.number().int().nonnegative(),
  card: z.string().min(4),
});
export type PlaceOrderInput = z.infer<typeof PlaceOrderInput>;

type ReplyKind = 'reserve' | 'release' | 'charge' | 'refund' | 'ship';
type Reply =
  | { type: 'reserved'; data: EventData<typeof StockReserved> }
  | { type: 'rejected'; data: EventData<typeof StockRejected> }
  | { type: 'released'; data: EventData<typeof StockReleased> }
  | { type: 'charged'; data: EventData<typeof PaymentCharged> }
  | { type: 'declined'; data: EventData<typeof PaymentDeclined> }
  | { type: 'refunded'; data: EventData<typeof PaymentRefunded> }
  | { type: 'shipped'; data: EventData<typeof Shipped> }
  | { type: 'refused'; data: EventData<typeof ShipmentRefused> };

/**
 * Replies the saga steps wait for, one per order (an order's steps and compensations run one
 * after the other), each with the kind of reply it wants. A reply nobody waits for (a late one,
 * or one for a step that already moved on) is dropped: the step that needs it asks again.
 *
 * The wait itself has no timer and no abort listener: the saga engine bounds every attempt with
 * the step's `timeoutMs` (it rejects the attempt then, whatever the step does), the next attempt
 * of the order replaces the waiter, and `forget` drops it once the saga ended. Reading
 * `ctx.signal` to clean up would cost an AbortController and two listener calls per step (in
 * Node 20 about as much as the rest of the step's own code); nothing here cancels a saga.
 */
class PendingReplies {
  readonly #waiting = new Map<string, Waiter>();

  wait(orderId: string, kind: ReplyKind): Promise<Reply> {
    return new Promise<Reply>((resolve) => {
      this.#waiting.set(orderId, new Waiter(kind, resolve));
    });
  }

  deliver(orderId: string, kind: ReplyKind, reply: Reply): void {
    const waiter = this.#waiting.get(orderId);
    if (waiter === undefined || waiter.kind !== kind) return;
    this.#waiting.delete(orderId);
    waiter.resolve(reply);
  }

  /** The order's saga ended: nothing waits for its replies any more. */
  forget(orderId: string): void {
    this.#waiting.delete(orderId);
  }
}

class Waiter {
  constructor(
    readonly kind: ReplyKind,
    readonly resolve: (reply: Reply) => void,
  ) {}
}

export interface OrdersOptions {
  /** @default '1.0.0' */
  version?: string;
  /** How long a step waits for its reply before it asks again, in ms. @default 5_000 */
  replyTimeoutMs?: number;
}

export interface OrdersService extends RunningService {
  /** Stores the order and runs its saga to the end; resolves with the order's final state. */
  place(order: PlaceOrderInput): Promise<Order>;
  /** Finishes the sagas a crash left in flight and updates their orders. */
  recover(): Promise<number>;
  readonly engine: SagaEngine;
}

export async function startOrders(
  infra: ServiceInfra,
  state: OrdersState,
  sagaStore: SagaStore,
  options: OrdersOptions = {},
): Promise<OrdersService> {
  const version = options.version ?? '1.0.0';
  const replyTimeoutMs = options.replyTimeoutMs ?? 5_000;
  const registry = currentRegistry();
  const publisher = publisherFor(infra, 'orders', version, registry);
  const story = storyOf(infra);
  // Its lines are built only when someone listens (the load driver's story is silent).
  const telling = story !== SILENT_STORY;
  const replies = new PendingReplies();
  const logger: Logger = infra.logger.child({ service: 'orders' });

  /** Sends a command and waits for its reply. */
  async function ask(
    kind: ReplyKind,
    send: (id: string) => Promise<unknown>,
    ctx: { input: PlaceOrderInput; idempotencyKey: string; attempt: number },
  ): Promise<Reply> {
    const started = trace.enabled ? performance.now() : 0;
    const reply = replies.wait(ctx.input.orderId, kind);
    // A new id per attempt: a retried step is a new request, which the other service answers
    // again from its own (idempotent) state instead of dropping it as a duplicate.
    const id = deterministicId(ctx.idempotencyKey, String(ctx.attempt));
    try {
      if (trace.enabled) await trace.time('publish', () => send(id));
      else await send(id);
    } catch (error) {
      replies.forget(ctx.input.orderId); // nothing was asked: nothing to wait for
      throw error;
    }
    const answer = await reply;
    if (trace.enabled) trace.record(`round trip ${kind}`, performance.now() - started);
    return answer;
  }

  const placeOrder = defineSaga('place-order', { input: PlaceOrderInput })
    .step('reserve-stock', {
      timeoutMs: replyTimeoutMs,
      retry: { attempts: 4 },
      run: async (ctx) => {
        const { input, sagaId } = ctx;
        const reply = await ask(
          'reserve',
          (id) =>
            publisher.publish(
              ReserveStockRequested,
              { orderId: input.orderId, sku: input.sku, qty: input.qty },
              { id, key: input.orderId, sagaId },
            ),
          ctx,
        );
        if (reply.type === 'rejected') throw new OrderRejectedError(reply.data.reason);
        return { sku: input.sku, qty: input.qty };
      },
      compensate: async (ctx) => {
        await ask(
          'release',
          (id) =>
            publisher.publish(
              ReleaseStockRequested,
              { orderId: ctx.input.orderId },
              { id, key: ctx.input.orderId, sagaId: ctx.sagaId },
            ),
          ctx,
        );
      },
      compensationRetry: { attempts: 8 },
    })
    .step('charge-card', {
      timeoutMs: replyTimeoutMs,
      retry: { attempts: 4 },
      run: async (ctx) => {
        const { input, sagaId } = ctx;
        const reply = await ask(
          'charge',
          (id) =>
            publisher.publish(
              ChargeRequested,
              { orderId: input.orderId, amountCents: input.amountCents, card: input.card },
              { id, key: input.orderId, sagaId },
            ),
          ctx,
        );
        if (reply.type === 'declined') throw new OrderRejectedError(reply.data.reason);
        if (reply.type !== 'charged') throw new Error(`unexpected reply ${reply.type}`);
        return { chargeId: reply.data.chargeId, amountCents: reply.data.amountCents };
      },
      compensate: async (ctx) => {
        await ask(
          'refund',
          (id) =>
            publisher.publish(
              RefundRequested,
              { orderId: ctx.input.orderId },
              { id, key: ctx.input.orderId, sagaId: ctx.sagaId },
            ),
          ctx,
        );
      },
      compensationRetry: { attempts: 8 },
    })
    .step('ship', {
      pivot: true,
      timeoutMs: replyTimeoutMs,
      retry: { attempts: 10 },
      run: async (ctx) => {
        const { input, sagaId } = ctx;
        const reply = await ask(
          'ship',
          (id) =>
            publisher.publish(
              ShipRequested,
              { orderId: input.orderId, sku: input.sku, qty: input.qty },
              { id, key: input.orderId, sagaId },
            ),
          ctx,
        );
        // The pivot itself failing still compensates the steps before it: nothing shipped yet.
        if (reply.type === 'refused') throw new OrderRejectedError(reply.data.reason);
        return { trackingId: reply.type === 'shipped' ? reply.data.trackingId : '' };
      },
    })
    .build();

  // The engine logs every failed step at `warn`. Here most failures are business refusals (out
  // of stock, card declined) that the saga handles by compensating, so its log starts at
  // `error` unless BACKTRACK_LOG_LEVEL asks for more.
  const engineLogger = infra.logger.child(
    { service: 'orders' },
    { level: process.env.BACKTRACK_LOG_LEVEL ?? 'error' },
  );
  const engine = createSagaEngine({ store: sagaStore, logger: engineLogger });
  engine.register(placeOrder);
  // Saga, step and compensation spans and the saga metrics (recorded once an SDK is installed).
  const detachTelemetry = instrumentSagaEngine(engine);

  const subscription = await consume(infra, 'orders', {
    registry,
    handlers: [
      handle(StockReserved, ({ data }) =>
        replies.deliver(data.orderId, 'reserve', { type: 'reserved', data }),
      ),
      handle(StockRejected, ({ data }) =>
        replies.deliver(data.orderId, 'reserve', { type: 'rejected', data }),
      ),
      handle(StockReleased, ({ data }) =>
        replies.deliver(data.orderId, 'release', { type: 'released', data }),
      ),
      // Orders reads every version of payment.charged as v2 (v1 is upcast).
      handle(PaymentCharged, ({ data }) =>
        replies.deliver(data.orderId, 'charge', { type: 'charged', data }),
      ),
      handle(PaymentDeclined, ({ data }) =>
        replies.deliver(data.orderId, 'charge', { type: 'declined', data }),
      ),
      handle(PaymentRefunded, ({ data }) =>
        replies.deliver(data.orderId, 'refund', { type: 'refunded', data }),
      ),
      handle(Shipped, ({ data }) =>
        replies.deliver(data.orderId, 'ship', { type: 'shipped', data }),
      ),
      handle(ShipmentRefused, ({ data }) =>
        replies.deliver(data.orderId, 'ship', { type: 'refused', data }),
      ),
    ],
  });

  async function settle(result: SagaResult): Promise<Order> {
    const orderId = (result.record.input as PlaceOrderInput).orderId;
    if (result.status !== SagaStatus.Running && result.status !== SagaStatus.Compensating)
      replies.forget(orderId); // a step that timed out may have left its waiter
    // The order as setStatus stored it (one call), or as it is when the saga has not ended.
    let order: Order | undefined;
    switch (result.status) {
      case SagaStatus.Completed:
        order = await state.setStatus(orderId, 'confirmed');
        if (telling)
          story.tell({ orderId, service: 'orders', mark: 'done', text: 'order confirmed' });
        break;
      case SagaStatus.Compensated: {
        const reason = result.record.failure?.error.message ?? 'cancelled';
        const undone = result.record.compensationOrder;
        order = await state.setStatus(orderId, 'cancelled', reason);
        if (telling)
          story.tell({
            orderId,
            service: 'orders',
            mark: 'cancelled',
            text:
              undone.length === 0
                ? 'order cancelled (nothing to undo)'
                : `order cancelled, undid ${undone.join(' and ')}`,
          });
        break;
      }
      case SagaStatus.Running:
      case SagaStatus.Compensating:
        break;
      default: {
        const reason = `saga ${result.status}: ${JSON.stringify(result.record.stuck ?? result.record.failure)}`;
        order = await state.setStatus(orderId, 'needs-attention', reason);
        if (telling) story.tell({ orderId, service: 'orders', mark: 'fail', text: reason });
        logger.warn(
          { orderId, sagaId: result.sagaId, status: result.status },
          'order needs a person',
        );
      }
    }
    return order ?? (await state.get(orderId))!;
  }

  return {
    name: 'orders',
    version,
    engine,
    async place(order) {
      const started = trace.enabled ? performance.now() : 0;
      if (trace.enabled) await trace.time('state create order', () => state.create(order));
      else await state.create(order);
      if (telling)
        story.tell({
          orderId: order.orderId,
          service: 'orders',
          mark: 'start',
          text: `${order.orderId}  ${order.qty} × ${order.sku}  ${euros(order.amountCents)}  card …${order.card.slice(-4)}`,
        });
      const result = await engine.start(placeOrder, order, {
        sagaId: `place-order:${order.orderId}`,
      });
      if (!trace.enabled) return settle(result);
      const final = await trace.time('state settle order', () => settle(result));
      trace.record('order', performance.now() - started);
      return final;
    },
    async recover() {
      const summary = await engine.recover();
      for (const result of summary.results) await settle(result);
      return summary.found;
    },
    async stop() {
      await engine.idle();
      await stopService(subscription, publisher);
      detachTelemetry();
    },
  };
}
