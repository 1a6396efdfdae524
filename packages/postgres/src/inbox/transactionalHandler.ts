import type { Pool, PoolClient } from 'pg';
import {
  LeaseHeldError,
  handle,
  type EventData,
  type EventDefinition,
  type HandlerContext,
  type HandlerFn,
  type HandlerRoute,
  type Logger,
  type VersionSchemas,
} from '@backtrack/core';
import { PostgresConfigError } from '../errors.js';
import { PostgresInbox, type PostgresInboxOptions } from './PostgresInbox.js';

/**
 * The marker `handle()` in `@backtrack/core` recognises as "already processed": it acknowledges
 * the message as a duplicate. Shared through the global symbol registry, like the core wrapper.
 */
const DUPLICATE = Symbol.for('backtrack.idempotent.duplicate');

/** What a transactional handler receives: the core handler context plus the transaction. */
export interface TransactionalHandlerContext<TData> extends HandlerContext<TData> {
  /**
   * The open transaction the inbox mark was inserted in. Do the handler's database writes through
   * it (not through the pool): they commit together with the mark, or not at all.
   */
  tx: PoolClient;
  /** The inbox key of this message (consumer-scoped). */
  messageKey: string;
}

/** Options of {@link transactionalHandler}. */
export interface TransactionalHandlerOptions extends PostgresInboxOptions {
  /** Names the inbox marks (first half of the primary key). Usually the consumer group. */
  consumer: string;
  /**
   * Derives the inbox key from the handler context, for example a business id.
   * @default the context's `idempotencyKey` (consumer, source and id of the envelope)
   */
  key?: (context: HandlerContext<unknown>) => string;
  logger?: Logger;
}

/** A handler function that also accepts the transaction as its second argument. */
export type TransactionalHandlerFn<TData> = (
  context: TransactionalHandlerContext<TData>,
  tx: PoolClient,
) => unknown;

/**
 * Wraps a handler so it runs inside a {@link PostgresInbox} transaction: the inbox mark and the
 * handler's writes through `tx` commit together, a duplicate is acknowledged without running the
 * handler, and a crash or a thrown error rolls both back (the message is retried or redelivered
 * and runs again, once). Plug the result into core's `handle()`:
 *
 * - handled: the handler's return value goes back to `handle()` (a string is also stored with the
 *   mark and returned to later duplicates);
 * - duplicate: `handle()` acknowledges with outcome `duplicate`;
 * - another delivery of the same message still inside its transaction (longer than
 *   `lockTimeoutMs`), or holding a DedupeStore lease: throws `LeaseHeldError`, which the pipeline
 *   turns into `redeliver`;
 * - the database down: throws a retriable `StoreUnavailableError` (redeliver with a pause).
 *
 * Do not also give the pipeline this inbox, with the same consumer name, as its `dedupeStore`:
 * the pipeline's lease row would make every transactional claim answer in-progress. A separate
 * dedupe store (or none) is fine; the inbox already deduplicates.
 *
 * @example
 * const pipeline = createConsumerPipeline({
 *   name: 'payments',
 *   handlers: [
 *     handle(PaymentRequested, transactionalHandler(pool, { consumer: 'payments' }, async ({ data }, tx) => {
 *       await tx.query('INSERT INTO payments (order_id, amount_cents) VALUES ($1, $2)', [data.orderId, data.amountCents]);
 *     })),
 *   ],
 * });
 */
export function transactionalHandler<TData>(
  pool: Pool,
  options: TransactionalHandlerOptions,
  fn: TransactionalHandlerFn<TData>,
): HandlerFn<TData> {
  if (typeof fn !== 'function') {
    throw new PostgresConfigError('handler', 'must be a function (context, tx) => ...', typeof fn);
  }
  if (typeof options?.consumer !== 'string' || options.consumer.length === 0) {
    throw new PostgresConfigError('consumer', 'must be a non-empty string', options?.consumer);
  }
  if (options.key !== undefined && typeof options.key !== 'function') {
    throw new PostgresConfigError(
      'key',
      'must be a function (context) => string',
      typeof options.key,
    );
  }
  const { key: keyOf, logger, ...inboxOptions } = options;
  const inbox = new PostgresInbox(
    { pool, ...(logger === undefined ? {} : { logger }) },
    inboxOptions,
  );
  return async function transactionalHandlerFn(context: HandlerContext<TData>): Promise<unknown> {
    const messageKey = keyOf?.(context as HandlerContext<unknown>) ?? context.idempotencyKey;
    const outcome = await inbox.transaction(
      messageKey,
      (tx) => Promise.resolve(fn({ ...context, tx, messageKey }, tx)),
      { result: (value) => (typeof value === 'string' ? value : undefined) },
    );
    switch (outcome.status) {
      case 'handled':
        return outcome.value;
      case 'duplicate':
        context.logger.debug(
          { messageKey },
          'inbox: duplicate acknowledged without running the handler',
        );
        return Object.defineProperty(
          outcome.result === undefined
            ? { status: 'duplicate' as const }
            : { status: 'duplicate' as const, result: outcome.result },
          DUPLICATE,
          { value: true },
        );
      case 'in-progress':
        throw new LeaseHeldError(messageKey);
    }
  };
}

/**
 * `handle()` with a {@link transactionalHandler}: routes `definition`'s events to `fn`, inside an
 * inbox transaction, with `data` typed at `options.version` (default: the latest version).
 * Prefer it to `handle(def, transactionalHandler(...))` when you leave out `version`:
 * TypeScript then cannot see through the nested call and types `data` as `unknown`.
 *
 * @example
 * handleInTransaction(PaymentRequested, { pool, consumer: 'payments' }, async ({ data }, tx) => {
 *   await tx.query('INSERT INTO payments (order_id) VALUES ($1)', [data.orderId]);
 * });
 */
export function handleInTransaction<
  TType extends string,
  TSchemas extends VersionSchemas,
  TLatest extends number,
  V extends keyof TSchemas & number = TLatest & keyof TSchemas,
>(
  definition: EventDefinition<TType, TSchemas, TLatest>,
  target: TransactionalHandlerOptions & { pool: Pool },
  fn: TransactionalHandlerFn<EventData<EventDefinition<TType, TSchemas, TLatest>, V>>,
  options: { version?: V } = {},
): HandlerRoute {
  const { pool, ...handlerOptions } = target;
  return handle(definition, transactionalHandler(pool, handlerOptions, fn), options);
}
