import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SagaRecord, SagaStatus } from '@backtrack/core';
import { probeService, uniqueName } from '../../../test/support/services.js';
import { PostgresSagaStore, dropSchema, migrate } from '@backtrack/postgres';
import { openTestDatabase, type TestDatabase } from './support.js';

const postgres = await probeService('postgres');

function sagaRecord(overrides: Partial<SagaRecord> = {}): SagaRecord {
  const now = new Date().toISOString();
  return {
    sagaId: uniqueName('saga'),
    sagaName: 'place-order',
    definitionVersion: 1,
    status: 'running',
    input: { orderId: 'o-1', amountCents: 1299, tags: ['a', 'b'], nested: { ok: true } },
    steps: { reserve: { status: 'pending', attempts: 0, compensationAttempts: 0 } },
    completionOrder: [],
    compensationOrder: [],
    cancelRequested: false,
    revision: 0,
    createdAt: now,
    updatedAt: now,
    ...overrides,
  };
}

describe.skipIf(!postgres.available)('PostgresSagaStore (beyond the contract)', () => {
  let db: TestDatabase;
  let store: PostgresSagaStore;

  beforeAll(async () => {
    db = await openTestDatabase(postgres.url, 'bt_saga');
    store = new PostgresSagaStore({ pool: db.pool }, { schema: db.schema });
  });
  afterAll(async () => {
    await db?.close();
  });

  it('round-trips a record through JSONB', async () => {
    const record = sagaRecord({
      failure: {
        step: 'reserve',
        error: { name: 'Error', message: 'no stock', code: 'X' },
        reason: 'step-failed',
      },
    });
    expect(await store.create(record)).toEqual({ created: true, record });
    expect(await store.get(record.sagaId)).toEqual(record);
    expect(await store.get('missing')).toBeUndefined();
  });

  it('creates a saga once when many engines start it at the same time', async () => {
    const sagaId = uniqueName('saga');
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        store.create(sagaRecord({ sagaId, input: { attempt: i } })),
      ),
    );
    const created = results.filter((r) => r.created);
    expect(created).toHaveLength(1);
    // Everyone sees the winner's record.
    for (const r of results) expect(r.record.input).toEqual(created[0]!.record.input);
  });

  it('lets exactly one of many concurrent updates from one revision win', async () => {
    const { record } = await store.create(sagaRecord());
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        store.update({ ...record, status: 'compensating', input: { writer: i } }, record.revision),
      ),
    );
    const won = outcomes.filter((o) => o.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const o of outcomes.filter((o) => o.status === 'rejected')) {
      expect((o as PromiseRejectedResult).reason).toMatchObject({
        code: 'BT_ERR_SAGA_CONCURRENT_UPDATE',
        retriable: true,
        details: { sagaId: record.sagaId, expectedRevision: 0, actualRevision: 1 },
      });
    }
    const stored = await store.get(record.sagaId);
    expect(stored).toEqual((won[0] as PromiseFulfilledResult<SagaRecord>).value);
    expect(stored!.revision).toBe(1);
  });

  it('reports an update of an unknown saga as a conflict with no actual revision', async () => {
    await expect(store.update(sagaRecord(), 0)).rejects.toMatchObject({
      code: 'BT_ERR_SAGA_CONCURRENT_UPDATE',
      details: { actualRevision: null },
    });
  });

  it('lists by status through the status index, not a table scan', async () => {
    const name = uniqueName('bulk');
    await db.pool.query(
      `INSERT INTO "${db.schema}".sagas (saga_id, saga_name, status, revision, record, created_at)
       SELECT 'bulk-' || g, $1, CASE WHEN g % 500 = 0 THEN 'stuck' ELSE 'completed' END, 0, '{}'::jsonb,
              now() - g * interval '1 second'
         FROM generate_series(1, 5000) AS g`,
      [name],
    );
    await db.pool.query(`ANALYZE "${db.schema}".sagas`);
    const plan = await db.pool.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN SELECT record FROM "${db.schema}".sagas
        WHERE status = ANY($1::text[]) ORDER BY created_at, saga_id LIMIT 101`,
      [['stuck']],
    );
    const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(text).toMatch(/sagas_status_created_idx/);
    expect(text).not.toMatch(/Seq Scan/);
    await db.pool.query(`DELETE FROM "${db.schema}".sagas WHERE saga_name = $1`, [name]);
  });

  it('pages a filtered list with a cursor, in creation order, without gaps or repeats', async () => {
    const sagaName = uniqueName('paged');
    const statuses: SagaStatus[] = [
      'stuck',
      'running',
      'stuck',
      'completed',
      'stuck',
      'stuck',
      'failed',
      'stuck',
    ];
    const ids: string[] = [];
    // One millisecond apart: two sagas created in the same millisecond are ordered by id, which
    // is not creation order (seen on a fast run).
    const start = Date.now();
    for (const [i, status] of statuses.entries()) {
      const createdAt = new Date(start + i).toISOString();
      const r = sagaRecord({ sagaName, status, createdAt, updatedAt: createdAt });
      ids.push(r.sagaId);
      await store.create(r);
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await store.list({
        sagaName,
        status: 'stuck',
        limit: 2,
        ...(cursor ? { cursor } : {}),
      });
      seen.push(...page.items.map((r) => r.sagaId));
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== undefined);
    expect(seen).toEqual(ids.filter((_, i) => statuses[i] === 'stuck'));
    expect(pages).toBe(3);
    const several = await store.list({ sagaName, status: ['running', 'failed'] });
    expect(several.items.map((r) => r.status)).toEqual(['running', 'failed']);
    expect(several.nextCursor).toBeUndefined();
  });

  it('rejects a cursor it did not issue', async () => {
    await expect(store.list({ cursor: 'garbage' })).rejects.toMatchObject({
      code: 'BT_ERR_PG_CURSOR_INVALID',
    });
  });
  it('retention: expireFinished deletes finished sagas past finishedRetentionMs by their last write, through the partial index', async () => {
    // A schema of its own: the other cases leave finished sagas in the file's schema.
    const schema = uniqueName('bt_saga_ret');
    await migrate(db.pool, { schema });
    try {
      await retentionCase(schema);
    } finally {
      await dropSchema(db.pool, schema);
    }
  });

  async function retentionCase(schema: string): Promise<void> {
    const own = new PostgresSagaStore(
      { pool: db.pool },
      // A long interval: only the explicit passes below run.
      { schema: schema, finishedRetentionMs: 200, retentionIntervalMs: 3_600_000 },
    );
    const ids: Record<string, string> = {};
    for (const status of ['running', 'stuck', 'completed', 'compensated', 'failed'] as const) {
      const r = (await own.create(sagaRecord())).record;
      ids[status] = r.sagaId;
      if (status !== 'running') await own.update({ ...r, status }, r.revision);
    }
    expect(await own.expireFinished()).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    // Written again just now: its retention starts over.
    const failed = (await own.get(ids.failed!))!;
    await own.update({ ...failed, status: 'failed' }, failed.revision);
    expect(await own.expireFinished()).toBe(2);
    expect(await own.get(ids.completed!)).toBeUndefined();
    expect(await own.get(ids.compensated!)).toBeUndefined();
    for (const status of ['running', 'stuck', 'failed']) {
      expect((await own.get(ids[status]!))?.status).toBe(status);
    }
    // The pass reads the partial index of finished sagas, not the whole table.
    const client = await db.pool.connect();
    try {
      await client.query(`SET search_path TO "${schema}"`);
      await client.query('SET enable_seqscan = off');
      const plan = await client.query<{ 'QUERY PLAN': string }>(
        `EXPLAIN SELECT saga_id FROM sagas
          WHERE status IN ('completed', 'compensated', 'failed')
            AND updated_at < now() - 1000 * interval '1 millisecond'
          ORDER BY updated_at LIMIT 1000`,
      );
      expect(plan.rows.map((r) => r['QUERY PLAN']).join('\n')).toContain(
        'sagas_finished_updated_idx',
      );
    } finally {
      client.release();
    }
    expect(
      await new PostgresSagaStore(
        { pool: db.pool },
        { schema: schema, finishedRetentionMs: false },
      ).expireFinished(),
    ).toBe(0);
    expect(
      () => new PostgresSagaStore({ pool: db.pool }, { schema: schema, finishedRetentionMs: 0 }),
    ).toThrow(expect.objectContaining({ code: 'BT_ERR_PG_CONFIG_INVALID' }));
  }
});
