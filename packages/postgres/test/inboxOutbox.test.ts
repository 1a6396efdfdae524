/**
 * The full pattern: a consumer handles a message in an inbox transaction and, in the same
 * transaction, writes its business row and the event it emits to the outbox; a relay publishes.
 * Commit: effect, mark and event exist once. Failure: none of them exist.
 */
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EventRegistry,
  decodeEnvelope,
  defineEvent,
  type OutgoingMessage,
  type Subscription,
  type Transport,
} from '@backtrack/core';
import { probeService, uniqueName } from '../../../test/support/services.js';
import {
  createOutboxWriter,
  createPostgresBackend,
  type PostgresBackend,
} from '@backtrack/postgres';
import pg from 'pg';

const postgres = await probeService('postgres');

const PaymentCharged = defineEvent('payment.charged').version(
  1,
  z.object({ orderId: z.string(), amountCents: z.int() }),
);

class RecordingTransport implements Transport {
  readonly name = 'recording';
  readonly published: OutgoingMessage[] = [];
  async publish(messages: OutgoingMessage[]): Promise<void> {
    this.published.push(...messages);
  }
  async subscribe(): Promise<Subscription> {
    throw new Error('not used');
  }
  async close(): Promise<void> {}
}

describe.skipIf(!postgres.available)('inbox + outbox in one transaction', () => {
  let pool: pg.Pool;
  let backend: PostgresBackend;

  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: postgres.url, max: 5 });
    backend = await createPostgresBackend({ pool }, { schema: uniqueName('bt_io') });
    await pool.query(`CREATE TABLE "${backend.schema}".payments (order_id text PRIMARY KEY)`);
  });
  afterAll(async () => {
    await pool.query(`DROP SCHEMA IF EXISTS "${backend.schema}" CASCADE`);
    await pool.end();
  });

  it('migrates once through the backend and shares its schema', async () => {
    expect(backend.migrated?.applied.length).toBeGreaterThan(0);
    const again = await createPostgresBackend({ pool }, { schema: backend.schema });
    expect(again.migrated?.applied).toEqual([]);
  });

  it('publishes the emitted event exactly when the handler commits', async () => {
    const registry = new EventRegistry([PaymentCharged]);
    const writer = createOutboxWriter(
      { service: 'payments', version: '1.4.0' },
      { outbox: backend.journal, registry },
    );
    const inbox = backend.inbox('payments');
    const transport = new RecordingTransport();
    const relay = backend.relay(transport);

    const handle = (orderId: string, messageKey: string, fail: boolean) =>
      inbox.transaction(messageKey, async (tx) => {
        await tx.query(`INSERT INTO "${backend.schema}".payments (order_id) VALUES ($1)`, [
          orderId,
        ]);
        const envelope = await writer.write(
          tx,
          PaymentCharged,
          { orderId, amountCents: 1250 },
          { key: orderId, sagaId: `saga-${orderId}` },
        );
        if (fail) throw new Error('crash before commit');
        return envelope.id;
      });

    await expect(handle('o-1', 'm-1', true)).rejects.toThrow('crash before commit');
    expect(await relay.drain()).toBe(0);
    const ok = await handle('o-1', 'm-1', false);
    expect(ok.status).toBe('handled');
    expect((await handle('o-1', 'm-1', false)).status).toBe('duplicate');
    expect(await relay.drain()).toBe(1);
    expect(transport.published).toHaveLength(1);
    const sent = transport.published[0]!;
    expect(sent).toMatchObject({ topic: 'payments', key: 'o-1' });
    const envelope = decodeEnvelope(sent.message);
    expect(envelope).toMatchObject({
      id: (ok as { value: string }).value,
      type: 'payment.charged',
      producerservice: 'payments',
      producerversion: '1.4.0',
      sagaid: 'saga-o-1',
      data: { orderId: 'o-1', amountCents: 1250 },
    });
    // The rollback planner finds it by service and version.
    const page = await backend.journal.query({ service: 'payments', version: '1.4.0' });
    expect(page.items.map((r) => [r.id, r.state])).toEqual([[envelope.id, 'published']]);
  });

  it('refuses an event type missing from the registry', async () => {
    const writer = createOutboxWriter(
      { service: 'payments', version: '1' },
      { outbox: backend.journal, registry: new EventRegistry() },
    );
    const tx = await pool.connect();
    try {
      await expect(
        writer.write(tx, PaymentCharged, { orderId: 'x', amountCents: 1 }),
      ).rejects.toMatchObject({
        code: 'BT_ERR_SCHEMA_UNKNOWN_EVENT_TYPE',
      });
    } finally {
      tx.release();
    }
  });
});
