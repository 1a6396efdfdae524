/**
 * The payments service: charges the card, refunds a charge when the order is cancelled, and
 * applies adjustments (refunds of an overcharge) that a rollback asks for.
 *
 * `options.bad` turns this into the bad deploy of the rollback drill: version 1.1.0 moved
 * `payment.charged` to v2 (integer cents), and a units bug makes it charge 100 times the amount.
 */
import { defineCompensations, emit, handle } from '@backtrack/core';
import {
  ChargeRequested,
  PaymentAdjustmentRequested,
  PaymentCharged,
  PaymentDeclined,
  PaymentRefunded,
  RefundRequested,
  currentRegistry,
} from '../events.js';
import type { Payment, PaymentsState } from '../state/types.js';
import { euros, SILENT_STORY } from '../story.js';
import {
  consume,
  publisherFor,
  storyOf,
  type RunningService,
  type ServiceInfra,
  stopService,
} from '../infra/service.js';
import type { ShopTopics } from '../infra/topics.js';
import { replyTo } from './inventory.js';

/** The card number the example's payment provider always declines. */
export const DECLINED_CARD = '4000 0000 0000 0002';

/** The good and the bad version strings of the drill. */
export const PAYMENTS_GOOD_VERSION = '1.0.0';
export const PAYMENTS_BAD_VERSION = '1.1.0';

export interface PaymentsOptions {
  /** The deployed version. @default '1.0.0', or '1.1.0' when `bad` */
  version?: string;
  /** Run the bad build: writes `payment.charged` v2 and charges 100× the amount. @default false */
  bad?: boolean;
}

export async function startPayments(
  infra: ServiceInfra,
  state: PaymentsState,
  options: PaymentsOptions = {},
): Promise<RunningService> {
  const bad = options.bad ?? false;
  const version = options.version ?? (bad ? PAYMENTS_BAD_VERSION : PAYMENTS_GOOD_VERSION);
  const registry = currentRegistry();
  const publisher = publisherFor(infra, 'payments', version, registry);
  const story = storyOf(infra);
  // Its lines are built only when someone listens (the load driver's story is silent).
  const telling = story !== SILENT_STORY;

  const publishCharged = async (p: Payment, reply: ReturnType<typeof replyTo>) => {
    if (bad) {
      await publisher.publish(
        PaymentCharged,
        { orderId: p.orderId, chargeId: p.chargeId, amountCents: p.chargedCents, currency: 'EUR' },
        { ...reply, schemaVersion: 2 },
      );
    } else {
      // 1.0.0 still writes v1: the consumers deployed with it read v1.
      await publisher.publish(
        PaymentCharged,
        { orderId: p.orderId, chargeId: p.chargeId, amount: p.chargedCents / 100 },
        { ...reply, schemaVersion: 1 },
      );
    }
  };

  const subscription = await consume(infra, 'payments', {
    registry,
    handlers: [
      handle(ChargeRequested, async ({ data, envelope }) => {
        const reply = replyTo(envelope, data.orderId);
        const declined = data.card === DECLINED_CARD;
        const { payment, duplicate } = await state.charge({
          orderId: data.orderId,
          chargeId: `ch_${data.orderId}`,
          status: declined ? 'declined' : 'charged',
          requestedCents: data.amountCents,
          // The bad build's bug: it treats cents as euros and converts them again.
          chargedCents: declined ? 0 : bad ? data.amountCents * 100 : data.amountCents,
          version,
          ...(declined ? { reason: 'card declined by the issuer' } : {}),
        });
        if (payment.status === 'charged') {
          if (!duplicate) {
            if (telling)
              story.tell({
                orderId: data.orderId,
                service: 'payments',
                mark: 'ok',
                text: `charged ${euros(payment.chargedCents)} to card …${data.card.slice(-4)}`,
              });
          }
          await publishCharged(payment, reply);
          return;
        }
        const reason = payment.reason ?? payment.status;
        if (!duplicate) {
          if (telling)
            story.tell({ orderId: data.orderId, service: 'payments', mark: 'fail', text: reason });
        }
        await publisher.publish(PaymentDeclined, { orderId: data.orderId, reason }, reply);
      }),
      handle(RefundRequested, async ({ data, envelope }) => {
        const { payment, refundedNow } = await state.refund(data.orderId);
        if (refundedNow > 0) {
          if (telling)
            story.tell({
              orderId: data.orderId,
              service: 'payments',
              mark: 'undo',
              text: `refunded ${euros(refundedNow)}`,
            });
        }
        await publisher.publish(
          PaymentRefunded,
          {
            orderId: data.orderId,
            chargeId: payment.chargeId,
            amountCents: refundedNow,
            reason: 'order cancelled',
          },
          replyTo(envelope, data.orderId),
        );
      }),
      handle(PaymentAdjustmentRequested, async ({ data, envelope }) => {
        const payment = await state.get(data.orderId);
        if (payment?.status !== 'charged') return;
        const over = payment.chargedCents - payment.refundedCents - payment.requestedCents;
        // Never below what the order asked for: a cancelled order's refund already happened.
        const { refundedNow } = await state.refund(data.orderId, Math.max(0, over));
        if (refundedNow === 0) return;
        if (telling)
          story.tell({
            orderId: data.orderId,
            service: 'payments',
            mark: 'undo',
            text: `refunded the overcharge of ${euros(refundedNow)}`,
          });
        await publisher.publish(
          PaymentRefunded,
          {
            orderId: data.orderId,
            chargeId: payment.chargeId,
            amountCents: refundedNow,
            reason: data.reason,
          },
          replyTo(envelope, data.orderId),
        );
      }),
    ],
  });

  return { name: 'payments', version, stop: () => stopService(subscription, publisher) };
}

/**
 * How a rollback reverses what payments published, declared by the payments team next to the
 * service: a charge is reversed by asking payments (the good version) to refund whatever was
 * charged above the order's amount; a decline or a refund left nothing to undo.
 *
 * The adjustment goes to payments' own topic (`topics.to('payments')`), not to the topic of the
 * charge it reverses (the default of a compensation): `payment.charged` travels on
 * `<prefix>.payments`, which orders and inventory read and payments does not (see topics.ts).
 */
export function paymentsCompensationsFor(topics: Pick<ShopTopics, 'to'>) {
  const topic = topics.to('payments');
  return defineCompensations()
    .reversible(PaymentCharged, (charged, envelope) =>
      emit(
        PaymentAdjustmentRequested,
        {
          orderId: charged.orderId,
          chargeId: charged.chargeId,
          reason: `rollback of payments ${envelope.producerversion ?? 'unknown version'}`,
        },
        { topic },
      ),
    )
    .reversible(PaymentDeclined, () => [])
    .reversible(PaymentRefunded, () => []);
}
