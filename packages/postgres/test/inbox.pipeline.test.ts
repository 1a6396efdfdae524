import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import {
  createConsumerPipeline,
  defineEvent,
  encodeEnvelope,
  handle,
  type IncomingMessage,
} from '@backtrack/core';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { handleInTransaction, transactionalHandler } from '@backtrack/postgres';
import { openTestDatabase, type TestDatabase } from './support.js';

const postgres = await probeService('postgres');

const PaymentRequested = defineEvent('payment.requested')
  .version(1, z.object({ orderId: z.string(), amount: z.number() }))
  .version(2, z.object({ orderId: z.string(), amountCents: z.int() }), {
    up: (v1) => ({ orderId: v1.orderId, amountCents: Math.round(v1.amount * 100) }),
    down: (v2) => ({ orderId: v2.orderId, amount: v2.amountCents / 100 }),
  });

function delivery(orderId: string, id = uniqueName('msg'), attempt = 1): IncomingMessage {
  return {
    message: encodeEnvelope(
      PaymentRequested.envelope({ orderId, amount: 12.5 }, { source: '//orders', version: 1, id }),
    ),
    attempt,
    origin: { transport: 'test', topic: 'payments', group: 'payments' },
  };
}

describe.skipIf(!postgres.available)('transactionalHandler in the core consumer pipeline', () => {
  let db: TestDatabase;
  let payments: string;

  beforeAll(async () => {
    db = await openTestDatabase(postgres.url, 'bt_inbox_pipe');
    payments = `"${db.schema}".payments`;
    await db.pool.query(
      `CREATE TABLE ${payments} (order_id text NOT NULL, amount_cents int NOT NULL)`,
    );
  });
  afterAll(async () => {
    await db?.close();
  });

  const countFor = async (orderId: string) =>
    Number(
      (
        await db.pool.query<{ n: string }>(
          `SELECT count(*) AS n FROM ${payments} WHERE order_id = $1`,
          [orderId],
        )
      ).rows[0]!.n,
    );

  function pipelineWith(fail: { times: number }, consumer = uniqueName('payments')) {
    return createConsumerPipeline(
      {
        name: 'payments',
        handlers: [
          handle(
            PaymentRequested,
            transactionalHandler(pool(), { consumer, schema: db.schema }, async (ctx, tx) => {
              expectTypeOf(ctx.data).toEqualTypeOf<{ orderId: string; amountCents: number }>();
              expect(ctx.tx).toBe(tx);
              await tx.query(`INSERT INTO ${payments} (order_id, amount_cents) VALUES ($1, $2)`, [
                ctx.data.orderId,
                ctx.data.amountCents,
              ]);
              if (fail.times > 0) {
                fail.times--;
                throw new Error('payment provider timed out after our insert');
              }
              return `paid:${ctx.data.orderId}`;
            }),
            { version: 2 },
          ),
        ],
        retry: { attempts: 3, initialDelayMs: 1, maxDelayMs: 1 },
      },
      {},
    );
  }
  const pool = () => db.pool;

  it('acks handled, then acks a redelivery as a duplicate without a second effect', async () => {
    const pipeline = pipelineWith({ times: 0 });
    const orderId = uniqueName('o');
    const message = delivery(orderId);
    expect(await pipeline.process(message)).toEqual({ kind: 'ack', outcome: 'handled' });
    expect(await pipeline.process(message)).toEqual({ kind: 'ack', outcome: 'duplicate' });
    expect(await countFor(orderId)).toBe(1);
    const [row] = (
      await db.pool.query(`SELECT amount_cents FROM ${payments} WHERE order_id = $1`, [orderId])
    ).rows;
    expect(row).toEqual({ amount_cents: 1250 });
  });

  it('rolls the write back when the handler fails, retries, and ends with one effect', async () => {
    const pipeline = pipelineWith({ times: 1 });
    const orderId = uniqueName('o');
    const id = uniqueName('msg');
    const first = await pipeline.process(delivery(orderId, id, 1));
    expect(first.kind).toBe('retry');
    expect(await countFor(orderId)).toBe(0);
    expect(await pipeline.process(delivery(orderId, id, 2))).toEqual({
      kind: 'ack',
      outcome: 'handled',
    });
    expect(await pipeline.process(delivery(orderId, id, 3))).toEqual({
      kind: 'ack',
      outcome: 'duplicate',
    });
    expect(await countFor(orderId)).toBe(1);
  });

  it('redelivers (without acking) while another delivery of the message holds it', async () => {
    const consumer = uniqueName('payments');
    const orderId = uniqueName('o');
    const id = uniqueName('msg');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const slow = createConsumerPipeline({
      name: 'payments',
      handlers: [
        handleInTransaction(
          PaymentRequested,
          { pool: db.pool, consumer, schema: db.schema },
          async ({ data }, tx) => {
            expectTypeOf(data).toEqualTypeOf<{ orderId: string; amountCents: number }>();
            await tx.query(`INSERT INTO ${payments} (order_id, amount_cents) VALUES ($1, $2)`, [
              data.orderId,
              data.amountCents,
            ]);
            entered();
            await gate;
          },
        ),
      ],
    });
    const fast = createConsumerPipeline({
      name: 'payments',
      handlers: [
        handle(
          PaymentRequested,
          transactionalHandler(
            db.pool,
            { consumer, schema: db.schema, lockTimeoutMs: 100 },
            async () => {
              throw new Error('must not run');
            },
          ),
        ),
      ],
    });
    const first = slow.process(delivery(orderId, id));
    await inside;
    const second = await fast.process(delivery(orderId, id));
    expect(second).toMatchObject({ kind: 'redeliver', pause: false });
    release();
    expect(await first).toEqual({ kind: 'ack', outcome: 'handled' });
    expect(await fast.process(delivery(orderId, id))).toEqual({
      kind: 'ack',
      outcome: 'duplicate',
    });
    expect(await countFor(orderId)).toBe(1);
  });

  it('validates its options at construction', () => {
    expect(() => transactionalHandler(db.pool, { consumer: '' }, async () => undefined)).toThrow(
      expect.objectContaining({
        code: 'BT_ERR_PG_CONFIG_INVALID',
        details: expect.objectContaining({ field: 'consumer' }),
      }),
    );
  });
});
